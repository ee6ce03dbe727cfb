"""Insert many rows on SQLite through the driver, with SQLAlchemy's SQL and its bound forms.

``executemany`` of a Core statement runs every row through SQLAlchemy: one
dict, then one type processor per value, which for an import of 100,000
subscriptions costs more than SQLite's own work. :class:`BulkInsert` compiles
the statement once for SQLite and keeps each column's bind processor (the
very functions SQLAlchemy would call, from the column's type); a chunk then
goes to the driver as plain tuples. Values the whole chunk shares (times,
sources) are converted once by :meth:`BulkInsert.bound`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

_DIALECT = sqlite.dialect()


@dataclass(frozen=True)
class BulkInsert:
    """An INSERT of ``columns`` into a table, compiled once for SQLite."""

    sql: str
    columns: tuple[str, ...]
    processors: Mapping[str, Callable[[Any], Any] | None]

    @classmethod
    def of(
        cls,
        table: Table,
        columns: Sequence[str],
        *,
        skip_existing: bool = False,
    ) -> BulkInsert:
        """Compile ``INSERT INTO table (columns) VALUES (?, ...)``.

        ``columns`` are named in the table's order, which is the statement's.
        ``skip_existing`` adds ``ON CONFLICT DO NOTHING``.
        """
        statement = sqlite.insert(table).values({name: bindparam(name) for name in columns})
        if skip_existing:
            statement = statement.on_conflict_do_nothing()
        compiled = statement.compile(dialect=_DIALECT)
        if compiled.insert_prefetch:  # Python-side defaults the driver would not apply
            raise RuntimeError(f"{compiled.string!r} needs defaults the driver would not apply")
        order = tuple(compiled.positiontup or ())
        if order != tuple(columns):
            raise RuntimeError(f"{compiled.string!r} takes its parameters as {order}")
        processors = {
            name: table.c[name].type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            for name in columns
        }
        return cls(compiled.string, tuple(columns), processors)

    def bound(self, column: str, value: Any) -> Any:
        """Return ``value`` as SQLAlchemy would bind it to ``column``."""
        processor = self.processors[column]
        return processor(value) if processor is not None else value

    def run(self, session: Session, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (values in the order of ``columns``, already bound) in one go."""
        session.connection().exec_driver_sql(self.sql, list(rows))
