"""A database held locked past the busy timeout is reported with its likely cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from briefing.errors import StoreError
from briefing.store import db as db_module
from briefing.store import open_database


def test_a_locked_database_names_the_long_write_that_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    url = f"sqlite:///{tmp_path / 'briefing.db'}"
    holder, waiter = open_database(url), open_database(url)
    try:
        with holder.transaction() as session:  # BEGIN IMMEDIATE: the write lock, held
            session.execute(text("SELECT 1"))
            with pytest.raises(StoreError) as caught, waiter.transaction() as other:
                other.execute(text("SELECT 1"))
        assert "stayed locked" in caught.value.message
        assert "another process held a write transaction" in caught.value.message
        assert caught.value.hint is not None and "an import" in caught.value.hint
        with waiter.transaction() as other:  # free again once the long write ends
            assert other.execute(text("SELECT 1")).scalar() == 1
    finally:
        holder.dispose()
        waiter.dispose()
