"""Small statements shared by the stages: insert-if-absent across SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session


def insert_ignore(session: Session, table: type[DeclarativeBase], values: dict[str, Any]) -> bool:
    """Insert a row unless a unique key already has one; tell whether it was inserted.

    Two processes may cut the same variant or dispatch the same edition at
    once; the unique constraints decide, and the loser uses the winner's row.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(**values).on_conflict_do_nothing()
    # Without preserve_rowcount psycopg's rowcount is -1 here, which would read as "inserted".
    result = session.execute(statement, execution_options={"preserve_rowcount": True})
    return bool(result.rowcount)  # type: ignore[attr-defined]
