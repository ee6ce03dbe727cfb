"""Hold what every command needs, loaded on first use: config, database, signer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import click

from briefing.config import Config, load_config, signing_keys
from briefing.domain.tokens import Signer
from briefing.errors import BriefingError
from briefing.store import Database, open_database


@dataclass
class App:
    """Lazy access to the config file, the database and the signing key."""

    config_path: str
    debug: bool = False
    _database: Database | None = field(default=None, init=False)

    @cached_property
    def config(self) -> Config:
        """Load and validate config.yaml."""
        return load_config(Path(self.config_path))

    @property
    def database(self) -> Database:
        """Open the database (created and upgraded on first use)."""
        if self._database is None:
            self._database = open_database(self.config.database)
        return self._database

    @cached_property
    def signer(self) -> Signer:
        """Return the signer built from the environment's keys."""
        return Signer(signing_keys())

    def close(self) -> None:
        """Release database connections."""
        if self._database is not None:
            self._database.dispose()


pass_app = click.make_pass_decorator(App)


def parse_at(value: str | None) -> datetime:
    """Read ``--at``: an ISO 8601 time (naive means UTC), or now."""
    if not value:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BriefingError(
            f"--at {value!r} is not an ISO 8601 time", hint="e.g. --at 2026-11-26T07:00:00+00:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
