"""Show past issues: the desk's archive and the public archive of a briefing.

The desk sees every variant of an issue with its delivery figures; the
public sees one copy per issue, the variant of the briefing's *default
sections* first cut that day. Every copy shown carries inert tokens in its
links (:meth:`~briefing.domain.tokens.Signer.inert`): unsubscribe,
preferences and "view in browser" open a page that acts on nobody. A
variant's stored HTML and text hold no subscriber's name or address (those
only go into the message's To header, which is never shown), so a filled
copy is the same for everyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from briefing.config import Config
from briefing.domain.tokens import Purpose, Signer
from briefing.editions.variants import ordered_sections
from briefing.pipeline.compose import fill_links
from briefing.store import Database
from briefing.store.archive import (
    ArchivedIssue,
    IssuePage,
    PublicIssue,
    archived_issue,
    archived_issues,
    plain_texts,
    public_issues,
    public_variant,
    variant_content,
)
from briefing.store.editions import StoredVariant

FEED_ENTRIES = 20  # issues in a public archive's Atom feed
PUBLIC_PAGE = 30  # issues per page of a public archive's list


@dataclass(frozen=True)
class ArchivedCopy:
    """A variant's content with inert links: what the archive shows of it."""

    variant_id: int
    issue_date: date
    sections: tuple[str, ...]
    subject: str
    cut_at: datetime
    html: str
    text: str


@dataclass(frozen=True)
class FeedEntry:
    """One issue in a public archive's feed: its public copy's subject, cut time and text."""

    issue_date: date
    subject: str
    cut_at: datetime
    text: str


def inert_tokens(signer: Signer) -> dict[str, str]:
    """Return a token per link purpose that verifies but acts on nobody."""
    return {purpose.value: signer.inert(purpose) for purpose in Purpose}


def _filled(text: str, placeholders: Mapping[str, str], tokens: Mapping[str, str]) -> str:
    return fill_links(text, {k: v for k, v in placeholders.items() if k in tokens}, tokens)


def default_sections(config: Config, briefing: str) -> tuple[str, ...]:
    """Return the sections of a briefing's default variant, in the order variants store them."""
    return ordered_sections(config, briefing, None)


def desk_issues(
    database: Database, briefing: str, *, before: date | None = None, limit: int = 20
) -> IssuePage:
    """Return a page of a briefing's issues, newest first, with variants and figures."""
    with database.transaction() as session:
        return archived_issues(session, briefing, before=before, limit=limit)


def desk_issue(database: Database, briefing: str, issue_date: date) -> ArchivedIssue | None:
    """Return one issue of a briefing with its variants and figures, or None."""
    with database.transaction() as session:
        return archived_issue(session, briefing, issue_date)


def _inert_copy(stored: StoredVariant, issue_date: date, signer: Signer) -> ArchivedCopy:
    """Return a stored variant as a reader would see it, every link inert."""
    tokens = inert_tokens(signer)
    return ArchivedCopy(
        stored.id,
        issue_date,
        stored.sections,
        stored.subject,
        stored.cut_at,
        _filled(stored.html, stored.placeholders, tokens),
        _filled(stored.text, stored.placeholders, tokens),
    )


def desk_copy(
    database: Database, signer: Signer, briefing: str, issue_date: date, variant_id: int
) -> ArchivedCopy | None:
    """Return one variant of an issue with inert links, or None if it is not that issue's."""
    with database.transaction() as session:
        stored = variant_content(session, briefing, issue_date, variant_id)
    return _inert_copy(stored, issue_date, signer) if stored is not None else None


def public_list(
    config: Config, database: Database, briefing: str, *, before: date | None = None
) -> list[PublicIssue]:
    """Return a page of the public archive: the default sections' issues, newest first."""
    with database.transaction() as session:
        return public_issues(
            session, briefing, default_sections(config, briefing), before=before, limit=PUBLIC_PAGE
        )


def public_copy(
    config: Config, database: Database, signer: Signer, briefing: str, issue_date: date
) -> ArchivedCopy | None:
    """Return the public copy of an issue with inert links, or None if none was cut."""
    with database.transaction() as session:
        stored = public_variant(session, briefing, default_sections(config, briefing), issue_date)
    return _inert_copy(stored, issue_date, signer) if stored is not None else None


def feed_entries(
    config: Config, database: Database, signer: Signer, briefing: str
) -> list[FeedEntry]:
    """Return the latest issues of the public archive with their plain text, inert links."""
    tokens = inert_tokens(signer)
    with database.transaction() as session:
        issues = public_issues(
            session, briefing, default_sections(config, briefing), limit=FEED_ENTRIES
        )
        texts = plain_texts(session, [issue.variant_id for issue in issues])
    return [
        FeedEntry(
            issue.issue_date,
            issue.subject,
            issue.cut_at,
            _filled(*texts[issue.variant_id], tokens),
        )
        for issue in issues
    ]
