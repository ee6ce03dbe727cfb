"""FirstLines: the first line a key was seen on, kept in a temporary database."""

from __future__ import annotations

import pytest

from briefing.errors import StoreError
from briefing.store.seen import FirstLines


def test_a_key_seen_again_gives_its_first_line() -> None:
    with FirstLines() as seen:
        assert seen.first("ann@example.com", "daily", 2) is None
        assert seen.first("bob@example.com", "daily", 3) is None
        assert seen.first("ann@example.com", "weekly", 4) is None  # another scope
        assert seen.first("ann@example.com", "daily", 9) == 2
        assert seen.first("ann@example.com", "daily", 12) == 2  # still the first, not the last
        assert seen.first("ann@example.com", "weekly", 13) == 4
        assert seen.first("Ann@example.com", "daily", 14) is None  # keys compare exactly


def test_many_keys_are_all_remembered() -> None:
    with FirstLines() as seen:
        for n in range(20_000):
            assert seen.first(f"reader{n}@example.org", "daily", n + 2) is None
        assert [seen.first(f"reader{n}@example.org", "daily", 0) for n in (0, 9_999, 19_999)] == [
            2,
            10_001,
            20_001,
        ]


def test_each_instance_starts_empty() -> None:
    with FirstLines() as seen:
        seen.first("ann@example.com", "daily", 2)
    with FirstLines() as again:
        assert again.first("ann@example.com", "daily", 5) is None


def test_a_full_temporary_disk_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="temporary SQLite file") as raised, FirstLines() as seen:
        seen._db.execute("PRAGMA max_page_count = 4")  # SQLite's own "disk is full"
        for n in range(10_000):
            seen.first(f"reader{n}@example.org", "daily", n + 2)
    assert "full" in str(raised.value)
    assert raised.value.hint is not None and "TMPDIR" in raised.value.hint
