"""Shared fixtures: a project on disk, its database and a signer."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.store import Database, open_database
from tests.support.factories import KEY, make_project

POSTGRES_ADMIN = os.environ.get(
    "BRIEFING_TEST_POSTGRES", "postgresql+psycopg://postgres@localhost/postgres"
)


@pytest.fixture
def project(tmp_path: Path) -> Config:
    """A config with a few articles on disk."""
    return make_project(tmp_path)


@pytest.fixture
def database(project: Config) -> Iterator[Database]:
    """The project's SQLite database, migrated."""
    db = open_database(project.database)
    yield db
    db.dispose()


@pytest.fixture
def signer() -> Signer:
    """A signer with a fixed test key."""
    return Signer([KEY])


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; skipped when no server answers."""
    try:
        admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            name = f"briefing_test_{uuid.uuid4().hex[:8]}"
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach the server means: no PostgreSQL here
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN}: {exc.__class__.__name__}")
    yield POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()
