"""Store article drafts: insert new ones, update changed ones in place, keep first-seen."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from briefing.models import ArticleDraft
from briefing.store.schema import Article, ArticleSection, Source

Outcome = Literal["new", "updated", "unchanged"]


def draft_hash(draft: ArticleDraft) -> str:
    """Fingerprint everything a reader would see, to tell updated from unchanged."""
    payload = draft.model_dump(mode="json", exclude={"uid"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def source_row(session: Session, key: str, kind: str) -> Source:
    """Return the row of a configured source, creating it on first sight."""
    row = session.scalar(select(Source).where(Source.key == key))
    if row is None:
        row = Source(key=key, kind=kind, consecutive_failures=0, items_seen=0)
        session.add(row)
        session.flush()
    return row


def _find(session: Session, draft: ArticleDraft) -> Article | None:
    found = session.scalar(select(Article).where(Article.uid == draft.uid))
    if found is None and draft.guid:
        # Same GUID, new URL: the source moved or re-slugged the story.
        found = session.scalar(select(Article).where(Article.guid == draft.guid).limit(1))
    return found


def upsert_article(
    session: Session, draft: ArticleDraft, source_id: int | None, now: datetime
) -> Outcome:
    """Insert or update one article; its first-seen time never changes."""
    fingerprint = draft_hash(draft)
    article = _find(session, draft)
    if article is not None and article.content_hash == fingerprint:
        return "unchanged"
    fields = draft.model_dump(exclude={"sections", "tags"})
    if article is None:
        article = Article(
            **fields,
            tags=list(draft.tags),
            source_id=source_id,
            first_seen_at=now,
            updated_at=now,
            content_hash=fingerprint,
        )
        article.sections = [ArticleSection(section=key) for key in draft.sections]
        session.add(article)
        return "new"
    for name, value in fields.items():
        setattr(article, name, value)
    article.tags = list(draft.tags)
    article.updated_at = now
    article.content_hash = fingerprint
    # The same source moving a story keeps one identity in its new section; another
    # source carrying the same URL adds its sections.
    wanted = set(draft.sections)
    if article.source_id not in (source_id, None):
        wanted |= {row.section for row in article.sections}
    article.sections = [row for row in article.sections if row.section in wanted] + [
        ArticleSection(section=key)
        for key in sorted(wanted - {row.section for row in article.sections})
    ]
    return "updated"
