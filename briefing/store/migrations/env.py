"""Run Alembic migrations on the connection the application hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from briefing.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic revision --autogenerate` from a developer's shell
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///var/autogen.db"
    connection = create_engine(url).connect()

if connection.dialect.name == "postgresql":
    # Two processes starting at once must not both create the tables.
    connection.execute(text("SELECT pg_advisory_xact_lock(7310061)"))

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
