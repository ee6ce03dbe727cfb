"""Keep sources, articles, subscribers, editions and the delivery ledger in SQL."""

from sqlalchemy.orm import Session

from briefing.store.db import Database, open_database

__all__ = ["Database", "Session", "open_database"]
