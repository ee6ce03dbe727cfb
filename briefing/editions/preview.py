"""Preview an edition for editors: the .html, .txt and .eml, with warnings.

A preview shows the edition a subscriber (or a set of sections) gets at a
given time. When that subscriber's edition for the day was cut already, the
frozen variant is shown as it went out; otherwise the variant is cut exactly
as dispatch would, but not stored. Either way the links carry inert tokens: they
open a page that acts on nobody.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from briefing.config import Config
from briefing.domain.addresses import AddressError, mailbox_key
from briefing.domain.tokens import Purpose, Signer
from briefing.editions.variants import VariantSpec, build_variant, ordered_sections
from briefing.errors import BriefingError
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
    warnings = list(built.notes)
    warnings.extend(
        f"image of {item.article.title!r} has no alt text; the headline is used"
        for item in built.digest.items
        if item.article.image_url and not item.article.image_alt
    )
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
    settings = config.briefing(briefing)
    _check_sections(config, sections)
    address = _address(subscriber) if subscriber else None
    stored: StoredVariant | None = None
    since: datetime | None = None
    with database.transaction() as session:
        found = subscription_of(session, briefing, address) if address else None
        if address and found is None:
            raise BriefingError(
                f"{address} has no subscription to {briefing}",
                hint="Import them with `briefing subscribers import`, or preview by --sections.",
            )
        audience = _audience(config, briefing, sections, found)
        issue_date = at.astimezone(audience.zone).date()
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
    tokens = {purpose.value: signer.inert(purpose) for purpose in Purpose}
    domain = config.site.from_address.rpartition("@")[2]
    message = content.template.personalise(
        recipient=audience.recipient,
        name=audience.name,
        message_id=f"<preview-{uuid.uuid4().hex}@{domain}>",
        date=at,
        tokens=tokens,
        list_unsubscribe=list_unsubscribe(config, tokens[Purpose.UNSUBSCRIBE.value]),
        extra_headers={"X-Briefing-Preview": "inert links; they act on nobody"},
    )
    out.mkdir(parents=True, exist_ok=True)
    who = audience.recipient if subscriber else "-".join(content.sections)
    stem = out / f"{briefing}-{content.issue_date.isoformat()}-{_slug(who)}"
    html_path, text_path, eml_path = (stem.with_suffix(s) for s in (".html", ".txt", ".eml"))
    html_path.write_text(fill_links(content.html, content.placeholders, tokens), encoding="utf-8")
    text_path.write_text(fill_links(content.text, content.placeholders, tokens), encoding="utf-8")
    eml_path.write_bytes(message)
    warnings = list(content.warnings)
    if content.html_size >= HTML_LIMIT:
        warnings.append(
            f"HTML part is {content.html_size:,} bytes even with one item; Gmail will clip it"
        )
    elif content.html_size > HTML_WARNING and not any("Gmail" in w for w in warnings):
        warnings.append(
            f"HTML part is {content.html_size:,} bytes; Gmail clips above about 102,000"
        )
    return PreviewResult(
        html=html_path,
        text=text_path,
        eml=eml_path,
        subject=content.subject,
        html_size=content.html_size,
        item_count=content.item_count,
        warnings=tuple(warnings),
    )
