"""Read the archive: a briefing's past issues, their variants and delivery figures.

An *issue* is a briefing's issue date; its content is the variants cut for
that date (one per set of sections, window and cut time). Every query here is
bounded: issue dates are paged by keyset (``before`` an issue date, newest
first, at most ``limit``), the variants read are those of the page's dates
only, with their light columns (never the stored HTML or message), and the
delivery figures of a page's variants come from one ``GROUP BY`` per chunk of
variant ids, never one query per variant or per subscriber. The issue dates
of a briefing are read from ``ix_variants_briefing_issue_date`` (migration
0014); the figures from ``ix_editions_variant_id`` and
``ix_deliveries_edition_status`` (the state is in the index).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from briefing.domain.states import DeliveryState
from briefing.store.editions import StoredVariant, stored_variant
from briefing.store.schema import Delivery, Edition, Variant

MAX_PAGE = 100  # issue dates per page, at most, whatever a caller asks for
_ID_CHUNK = 500  # variant ids per IN (...) list of the figures query


@dataclass(frozen=True)
class ArchivedVariant:
    """One variant of an issue as the archive lists it, with its delivery figures."""

    id: int
    issue_date: date
    sections: tuple[str, ...]
    subject: str
    cut_at: datetime
    item_count: int
    html_size: int
    figures: Counter[DeliveryState]

    @property
    def editions(self) -> int:
        """Return how many editions (one per subscriber) carry this variant."""
        return sum(self.figures.values())


@dataclass(frozen=True)
class ArchivedIssue:
    """One issue date of a briefing: its variants in cut order, and their figures summed."""

    briefing: str
    issue_date: date
    variants: tuple[ArchivedVariant, ...]

    @property
    def figures(self) -> Counter[DeliveryState]:
        """Return the delivery figures of every variant of the issue, summed."""
        total: Counter[DeliveryState] = Counter()
        for variant in self.variants:
            total.update(variant.figures)
        return total

    @property
    def first_cut(self) -> datetime:
        """Return when the issue's first variant was cut."""
        return min(variant.cut_at for variant in self.variants)


@dataclass(frozen=True)
class IssuePage:
    """A page of issues, newest first, and where the next (older) page starts."""

    issues: tuple[ArchivedIssue, ...]
    older: date | None  # pass as ``before`` for the next page; None on the last page


@dataclass(frozen=True)
class PublicIssue:
    """One issue as the public archive lists it: the default sections' first cut."""

    variant_id: int
    issue_date: date
    subject: str
    cut_at: datetime


def _page_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"an archive page holds at least one issue, not {limit}")
    return min(limit, MAX_PAGE)


def issue_dates(
    session: Session, briefing: str, *, before: date | None = None, limit: int = 20
) -> list[date]:
    """Return up to ``limit`` issue dates of ``briefing`` before ``before``, newest first."""
    query = select(Variant.issue_date).where(Variant.briefing == briefing)
    if before is not None:
        query = query.where(Variant.issue_date < before)
    query = query.group_by(Variant.issue_date).order_by(Variant.issue_date.desc())
    return list(session.scalars(query.limit(_page_limit(limit))))


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _ID_CHUNK):
        yield ids[start : start + _ID_CHUNK]


def variant_figures(session: Session, ids: Sequence[int]) -> dict[int, Counter[DeliveryState]]:
    """Count the deliveries of each variant's editions by state, one GROUP BY per chunk of ids."""
    figures: dict[int, Counter[DeliveryState]] = {ident: Counter() for ident in ids}
    for chunk in _chunks(sorted(set(ids))):
        # No filter on the delivery's kind: the row joined by edition_id is that edition's
        # (digest) delivery by construction, and leaving the kind out lets PostgreSQL read
        # (edition_id, status) from ix_deliveries_edition_status alone, per edition of the page,
        # instead of scanning the whole ledger to check each row's kind (80 ms -> 6 ms for a
        # page over a year's ledger; benchmarks/archive.py --explain).
        rows = session.execute(
            select(Edition.variant_id, Delivery.status, func.count())
            .join(Delivery, Delivery.edition_id == Edition.id)
            .where(Edition.variant_id.in_(chunk))
            .group_by(Edition.variant_id, Delivery.status)
        )
        for variant_id, status, count in rows:
            if variant_id is not None:  # always, by the WHERE; for the type checker
                figures[variant_id][DeliveryState(status)] = int(count)
    return figures


def _variants_of(session: Session, briefing: str, dates: Sequence[date]) -> list[ArchivedVariant]:
    """Return the variants of ``briefing`` cut for ``dates``, with figures, without their content."""
    if not dates:
        return []
    rows = session.execute(
        select(
            Variant.id,
            Variant.issue_date,
            Variant.sections,
            Variant.subject,
            Variant.cut_at,
            Variant.item_count,
            Variant.html_size,
        )
        .where(Variant.briefing == briefing, Variant.issue_date.in_(dates))
        .order_by(Variant.issue_date.desc(), Variant.cut_at, Variant.id)
    ).all()
    figures = variant_figures(session, [row.id for row in rows])
    return [
        ArchivedVariant(
            id=row.id,
            issue_date=row.issue_date,
            sections=tuple(row.sections),
            subject=row.subject,
            cut_at=row.cut_at,
            item_count=row.item_count,
            html_size=row.html_size,
            figures=figures[row.id],
        )
        for row in rows
    ]


def archived_issues(
    session: Session, briefing: str, *, before: date | None = None, limit: int = 20
) -> IssuePage:
    """Return a page of ``briefing``'s issues before ``before``, newest first, with figures."""
    limit = _page_limit(limit)
    dates = issue_dates(session, briefing, before=before, limit=limit + 1)
    older = dates[limit - 1] if len(dates) > limit else None
    dates = dates[:limit]
    by_date: dict[date, list[ArchivedVariant]] = {day: [] for day in dates}
    for variant in _variants_of(session, briefing, dates):
        by_date[variant.issue_date].append(variant)
    issues = tuple(
        ArchivedIssue(briefing, day, tuple(variants)) for day, variants in by_date.items()
    )
    return IssuePage(issues, older)


def archived_issue(session: Session, briefing: str, issue_date: date) -> ArchivedIssue | None:
    """Return one issue of ``briefing`` with its variants and figures, or None if none was cut."""
    variants = _variants_of(session, briefing, [issue_date])
    return ArchivedIssue(briefing, issue_date, tuple(variants)) if variants else None


def variant_content(
    session: Session, briefing: str, issue_date: date, variant_id: int
) -> StoredVariant | None:
    """Return a variant's frozen content if it is one of this issue's, else None."""
    row = session.get(Variant, variant_id)
    if row is None or row.briefing != briefing or row.issue_date != issue_date:
        return None
    return stored_variant(row)


def _sections_are(sections: Sequence[str]) -> object:
    # The sections column is JSON, which PostgreSQL cannot compare with "=". Every variant
    # is written through SQLAlchemy's JSON type, whose serialiser is json.dumps with its
    # default separators, and both SQLite (text) and PostgreSQL (json keeps its input text)
    # give those bytes back when cast to text; so the text of the list is compared.
    return cast(Variant.sections, Text) == json.dumps(list(sections))


def public_issues(
    session: Session,
    briefing: str,
    sections: Sequence[str],
    *,
    before: date | None = None,
    limit: int = 30,
) -> list[PublicIssue]:
    """Return the issues cut with ``sections`` (the briefing's defaults), newest first.

    Each issue date is represented by its first variant with exactly those
    sections (the earliest cut; the lowest id between equals), so the list, the
    issue page and the feed agree on which variant is the public copy.
    """
    dates_query = select(Variant.issue_date).where(
        Variant.briefing == briefing,
        _sections_are(sections),  # type: ignore[arg-type]
    )
    if before is not None:
        dates_query = dates_query.where(Variant.issue_date < before)
    dates = list(
        session.scalars(
            dates_query.group_by(Variant.issue_date)
            .order_by(Variant.issue_date.desc())
            .limit(_page_limit(limit))
        )
    )
    if not dates:
        return []
    rows = session.execute(
        select(Variant.id, Variant.issue_date, Variant.subject, Variant.cut_at)
        .where(
            Variant.briefing == briefing,
            Variant.issue_date.in_(dates),
            _sections_are(sections),  # type: ignore[arg-type]
        )
        .order_by(Variant.issue_date.desc(), Variant.cut_at, Variant.id)
    )
    first: dict[date, PublicIssue] = {}
    for row in rows:
        first.setdefault(
            row.issue_date, PublicIssue(row.id, row.issue_date, row.subject, row.cut_at)
        )
    return list(first.values())


def public_variant(
    session: Session, briefing: str, sections: Sequence[str], issue_date: date
) -> StoredVariant | None:
    """Return the public copy of one issue (see :func:`public_issues`), or None."""
    row = session.scalars(
        select(Variant)
        .where(
            Variant.briefing == briefing,
            Variant.issue_date == issue_date,
            _sections_are(sections),  # type: ignore[arg-type]
        )
        .order_by(Variant.cut_at, Variant.id)
        .limit(1)
    ).first()
    return stored_variant(row) if row is not None else None


def plain_texts(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, dict[str, str]]]:
    """Return the plain-text twin of each variant in ``ids`` with its link placeholders."""
    found: dict[int, tuple[str, dict[str, str]]] = {}
    for chunk in _chunks(sorted(set(ids))):
        rows = session.execute(
            select(Variant.id, Variant.text, Variant.placeholders).where(Variant.id.in_(chunk))
        )
        for ident, text, placeholders in rows:
            found[int(ident)] = (text, dict(placeholders))
    return found
