"""Outcomes written through the SQLite driver are bound exactly as SQLAlchemy binds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from briefing.store.ledger import _sqlite_time
from briefing.store.schema import UTCDateTime

_SQLITE = sqlite.dialect()
_CORE = UTCDateTime().dialect_impl(_SQLITE).bind_processor(_SQLITE)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 26, 7, 0, tzinfo=UTC),  # no microseconds: still written
        datetime(2026, 11, 26, 7, 0, 1, 5, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),  # a day earlier in UTC
        datetime(2026, 7, 4, 22, 15, 3, 120, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        None,
    ],
)
def test_times_are_stored_in_the_form_every_other_statement_writes(
    value: datetime | None,
) -> None:
    assert _CORE is not None
    assert _sqlite_time(value) == _CORE(value)


def test_a_naive_time_is_refused_as_core_refuses_it() -> None:
    naive = datetime(2026, 11, 26, 7, 0)
    with pytest.raises(ValueError, match="naive datetime"):
        _sqlite_time(naive)
    assert _CORE is not None
    with pytest.raises(ValueError, match="naive datetime"):
        _CORE(naive)
