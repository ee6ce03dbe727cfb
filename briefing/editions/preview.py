"""Preview an edition for editors: the .html, .txt and .eml, with warnings.

A preview shows the edition a subscriber (or a set of sections) gets at a
given time. When that subscriber's edition for the day was cut already, the
frozen variant is shown as it went out; otherwise the variant is cut exactly
as dispatch would, but not stored. Either way the links carry inert tokens: they
open a page that acts on nobody.

:func:`preview_content` returns it all in memory (the desk's preview page and
its test send use it); :func:`preview` writes its .html, .txt and .eml.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email import policy as email_policy
from email.parser import BytesParser
from pathlib import Path
from zoneinfo import ZoneInfo

from briefing.config import Config
from briefing.domain.addresses import AddressError, mailbox_key
from briefing.domain.states import ClipStatus
from briefing.domain.tokens import Purpose, Signer
from briefing.editions.variants import VariantSpec, build_variant, ordered_sections
from briefing.errors import BriefingError, EditionError
from briefing.pipeline.checks import digest_warnings
from briefing.pipeline.compose import HTML_LIMIT, HTML_WARNING, MessageTemplate, fill_links
from briefing.pipeline.personalise import list_unsubscribe
from briefing.store import Database
from briefing.store.editions import StoredVariant, last_cut_before, variant_of_edition
from briefing.store.schedule import ScheduledSubscription, subscription_of


@dataclass(frozen=True)
class PreviewResult:
    """Where a preview was written and what an editor should know about it."""

    html: Path
    text: Path
    eml: Path
    subject: str
    html_size: int
    item_count: int
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class PreviewContent:
    """One edition as its reader gets it, in memory: inert links, the whole message.

    ``html`` and ``text`` are the two parts with inert links filled in;
    ``message`` is the complete RFC 5322 message (the .eml) and ``headers``
    its top-level headers, decoded, in order.
    """

    briefing: str
    issue_date: date
    sections: tuple[str, ...]
    recipient: str
    subscriber: str | None  # the subscriber previewed, when not a set of sections
    subscriber_id: int | None
    subject: str
    html: str
    text: str
    message: bytes
    headers: tuple[tuple[str, str], ...]
    html_size: int
    item_count: int
    warnings: tuple[str, ...]
    stored: bool  # shown as it was cut, not cut now

    @property
    def clip(self) -> ClipStatus:
        """Return where the HTML part stands against Gmail's clip."""
        return clip_status(self.html_size)


@dataclass(frozen=True)
class _Content:
    """An edition's content, from a stored variant or freshly cut."""

    issue_date: date
    sections: tuple[str, ...]
    subject: str
    html: str
    text: str
    template: MessageTemplate
    placeholders: Mapping[str, str]
    html_size: int
    item_count: int
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Audience:
    """Who the preview is for: a subscription's settings, or bare sections."""

    sections: list[str] | None
    zone: ZoneInfo
    recipient: str
    name: str | None = None
    subscriber_id: int | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "preview"


def _check_sections(config: Config, sections: list[str] | None) -> None:
    for key in sections or ():
        if key not in config.sections:
            raise BriefingError(
                f"unknown section {key!r}", hint=f"known: {', '.join(config.sections)}"
            )


def _address(subscriber: str) -> str:
    try:
        return mailbox_key(subscriber)
    except AddressError as exc:
        raise BriefingError(f"--subscriber {subscriber!r}: {exc}") from None


def _audience(
    config: Config,
    briefing: str,
    sections: list[str] | None,
    subscription: ScheduledSubscription | None,
) -> _Audience:
    if subscription is None:
        domain = config.site.from_address.rpartition("@")[2]
        zone = ZoneInfo(config.briefing(briefing).timezone)
        return _Audience(sections, zone, f"preview@{domain}")
    return _Audience(
        list(subscription.sections) if subscription.sections is not None else None,
        ZoneInfo(subscription.timezone),
        subscription.email,
        subscription.name,
        subscription.subscriber_id,
    )


def _stored(variant: StoredVariant, issue_date: date) -> _Content:
    return _Content(
        issue_date=issue_date,
        sections=variant.sections,
        subject=variant.subject,
        html=variant.html,
        text=variant.text,
        template=MessageTemplate.from_bytes(variant.message, variant.placeholders),
        placeholders=variant.placeholders,
        html_size=variant.html_size,
        item_count=variant.item_count,
        warnings=(
            *variant.notes,
            f"showing the edition of {issue_date} as it was cut at {variant.cut_at:%Y-%m-%d %H:%M} UTC",
        ),
    )


def _fresh(config: Config, database: Database, spec: VariantSpec, signer: Signer) -> _Content:
    settings = config.briefings[spec.briefing]
    built = build_variant(database, config, spec, feedback_key=signer.feedback_key)
    warnings = [*built.notes, *digest_warnings(built.digest)]
    if built.empty:
        warnings.append(
            "no new articles: this edition would be skipped"
            if settings.skip_if_empty
            else "no new articles"
        )
    return _Content(
        issue_date=spec.issue_date,
        sections=spec.sections,
        subject=built.rendered.subject,
        html=built.rendered.html,
        text=built.rendered.text,
        template=built.composed.template,
        placeholders=built.placeholders,
        html_size=built.composed.html_size,
        item_count=built.rendered.item_count,
        warnings=tuple(warnings),
    )


def _at_of(config: Config, briefing: str, issue_date: date, now: datetime) -> datetime:
    """Return when to cut an issue's preview: its send moment if past, else now."""
    settings = config.briefing(briefing)
    zone = ZoneInfo(settings.timezone)
    send_moment = datetime.combine(issue_date, settings.send_time, tzinfo=zone)
    return min(now, send_moment.astimezone(now.tzinfo))


def clip_status(html_size: int) -> ClipStatus:
    """Say where an HTML part's encoded size stands against Gmail's clip (about 102 KB)."""
    if html_size >= HTML_LIMIT:
        return ClipStatus.OVER
    if html_size > HTML_WARNING:
        return ClipStatus.NEAR
    return ClipStatus.UNDER


@dataclass(frozen=True)
class Addressing:
    """Whom one copy of a preview goes to instead of its subscriber (a test send)."""

    recipient: str
    message_id: str
    date: datetime  # the Date header: when it was asked for, not the issue's cut time
    subject_prefix: str = ""
    extra_headers: Mapping[str, str] = field(default_factory=dict)


def preview_content(
    config: Config,
    database: Database,
    signer: Signer,
    *,
    briefing: str,
    at: datetime,
    subscriber: str | None = None,
    sections: list[str] | None = None,
    issue_date: date | None = None,
) -> PreviewContent:
    """Return one edition as a subscriber (or a set of sections) gets it, with inert links.

    ``issue_date`` chooses the issue (default: ``at``'s date where the reader
    lives); with it, the cut time is that issue's send moment when it is
    past, else ``at``.
    """
    return addressed_copies(
        config,
        database,
        signer,
        briefing=briefing,
        at=at,
        subscriber=subscriber,
        sections=sections,
        issue_date=issue_date,
    )[0]


def addressed_copies(
    config: Config,
    database: Database,
    signer: Signer,
    *,
    briefing: str,
    at: datetime,
    subscriber: str | None = None,
    sections: list[str] | None = None,
    issue_date: date | None = None,
    to: Sequence[Addressing] = (),
) -> list[PreviewContent]:
    """Return an edition's preview once per addressee of ``to`` (its subscriber when empty).

    The edition is cut (or read) once; each copy has its own To, Message-ID,
    subject prefix and extra headers, and the same inert links.
    """
    settings = config.briefing(briefing)
    _check_sections(config, sections)
    address = _address(subscriber) if subscriber else None
    stored: StoredVariant | None = None
    since: datetime | None = None
    with database.transaction() as session:
        found = subscription_of(session, briefing, address) if address else None
        if address and found is None:
            raise EditionError(
                f"{address} has no subscription to {briefing}",
                hint="Import them with `briefing subscribers import`, or preview by --sections.",
            )
        audience = _audience(config, briefing, sections, found)
        if issue_date is None:
            issue_date = at.astimezone(audience.zone).date()
        else:
            at = _at_of(config, briefing, issue_date, at)
        if audience.subscriber_id is not None:
            stored = variant_of_edition(session, briefing, audience.subscriber_id, issue_date)
            if stored is None:
                since = last_cut_before(session, briefing, audience.subscriber_id, at)
    if stored is not None:
        content = _stored(stored, issue_date)
    else:
        spec = VariantSpec(
            briefing=briefing,
            sections=ordered_sections(config, briefing, audience.sections),
            since=since,
            cut_at=at,
            locale=settings.locale,
            issue_date=issue_date,
        )
        content = _fresh(config, database, spec, signer)
    warnings = list(content.warnings)
    if content.html_size >= HTML_LIMIT:
        warnings.append(
            f"HTML part is {content.html_size:,} bytes even with one item; Gmail will clip it"
        )
    elif content.html_size > HTML_WARNING and not any("Gmail" in w for w in warnings):
        warnings.append(
            f"HTML part is {content.html_size:,} bytes; Gmail clips above about 102,000"
        )
    tokens = {purpose.value: signer.inert(purpose) for purpose in Purpose}
    domain = config.site.from_address.rpartition("@")[2]
    html = fill_links(content.html, content.placeholders, tokens)
    text = fill_links(content.text, content.placeholders, tokens)
    unsubscribe = list_unsubscribe(config, tokens[Purpose.UNSUBSCRIBE.value])
    copies = []
    for addressing in to or (None,):
        template, subject = content.template, content.subject
        if addressing is not None and addressing.subject_prefix:
            subject = addressing.subject_prefix + subject
            template = template.with_subject(subject)
        message = template.personalise(
            recipient=addressing.recipient if addressing else audience.recipient,
            name=None if addressing else audience.name,
            message_id=(
                addressing.message_id if addressing else f"<preview-{uuid.uuid4().hex}@{domain}>"
            ),
            date=addressing.date if addressing else at,
            tokens=tokens,
            list_unsubscribe=unsubscribe,
            extra_headers={
                "X-Briefing-Preview": "inert links; they act on nobody",
                **(addressing.extra_headers if addressing else {}),
            },
        )
        head = BytesParser(policy=email_policy.default).parsebytes(message, headersonly=True)
        copies.append(
            PreviewContent(
                briefing=briefing,
                issue_date=content.issue_date,
                sections=content.sections,
                recipient=addressing.recipient if addressing else audience.recipient,
                subscriber=audience.recipient if subscriber else None,
                subscriber_id=audience.subscriber_id,
                subject=subject,
                html=html,
                text=text,
                message=message,
                headers=tuple((name, str(value)) for name, value in head.items()),
                html_size=content.html_size,
                item_count=content.item_count,
                warnings=tuple(warnings),
                stored=stored is not None,
            )
        )
    return copies


def preview(
    config: Config,
    database: Database,
    signer: Signer,
    *,
    briefing: str,
    at: datetime,
    out: Path,
    subscriber: str | None = None,
    sections: list[str] | None = None,
) -> PreviewResult:
    """Write the preview of one edition and return its paths, size and warnings."""
    content = preview_content(
        config, database, signer, briefing=briefing, at=at, subscriber=subscriber, sections=sections
    )
    out.mkdir(parents=True, exist_ok=True)
    who = content.subscriber or "-".join(content.sections)
    stem = out / f"{briefing}-{content.issue_date.isoformat()}-{_slug(who)}"
    html_path, text_path, eml_path = (stem.with_suffix(s) for s in (".html", ".txt", ".eml"))
    html_path.write_text(content.html, encoding="utf-8")
    text_path.write_text(content.text, encoding="utf-8")
    eml_path.write_bytes(content.message)
    return PreviewResult(
        html=html_path,
        text=text_path,
        eml=eml_path,
        subject=content.subject,
        html_size=content.html_size,
        item_count=content.item_count,
        warnings=content.warnings,
    )
