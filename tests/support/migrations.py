"""Databases held at an older migration, for upgrade tests on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig

from briefing.store import Database, open_database
from briefing.store.db import MIGRATIONS


def upgrade_to(database: Database, revision: str) -> None:
    """Run the migrations up to ``revision`` only."""
    settings = AlembicConfig()
    settings.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        settings.attributes["connection"] = connection
        command.upgrade(settings, revision)


def unmigrated(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """An empty database of ``backend`` (sqlite or postgresql), not migrated at all."""
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    return open_database(url, upgrade=False)
