"""Store editors' approvals and per-issue overrides, and say what of an issue was cut or sent.

An issue is one briefing's local issue date. Its overrides are rows, each
with who and when; undoing one stamps ``undone_by``/``undone_at`` and keeps
the row, so the history of an issue can be read back. An approval is one row
per issue, inserted once: the first approval stands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.orm import Session

from briefing.domain.models import SelectedArticle
from briefing.domain.states import DeliveryState, MessageKind, OverrideKind, SubscriptionState
from briefing.store.articles import as_selected
from briefing.store.queries import insert_ignore
from briefing.store.schema import (
    Article,
    Delivery,
    Edition,
    EditionApproval,
    EditionOverride,
    Source,
    Subscription,
    Variant,
)


@dataclass(frozen=True)
class Approval:
    """Who approved an issue, and when."""

    briefing: str
    issue_date: date
    approved_by: str
    approved_at: datetime


@dataclass(frozen=True)
class StoredOverride:
    """One override of an issue as stored, with the article it names."""

    id: int
    briefing: str
    issue_date: date
    kind: OverrideKind
    article_id: int
    article_title: str
    article_url: str | None
    text: str | None
    created_by: str
    created_at: datetime
    undone_by: str | None
    undone_at: datetime | None

    @property
    def active(self) -> bool:
        """Tell whether the override still applies (it was not undone)."""
        return self.undone_at is None


@dataclass(frozen=True)
class ArticleRef:
    """A stored article named by an editor: its id, headline and URL."""

    id: int
    title: str
    url: str | None


@dataclass(frozen=True)
class CutVariant:
    """A variant of an issue already cut, with what became of its editions."""

    id: int
    sections: tuple[str, ...]
    cut_at: datetime
    item_count: int
    editions: int
    sent: int
    waiting: int  # pending, deferred or sending


def _approval(row: EditionApproval) -> Approval:
    return Approval(row.briefing, row.issue_date, row.approved_by, row.approved_at)


def approval_of(session: Session, briefing: str, issue_date: date) -> Approval | None:
    """Return the approval of an issue, if it was approved."""
    row = session.get(EditionApproval, (briefing, issue_date))
    return _approval(row) if row is not None else None


def approved_dates(session: Session, briefing: str, dates: Iterable[date]) -> set[date]:
    """Return which of ``dates`` are approved issues of ``briefing`` (one query)."""
    wanted = set(dates)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(EditionApproval.issue_date).where(
                EditionApproval.briefing == briefing, EditionApproval.issue_date.in_(wanted)
            )
        )
    )


def record_approval(
    session: Session, briefing: str, issue_date: date, who: str, now: datetime
) -> tuple[Approval, bool]:
    """Approve an issue once; return the approval that stands and whether it is new."""
    before = approval_of(session, briefing, issue_date)
    if before is not None:
        return before, False
    # Two editors approving at once: the primary key decides, the first approval stands.
    insert_ignore(
        session,
        EditionApproval,
        {"briefing": briefing, "issue_date": issue_date, "approved_by": who, "approved_at": now},
    )
    found = approval_of(session, briefing, issue_date)
    assert found is not None  # inserted now, or by whoever approved first
    return found, (found.approved_by, found.approved_at) == (who, now)


def find_article(session: Session, reference: str) -> ArticleRef | None:
    """Return the stored article with this URL (or dedupe key), or this numeric id."""
    query = select(Article.id, Article.title, Article.url)
    if reference.isdigit():
        row = session.execute(query.where(Article.id == int(reference))).first()
    else:
        row = session.execute(
            query.where((Article.url == reference) | (Article.uid == reference))
            .order_by(Article.id)
            .limit(1)
        ).first()
    return ArticleRef(*row) if row is not None else None


def _stored(row: EditionOverride, title: str, url: str | None) -> StoredOverride:
    return StoredOverride(
        id=row.id,
        briefing=row.briefing,
        issue_date=row.issue_date,
        kind=OverrideKind(row.kind),
        article_id=row.article_id,
        article_title=title,
        article_url=url,
        text=row.text,
        created_by=row.created_by,
        created_at=row.created_at,
        undone_by=row.undone_by,
        undone_at=row.undone_at,
    )


def add_override(
    session: Session,
    *,
    briefing: str,
    issue_date: date,
    kind: OverrideKind,
    article_id: int,
    text: str | None,
    who: str,
    now: datetime,
) -> StoredOverride:
    """Store one override of an issue."""
    row = EditionOverride(
        briefing=briefing,
        issue_date=issue_date,
        kind=kind,
        article_id=article_id,
        text=text,
        created_by=who,
        created_at=now,
    )
    session.add(row)
    session.flush()
    stored = override_by_id(session, row.id)
    assert stored is not None  # flushed in this transaction
    return stored


def override_by_id(session: Session, override_id: int) -> StoredOverride | None:
    """Return one override by its id, undone or not."""
    row = session.execute(
        select(EditionOverride, Article.title, Article.url)
        .join(Article, Article.id == EditionOverride.article_id)
        .where(EditionOverride.id == override_id)
    ).first()
    return _stored(*row) if row is not None else None


def undo_override(
    session: Session, override_id: int, who: str, now: datetime
) -> StoredOverride | None:
    """Mark an override undone (once); return it as it now stands, or None if unknown."""
    row = session.get(EditionOverride, override_id)
    if row is None:
        return None
    if row.undone_at is None:
        row.undone_by = who
        row.undone_at = now
        session.flush()
    return override_by_id(session, override_id)


def issue_overrides(
    session: Session, briefing: str, issue_date: date, *, include_undone: bool = False
) -> list[StoredOverride]:
    """Return an issue's overrides in the order they were made."""
    query = (
        select(EditionOverride, Article.title, Article.url)
        .join(Article, Article.id == EditionOverride.article_id)
        .where(EditionOverride.briefing == briefing, EditionOverride.issue_date == issue_date)
        .order_by(EditionOverride.created_at, EditionOverride.id)
    )
    if not include_undone:
        query = query.where(EditionOverride.undone_at.is_(None))
    return [_stored(*row) for row in session.execute(query)]


def added_articles(
    session: Session,
    ids: Iterable[int],
    source_names: Mapping[str, str],
    section_order: Mapping[str, int],
) -> list[SelectedArticle]:
    """Return stored articles by id, each in its first section by ``section_order``."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = session.execute(
        select(Article, Source.key)
        .outerjoin(Source, Source.id == Article.source_id)
        .where(Article.id.in_(wanted))
        .order_by(Article.id)
    ).all()
    last = len(section_order)
    found = []
    for article, source_key in rows:
        sections = sorted(
            (row.section for row in article.sections),
            key=lambda s: (section_order.get(s, last), s),
        )
        found.append(
            as_selected(article, sections[0] if sections else "", source_key, source_names)
        )
    return found


def article_sections(session: Session, article_id: int) -> tuple[str, ...]:
    """Return the sections a stored article sits in."""
    article = session.get(Article, article_id)
    return tuple(row.section for row in article.sections) if article is not None else ()


def cut_variants(session: Session, briefing: str, issue_date: date) -> list[CutVariant]:
    """Return the variants of an issue cut so far, with their editions sent and waiting."""
    waiting = (DeliveryState.PENDING, DeliveryState.DEFERRED, DeliveryState.SENDING)
    rows = session.execute(
        select(
            Variant.id,
            Variant.sections,
            Variant.cut_at,
            Variant.item_count,
            func.count(Edition.id),
            func.sum(case((Delivery.status == DeliveryState.SENT, 1), else_=0)),
            func.sum(case((Delivery.status.in_(waiting), 1), else_=0)),
        )
        .join(Edition, Edition.variant_id == Variant.id)
        .join(Delivery, Delivery.edition_id == Edition.id)
        .where(
            Variant.briefing == briefing,
            Variant.issue_date == issue_date,
            Delivery.kind == MessageKind.DIGEST,
        )
        .group_by(Variant.id)  # the primary key: PostgreSQL cannot group by a JSON column
        .order_by(Variant.cut_at, Variant.id)
    ).all()
    return [
        CutVariant(
            id=variant_id,
            sections=tuple(sections),
            cut_at=cut_at,
            item_count=items,
            editions=int(editions),
            sent=int(sent or 0),
            waiting=int(pending or 0),
        )
        for variant_id, sections, cut_at, items, editions, sent, pending in rows
    ]


def last_cut_of(session: Session, briefing: str, before: date) -> datetime | None:
    """Return the latest cut of ``briefing`` for an issue before ``before`` (a window's start)."""
    return session.scalar(
        select(func.max(Variant.cut_at)).where(
            Variant.briefing == briefing, Variant.issue_date < before
        )
    )


def section_choices(session: Session, briefing: str) -> list[tuple[tuple[str, ...] | None, int]]:
    """Return the section sets chosen by ``briefing``'s active subscriptions, and how many chose each.

    ``None`` stands for the briefing's default sections.
    """
    text = cast(Subscription.sections, Text)
    rows = session.execute(
        select(text, func.count())
        .where(Subscription.briefing == briefing, Subscription.status == SubscriptionState.ACTIVE)
        .group_by(text)
    ).all()
    found = []
    for sections, count in rows:
        value = json.loads(sections) if sections else None
        found.append((tuple(value) if value else None, int(count)))
    return found
