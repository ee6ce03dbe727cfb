"""Hold a database's one scheduler lock for the life of the process.

Only one ``briefing serve`` may schedule a database. Two would still never
send an edition twice (dispatch's unique keys decide every race), but they
would double the work and leave ops unsure which one acts. The lock dies with
its process, so a crash or ``kill -9`` never leaves a stale lock behind:

- **SQLite**: ``flock`` on a file beside the database
  (``briefing.db.scheduler.lock``); the kernel releases it when the process
  ends. The file itself stays and is harmless; it names the last holder.
- **PostgreSQL**: a session-level advisory lock taken on a dedicated,
  autocommit connection kept open for the life of the process; the server
  releases it when that session ends (TCP keepalives are set on the session
  so a vanished host lets go within about a minute).

``scheduler_holder`` tells another process (``briefing run-now``) whether a
scheduler is running and who it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from briefing.errors import SchedulerError, SchedulerLockError
from briefing.store.db import Database

# The advisory lock's key pair: a constant naming this project ("brie") and the
# scheduler. Advisory locks are per database, so one key serves every database.
ADVISORY_KEYS = (0x62726965, 1)
# A probe by `briefing run-now` holds the lock for an instant; a starting
# scheduler retries for this long before it refuses.
ACQUIRE_PATIENCE_SECONDS = 2.0
_HOLDER_SQL = text(
    """
    SELECT a.pid, a.application_name, a.client_addr, a.backend_start
    FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.classid = :first AND l.objid = :second AND l.objsubid = 2
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
)


class SchedulerLock(Protocol):
    """The lock a running scheduler holds on its database."""

    description: str

    def held(self) -> bool:
        """Tell whether this process still holds the lock (re-taking it if it can)."""
        ...

    def release(self) -> None:
        """Let go of the lock so another scheduler may start."""
        ...


def _identity() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}, since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"


def lock_file_for(database_file: Path) -> Path:
    """Return the lock file beside a SQLite database file."""
    return database_file.with_name(database_file.name + ".scheduler.lock")


class FileSchedulerLock:
    """An ``flock`` on a file beside the SQLite database."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor
        self.description = f"file lock {path}"

    @classmethod
    def try_acquire(cls, path: Path) -> FileSchedulerLock | None:
        """Take the lock, or return None when another process holds it."""
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SchedulerError(
                f"cannot open the scheduler lock file {path}: {exc.strerror}",
                hint="The folder of the SQLite database must be writable by this user.",
            ) from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        # Name the holder in the file, for the message a refused second scheduler prints.
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"briefing serve {_identity()}\n".encode())
        return cls(path, descriptor)

    @staticmethod
    def holder(path: Path) -> str | None:
        """Name the process holding the lock at ``path``, or None if nobody does."""
        if not path.exists():
            return None
        probe = FileSchedulerLock.try_acquire(path)
        if probe is not None:
            probe.release()
            return None
        try:
            named = path.read_text(encoding="utf-8").strip()
        except OSError:
            named = ""
        return named or "a process that has not named itself yet"

    def held(self) -> bool:
        """Tell whether the lock file is still the one locked (deleting it would break the lock)."""
        if self._descriptor is None:
            return False
        try:
            ours = os.fstat(self._descriptor)
            current = os.stat(self.path)
        except OSError:
            return False
        return (ours.st_dev, ours.st_ino) == (current.st_dev, current.st_ino)

    def release(self) -> None:
        """Unlock and close the file; the file stays for the next holder."""
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None


class PostgresSchedulerLock:
    """A session-level advisory lock on a connection kept for the process's life."""

    def __init__(self, engine: Engine, connection: Connection) -> None:
        self._engine = engine
        self._connection: Connection | None = connection
        self.description = f"PostgreSQL advisory lock {ADVISORY_KEYS} on {engine.url.database}"

    @classmethod
    def try_acquire(cls, database: Database) -> PostgresSchedulerLock | None:
        """Take the lock on a new dedicated connection, or return None when it is held."""
        # A pool of its own: this connection must never be handed to other work.
        engine = create_engine(
            database.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        try:
            connection = cls._take(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise SchedulerError(
                f"cannot take the scheduler lock on {engine.url.database}: "
                f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}",
                hint="Check database_url in config.yaml and that the server is running.",
            ) from exc
        if connection is None:
            engine.dispose()
            return None
        return cls(engine, connection)

    @staticmethod
    def _take(engine: Engine) -> Connection | None:
        connection = engine.connect()
        try:
            name = f"briefing serve pid {os.getpid()} on {socket.gethostname()}"[:63]
            connection.execute(
                text("SELECT set_config('application_name', :name, false)"), {"name": name}
            )
            # Let the server notice a vanished host, and never end this idle session.
            for setting, value in (
                ("tcp_keepalives_idle", "30"),
                ("tcp_keepalives_interval", "10"),
                ("tcp_keepalives_count", "3"),
            ):
                connection.execute(
                    text("SELECT set_config(:s, :v, false)"), {"s": setting, "v": value}
                )
            if int(connection.execute(text("SHOW server_version_num")).scalar_one()) >= 140000:
                connection.execute(text("SET idle_session_timeout = 0"))
            first, second = ADVISORY_KEYS
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:first, :second)"),
                {"first": first, "second": second},
            ).scalar_one()
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            return None
        return connection

    @staticmethod
    def holder(database: Database) -> str | None:
        """Name the session holding the lock on this database, or None if nobody does."""
        first, second = ADVISORY_KEYS
        with database.engine.connect() as connection:
            row = connection.execute(_HOLDER_SQL, {"first": first, "second": second}).first()
        if row is None:
            return None
        pid, application, client, started = row
        where = f" from {client}" if client else ""
        since = (
            f", connected since {started.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if started else ""
        )
        return f"{application or 'a session'} (server pid {pid}{where}{since})"

    def held(self) -> bool:
        """Check the lock on its session; after a lost connection, try to take it again."""
        first, second = ADVISORY_KEYS
        if self._connection is not None:
            try:
                mine = self._connection.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND classid = :first AND objid = :second AND objsubid = 2 "
                        "AND pid = pg_backend_pid()"
                    ),
                    {"first": first, "second": second},
                ).scalar_one()
                return bool(mine)
            except SQLAlchemyError:
                # The session is gone (server restart, network): so is its lock.
                self._connection.invalidate()
                self._connection = None
        try:
            self._connection = self._take(self._engine)
        except SQLAlchemyError:
            return False
        return self._connection is not None

    def release(self) -> None:
        """Unlock and close the dedicated connection."""
        if self._connection is not None:
            first, second = ADVISORY_KEYS
            # If the session is gone, so is the lock.
            with contextlib.suppress(SQLAlchemyError):
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:first, :second)"),
                    {"first": first, "second": second},
                )
            self._connection.close()
            self._connection = None
        self._engine.dispose()


def _describe(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=True)


def _check_lockable(database: Database) -> None:
    if database.is_sqlite and database.sqlite_path is None:
        raise SchedulerError(
            "an in-memory SQLite database cannot be scheduled: it vanishes with the process",
            hint="Use a SQLite file (the default) or PostgreSQL in database_url.",
        )
    if not database.is_sqlite and database.engine.dialect.name != "postgresql":
        raise SchedulerError(
            f"no scheduler lock for {database.engine.dialect.name} databases",
            hint="Use SQLite or PostgreSQL.",
        )


def _try_acquire(database: Database) -> SchedulerLock | None:
    if database.sqlite_path is not None:
        return FileSchedulerLock.try_acquire(lock_file_for(database.sqlite_path))
    return PostgresSchedulerLock.try_acquire(database)


def scheduler_holder(database: Database) -> str | None:
    """Name the running scheduler of ``database``, or None if there is none."""
    _check_lockable(database)
    if database.sqlite_path is not None:
        return FileSchedulerLock.holder(lock_file_for(database.sqlite_path))
    return PostgresSchedulerLock.holder(database)


def acquire_scheduler_lock(
    database: Database, *, patience: float = ACQUIRE_PATIENCE_SECONDS
) -> SchedulerLock:
    """Take the scheduler lock of ``database`` or raise SchedulerLockError naming the holder."""
    _check_lockable(database)
    deadline = time.monotonic() + patience
    while True:
        lock = _try_acquire(database)
        if lock is not None:
            return lock
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    holder = scheduler_holder(database) or "a process that has just let go"
    raise SchedulerLockError(_describe(database), holder)
