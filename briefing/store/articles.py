"""Store article drafts: insert new ones, update changed ones in place, keep first-seen."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from briefing.domain.models import ArticleDraft, SelectedArticle
from briefing.domain.states import IngestOutcome
from briefing.store.schema import Article, ArticleSection, Source


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


_GLOBAL_ID = re.compile(r"^(?:https?://[^/\s]+/\S|urn:\S+:\S|tag:\S+,\S+:\S)", re.IGNORECASE)


def guid_is_global(guid: str) -> bool:
    """Tell whether a GUID is meant to be unique everywhere (a URL, ``urn:`` or ``tag:`` id).

    Atom ids must be such IRIs; many RSS GUIDs are bare numbers ("646326554")
    that only the feed giving them keeps unique.
    """
    return bool(_GLOBAL_ID.match(guid))


def _guid_matches(article: Article, guid: str, source_id: int | None) -> bool:
    return article.guid == guid and (guid_is_global(guid) or article.source_id == source_id)


def _find(session: Session, draft: ArticleDraft, source_id: int | None) -> Article | None:
    found = session.scalar(select(Article).where(Article.uid == draft.uid))
    if found is None and draft.guid:
        # Same GUID, new URL: the source moved or re-slugged the story (a new section's
        # path, say), and it keeps one identity. A bare GUID only counts within its source.
        query = select(Article).where(Article.guid == draft.guid)
        if not guid_is_global(draft.guid):
            query = query.where(Article.source_id == source_id)
        found = session.scalar(query.order_by(Article.id).limit(1))
    return found


def upsert_articles(
    session: Session,
    drafts: list[ArticleDraft],
    source_id: int | None,
    now: datetime,
    *,
    owned_sections: frozenset[str] | None = None,
) -> list[IngestOutcome]:
    """Upsert one document's drafts, looking their rows up in two queries, not two per draft.

    Same rules as :func:`upsert_article`; the drafts must have distinct uids.
    """
    by_uid: dict[str, Article] = {}
    uids = [draft.uid for draft in drafts]
    for start in range(0, len(uids), 500):
        chunk = uids[start : start + 500]
        for article in session.scalars(select(Article).where(Article.uid.in_(chunk))):
            by_uid[article.uid] = article
    guids = sorted({d.guid for d in drafts if d.guid and d.uid not in by_uid})
    by_guid: dict[str, list[Article]] = {}
    for start in range(0, len(guids), 500):
        chunk = guids[start : start + 500]
        query = select(Article).where(Article.guid.in_(chunk)).order_by(Article.id)
        for article in session.scalars(query):
            by_guid.setdefault(article.guid or "", []).append(article)
    outcomes = []
    for draft in drafts:
        found = by_uid.get(draft.uid)
        if found is None and draft.guid:
            candidates = by_guid.get(draft.guid, [])
            found = next((a for a in candidates if _guid_matches(a, draft.guid, source_id)), None)
        outcome, stored = _apply(session, found, draft, source_id, now, owned_sections)
        by_uid[stored.uid] = stored
        if stored.guid:
            by_guid.setdefault(stored.guid, []).append(stored)
        outcomes.append(outcome)
    return outcomes


def upsert_article(
    session: Session,
    draft: ArticleDraft,
    source_id: int | None,
    now: datetime,
    *,
    owned_sections: frozenset[str] | None = None,
) -> IngestOutcome:
    """Insert or update one article; its first-seen time never changes.

    The source that first stored an article owns its text: when it changes
    the story (new text, new URL under the same GUID, new section) the row is
    updated in place and keeps its identity. Sections the source gave the
    story before are replaced by the draft's; ``owned_sections`` (the sections
    this source can assign) limits that, so sections another source added
    stay; None replaces them all. Another source carrying the same story only
    adds its sections, so two sources never overwrite each other run after run.
    """
    return _apply(session, _find(session, draft, source_id), draft, source_id, now, owned_sections)[
        0
    ]


def _apply(
    session: Session,
    article: Article | None,
    draft: ArticleDraft,
    source_id: int | None,
    now: datetime,
    owned_sections: frozenset[str] | None,
) -> tuple[IngestOutcome, Article]:
    if article is None:
        fingerprint = draft_hash(draft)
        article = Article(
            **draft.model_dump(exclude={"sections", "tags"}),
            tags=list(draft.tags),
            source_id=source_id,
            first_seen_at=now,
            updated_at=now,
            content_hash=fingerprint,
        )
        article.sections = [ArticleSection(section=key) for key in draft.sections]
        session.add(article)
        return IngestOutcome.NEW, article
    current = {row.section for row in article.sections}
    if article.source_id not in (source_id, None):
        missing = set(draft.sections) - current
        if not missing:
            return IngestOutcome.UNCHANGED, article
        article.sections = [
            *article.sections,
            *(ArticleSection(section=key) for key in sorted(missing)),
        ]
        article.updated_at = now
        return IngestOutcome.UPDATED, article
    fingerprint = draft_hash(draft)
    if article.content_hash == fingerprint:
        return IngestOutcome.UNCHANGED, article
    for name, value in draft.model_dump(exclude={"sections", "tags"}).items():
        setattr(article, name, value)
    article.tags = list(draft.tags)
    article.source_id = source_id
    article.updated_at = now
    article.content_hash = fingerprint
    kept = current - owned_sections if owned_sections is not None else set()
    wanted = set(draft.sections) | kept
    article.sections = [row for row in article.sections if row.section in wanted] + [
        ArticleSection(section=key) for key in sorted(wanted - current)
    ]
    return IngestOutcome.UPDATED, article


@dataclass(frozen=True)
class ArticleListing:
    """A stored article as ``briefing articles`` lists it."""

    id: int
    title: str
    url: str | None
    sections: tuple[str, ...]
    dek: str | None
    body_text: str
    published_at: datetime | None
    first_seen_at: datetime


def latest_articles(
    session: Session, limit: int, section: str | None = None
) -> list[ArticleListing]:
    """Return the articles first seen last (of one section, when given), newest first."""
    query = select(Article).order_by(Article.first_seen_at.desc(), Article.id.desc()).limit(limit)
    if section:
        query = query.join(ArticleSection).where(ArticleSection.section == section)
    return [
        ArticleListing(
            id=article.id,
            title=article.title,
            url=article.url,
            sections=tuple(row.section for row in article.sections),
            dek=article.dek,
            body_text=article.body_text,
            published_at=article.published_at,
            first_seen_at=article.first_seen_at,
        )
        for article in session.scalars(query)
    ]


def as_selected(
    article: Article, section: str, source_key: str | None, names: Mapping[str, str]
) -> SelectedArticle:
    return SelectedArticle(
        id=article.id,
        section=section,
        title=article.title,
        url=article.url,
        dek=article.dek,
        body_text=article.body_text,
        image_url=article.image_url,
        image_alt=article.image_alt,
        image_credit=article.image_credit,
        published_at=article.published_at,
        first_seen_at=article.first_seen_at,
        source=names.get(source_key) if source_key else None,
    )


def section_window(
    session: Session,
    section: str,
    start: datetime,
    end: datetime,
    limit: int,
    source_names: Mapping[str, str],
) -> list[SelectedArticle]:
    """Return a section's articles first seen in ``(start, end]``, newest first.

    ``source_names`` maps a source's key (its location) to the name shown.
    """
    rows = session.execute(
        select(Article, Source.key)
        .join(ArticleSection, ArticleSection.article_id == Article.id)
        .outerjoin(Source, Source.id == Article.source_id)
        .where(
            ArticleSection.section == section,
            Article.first_seen_at > start,
            Article.first_seen_at <= end,
        )
        .order_by(Article.first_seen_at.desc(), Article.id.desc())
        .limit(limit)
    ).all()
    return [as_selected(article, section, key, source_names) for article, key in rows]


def recent_articles(
    session: Session,
    start: datetime,
    end: datetime,
    limit: int,
    source_names: Mapping[str, str],
    section_order: Mapping[str, int],
) -> list[SelectedArticle]:
    """Return every section's articles first seen in ``(start, end]``, newest first.

    Each article is given one section: its first in ``section_order`` (then by name).
    """
    rows = session.execute(
        select(Article, Source.key)
        .outerjoin(Source, Source.id == Article.source_id)
        .where(Article.first_seen_at > start, Article.first_seen_at <= end)
        .order_by(Article.first_seen_at.desc(), Article.id.desc())
        .limit(limit)
    ).all()
    articles = []
    last = len(section_order)
    for article, source_key in rows:
        sections = sorted(
            (row.section for row in article.sections),
            key=lambda s: (section_order.get(s, last), s),
        )
        section = sections[0] if sections else ""
        articles.append(as_selected(article, section, source_key, source_names))
    return articles
