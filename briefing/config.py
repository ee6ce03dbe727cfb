"""Load and validate ``config.yaml``: site, sections, briefings, delivery, storage.

Every model forbids unknown keys and documents each field; a bad file stops the
run with the file name, the key path and what was expected. Paths in the file
are resolved against the folder the file is in, never the working directory.
Secrets (the signing key, SMTP password, DKIM key) come from the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from briefing.domain.calendar import check_frequency, parse_send_time
from briefing.domain.states import ApprovalMode
from briefing.errors import BriefingError, ConfigError, SecretError

SECRET_KEY_ENV = "BRIEFING_SECRET_KEY"
PREVIOUS_SECRET_KEY_ENV = "BRIEFING_SECRET_KEY_PREVIOUS"
SMTP_PASSWORD_ENV = "BRIEFING_SMTP_PASSWORD"
DKIM_KEY_ENV = "BRIEFING_DKIM_KEY_FILE"
WEBHOOK_TOKEN_ENV = "BRIEFING_WEBHOOK_TOKEN"
MAILGUN_SIGNING_KEY_ENV = "BRIEFING_MAILGUN_SIGNING_KEY"
IMAP_PASSWORD_ENV = "BRIEFING_IMAP_PASSWORD"
METRICS_TOKEN_ENV = "BRIEFING_METRICS_TOKEN"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def parse_duration(value: Any) -> timedelta:
    """Read a duration written as ``90m``, ``24h``, ``2d``, ``1w`` or ``2.5s``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            amount, unit = match.groups()
            return timedelta(**{_DURATION_UNITS[unit]: float(amount)})
    raise ValueError(f"expected a duration such as 90m, 24h or 2d, got {value!r}")


def format_duration(value: timedelta) -> str:
    """Write a duration the way config.yaml does: ``90m`` as ``1h 30m``, ``2d``, ``5s``."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts) or "0s"


def check_timezone(value: str) -> str:
    """Accept an IANA timezone name such as ``Europe/London``."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"expected an IANA timezone such as Europe/London, got {value!r}") from exc
    return value


# Legacy zone names that read like a region but are a fixed offset or a bare US rule;
# new input names a region zone instead (stored values and config keep working).
LEGACY_ZONES: dict[str, str] = {
    "EST": "America/New_York",
    "MST": "America/Denver (or America/Phoenix, which has no summer time)",
    "HST": "Pacific/Honolulu",
    "EST5EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
}


def check_new_timezone(value: str) -> str:
    """Accept a timezone for a new subscription: any IANA name but the legacy abbreviations.

    ``EST``-style names are refused with the region zone to use instead; a
    zone already stored or configured is never checked against this rule.
    """
    region = LEGACY_ZONES.get(value.strip().upper())
    if region is not None:
        raise ValueError(
            f"{value!r} is a legacy abbreviation that does not follow the region's summer time;"
            f" name the region's zone instead, such as {region}"
        )
    return check_timezone(value)


def check_locale(value: str) -> str:
    """Accept a locale Babel knows, such as ``en_GB`` or ``de``."""
    try:
        Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"expected a locale such as en_GB, got {value!r}") from exc
    return value.replace("-", "_")


def check_key(value: str) -> str:
    """Accept a short lower-case key usable in URLs and file names."""
    if not _KEY.match(value):
        raise ValueError(f"expected lower-case letters, digits, - or _, got {value!r}")
    return value


def check_email(value: str) -> str:
    """Accept an email address (no DNS lookup)."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"expected an email address, got {value!r}: {exc}") from exc
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
SendTime = Annotated[time, BeforeValidator(parse_send_time)]
Timezone = Annotated[str, AfterValidator(check_timezone)]
LocaleName = Annotated[str, AfterValidator(check_locale)]
Frequency = Annotated[str, AfterValidator(check_frequency)]
Key = Annotated[str, AfterValidator(check_key)]
EmailAddress = Annotated[str, AfterValidator(check_email)]


class StrictModel(BaseModel):
    """Reject unknown keys and never coerce silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(StrictModel):
    """Who sends the briefings and where their links point."""

    name: str = Field(description="Publication name shown in the header and the From name.")
    base_url: str = Field(
        description="Public https URL the web endpoints are served under; every personal "
        "link is <base_url>/<route>/<token>."
    )
    from_address: EmailAddress = Field(description="Address the briefings come from.")
    from_name: str | None = Field(
        default=None, description="Display name in From; defaults to the site name."
    )
    reply_to: EmailAddress | None = Field(default=None, description="Optional Reply-To address.")
    postal_address: str = Field(
        description="Postal address printed in every footer (required by CAN-SPAM and GDPR)."
    )
    unsubscribe_mailto: EmailAddress | None = Field(
        default=None,
        description="Optional mailbox offered as a mailto: List-Unsubscribe besides the URL.",
    )

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")


class SourceConfig(StrictModel):
    """One place articles come from: a Markdown glob, a feed file or a URL."""

    location: str = Field(
        description="Path or glob (relative to config.yaml) of Markdown or feed files, "
        "or an http(s) feed URL."
    )
    name: str | None = Field(default=None, description="Label in reports; defaults to location.")
    categories: dict[str, Key] = Field(
        default_factory=dict,
        description="Feed category -> section key; an entry with a mapped category also "
        "joins that section.",
    )

    @property
    def label(self) -> str:
        """Name the source in reports."""
        return self.name or self.location


def _source(value: Any) -> Any:
    return {"location": value} if isinstance(value, str) else value


class SectionConfig(StrictModel):
    """A section of the briefing (World, Business, ...) and where its articles come from."""

    title: str = Field(description="Heading shown above the section's items.")
    sources: list[Annotated[SourceConfig, BeforeValidator(_source)]] = Field(
        default_factory=list, description="Sources whose articles belong to this section."
    )
    max_items: int = Field(default=5, ge=1, le=50, description="Most items from this section.")
    lookback: Duration = Field(
        default=timedelta(hours=24),
        description="How far back a first edition looks (articles first seen within it).",
    )


class UtmConfig(StrictModel):
    """UTM parameters appended to article links (they count against the size budget)."""

    source: str = Field(default="briefing", description="utm_source value.")
    medium: str = Field(default="email", description="utm_medium value.")
    campaign: str | None = Field(
        default=None, description="utm_campaign value; defaults to the briefing's key."
    )


class BriefingConfig(StrictModel):
    """One newsletter: its sections, schedule, subject and limits."""

    title: str = Field(description="Name shown in the header and the subject.")
    list_id: str = Field(
        description="List-Id header value, a domain-like id such as daily.news.example.org."
    )
    subject: str = Field(
        default="{{ title }}: {{ top_headline }}",
        description="Jinja2 subject template; variables: title, date, top_headline, items.",
    )
    locale: LocaleName = Field(default="en_GB", description="Locale for dates and ages.")
    sections: list[Key] = Field(description="Default sections, in the order they appear.")
    send_time: SendTime = Field(default=time(7, 0), description="Default local send time (HH:MM).")
    timezone: Timezone = Field(default="UTC", description="Default subscriber timezone.")
    frequency: Frequency = Field(
        default="daily", description="Default frequency: daily, weekdays or weekly:<day>."
    )
    max_items: int = Field(default=20, ge=1, le=100, description="Cap on items per digest.")
    summary_words: int = Field(
        default=60, ge=10, le=200, description="Word budget of each summary."
    )
    related_links: int = Field(default=2, ge=0, le=5, description="Related links under each item.")
    related_window: Duration = Field(
        default=timedelta(days=3),
        description="Related links are stored articles published within this long of their "
        "item (the quality benchmark's window).",
    )
    related_threshold: float = Field(
        default=0.08,
        ge=0.0,
        lt=1.0,
        description="Least similarity (briefing.pipeline.similarity, 0 to 1) for a related link; below "
        "it an item gets fewer links or none. Must be below fold_threshold.",
    )
    fold_threshold: float = Field(
        default=0.15,
        gt=0.0,
        le=1.0,
        description="Similarity at which articles count as the same story: candidates of one "
        "edition are folded into one item with 'Also covered by' links, and no related link "
        "is the same story as an item. 1 folds nothing.",
    )
    related_archive: int = Field(
        default=2000,
        ge=10,
        le=20_000,
        description="Most recent stored articles the similarity index holds; it is built once "
        "per dispatch run (under a second per 1,000 long articles).",
    )
    deadline: Duration = Field(
        default=timedelta(hours=4),
        description="After send time + deadline an unsent edition expires, never sent late.",
    )
    skip_if_empty: bool = Field(
        default=True,
        description="Send nothing when a subscriber has no new articles (recorded as skipped).",
    )
    utm: UtmConfig | None = Field(default=None, description="Optional UTM tagging of links.")
    approval: ApprovalMode = Field(
        default=ApprovalMode.NONE,
        description="required: dispatch creates nothing for an issue date until an editor "
        "approves it (`briefing approve`); none: each edition goes at its send time.",
    )
    public_archive: bool = Field(
        default=False,
        strict=True,
        description="true: anyone may read past issues (the default sections' copy, with inert "
        "links) at <base_url>/archive/<briefing>/ and follow them in an Atom feed; false: those "
        "pages answer 404 as for an unknown briefing.",
    )

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9-]+", value):
            raise ValueError(f"expected a domain-like id such as daily.example.org, got {value!r}")
        return value

    @model_validator(mode="after")
    def _thresholds(self) -> BriefingConfig:
        if self.related_threshold >= self.fold_threshold:
            raise ValueError(
                f"related_threshold ({self.related_threshold}) must be below fold_threshold "
                f"({self.fold_threshold}): a link that similar is the same story"
            )
        return self


class SmtpConfig(StrictModel):
    """The relay the SMTP transport talks to, and how (the password comes from the environment)."""

    host: str = Field(description="Relay host name or address.")
    port: int = Field(
        default=587, ge=1, le=65535, description="Relay port (587 submission, 465 implicit TLS)."
    )
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls: upgrade after EHLO (refuse a relay that does not offer it); "
        "tls: implicit TLS from the first byte; none: plain text (a relay on this machine only).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed a local relay's certificate; certificates "
        "are always checked, against the system's CAs when this is unset.",
    )
    username: str | None = Field(
        default=None,
        description=f"AUTH user name; its password is read from {SMTP_PASSWORD_ENV}.",
    )
    helo_name: str | None = Field(
        default=None, description="Name sent with EHLO; defaults to this machine's FQDN."
    )
    envelope_sender: str | None = Field(
        default=None,
        description="Envelope sender (MAIL FROM); default bounces+{token}@<bounces.domain> when "
        "bounces.domain is set, else site.from_address. May contain {token} (the signed "
        "delivery token, 32 lowercase base32 characters) and {briefing}. {recipient} (VERP, "
        "local=domain) is still accepted but deprecated: it puts the address in the envelope, "
        "and a bounce matched by address alone is recorded, never acted on.",
    )
    pool_size: int = Field(default=4, ge=1, le=64, description="Connections open at once.")
    messages_per_connection: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Messages sent over one connection before it is replaced by a fresh one.",
    )
    connect_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the connection and the greeting."
    )
    command_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for the reply to one command."
    )
    data_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds to wait while sending the message and for the reply to its final dot.",
    )
    connect_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Tries at opening a connection (with backoff) before the run stops.",
    )
    reconnect_backoff: float = Field(
        default=1.0,
        ge=0,
        description="Seconds before reconnecting after a 421 or a dropped "
        "connection; doubled for each failure in a row, with jitter.",
    )

    @field_validator("envelope_sender")
    @classmethod
    def _envelope(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            sample = value.format(briefing="daily", recipient="reader=example.org", token="a" * 32)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                "expected an address with optional {token}, {briefing} and {recipient}, "
                f"got {value!r}"
            ) from exc
        check_email(sample)
        return value


class DkimConfig(StrictModel):
    """DKIM signing; the private key's path comes from the environment."""

    selector: str = Field(description="Selector: the key is published at <selector>._domainkey.")
    domain: str | None = Field(
        default=None, description="Signing domain (d=); defaults to site.from_address's domain."
    )


class RetryConfig(StrictModel):
    """Retries of temporary failures (4xx, timeouts, dropped connections)."""

    attempts_per_run: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Tries of one delivery within a run before it is left deferred.",
    )
    backoff: float = Field(
        default=5.0,
        ge=0,
        description="Seconds before the first retry within a run; doubled for "
        "each further try, with jitter.",
    )
    max_backoff: float = Field(
        default=120.0, ge=0, description="Longest wait between two tries within a run, in seconds."
    )
    later: Duration = Field(
        default=timedelta(minutes=10),
        description="When a delivery still deferred at the end of a run is tried again by a "
        "later run (never past the briefing's deadline, after which it expires).",
    )


class DeliveryConfig(StrictModel):
    """How composed messages leave: the Maildir outbox (default) or SMTP."""

    transport: str = Field(
        default="outbox",
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="outbox: write a Maildir under `outbox`; smtp: send through `smtp`; "
        "or the name of a transport a plugin registers.",
    )
    outbox: Path = Field(
        default=Path("var/outbox"), description="Maildir folder for the outbox transport."
    )
    batch_size: int = Field(
        default=200, ge=1, le=10_000, description="Deliveries claimed from the ledger at once."
    )
    smtputf8: bool = Field(
        default=False,
        description="Accept addresses with non-ASCII characters before the @ (josé@example.com);"
        " only for a relay that offers SMTPUTF8, which such mail needs (sending fails clearly"
        " when the relay does not offer it).",
    )
    smtp: SmtpConfig | None = Field(
        default=None, description="The relay; required when transport is smtp."
    )
    rate_limit: float | None = Field(
        default=None,
        gt=0,
        description="Most messages per second over all connections "
        "(unset: as fast as the relay takes them).",
    )
    connection_rate_limit: float | None = Field(
        default=None, gt=0, description="Most messages per second over one connection."
    )
    slow_down_period: float = Field(
        default=60.0,
        ge=0,
        description="Seconds the rate stays halved after a 4.7.x 'slow down' reply.",
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig, description="Retries of temporary failures."
    )
    same_failure_limit: int = Field(
        default=20,
        ge=2,
        le=10_000,
        description="This many recipients in a row refused with the same 5xx reply stop the run "
        "(a session or content problem, not the recipients'); they are left pending.",
    )
    lease: float = Field(
        default=120.0,
        ge=5,
        description="Seconds a claim lasts without a heartbeat; a crashed "
        "run's claims are taken over after it (at once on the same host).",
    )
    heartbeat: float = Field(
        default=10.0, gt=0, description="Seconds between lease renewals of a live run."
    )
    dkim: DkimConfig | None = Field(
        default=None,
        description=f"DKIM signing; the private key's path comes from {DKIM_KEY_ENV}.",
    )
    redirect_to: EmailAddress | None = Field(
        default=None,
        description="Safety switch: send every message to this one address instead, with inert "
        "links, a fresh Message-ID and the intended recipient in a header; the ledger is "
        "not touched.",
    )
    unrecorded_per_connection: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Messages one connection may have handed to the relay before their "
        "outcomes are committed. 1: each message waits for the last one's commit; 2: the next "
        "message goes while the last one's commit runs (group commit overlaps the wire). After "
        "a crash at most connections x this many messages go twice.",
    )
    processes: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        default="auto",
        description="Processes a run delivers with over SMTP, each with its share of "
        "smtp.pool_size and of rate_limit: one process sends at most one core's worth. auto: "
        "the CPUs this machine gives briefing, at most 4, and one per 10,000 due deliveries at "
        "most (a process takes over a second of CPU to start).",
    )
    outcome_commit: Literal["flush", "async"] = Field(
        default="flush",
        description="PostgreSQL only: how outcome groups are committed. flush: each commit "
        "waits for the WAL to reach the disk. async: synchronous_commit off for outcome "
        "transactions, SQLite's WAL/NORMAL guarantee: safe against a crash of any briefing "
        "process; a crash of the database server itself may forget the last fraction of a "
        "second of outcomes, which are then sent again (never lost).",
    )

    @model_validator(mode="after")
    def _smtp_settings(self) -> DeliveryConfig:
        if self.transport == "smtp" and self.smtp is None:
            raise ValueError("smtp: required when transport is smtp (host, port, security, ...)")
        if self.heartbeat * 2 > self.lease:
            raise ValueError(
                f"heartbeat: {self.heartbeat:g} s must be at most half the lease "
                f"({self.lease:g} s), or a live run's claims could lapse"
            )
        return self


class ImapConfig(StrictModel):
    """The IMAP folder `briefing bounces poll` reads returned mail from (password from the environment)."""

    host: str = Field(description="IMAP server host name or address.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="IMAP port; default 993 with security ssl, else 143.",
    )
    user: str = Field(description=f"Login name; its password is read from {IMAP_PASSWORD_ENV}.")
    folder: str = Field(default="INBOX", description="Folder the returned mail arrives in.")
    security: Literal["ssl", "starttls", "none"] = Field(
        default="ssl",
        description="ssl: implicit TLS from the first byte; starttls: upgrade after the "
        "greeting; none: plain text (a server on this machine only).",
    )
    handled_folder: str = Field(
        default="bounces-handled",
        description="Folder each handled message is moved to (created when absent).",
    )
    failed_folder: str = Field(
        default="bounces-failed",
        description="Folder a message that cannot be read as mail is moved to (created when "
        "absent), with a warning naming its UID.",
    )
    poll_every: Duration | None = Field(
        default=None,
        description="How often `briefing serve` polls the folder (as `bounces poll` does); "
        "unset: never, poll from cron instead.",
    )

    @property
    def port_number(self) -> int:
        """Return the port: the one given, else 993 for ssl and 143 otherwise."""
        if self.port is not None:
            return self.port
        return 993 if self.security == "ssl" else 143


class BouncesConfig(StrictModel):
    """Mail that comes back: the bounce address and what bounces do to a subscription."""

    domain: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$",
        description="Domain of the per-delivery bounce address local_part+<token>@domain (SMTP "
        "only); it must share site.from_address's organisational domain (DMARC alignment). "
        "Unset: the envelope sender is smtp.envelope_sender or the From address.",
    )
    local_part: str = Field(
        default="bounces",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,29}$",
        description="Local part before +<token> of the bounce address.",
    )
    soft_limit: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Soft bounces (4.x, 5.2.2 mailbox full) of one address within soft_window_days "
        "that make its subscriptions bounced.",
    )
    soft_window_days: int = Field(
        default=14,
        ge=1,
        le=365,
        description="Days over which soft bounces are counted; older ones go stale.",
    )
    imap: ImapConfig | None = Field(
        default=None,
        description="The IMAP folder `briefing bounces poll` reads; unset: no polling.",
    )

    def address(self, token: str) -> str | None:
        """Return the bounce address carrying ``token``, or None without a bounce domain."""
        if not self.domain:
            return None
        return f"{self.local_part}+{token}@{self.domain}"


class InboundConfig(StrictModel):
    """The receiver of returned mail (`briefing inbound`) a relay's transport map points at."""

    host: str = Field(
        default="127.0.0.1",
        description="Address `briefing inbound` listens on; keep it on this machine or a "
        "private network, since the relay is its only client.",
    )
    port: int = Field(default=2525, ge=0, le=65535, description="Port it listens on.")
    protocol: Literal["lmtp", "smtp"] = Field(
        default="lmtp",
        description="lmtp: one reply per recipient (Postfix `lmtp:` transport); smtp: one "
        "reply per message (any MTA's relay or smarthost).",
    )
    max_bytes: int = Field(
        default=10_000_000,
        ge=10_000,
        le=200_000_000,
        description="Largest message accepted, in bytes; advertised as SIZE, a larger one is "
        "refused with 552.",
    )


def organisational_domain(domain: str) -> str:
    """Return the last two labels of a domain: the organisational domain, approximately.

    Without the public suffix list a two-label suffix such as ``co.uk`` is
    taken for an organisation, so the check is lenient there, never strict
    where it should not be.
    """
    return ".".join(domain.lower().rstrip(".").split(".")[-2:])


class WebConfig(StrictModel):
    """The public web endpoints (`briefing web`): where they listen and how sign-ups are limited."""

    host: str = Field(default="127.0.0.1", description="Address `briefing web` listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `briefing web` listens on.")
    trusted_proxies: str = Field(
        default="127.0.0.1",
        description="Comma-separated proxy addresses whose X-Forwarded-For is believed "
        "(the client address that sign-ups are limited by); * trusts every peer.",
    )
    confirm_within: Duration = Field(
        default=timedelta(hours=48),
        description="How long a sign-up confirmation link stays valid.",
    )
    signups_per_address: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Most sign-up confirmations sent to one address per address window.",
    )
    address_window: Duration = Field(
        default=timedelta(hours=24), description="Window of the per-address sign-up limit."
    )
    signups_per_client: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Most sign-ups accepted from one client address per client window.",
    )
    client_window: Duration = Field(
        default=timedelta(hours=1), description="Window of the per-client sign-up limit."
    )
    privacy_url: str | None = Field(
        default=None,
        description="Optional http(s) URL of the privacy notice, linked from every page "
        "and form of the reader pages.",
    )
    account_link_within: Duration = Field(
        default=timedelta(hours=1),
        description="How long a mailed self-service link (download your data, delete it, "
        "confirm a new address) stays valid; each works once.",
    )
    undo_within: Duration = Field(
        default=timedelta(days=7),
        description="How long the old address may undo a change of address (the link "
        "mailed to it works once).",
    )
    purge_interval: Duration = Field(
        default=timedelta(hours=1),
        description="How often `briefing serve` deletes expired unconfirmed sign-ups "
        "(after confirm_within) and expired self-service links.",
    )

    @field_validator("privacy_url")
    @classmethod
    def _privacy_http(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("expected a duration above zero, such as 10s")
    return value


PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]


_TOPIC_ARN = re.compile(
    r"^arn:aws(-cn|-us-gov)?:sns:[a-z]{2}(-[a-z]+)+-\d+:\d{12}:[A-Za-z0-9_-]{1,256}$"
)


class SesHookConfig(StrictModel):
    """Amazon SES notifications delivered by SNS to ``POST <base>/hooks/ses``."""

    topics: list[str] = Field(
        min_length=1,
        description="ARNs of the SNS topics whose messages are accepted "
        "(arn:aws:sns:<region>:<account>:<name>); any other topic is refused.",
    )
    max_age: PositiveDuration = Field(
        default=timedelta(hours=1),
        description="Messages whose signed Timestamp is further than this from now are refused "
        "(the replay window).",
    )

    @field_validator("topics")
    @classmethod
    def _arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not _TOPIC_ARN.match(arn):
                raise ValueError(
                    f"expected an SNS topic ARN such as "
                    f"arn:aws:sns:eu-west-1:123456789012:bounces, got {arn!r}"
                )
        return value


class MailgunHookConfig(StrictModel):
    """Mailgun event webhooks to ``POST <base>/hooks/mailgun`` (signing key from the environment)."""

    max_age: PositiveDuration = Field(
        default=timedelta(minutes=5),
        description="Events whose signed timestamp is further than this from now are refused; "
        "each signature token is accepted once within it.",
    )


class WebhooksConfig(StrictModel):
    """Provider webhooks for bounces and complaints on `briefing web`; each is off unless set."""

    generic: bool = Field(
        default=False,
        description=f"Serve POST <base>/hooks/events (a JSON list of events), authenticated by "
        f"a bearer token read from {WEBHOOK_TOKEN_ENV}.",
    )
    ses: SesHookConfig | None = Field(
        default=None, description="Serve POST <base>/hooks/ses for Amazon SES through SNS."
    )
    mailgun: MailgunHookConfig | None = Field(
        default=None,
        description=f"Serve POST <base>/hooks/mailgun; the signing key is read from "
        f"{MAILGUN_SIGNING_KEY_ENV}.",
    )
    max_body: int = Field(
        default=512 * 1024,
        ge=1024,
        le=10 * 1024 * 1024,
        description="Largest webhook body accepted, in bytes; a larger one is answered 413.",
    )


class IngestConfig(StrictModel):
    """How feeds are fetched over HTTP and when a failing source is flagged."""

    connect_timeout: PositiveDuration = Field(
        default=timedelta(seconds=10),
        description="How long to wait for a feed server to accept the connection.",
    )
    read_timeout: PositiveDuration = Field(
        default=timedelta(seconds=30),
        description="How long to wait for each read from a feed server before giving up.",
    )
    total_timeout: PositiveDuration = Field(
        default=timedelta(seconds=60),
        description="Longest one fetch may take in all, wall-clock: connecting, headers, "
        "redirects and body included (a server that trickles bytes never hits the read "
        "timeout, but is cut here and named with the phase it was in).",
    )
    max_bytes: int = Field(
        default=10_000_000,
        ge=1_000,
        le=500_000_000,
        description="Largest feed accepted, in bytes after decompression; a larger one is "
        "refused while it downloads.",
    )
    max_redirects: int = Field(
        default=5, ge=0, le=20, description="Most redirects followed for one feed."
    )
    concurrency: int = Field(
        default=8,
        ge=1,
        le=200,
        description="How many sources are fetched at once; a run takes about as long as its "
        "slowest source rather than the sum of them all.",
    )
    per_host: int = Field(
        default=2,
        ge=1,
        le=50,
        description="How many of those fetches may go to one host at once.",
    )
    parse_timeout: PositiveDuration = Field(
        default=timedelta(seconds=20),
        description="Longest one document may take to read (decode, parse, clean) in its worker "
        "process; a document still being read is stopped and reported.",
    )
    max_entries: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Most entries read from one document; the newest are kept, with a warning.",
    )
    parse_workers: int = Field(
        default=2,
        ge=0,
        le=64,
        description="Worker processes that read documents; 0 reads in the ingest process "
        "itself, with no parse timeout.",
    )
    flag_after_failures: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="A source failing this many runs in a row is flagged in the ingest report "
        "and by `briefing sources`.",
    )
    user_agent: str | None = Field(
        default=None,
        description="User-Agent sent with every request; default "
        "`briefing/<version> (+<site.base_url>)`.",
    )

    @field_validator("user_agent")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "\r\n")):
            raise ValueError("expected one non-empty line of text")
        return value


class SchedulerConfig(StrictModel):
    """How ``briefing serve`` paces its jobs: ingest, dispatch and ops requests."""

    ingest_interval: Duration = Field(
        default=timedelta(minutes=15),
        description="How often every source is read (also once at start-up, before the "
        "first dispatch).",
    )
    dispatch_interval: Duration = Field(
        default=timedelta(minutes=1),
        description="How often due editions are dispatched and the ledger drained, on the "
        "minute; at most 1m so nobody is sent late. Shorter only for tests and trials.",
    )
    control_interval: Duration = Field(
        default=timedelta(seconds=5),
        description="How often a running scheduler looks for `briefing run-now` requests "
        "and checks that it still holds its lock.",
    )
    deliver: bool = Field(
        default=True,
        description="Whether `briefing serve` also drains the ledger after each dispatch. "
        "false (or `serve --no-deliver`): serve only ingests, dispatches and sends "
        "confirmations never; `briefing deliver` workers drain the ledger instead.",
    )

    @field_validator("ingest_interval")
    @classmethod
    def _ingest_bounds(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError(f"expected at least 1s, got {value}")
        return value

    @field_validator("dispatch_interval", "control_interval")
    @classmethod
    def _tick_bounds(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=1):
            raise ValueError(f"expected between 1s and 1m, got {value}")
        return value


class DeskConfig(StrictModel):
    """The desk (`<base_url>/desk/`): how long its sessions last and how logins are limited."""

    idle_timeout: Duration = Field(
        default=timedelta(minutes=30),
        description="A desk session unused this long ends; the next page asks to log in again.",
    )
    max_age: Duration = Field(
        default=timedelta(hours=12),
        description="A desk session ends this long after its login, however busy.",
    )
    failures_per_account: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed logins to one account name per failure window before that "
        "name is refused until the window passes.",
    )
    failures_per_network: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Failed logins from one client network (an IPv4 address or an IPv6 /64) "
        "per failure window before every login from it is refused until the window passes.",
    )
    failure_window: Duration = Field(
        default=timedelta(minutes=15), description="Window of both failed-login limits."
    )
    test_recipients: list[EmailAddress] = Field(
        default_factory=list,
        max_length=50,
        description="Addresses every editor may mail a test send to from the desk's preview "
        "page (a proof-reading list). The desk never mails a test to an address typed in.",
    )
    addresses: dict[str, EmailAddress] = Field(
        default_factory=dict,
        description="Each desk account's own address (account name: address), offered to "
        "that account as 'me' for test sends.",
    )

    @model_validator(mode="after")
    def _idle_within_max_age(self) -> DeskConfig:
        if self.idle_timeout <= timedelta(0) or self.max_age <= timedelta(0):
            raise ValueError("idle_timeout and max_age must be longer than zero")
        return self


class MetricsConfig(StrictModel):
    """Ops monitoring: `GET <base>/metrics`, and when `briefing status` says a person is needed."""

    allow: list[str] = Field(
        default_factory=list,
        description=f"Client networks (CIDRs such as 10.0.0.0/8, or single addresses) whose "
        f"scrapes of /metrics are accepted without a token; a bearer token in {METRICS_TOKEN_ENV} "
        "is the other way in. /metrics is off unless one of the two is set.",
    )
    window: PositiveDuration = Field(
        default=timedelta(days=1),
        description="Recent editions: the deliveries of editions whose send time is within "
        "this of now are counted, and the due-but-unsent among them (a bounded window, "
        "however long the ledger's history); keep it above the longest briefing deadline.",
    )
    unsent_after: PositiveDuration = Field(
        default=timedelta(minutes=15),
        description="`briefing status` needs a person when an edition has been due and unsent "
        "for longer than this.",
    )
    health_timeout: PositiveDuration = Field(
        default=timedelta(seconds=2),
        description="How long /healthz and /readyz wait for the database before answering 503.",
    )

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"expected a network such as 10.0.0.0/8 or an address, got {item!r}"
                ) from None
        return value


class Config(StrictModel):
    """The whole ``config.yaml``."""

    site: SiteConfig = Field(description="Publication, links and sender.")
    sections: dict[Key, SectionConfig] = Field(description="Sections by key.")
    briefings: dict[Key, BriefingConfig] = Field(description="Briefings by key.")
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig, description="Transport settings."
    )
    web: WebConfig = Field(
        default_factory=WebConfig, description="Public web endpoints and sign-up limits."
    )
    ingest: IngestConfig = Field(
        default_factory=IngestConfig, description="Fetching feeds and flagging failing sources."
    )
    scheduler: SchedulerConfig = Field(
        default_factory=SchedulerConfig, description="Pacing of `briefing serve`."
    )
    bounces: BouncesConfig = Field(
        default_factory=BouncesConfig,
        description="The bounce address and the bounce policy.",
    )
    webhooks: WebhooksConfig = Field(
        default_factory=WebhooksConfig,
        description="Provider webhooks for bounces and complaints (all off by default).",
    )
    inbound: InboundConfig = Field(
        default_factory=InboundConfig,
        description="The receiver of returned mail, `briefing inbound`.",
    )
    desk: DeskConfig = Field(
        default_factory=DeskConfig,
        description="The desk's sessions and login limits.",
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig,
        description="Ops monitoring: /metrics, /healthz, /readyz and `briefing status`.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default a SQLite file var/briefing.db beside config.yaml.",
    )
    base_dir: Path = Field(
        default=Path("."), exclude=True, description="Folder of config.yaml (set by the loader)."
    )

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        for name, briefing in self.briefings.items():
            for index, section in enumerate(briefing.sections):
                if section not in self.sections:
                    raise ValueError(
                        f"briefings.{name}.sections.{index}: unknown section {section!r} "
                        f"(known: {', '.join(self.sections)})"
                    )
        for key, section_config in self.sections.items():
            for index, source in enumerate(section_config.sources):
                for category, target in source.categories.items():
                    if target not in self.sections:
                        raise ValueError(
                            f"sections.{key}.sources.{index}.categories.{category}: "
                            f"unknown section {target!r}"
                        )
        if self.bounces.domain:
            sender_domain = self.site.from_address.rpartition("@")[2]
            if organisational_domain(self.bounces.domain) != organisational_domain(sender_domain):
                raise ValueError(
                    f"bounces.domain: {self.bounces.domain!r} is not aligned with "
                    f"site.from_address's domain {sender_domain!r} (DMARC wants the same "
                    "organisational domain)"
                )
        return self

    def resolve(self, path: Path | str) -> Path:
        """Resolve a path from the config against the config file's folder."""
        path = Path(path)
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def templates_folder(self) -> Path | None:
        """Return the site's own templates folder (looked up before the defaults), if it has one."""
        folder = self.resolve("templates")
        return folder if folder.is_dir() else None

    @property
    def database(self) -> str:
        """Return the database URL, a SQLite file under var/ by default."""
        if self.database_url:
            if self.database_url.startswith("sqlite:///") and not self.database_url.startswith(
                "sqlite:////"
            ):
                relative = self.database_url.removeprefix("sqlite:///")
                if relative and relative != ":memory:":
                    return f"sqlite:///{self.resolve(relative)}"
            return self.database_url
        return f"sqlite:///{self.resolve('var/briefing.db')}"

    @property
    def outbox_path(self) -> Path:
        """Return the Maildir outbox folder."""
        return self.resolve(self.delivery.outbox)

    def briefing(self, name: str) -> BriefingConfig:
        """Return one briefing by key, or fail naming the known ones."""
        try:
            return self.briefings[name]
        except KeyError:
            raise ConfigError(
                self.base_dir / "config.yaml",
                [f"briefings: no briefing {name!r} (known: {', '.join(self.briefings)})"],
            ) from None


def _key_path(location: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in location if part not in ("function-after", "function-before")]
    # pydantic reports Annotated validators under their type name; drop those hops.
    parts = [p for p in parts if not p.startswith(("function-", "json-or-python", "lax-or-"))]
    return ".".join(parts) or "(top level)"


def describe_validation_error(error: ValidationError) -> list[str]:
    """Turn a pydantic error into one ``key.path: expected ...`` line per problem."""
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        key = _key_path(tuple(item["loc"]))
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and indentation)"
        elif item["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{key}: {message}")
    return problems


def load_config(path: Path | str) -> Config:
    """Read ``config.yaml``, validate it, and resolve its paths."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path,
            ["file not found"],
            hint="Run briefing from the folder holding config.yaml, or pass --config PATH.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read the file: {exc}"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(path, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if not isinstance(raw, dict):
        raise ConfigError(path, ["(top level): expected a mapping of keys such as site, sections"])
    raw["base_dir"] = path.resolve().parent
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(path, describe_validation_error(exc)) from exc


def signing_keys() -> list[bytes]:
    """Return the signing key and, during rotation, the previous one."""
    current = os.environ.get(SECRET_KEY_ENV, "")
    if not current:
        raise SecretError(SECRET_KEY_ENV, "key that signs personal links and Message-IDs")
    keys = [current.encode("utf-8")]
    previous = os.environ.get(PREVIOUS_SECRET_KEY_ENV, "")
    if previous:
        keys.append(previous.encode("utf-8"))
    return keys


MIN_WEBHOOK_SECRET = 16


def webhook_secret(variable: str, purpose: str) -> str:
    """Return a webhook secret from the environment, or fail naming the variable."""
    value = os.environ.get(variable, "")
    if not value:
        raise SecretError(variable, purpose)
    if len(value) < MIN_WEBHOOK_SECRET:
        raise BriefingError(
            f"{variable} is shorter than {MIN_WEBHOOK_SECRET} characters; it holds the {purpose}",
            hint=f"set it to a long random value (e.g. `openssl rand -hex 24`) in {variable}",
        )
    return value


def imap_password() -> str:
    """Return the IMAP password for `bounces poll` from the environment, or fail naming it."""
    password = os.environ.get(IMAP_PASSWORD_ENV, "")
    if not password:
        raise SecretError(IMAP_PASSWORD_ENV, "password of bounces.imap.user")
    return password
