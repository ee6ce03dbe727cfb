"""The migrations and the table declarations describe the same schema.

A state added to an enum, or a column added to ``store/schema.py``, without a
migration would pass every test on a fresh database and fail on an upgraded
one; these tests catch that on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from briefing.domain.states import (
    BounceKind,
    BounceMatch,
    DeliveryState,
    MessageKind,
    SubscriptionState,
)
from briefing.store import open_database
from briefing.store.db import MIGRATIONS
from briefing.store.schema import Base


def newest_listing(name: str) -> tuple[str, ...]:
    """The list ``name`` (e.g. DELIVERY_STATES) of the newest migration that spells it out."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    for revision in ScriptDirectory.from_config(config).walk_revisions():  # newest first
        listed = getattr(revision.module, name, None)
        if listed is not None:
            return tuple(listed)
    raise AssertionError(f"no migration lists {name}")


def differences(url: str) -> list[Any]:
    database = open_database(url)
    try:
        with database.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": False, "compare_server_default": False}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        database.dispose()


# SQLAlchemy cannot read an expression's index back from SQLite; PostgreSQL's test compares
# the cohort index, and test_dispatch checks that SQLite searches by all of it.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrated_sqlite_matches_the_declared_tables(tmp_path: Path) -> None:
    assert differences(f"sqlite:///{tmp_path / 'briefing.db'}") == []


def test_migrated_postgresql_matches_the_declared_tables(postgres_url: str) -> None:
    assert differences(postgres_url) == []


@pytest.mark.parametrize(
    ("enum", "listed"),
    [
        (DeliveryState, "DELIVERY_STATES"),
        (SubscriptionState, "SUBSCRIPTION_STATES"),
        (MessageKind, "MESSAGE_KINDS"),
        (BounceKind, "BOUNCE_KINDS"),
        (BounceMatch, "BOUNCE_MATCHES"),
    ],
)
def test_the_state_checks_of_the_newest_migration_list_every_state(enum: Any, listed: str) -> None:
    assert sorted(state.value for state in enum) == sorted(newest_listing(listed))
