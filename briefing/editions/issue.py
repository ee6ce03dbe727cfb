"""Show one issue of a briefing as an editor sees it: each variant's items if cut now.

For every set of sections the briefing's active subscriptions chose, the
variant is cut exactly as dispatch would cut it now (with the issue's
overrides, not stored), and its items are listed with the overrides that
shaped them marked. Variants of the issue already cut are listed apart,
with their editions sent and waiting: they are frozen and keep what they had.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from briefing.config import Config
from briefing.domain.models import Link
from briefing.domain.states import ApprovalMode, OverrideKind
from briefing.editions.variants import ArchiveKey, VariantSpec, build_variant, ordered_sections
from briefing.pipeline.relate import Archive
from briefing.store import Database
from briefing.store.overrides import (
    Approval,
    CutVariant,
    StoredOverride,
    approval_of,
    cut_variants,
    issue_overrides,
    last_cut_of,
    section_choices,
)


@dataclass(frozen=True)
class ShownItem:
    """One item a variant would carry, with the overrides that shaped it."""

    section: str
    article_id: int
    title: str
    url: str | None
    source: str | None
    summary: str
    also_covered: int
    marks: tuple[str, ...]  # pinned, added, headline, summary, source
    # The other sources folded under this story: any of them can be chosen with a
    # ``source`` override (the desk lists them beside the item).
    covered_by: tuple[Link, ...] = ()


@dataclass(frozen=True)
class UpcomingVariant:
    """A variant as it would be cut now, and how many subscriptions chose its sections."""

    sections: tuple[str, ...]
    subscriptions: int
    subject: str
    html_size: int
    items: tuple[ShownItem, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class IssueView:
    """One issue: approval, overrides, the variants to come, and those cut already."""

    briefing: str
    issue_date: date
    approval_required: bool
    approval: Approval | None
    overrides: tuple[StoredOverride, ...]
    upcoming: tuple[UpcomingVariant, ...]
    cut: tuple[CutVariant, ...]


def _marks(item_id: int, overrides: tuple[StoredOverride, ...]) -> tuple[str, ...]:
    names = {
        OverrideKind.PIN: "pinned",
        OverrideKind.ADD: "added",
        OverrideKind.SOURCE: "source chosen",
    }
    found: list[str] = []
    for o in overrides:
        if o.article_id == item_id and o.kind is not OverrideKind.DROP:
            mark = f"{names.get(o.kind, o.kind)} #{o.id} by {o.created_by}"
            found.append(mark)
    return tuple(found)


def issue_view(
    config: Config, database: Database, briefing: str, issue_date: date, now: datetime
) -> IssueView:
    """Return what each variant of an issue would carry if cut now, and what was cut."""
    settings = config.briefing(briefing)
    with database.transaction() as session:
        approval = approval_of(session, briefing, issue_date)
        overrides = tuple(issue_overrides(session, briefing, issue_date))
        cut = tuple(cut_variants(session, briefing, issue_date))
        since = last_cut_of(session, briefing, issue_date)
        choices = section_choices(session, briefing)
    counts: dict[tuple[str, ...], int] = {}
    for chosen, count in choices:
        key = ordered_sections(config, briefing, chosen)
        counts[key] = counts.get(key, 0) + count
    if not counts:
        counts[ordered_sections(config, briefing, None)] = 0
    archives: dict[ArchiveKey, Archive] = {}
    upcoming = []
    for sections, subscriptions in sorted(counts.items(), key=lambda kv: -kv[1]):
        spec = VariantSpec(
            briefing=briefing,
            sections=sections,
            since=since,
            cut_at=now,
            locale=settings.locale,
            issue_date=issue_date,
        )
        built = build_variant(database, config, spec, archives)
        items = tuple(
            ShownItem(
                section=section.key,
                article_id=item.article.id,
                title=item.article.title,
                url=item.article.url,
                source=item.article.source,
                summary=item.summary,
                also_covered=len(item.also_covered),
                marks=_marks(item.article.id, overrides),
                covered_by=item.also_covered,
            )
            for section in built.digest.sections
            for item in section.items
        )
        upcoming.append(
            UpcomingVariant(
                sections=sections,
                subscriptions=subscriptions,
                subject=built.rendered.subject,
                html_size=built.composed.html_size,
                items=items,
                notes=built.notes,
            )
        )
    return IssueView(
        briefing=briefing,
        issue_date=issue_date,
        approval_required=settings.approval is ApprovalMode.REQUIRED,
        approval=approval,
        overrides=overrides,
        upcoming=tuple(upcoming),
        cut=cut,
    )
