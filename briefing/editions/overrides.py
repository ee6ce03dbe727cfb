"""Shape one issue of a briefing: pin, drop, re-word, re-source or add articles, and undo.

The service the CLI (``briefing edition ...``) and the desk call. Every
function takes the slice it needs, returns a dataclass, and raises
:class:`~briefing.errors.EditionError` naming the briefing, the date and the
article when it cannot act. An override is stored with who and when and
applies to the variants of the issue **cut after it is saved**: a variant is
frozen when it is cut, and one issue date's variants are cut over about 38
hours (UTC+14 to UTC-12), so :class:`OverrideResult` says which variants
were cut already and are not changed. Approving the issue freezes its
overrides; later edits are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from briefing.config import Config
from briefing.domain.states import OverrideKind
from briefing.errors import EditionError
from briefing.store import Database, Session
from briefing.store.overrides import (
    ArticleRef,
    CutVariant,
    StoredOverride,
    add_override,
    approval_of,
    article_sections,
    cut_variants,
    find_article,
    issue_overrides,
    override_by_id,
    undo_override,
)

HEADLINE_LIMIT = 300
SUMMARY_LIMIT = 2000


@dataclass(frozen=True)
class OverrideResult:
    """An override as stored (or undone), and the variants of its issue it does not change."""

    override: StoredOverride
    cut: tuple[CutVariant, ...]

    def describe(self) -> str:
        """Say in one line what was stored and what it reaches."""
        o = self.override
        verb = "undid" if not o.active else "saved"
        head = f"{verb} #{o.id} {o.kind} {o.article_title!r} for {o.briefing} {o.issue_date}"
        if not self.cut:
            return f"{head}; no variant of this issue is cut yet: every one will carry it"
        editions = sum(v.editions for v in self.cut)
        return (
            f"{head}; applies to variants cut from now on; {len(self.cut)} variant(s) "
            f"already cut ({editions:,} edition(s)) keep what they had"
        )


def _check_open(session: Session, briefing: str, issue_date: date) -> None:
    approval = approval_of(session, briefing, issue_date)
    if approval is not None:
        raise EditionError(
            f"{briefing} {issue_date} was approved by {approval.approved_by} at "
            f"{approval.approved_at:%Y-%m-%d %H:%M} UTC: its overrides are frozen",
            hint="An approved issue goes out as approved; shape the next issue instead.",
        )


def _article(session: Session, config: Config, briefing: str, reference: str) -> ArticleRef:
    found = find_article(session, reference)
    if found is None:
        raise EditionError(
            f"{briefing}: no stored article with URL or id {reference!r}",
            hint="Ingest it first (`briefing ingest`), or list stored ones with `briefing articles`.",
        )
    sections = article_sections(session, found.id)
    if not any(section in config.sections for section in sections):
        raise EditionError(
            f"{briefing}: article {found.title!r} ({found.url or found.id}) is in no configured "
            f"section ({', '.join(sections) or 'none'})"
        )
    return found


def _clean_text(kind: OverrideKind, briefing: str, article: ArticleRef, text: str | None) -> str:
    value = (
        " ".join((text or "").split()) if kind is OverrideKind.HEADLINE else (text or "").strip()
    )
    limit = HEADLINE_LIMIT if kind is OverrideKind.HEADLINE else SUMMARY_LIMIT
    if not value:
        raise EditionError(f"{briefing}: the new {kind} of {article.title!r} is empty")
    if len(value) > limit:
        raise EditionError(
            f"{briefing}: the new {kind} of {article.title!r} is {len(value)} characters; "
            f"at most {limit}"
        )
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise EditionError(
            f"{briefing}: the new {kind} of {article.title!r} has control characters"
        )
    return value


def override(
    config: Config,
    database: Database,
    briefing: str,
    issue_date: date,
    kind: OverrideKind,
    article: str,
    *,
    who: str,
    now: datetime,
    text: str | None = None,
) -> OverrideResult:
    """Store one override of an issue: ``article`` is a stored article's URL or id.

    ``text`` is the new headline or summary (only for those kinds).
    """
    config.briefing(briefing)
    if not who.strip():
        raise EditionError(
            f"{briefing} {issue_date}: an override needs a name", hint="Pass --as NAME."
        )
    with database.transaction() as session:
        _check_open(session, briefing, issue_date)
        found = _article(session, config, briefing, article)
        value = None
        if kind in (OverrideKind.HEADLINE, OverrideKind.SUMMARY):
            value = _clean_text(kind, briefing, found, text)
        elif text is not None:
            raise EditionError(f"{briefing}: a {kind} override takes no text")
        stored = add_override(
            session,
            briefing=briefing,
            issue_date=issue_date,
            kind=kind,
            article_id=found.id,
            text=value,
            who=who.strip(),
            now=now,
        )
        cut = cut_variants(session, briefing, issue_date)
    return OverrideResult(stored, tuple(cut))


def undo(
    config: Config, database: Database, briefing: str, override_id: int, *, who: str, now: datetime
) -> OverrideResult:
    """Undo one override of ``briefing`` by its id (variants cut meanwhile keep it)."""
    config.briefing(briefing)
    with database.transaction() as session:
        found = override_by_id(session, override_id)
        if found is None or found.briefing != briefing:
            raise EditionError(f"{briefing}: no override #{override_id}")
        if not found.active:
            raise EditionError(
                f"{briefing} {found.issue_date}: override #{override_id} was undone by "
                f"{found.undone_by} already"
            )
        _check_open(session, briefing, found.issue_date)
        undone = undo_override(session, override_id, who.strip() or "?", now)
        assert undone is not None
        cut = cut_variants(session, briefing, found.issue_date)
    return OverrideResult(undone, tuple(cut))


def overrides_of(
    config: Config,
    database: Database,
    briefing: str,
    issue_date: date,
    *,
    include_undone: bool = False,
) -> list[StoredOverride]:
    """Return an issue's overrides, oldest first."""
    config.briefing(briefing)
    with database.transaction() as session:
        return issue_overrides(session, briefing, issue_date, include_undone=include_undone)
