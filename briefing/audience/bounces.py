"""Read the mail that comes back, say what each message is, and act on it by the policy.

:func:`classify` is the one classifier: an RFC 3464 delivery status
notification (read with the stdlib ``email`` parser), an RFC 5965 ARF
complaint, an RFC 3834 automatic reply, a mail to the List-Unsubscribe
``mailto`` (matched by its signed token), a non-standard bounce recognised
by ``flufl.bounce`` (Mailman's detectors), or other. It also collects what
ties the report to our mail: delivery tokens (the bounce address,
``X-Briefing-Delivery``) and the original Message-IDs.

:func:`apply` records each report and acts on it. The policy:

- hard (``5.1.x``: no such mailbox or domain): the subscription becomes
  ``bounced`` and the address is suppressed for every briefing;
- soft (``4.x``, ``5.2.2`` mailbox full, a permanent failure without a status,
  other ``5.x``): counted per address; ``bounces.soft_limit`` within
  ``bounces.soft_window_days`` make it a hard bounce;
- ``5.7.x`` (policy, reputation): recorded, never acted on;
- complaint: ``complained`` and suppressed for every briefing; the delivery
  moves ``sent -> complained``;
- unsubscribe mail: ``unsubscribed`` for that briefing;
- auto-reply, other: recorded.

Only our signed token or our Message-ID may change a state: a report matched
by address alone is recorded, not acted on, since anyone can mail a forged
bounce. The same report read twice is recorded once.
"""

from __future__ import annotations

import email
import hashlib
import logging
import mailbox
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr
from pathlib import Path

from flufl.bounce import all_failures

from briefing.audience.lifecycle import unsubscribe
from briefing.config import Config
from briefing.domain.states import (
    SUBSCRIPTION_MOVES,
    BounceKind,
    BounceMatch,
    DeliveryState,
    SubscriptionState,
    SuppressionReason,
    allowed,
)
from briefing.domain.tokens import DELIVERY_TOKEN_LENGTH, TOKEN_LENGTH, Purpose, Signer
from briefing.errors import BriefingError, TokenError
from briefing.pipeline.personalise import DELIVERY_HEADER
from briefing.store import Database, Session
from briefing.store import bounces as store
from briefing.store.schema import BounceEvent
from briefing.store.subscriptions import move_subscription, subscription_by_id
from briefing.store.suppressions import suppress

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_DELIVERY_HEADER_LINE = re.compile(
    rf"^{re.escape(DELIVERY_HEADER)}:\s*([a-z2-7]{{{DELIVERY_TOKEN_LENGTH}}})\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_UNSUBSCRIBE_SUBJECT = re.compile(
    rf"unsubscribe\s+([A-Za-z0-9_=-]{{{TOKEN_LENGTH}}})(?![A-Za-z0-9_=-])", re.IGNORECASE
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|abwesenheit|vacation|"
    r"r[ée]ponse automatique)",
    re.IGNORECASE,
)
_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """What one message that came back says."""

    kind: BounceKind
    recipients: tuple[str, ...]
    status: str | None
    delivery_tokens: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    unsubscribe_token: str | None = None
    key: str = ""
    statuses: dict[str, str] = field(default_factory=dict)


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        try:
            return payload.decode(part.get_content_charset() or "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    if isinstance(raw, list):
        return "\n".join(_text(sub) if isinstance(sub, Message) else str(sub) for sub in raw)
    return str(raw)


def _whole_text(message: Message) -> str:
    """Return the headers of every part (embedded messages included) and every text part."""
    pieces: list[str] = []
    for part in message.walk():
        pieces.extend(f"{key}: {value}" for key, value in part.items())
        if part.get_content_maintype() == "text":
            pieces.append(_text(part))
    return "\n".join(pieces)


def _address(value: str) -> str:
    """Return the address of a DSN field such as ``rfc822; user@example.org``."""
    _, _, address = value.partition(";")
    return (address or value).strip().strip("<>").strip()


def _status_fields(part: Message) -> list[Message]:
    """Return the per-message and per-recipient field groups of a message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [group for group in payload if isinstance(group, Message)]
    blocks = re.split(r"\r?\n\s*\r?\n", str(payload).strip())
    return [email.message_from_string(block + "\n\n") for block in blocks if block.strip()]


def _dsn_recipient(group: Message) -> str | None:
    """Return the address we sent to: Original-Recipient, else Final-Recipient (rfc822 types)."""
    for name in ("Original-Recipient", "Final-Recipient"):
        value = str(group.get(name, ""))
        kind, _, address = value.partition(";")
        if address and kind.strip().lower() == "rfc822" and "@" in address:
            return value
    return group.get("Final-Recipient") or group.get("Original-Recipient")


def _embedded_message_ids(message: Message) -> list[str]:
    ids: list[str] = []
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            if part.get_content_type() == "message/rfc822":
                inner = part.get_payload()
                headers = (
                    [p for p in inner if isinstance(p, Message)] if isinstance(inner, list) else []
                )
                values = [h.get("Message-ID", "") for h in headers]
            else:
                values = re.findall(
                    r"^Message-ID:\s*(.+)$", _text(part), re.IGNORECASE | re.MULTILINE
                )
            ids.extend(m for value in values for m in _MESSAGE_ID.findall(str(value)))
    return ids


def _dsn(message: Message) -> tuple[BounceKind, dict[str, str]] | None:
    """Read an RFC 3464 report: the status of each failed or delayed recipient."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        statuses: dict[str, str] = {}
        for group in _status_fields(part)[1:] or _status_fields(part):
            recipient = _dsn_recipient(group)
            action = str(group.get("Action", "")).strip().lower()
            if not recipient or action not in ("failed", "delayed"):
                continue
            found = _STATUS.search(str(group.get("Status", "")))
            status = found.group(0) if found else ("5.0.0" if action == "failed" else "4.0.0")
            statuses[_address(str(recipient))] = status
        if statuses:
            worst = min(statuses.values(), key=_severity)
            return kind_of_status(worst), statuses
    return None


def _severity(status: str) -> int:
    """Order statuses: 5.1.x first, then other permanent ones, then the rest."""
    if status.startswith("5.1."):
        return 0
    if status.startswith("5.") and status != "5.2.2":
        return 1
    return 2


def kind_of_status(status: str) -> BounceKind:
    """Return hard for a permanent failure (5.x) other than mailbox full (5.2.2), else soft."""
    return BounceKind.HARD if status.startswith("5.") and status != "5.2.2" else BounceKind.SOFT


def _arf(message: Message) -> tuple[str, list[str]] | None:
    """Read an RFC 5965 feedback report: its feedback type and the original recipients."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "feedback-report":
        return None
    feedback = "abuse"
    recipients: list[str] = []
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            for group in _status_fields(part):
                feedback = str(group.get("Feedback-Type", feedback)).strip().lower()
                recipients += [_address(str(v)) for v in group.get_all("Original-Rcpt-To", [])]
        elif (
            part.get_content_type() in ("message/rfc822", "text/rfc822-headers") and not recipients
        ):
            text = _whole_text(part) if part.get_content_type() == "message/rfc822" else _text(part)
            for line in re.findall(r"^To:\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)[:1]:
                recipients += [address for _, address in getaddresses([line]) if address]
    return feedback, recipients


def _auto_reply(message: Message) -> bool:
    """Tell whether a message is an automatic reply (RFC 3834 and the common vendor headers)."""
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if submitted.startswith("auto-replied"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTO_REPLY_SUBJECT.search(str(message.get("Subject", ""))))


def report_key(message: Message, raw: bytes) -> str:
    """Identify a report: its Message-ID, else a hash of its bytes."""
    message_id = str(message.get("Message-ID", "")).strip()
    return message_id or "sha256:" + hashlib.sha256(raw).hexdigest()


def classify(raw: bytes, config: Config) -> Report:
    """Say what one message that came back is, and collect what ties it to our mail."""
    message = email.message_from_bytes(raw)
    text = _whole_text(message)
    local = re.escape(config.bounces.local_part)
    tokens = re.findall(rf"\b{local}\+([a-z2-7]{{{DELIVERY_TOKEN_LENGTH}}})@", text, re.IGNORECASE)
    tokens += _DELIVERY_HEADER_LINE.findall(text)
    delivery_tokens = tuple(dict.fromkeys(token.lower() for token in tokens))
    message_ids = tuple(dict.fromkeys(_embedded_message_ids(message)))
    key = report_key(message, raw)
    sender = parseaddr(str(message.get("From", "")))[1]

    if (arf := _arf(message)) is not None:
        feedback, recipients = arf
        return Report(
            BounceKind.COMPLAINT, tuple(recipients), feedback, delivery_tokens, message_ids, key=key
        )
    if (dsn := _dsn(message)) is not None:
        kind, statuses = dsn
        worst = min(statuses.values(), key=_severity)
        return Report(
            kind, tuple(statuses), worst, delivery_tokens, message_ids, key=key, statuses=statuses
        )
    mailto = config.site.unsubscribe_mailto
    addressed = {
        a.lower()
        for _, a in getaddresses(
            [str(v) for v in message.get_all("To", []) + message.get_all("Delivered-To", [])]
        )
    }
    subject = str(message.get("Subject", ""))
    if (found := _UNSUBSCRIBE_SUBJECT.search(subject)) and (
        (mailto and mailto.lower() in addressed) or not mailto
    ):
        return Report(
            BounceKind.UNSUBSCRIBE,
            (sender,) if sender else (),
            None,
            unsubscribe_token=found.group(1),
            key=key,
        )
    temporary, permanent = all_failures(message)
    if permanent or temporary:
        kind = BounceKind.HARD if permanent else BounceKind.SOFT
        found_status = _STATUS.search(text)
        status = found_status.group(0) if found_status else None
        addresses = sorted({a.decode("utf-8", "replace") for a in (permanent or temporary)})
        return Report(kind, tuple(addresses), status, delivery_tokens, message_ids, key=key)
    if _auto_reply(message):
        in_reply = _MESSAGE_ID.findall(
            f"{message.get('In-Reply-To', '')} {message.get('References', '')}"
        )
        return Report(
            BounceKind.AUTO_REPLY,
            (sender,) if sender else (),
            None,
            delivery_tokens,
            tuple(dict.fromkeys(in_reply)) + message_ids,
            key=key,
        )
    return Report(BounceKind.OTHER, (), None, delivery_tokens, message_ids, key=key)


# -- reading mailboxes ------------------------------------------------------------------------


def read_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` of each message in a Maildir, an mbox or one message file."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise BriefingError(
                f"{path} is a folder but not a Maildir (no cur/ or new/)",
                hint="Give a Maildir, an mbox file or a single message file.",
            )
        maildir = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(maildir.keys()):
            subfolder = "new" if (path / "new" / key).exists() else "cur"
            name = next((str(p) for p in (path / subfolder).glob(f"{key}*")), f"{path}/{key}")
            yield name, maildir.get_bytes(key)
        return
    if not path.is_file():
        raise BriefingError(
            f"{path} does not exist", hint="Give a Maildir, an mbox or a message file."
        )
    head = path.read_bytes()[:5]
    if head == b"From ":
        box = mailbox.mbox(path, create=False)
        for number, key in enumerate(box.keys(), 1):
            yield f"{path}#{number}", box.get_bytes(key)
        return
    yield str(path), path.read_bytes()


# -- policy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tie:
    """What a report was tied to, and how."""

    delivery_id: int | None
    matched_by: BounceMatch | None


def tie(session: Session, signer: Signer, report: Report, recipient: str | None) -> Tie:
    """Find the delivery: by our token, else our Message-ID, else the recipient's address."""
    for token in report.delivery_tokens:
        try:
            delivery_id = signer.verify_delivery(token)
        except TokenError:
            continue
        if store.delivery_target(session, delivery_id) is not None:
            return Tie(delivery_id, BounceMatch.TOKEN)
    if (found := store.delivery_by_message_id(session, report.message_ids)) is not None:
        return Tie(found, BounceMatch.MESSAGE_ID)
    if recipient and (found := store.latest_delivery_to(session, recipient)) is not None:
        return Tie(found, BounceMatch.ADDRESS)
    return Tie(None, BounceMatch.ADDRESS if recipient else None)


def delivery_of(session: Session, signer: Signer, report: Report) -> int | None:
    """Return the delivery a report names (for a dry run)."""
    recipient = report.recipients[0] if report.recipients else None
    return tie(session, signer, report, recipient).delivery_id


def fingerprint(report: Report, recipient: str | None) -> str:
    """Identify one report and recipient, so reading it again records nothing new."""
    text = f"{report.key}|{(recipient or '').lower()}|{report.kind}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _end(
    session: Session,
    subscription_id: int | None,
    email: str,
    to: SubscriptionState,
    source: str,
    now: datetime,
    *,
    every: bool,
) -> None:
    """Move one subscription (or every one of the address) to ``to``."""
    subscriptions = store.subscriptions_of_address(session, email) if every else []
    if subscription_id is not None and not every:
        found = subscription_by_id(session, subscription_id)
        subscriptions = [found] if found is not None else []
    for subscription in subscriptions:
        if (
            allowed(SUBSCRIPTION_MOVES, SubscriptionState(subscription.status), to)
            and subscription.status != to
        ):
            move_subscription(session, subscription, to, source=source, now=now)


def apply(
    session: Session,
    config: Config,
    signer: Signer,
    report: Report,
    *,
    source: str,
    now: datetime,
) -> list[str]:
    """Record a report (once) and act on it by the policy; return what was done, per recipient."""
    done: list[str] = []
    if report.kind == BounceKind.UNSUBSCRIBE:
        return [_apply_unsubscribe(session, signer, report, source=source, now=now)]
    for recipient in report.recipients or (None,):
        mark = fingerprint(report, recipient)
        if store.seen(session, mark):
            done.append("already recorded")
            continue
        found = tie(session, signer, report, recipient)
        target = store.delivery_target(session, found.delivery_id) if found.delivery_id else None
        status = report.statuses.get(recipient or "", report.status)
        email = (
            target.email if target is not None and found.matched_by != BounceMatch.ADDRESS else None
        ) or recipient
        subscription_id = (
            target.subscription.id if target is not None and target.subscription else None
        )
        trusted = (
            found.matched_by in (BounceMatch.TOKEN, BounceMatch.MESSAGE_ID) and target is not None
        )
        action = "recorded"
        event_source = f"{source} ({report.kind}{f' {status}' if status else ''})"
        if not trusted:
            action = (
                "recorded: matched by address alone"
                if found.matched_by
                else "recorded: no delivery found"
            )
        elif report.kind == BounceKind.COMPLAINT and email:
            assert target is not None
            _end(
                session,
                subscription_id,
                email,
                SubscriptionState.COMPLAINED,
                event_source,
                now,
                every=True,
            )
            suppress(
                session, email, reason=SuppressionReason.COMPLAINED, source=event_source, now=now
            )
            store.move_delivery(session, target.delivery, DeliveryState.COMPLAINED, now)
            action = "complained: suppressed for every briefing"
        elif report.kind in (BounceKind.HARD, BounceKind.SOFT) and email:
            assert target is not None
            action = _apply_bounce(
                session,
                config,
                target,
                email,
                report.kind,
                status,
                subscription_id,
                event_source,
                now,
            )
        store.record(
            session,
            fingerprint=mark,
            now=now,
            kind=report.kind,
            status=status,
            source=source,
            email=email,
            delivery_id=found.delivery_id,
            subscription_id=subscription_id,
            matched_by=found.matched_by,
            action=action,
        )
        done.append(action)
    return done


def _apply_bounce(
    session: Session,
    config: Config,
    target: store.Target,
    email: str,
    kind: BounceKind,
    status: str | None,
    subscription_id: int | None,
    source: str,
    now: datetime,
) -> str:
    if status is not None and status.startswith("5.7."):
        return "recorded: a policy refusal never changes a subscription"
    if kind == BounceKind.HARD and status is not None and status.startswith("5.1."):
        _bounced(session, target, email, subscription_id, source, now)
        return "bounced: suppressed for every briefing"
    window = now - timedelta(days=config.bounces.soft_window_days)
    count = store.counted_soft(session, email, window) + 1  # this report is recorded after
    if count >= config.bounces.soft_limit:
        _bounced(session, target, email, subscription_id, source, now)
        return f"bounced: {count} soft bounces within {config.bounces.soft_window_days} days"
    return f"counted: soft bounce {count} of {config.bounces.soft_limit}"


def _bounced(
    session: Session,
    target: store.Target,
    email: str,
    subscription_id: int | None,
    source: str,
    now: datetime,
) -> None:
    _end(session, subscription_id, email, SubscriptionState.BOUNCED, source, now, every=True)
    suppress(session, email, reason=SuppressionReason.BOUNCED, source=source, now=now)
    store.move_delivery(session, target.delivery, DeliveryState.BOUNCED, now)


def _apply_unsubscribe(
    session: Session, signer: Signer, report: Report, *, source: str, now: datetime
) -> str:
    recipient = report.recipients[0] if report.recipients else None
    mark = fingerprint(report, recipient)
    if store.seen(session, mark):
        return "already recorded"
    subscription = None
    matched: BounceMatch | None = None
    if report.unsubscribe_token:
        try:
            subscription = subscription_by_id(
                session, signer.verify(report.unsubscribe_token, Purpose.UNSUBSCRIBE)
            )
            matched = BounceMatch.TOKEN
        except TokenError:
            subscription = None
    delivery_id: int | None = None
    if subscription is None and (report.delivery_tokens or report.message_ids):
        # A provider's unsubscribe event names the delivery (our token or Message-ID), not
        # the subscription; the delivery's own subscription is the one that leaves.
        found = tie(session, signer, report, None)
        target = store.delivery_target(session, found.delivery_id) if found.delivery_id else None
        if target is not None and target.subscription is not None:
            subscription, matched, delivery_id = (
                target.subscription,
                found.matched_by,
                target.delivery.id,
            )
    if subscription is None:
        action = "recorded: no valid unsubscribe token"
        email = recipient
    else:
        email = subscription.subscriber.email
        how = "mailed unsubscribe" if delivery_id is None else "unsubscribe event"
        changed = unsubscribe(session, subscription, source=f"{source} ({how})", now=now)
        action = f"unsubscribed from {subscription.briefing}" if changed else "already unsubscribed"
    store.record(
        session,
        fingerprint=mark,
        now=now,
        kind=BounceKind.UNSUBSCRIBE,
        status=None,
        source=source,
        email=email,
        delivery_id=delivery_id,
        subscription_id=subscription.id if subscription is not None else None,
        matched_by=matched,
        action=action,
    )
    return action


# -- intake -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handled:
    """One message read: what it is, whom it names, and what was done."""

    file: str
    report: Report
    delivery: int | None
    actions: tuple[str, ...]
    problem: str | None = None  # why the message could not be read as mail; nothing was done

    def as_json(self) -> dict[str, object]:
        """Return the line ``bounces import --json`` prints."""
        return {
            "file": self.file,
            "kind": str(self.report.kind),
            "recipients": list(self.report.recipients),
            "status": self.report.status if _STATUS.fullmatch(self.report.status or "") else None,
            "delivery": self.delivery,
        }


def unreadable(raw: bytes) -> str | None:
    """Say why ``raw`` cannot be read as a mail message, or None when it can."""
    if not raw.strip():
        return "the message is empty"
    if not BytesHeaderParser().parsebytes(raw).keys():
        return "no header fields: not a mail message"
    return None


def take(
    config: Config,
    database: Database,
    signer: Signer,
    name: str,
    raw: bytes,
    *,
    source: str,
    now: datetime,
    dry_run: bool = False,
) -> Handled:
    """Classify one message and, unless a dry run, record and act on it in one transaction.

    The one path of every intake (`bounces import`, `bounces poll`, `briefing
    inbound`). A message that cannot be read as mail comes back with its
    ``problem`` and nothing done; a failure to store raises, with nothing
    stored, so the caller can keep the message and try again.
    """
    problem = unreadable(raw)
    report = Report(BounceKind.OTHER, (), None)
    if problem is None:
        try:
            report = classify(raw, config)
        except Exception as exc:  # a classifier crash on one message must not stop the intake
            problem = f"cannot be classified: {exc.__class__.__name__}: {exc}"
            logger.debug("%s: classifier traceback", name, exc_info=True)
    if problem is not None:
        return Handled(name, report, None, (), problem)
    with database.transaction() as session:
        delivery = delivery_of(session, signer, report)
        actions: list[str] = []
        if not dry_run:
            actions = apply(session, config, signer, report, source=source, now=now)
    return Handled(name, report, delivery, tuple(actions))


def move_to_maildir(file: Path, folder: Path) -> Path:
    """Move one message file into the Maildir ``folder`` (its cur/), created when absent."""
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # A message in cur/ carries the info suffix; one taken from new/ has none yet.
    name = file.name if ":" in file.name else f"{file.name}:2,"
    destination = folder / "cur" / name
    if destination.exists():
        raise BriefingError(
            f"{file}: {destination} already exists; not moved",
            hint="Give --move-to a Maildir that is not the one being read.",
        )
    shutil.move(file, destination)
    return destination


def intake(
    config: Config,
    database: Database,
    signer: Signer,
    path: Path,
    *,
    now: datetime,
    dry_run: bool = False,
    move_to: Path | None = None,
) -> Iterator[Handled]:
    """Classify every message under ``path`` and, unless a dry run, record and act on each.

    Each message is handled in its own transaction, so one bad report does
    not undo the others; a dry run only reads the database. With ``move_to``
    each handled message file is moved into that Maildir once its
    transaction is committed (a message that cannot be read stays where it
    is), so the next run does not read it again.
    """
    if move_to is not None and path.is_file() and path.read_bytes()[:5] == b"From ":
        raise BriefingError(
            f"{path} is an mbox: its messages cannot be moved one by one",
            hint="Use --move-to with a Maildir or a single message file.",
        )
    if move_to is not None and path.is_dir() and move_to.resolve() == path.resolve():
        raise BriefingError(
            f"--move-to {move_to} is the Maildir being read",
            hint="Give another Maildir, for example one beside it named handled.",
        )
    source = f"import {path}"
    for name, raw in read_messages(path):
        handled = take(config, database, signer, name, raw, source=source, now=now, dry_run=dry_run)
        if handled.problem is not None:
            logger.warning("%s: not handled: %s", name, handled.problem)
        elif move_to is not None and not dry_run:
            move_to_maildir(Path(name), move_to)
        yield handled


def events_of(session: Session, email: str, limit: int = 50) -> list[dict[str, object]]:
    """Return the recorded reports about one address, newest first, for ``subscribers show``."""
    return [event_json(event) for event in store.recent(session, limit, email=email)]


def recent_events(
    database: Database, limit: int = 50, *, offset: int = 0, kinds: Sequence[BounceKind] = ()
) -> list[dict[str, object]]:
    """Return the newest recorded reports, for ``briefing bounces`` and the desk (a page of them)."""
    with database.transaction() as session:
        return [
            event_json(event) for event in store.recent(session, limit, offset=offset, kinds=kinds)
        ]


def event_json(event: BounceEvent) -> dict[str, object]:
    """Describe one recorded report."""
    return {
        "at": event.received_at.isoformat(timespec="seconds"),
        "kind": event.kind,
        "status": event.status,
        "email": event.email,
        "delivery": event.delivery_id,
        "matched_by": event.matched_by,
        "action": event.action,
        "source": event.source,
    }
