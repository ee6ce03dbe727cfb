"""Import subscriber lists: validate each row, create or update subscriptions.

CSV columns: ``email, name, briefing, sections, timezone, send_time,
frequency``; only ``email`` is required, the rest default to the briefing's
settings. Sections are separated by ``;`` (or ``|``). A bad row is reported
with its line number and the reason while the good rows import. Importing
again changes nothing; preferences a subscriber set themselves are never
overwritten; an unsubscribed, bounced or suppressed address is never revived,
and a removed one never comes back. Addresses are keyed by mailbox
(:func:`~briefing.domain.addresses.normalise_address`): two spellings of one
mailbox in a file are one subscriber, and the second row is reported.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from briefing.config import Config, check_new_timezone
from briefing.domain.addresses import (
    ALL_BRIEFINGS,
    AddressError,
    address_hashes,
    normalise_address,
)
from briefing.domain.calendar import check_frequency, parse_send_time
from briefing.domain.states import ENDED, SubscriptionState, SuppressionReason
from briefing.domain.text import one_line
from briefing.errors import SubscriberRowError
from briefing.store import Database, Session
from briefing.store.schema import Subscription, Suppression
from briefing.store.seen import FirstLines
from briefing.store.subscriptions import (
    NewSubscription,
    add_subscribers,
    create_subscriptions,
    move_subscription,
    name_subscribers,
    subscribers_by_email,
    subscription_by_id,
    subscriptions_by_key,
)
from briefing.store.suppressions import suppressions_by_hash, suppressions_of

COLUMNS = ("email", "name", "briefing", "sections", "timezone", "send_time", "frequency")


class ImportOutcome(StrEnum):
    """What importing one row did to its subscription."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    KEPT = "kept"  # the subscriber set their own preferences; the import leaves them
    REFUSED = "refused"  # ended or suppressed; an import never revives it


@dataclass(frozen=True)
class SubscriberRow:
    """One validated row of a subscriber list."""

    line: int
    email: str
    name: str | None
    briefing: str
    sections: tuple[str, ...] | None
    timezone: str | None
    send_time: str | None
    frequency: str | None


@dataclass
class ImportReport:
    """What an import did, row by row."""

    file: str
    counts: Counter[ImportOutcome] = field(default_factory=Counter)
    kept: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[SubscriberRowError] = field(default_factory=list)

    @property
    def created(self) -> int:
        """Return how many subscriptions the import created."""
        return self.counts[ImportOutcome.CREATED]

    @property
    def updated(self) -> int:
        """Return how many subscriptions the import changed."""
        return self.counts[ImportOutcome.UPDATED]

    @property
    def unchanged(self) -> int:
        """Return how many rows matched their subscription already."""
        return self.counts[ImportOutcome.UNCHANGED]


def _split_sections(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in re.split(r"[;|]", value) if part.strip())


def removed_from(session: Session, email: str, briefing: str) -> bool:
    """Tell whether an address was removed (erased) and has not come back to ``briefing``."""
    return any(
        row.reason == SuppressionReason.REMOVED and row.briefing in (briefing, ALL_BRIEFINGS)
        for row in suppressions_of(session, email)
    )


def removed_note(email: str) -> str:
    """Say why an operator cannot bring a removed address back."""
    return (
        f"{email} was removed at their request; an import or `subscribers add` never brings it"
        " back, only the person can, by signing up again and confirming"
    )


# A list holds a few hundred distinct domains, time zones and send times among many rows:
# each distinct value is checked once.
_timezone = functools.lru_cache(maxsize=4096)(check_new_timezone)
_frequency = functools.lru_cache(maxsize=256)(check_frequency)


@functools.lru_cache(maxsize=4096)
def _send_time(value: str) -> str:
    return parse_send_time(value).strftime("%H:%M")


@functools.lru_cache(maxsize=65536)
def _domain_key(domain: str, smtputf8: bool) -> str:
    """Return the key form of a domain (IDNA ASCII), checked by a full validation once."""
    return normalise_address(f"x@{domain}", smtputf8=smtputf8).rpartition("@")[2]


# A plain ASCII local part (RFC 5322 dot-atom): all email-validator would check in it.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _normalised(address: str, smtputf8: bool) -> str:
    """Return :func:`normalise_address` of ``address``, validating each domain only once.

    A plain ASCII local part (the common case) is checked here and its domain
    through a cache; anything else takes the full validation.
    """
    local, at, domain = address.rpartition("@")
    if at and len(local) <= 64 and len(address) <= 254 and _PLAIN_LOCAL.fullmatch(local):
        try:
            return f"{local.lower()}@{_domain_key(domain, smtputf8)}"
        except AddressError:
            pass  # the full validation says what is wrong with the whole address
    return normalise_address(address, smtputf8=smtputf8)


def parse_row(config: Config, file: str, line: int, raw: dict[str, str | None]) -> SubscriberRow:
    """Validate one CSV row against the config, or raise :class:`SubscriberRowError`."""

    def value(column: str) -> str:
        return (raw.get(column) or "").strip()

    try:
        email = _normalised(value("email"), config.delivery.smtputf8)
    except AddressError as exc:
        shown = value("email") or "(empty)"
        raise SubscriberRowError(file, line, f"email {shown!r}: {exc}") from None
    briefing = value("briefing")
    if not briefing:
        if len(config.briefings) != 1:
            raise SubscriberRowError(
                file, line, f"briefing is empty (choose one of {', '.join(config.briefings)})"
            )
        briefing = next(iter(config.briefings))
    if briefing not in config.briefings:
        raise SubscriberRowError(
            file, line, f"briefing {briefing!r} is not configured ({', '.join(config.briefings)})"
        )
    sections = _split_sections(value("sections")) or None
    for section in sections or ():
        if section not in config.sections:
            raise SubscriberRowError(
                file, line, f"section {section!r} is not configured ({', '.join(config.sections)})"
            )
    checks = {"timezone": _timezone, "send_time": _send_time, "frequency": _frequency}
    cleaned: dict[str, str | None] = {}
    for column, check in checks.items():
        given = value(column)
        try:
            cleaned[column] = check(given) if given else None
        except (ValueError, ValidationError) as exc:
            raise SubscriberRowError(file, line, f"{column}: {exc}") from None
    name = one_line(value("name"))[:200] or None
    return SubscriberRow(
        line=line,
        email=email,
        name=name,
        briefing=briefing,
        sections=sections,
        timezone=cleaned["timezone"],
        send_time=cleaned["send_time"],
        frequency=cleaned["frequency"],
    )


def _check_readable(path: Path) -> tuple[int, str | None]:
    """Decode the whole file once, a block at a time; return its line count or why it fails."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    lines = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                decoder.decode(block)
                lines += block.count(b"\n")
            decoder.decode(b"", final=True)
    except (OSError, UnicodeDecodeError) as exc:
        return 0, f"cannot read the file: {exc}"
    return lines, None


def iter_rows(config: Config, path: Path) -> Iterator[SubscriberRow | SubscriberRowError]:
    """Read and validate a CSV file row by row; a bad row comes out as its error.

    The file is checked to decode as a whole first, so a file that cannot be
    read imports nothing; then it is read as a stream. Memory holds one row:
    the mailboxes seen so far, to report one given twice by the line it was
    first on, are kept on disk (:class:`~briefing.store.seen.FirstLines`).
    """
    file = str(path)
    _, problem = _check_readable(path)
    if problem:
        yield SubscriberRowError(file, 0, problem)
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [column.strip().lower() for column in reader.fieldnames or []]
        if "email" not in header:
            yield SubscriberRowError(file, 1, f"no 'email' column (columns: {', '.join(COLUMNS)})")
            return
        unknown = [column for column in header if column not in COLUMNS]
        if unknown:
            yield SubscriberRowError(
                file, 1, f"unknown column {unknown[0]!r} (known: {', '.join(COLUMNS)})"
            )
            return
        reader.fieldnames = header
        with FirstLines() as seen:
            yield from _checked_rows(config, file, reader, seen)


def _checked_rows(
    config: Config, file: str, reader: csv.DictReader[str], seen: FirstLines
) -> Iterator[SubscriberRow | SubscriberRowError]:
    """Validate the rows of ``reader``; ``seen`` remembers each mailbox's first line."""
    for raw in reader:
        line = reader.line_num
        if None in raw:
            yield SubscriberRowError(file, line, "more fields than columns")
            continue
        if not any((v or "").strip() for v in raw.values()):
            continue
        try:
            row = parse_row(config, file, line, raw)
        except SubscriberRowError as exc:
            yield exc
            continue
        first = seen.first(row.email, row.briefing, line)
        if first is not None:
            typed = (raw.get("email") or "").strip()
            who = row.email if typed == row.email else f"{typed} (mailbox {row.email})"
            yield SubscriberRowError(
                file, line, f"{who} is already on line {first} for briefing {row.briefing}"
            )
            continue
        yield row


CHUNK_ROWS = 2_000
"""Rows applied per transaction: a few tens of milliseconds, so nobody waits on an import."""


def _hashes(email: str) -> tuple[str, ...]:
    """Return the suppression hashes of a mailbox key (as :func:`address_hashes` does, faster).

    ``email`` is already the key, and the current hash is the key's SHA-256;
    only an internationalised domain can also carry an older hash.
    """
    if "xn--" in email:
        return address_hashes(email)
    return (hashlib.sha256(email.encode("utf-8")).hexdigest(),)


def _refusal(row: SubscriberRow, entries: list[Suppression]) -> str | None:
    """Say why a suppressed or removed address is refused, or None when it is not."""
    relevant = [entry for entry in entries if entry.briefing in (row.briefing, ALL_BRIEFINGS)]
    if any(entry.reason == SuppressionReason.REMOVED for entry in relevant):
        return removed_note(row.email)
    if relevant:
        return f"{row.email} is suppressed ({relevant[0].reason}); import does not revive it"
    return None


def apply_chunk(
    session: Session, config: Config, rows: Sequence[SubscriberRow], source: str, now: datetime
) -> list[tuple[ImportOutcome, str | None]]:
    """Create or update the subscriptions of a chunk of rows; return each row's outcome and note.

    A handful of statements for the whole chunk: what exists is read by the
    chunk's addresses, new subscribers and subscriptions are inserted in bulk,
    and only changed subscriptions are written back.
    """
    hashes = {row.email: _hashes(row.email) for row in rows}
    entries = suppressions_by_hash(
        session, {h for found in hashes.values() for h in found}, {row.briefing for row in rows}
    )
    outcomes: list[tuple[ImportOutcome, str | None] | None] = []
    admitted: list[SubscriberRow] = []
    for row in rows:
        refusal = _refusal(row, [e for h in hashes[row.email] for e in entries.get(h, [])])
        outcomes.append((ImportOutcome.REFUSED, refusal) if refusal else None)
        if not refusal:
            admitted.append(row)
    people = subscribers_by_email(session, {row.email for row in admitted})
    new_people: dict[str, str | None] = {}
    names: dict[int, str] = {}
    for row in admitted:
        if (person := people.get(row.email)) is not None:
            if row.name and not person.name:
                names.setdefault(person.id, row.name)
        elif row.email not in new_people or (row.name and not new_people[row.email]):
            new_people[row.email] = row.name
    name_subscribers(session, names)
    people.update(add_subscribers(session, new_people, now))
    existing = subscriptions_by_key(session, {person.id for person in people.values()})
    new: list[NewSubscription] = []
    for index, row in enumerate(rows):
        if outcomes[index] is not None:
            continue
        subscriber_id = people[row.email].id
        briefing = config.briefings[row.briefing]
        wanted = {
            "sections": list(row.sections) if row.sections else None,
            "timezone": row.timezone or briefing.timezone,
            "send_time": row.send_time or briefing.send_time.strftime("%H:%M"),
            "frequency": row.frequency or briefing.frequency,
        }
        standing = existing.get((subscriber_id, row.briefing))
        if standing is None:
            new.append(NewSubscription(subscriber_id, row.briefing, wanted, f"line {row.line}"))
            outcomes[index] = (ImportOutcome.CREATED, None)
        elif standing.status == SubscriptionState.ACTIVE and standing.preferences == wanted:
            outcomes[index] = (ImportOutcome.UNCHANGED, None)  # the common case of a re-run
        else:
            subscription = subscription_by_id(session, standing.id)
            assert subscription is not None
            outcomes[index] = _update(session, subscription, row, wanted, source, now)
    create_subscriptions(session, new, status=SubscriptionState.ACTIVE, source=source, now=now)
    return [outcome for outcome in outcomes if outcome is not None]


def _update(
    session: Session,
    subscription: Subscription,
    row: SubscriberRow,
    wanted: dict[str, Any],
    source: str,
    now: datetime,
) -> tuple[ImportOutcome, str | None]:
    """Bring an existing subscription in line with its row, within today's rules."""
    if subscription.status in ENDED:
        return ImportOutcome.REFUSED, (
            f"{row.email} left {row.briefing} ({subscription.status}); import does not revive it"
        )
    outcome = ImportOutcome.UNCHANGED
    if subscription.status == SubscriptionState.PENDING:
        move_subscription(session, subscription, SubscriptionState.ACTIVE, source=source, now=now)
        subscription.consent_source = source
        subscription.consent_at = now
        outcome = ImportOutcome.UPDATED
    if subscription.preferences_set_at is not None:
        differs = any(getattr(subscription, k) != v for k, v in wanted.items())
        if differs:
            return ImportOutcome.KEPT, f"{row.email} set their own preferences; import leaves them"
        return outcome, None
    for key, value in wanted.items():
        if getattr(subscription, key) != value:
            setattr(subscription, key, value)
            outcome = ImportOutcome.UPDATED
    if outcome == ImportOutcome.UPDATED:
        subscription.updated_at = now
    return outcome, None


def import_subscribers(
    config: Config,
    database: Database,
    path: Path,
    now: datetime,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import a CSV file of subscribers; bad rows are reported, good rows land.

    Rows are applied :data:`CHUNK_ROWS` at a time, each chunk in its own short
    transaction, so a send, the web or the scheduler never wait long on an
    import. A chunk is all or nothing, and an import run again after a crash
    finds the rows that landed unchanged. ``progress`` is called with (rows
    done, rows in all) after each chunk.
    """
    report = ImportReport(file=str(path))
    source = f"import:{path.name}"
    total = max(_check_readable(path)[0] - 1, 0)  # rows, near enough, for the progress bar
    chunk: list[SubscriberRow] = []

    def land(rows: list[SubscriberRow]) -> None:
        with database.transaction() as session:
            outcomes = apply_chunk(session, config, rows, source, now)
        for row, (outcome, note) in zip(rows, outcomes, strict=True):
            if outcome == ImportOutcome.KEPT:
                report.kept.append(f"line {row.line}: {note}")
            elif outcome == ImportOutcome.REFUSED:
                report.refused.append(f"line {row.line}: {note}")
            else:
                report.counts[outcome] += 1
        if progress is not None:
            progress(min(rows[-1].line - 1, total), total)

    for item in iter_rows(config, path):
        if isinstance(item, SubscriberRowError):
            report.errors.append(item)
            continue
        chunk.append(item)
        if len(chunk) == CHUNK_ROWS:
            land(chunk)
            chunk = []
    if chunk:
        land(chunk)
    if progress is not None:
        progress(total, total)
    return report
