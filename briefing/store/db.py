"""Open the database, upgrade it to the current schema, and hand out transactions.

SQLite (the default) runs in WAL mode with a busy timeout, and every
transaction begins IMMEDIATE so that two writers queue instead of failing
half-way with "database is locked". Every connection sets ``secure_delete``,
so deleted rows are overwritten with zeros rather than left in free space;
after an erasure :meth:`Database.checkpoint` folds the WAL back into the file
and truncates it, so no old copy of a page stays in the ``-wal`` file. PostgreSQL is used when ``database_url``
names it. Scheduler, sender, web and ingest may run at once: callers keep
transactions short and never hold one across an SMTP or HTTP call.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from briefing.errors import StoreError

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
LOCKED_HINT = (
    "Most likely a long write by another `briefing` command on the same file: an import, a "
    "send or dispatch, an erasure, or a copy of a version that writes in one long transaction. "
    "Wait for it to finish and run this again; `briefing serve` and `briefing web` only hold "
    "the database for short moments."
)


# Execution option marking a connection's transactions as read-only (see Database.reading).
READ_ONLY_OPTION = "briefing_read_only"


def _sha256_hex(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sqlite_engine(url: str) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted personal data is overwritten, not left readable in free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()
        # Dispatch matches addresses against the hashed suppression list in SQL;
        # PostgreSQL has sha256() built in, SQLite gets it here.
        dbapi_connection.create_function("briefing_sha256", 1, _sha256_hex, deterministic=True)

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        # A read-only transaction (Database.reading) takes no write lock: it never waits
        # for a sender's commit, nor makes one wait.
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@dataclass(frozen=True)
class Checkpoint:
    """What folding the SQLite WAL back into the database file came to."""

    done: bool  # the WAL was fully written back and truncated to zero bytes
    attempts: int
    busy: str | None = None  # why it could not finish (another process still reading)


class Database:
    """Hold the engine and open short transactions on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        """Tell whether this is a SQLite database."""
        return self.engine.dialect.name == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """Return the SQLite file, if this is one."""
        database = self.engine.url.database
        if self.is_sqlite and database and database != ":memory:":
            return Path(database)
        return None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Run a block in one transaction, committed on success, rolled back on error."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except OperationalError as exc:
            if self.is_sqlite and "database is locked" in str(exc):
                raise self.locked_error() from exc
            raise

    def locked_error(self) -> StoreError:
        """Say that a SQLite write waited out the busy timeout (another writer held the file)."""
        return StoreError(
            f"the database {self.sqlite_path or ''} stayed locked for "
            f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s: another process held a write "
            "transaction all that time",
            hint=LOCKED_HINT,
        )

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Run a block of reads in one read-only transaction (no write lock on SQLite).

        On PostgreSQL the transaction is READ ONLY; on SQLite it begins DEFERRED,
        so a reader (a metrics scrape, a status check) never queues behind a writer.
        """
        with self.engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY_OPTION: True})
            with connection.begin(), Session(bind=connection) as session:
                if not self.is_sqlite:
                    session.execute(text("SET TRANSACTION READ ONLY"))
                yield session

    def revisions(self) -> tuple[str | None, str | None]:
        """Return (the database's migration revision, the newest one this code knows)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        with self.reading() as session:
            current = MigrationContext.configure(session.connection()).get_current_revision()
        return current, head

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        logger.info("upgrading database schema %s -> %s", current or "(empty)", head)
        self.migrate(lambda settings: command.upgrade(settings, "head"))

    def migrate(self, step: Callable[[AlembicConfig], None]) -> None:
        """Run ``step`` (an alembic command) in one transaction, keeping every row of SQLite.

        A batch migration rebuilds a SQLite table by dropping it; with foreign
        keys on, the drop would cascade to the rows pointing at it. They are
        off while ``step`` runs (the pragma only takes effect outside a
        transaction, hence the raw connection), and the references are checked
        before the commit.
        """
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as connection:
            raw = connection.connection.driver_connection if self.is_sqlite else None
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    config.attributes["connection"] = connection
                    step(config)
                    if raw is not None:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise StoreError(f"the migration left broken references: {broken[:5]}")
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")

    def checkpoint(self, *, attempts: int = 10, wait: float = 0.5) -> Checkpoint | None:
        """Write the SQLite WAL back into the database file and truncate it (``TRUNCATE``).

        Another process with a read transaction open keeps the WAL in use; the
        checkpoint is then retried ``attempts`` times, ``wait`` seconds apart,
        and the result says it did not finish. Return None for PostgreSQL.
        """
        if not self.is_sqlite:
            return None
        busy = None
        for attempt in range(1, attempts + 1):
            with self.engine.connect() as connection:
                raw = connection.connection.driver_connection
                assert raw is not None
                # TRUNCATE waits for readers through the busy handler: wait ``wait``, not 30 s.
                raw.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
                try:
                    blocked, frames, copied = raw.execute(
                        "PRAGMA wal_checkpoint(TRUNCATE)"
                    ).fetchone()
                finally:
                    raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not blocked:
                return Checkpoint(True, attempt)
            busy = (
                "another process is still reading or writing the database "
                f"({copied} of {frames} log page(s) written back)"
            )
            logger.info("WAL checkpoint attempt %d of %d: %s", attempt, attempts, busy)
        return Checkpoint(False, attempts, busy)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Open the database at ``url`` and bring its schema up to date."""
    try:
        if make_url(url).get_backend_name() == "sqlite":
            engine = _sqlite_engine(url)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        database = Database(engine)
        if upgrade:
            database.upgrade()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the database {make_url(url).render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}",
            hint="Check database_url in config.yaml and that the server is running.",
        ) from exc
    return database
