"""Shared fixtures: a project on disk, its database and a signer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from briefing.config import Config
from briefing.store import Database, open_database
from briefing.tokens import Signer
from tests.factories import KEY, make_project


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
