"""One scheduler per database: a file lock beside SQLite, an advisory lock on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from briefing.errors import SchedulerError, SchedulerLockError
from briefing.ops.locks import acquire_scheduler_lock, lock_file_for, scheduler_holder
from briefing.store import Database, open_database

# Take the scheduler lock of the database at argv[1], then idle until killed.
HOLD_THE_LOCK = """
import sys, time
from briefing.ops.locks import acquire_scheduler_lock
from briefing.store import open_database
lock = acquire_scheduler_lock(open_database(sys.argv[1]), patience=0)
time.sleep(300)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A SQLite file, then a PostgreSQL database when one is reachable."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'briefing.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = open_database(url)
    yield database
    database.dispose()


def wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_second_lock_is_refused_naming_the_holder(any_database: Database) -> None:
    lock = acquire_scheduler_lock(any_database)
    assert lock.held()
    holder = scheduler_holder(any_database)
    assert holder is not None and f"pid {os.getpid()}" in holder
    with pytest.raises(SchedulerLockError) as refused:
        acquire_scheduler_lock(any_database, patience=0.3)
    assert "another `briefing serve` is already running on" in refused.value.message
    assert f"pid {os.getpid()}" in refused.value.message
    assert refused.value.hint and "Only one `briefing serve`" in refused.value.hint
    lock.release()
    assert scheduler_holder(any_database) is None
    again = acquire_scheduler_lock(any_database, patience=0)
    again.release()


def test_lock_dies_with_its_process(any_database: Database) -> None:
    url = any_database.engine.url.render_as_string(hide_password=False)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, url])
    try:
        wait_until(lambda: f"pid {holder.pid}" in (scheduler_holder(any_database) or ""))
        with pytest.raises(SchedulerLockError):
            acquire_scheduler_lock(any_database, patience=0)
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs in the holder
        holder.wait(timeout=30)
    lock = acquire_scheduler_lock(any_database, patience=10)
    lock.release()


def test_deleting_the_lock_file_is_noticed(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'briefing.db'}")
    lock = acquire_scheduler_lock(database)
    lock_file_for(tmp_path / "briefing.db").unlink()
    assert not lock.held()  # a new scheduler could lock a new file: this one must stop
    lock.release()
    database.dispose()


def test_lost_postgres_session_is_taken_again_unless_another_holds_it(postgres_url: str) -> None:
    database = open_database(postgres_url)
    lock = acquire_scheduler_lock(database)

    def end_lock_session() -> None:
        with database.engine.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name LIKE 'briefing serve pid %' AND datname = current_database()"
                )
            )

    end_lock_session()
    assert lock.held()  # nobody else had it: taken again on a new session
    end_lock_session()
    other = acquire_scheduler_lock(database, patience=5)
    assert not lock.held()
    other.release()
    lock.release()
    database.dispose()


def test_in_memory_database_cannot_be_scheduled() -> None:
    with pytest.raises(SchedulerError, match="in-memory SQLite database cannot be scheduled"):
        acquire_scheduler_lock(open_database("sqlite://"))
