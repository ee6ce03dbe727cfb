"""Keep sources, articles, subscribers, editions and the delivery ledger in SQL."""

from briefing.store.db import Database, open_database

__all__ = ["Database", "open_database"]
