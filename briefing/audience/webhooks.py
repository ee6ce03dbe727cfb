"""Verify provider webhooks and read them into bounce reports, then act through the bounce policy.

Three ways in, one way on: each request is checked here, read into
:class:`~briefing.audience.bounces.Report` values, and handed to
:func:`briefing.audience.bounces.apply` (the code ``bounces import`` uses)
with its source named ``webhook:generic``, ``webhook:ses`` or
``webhook:mailgun``. So the same policy holds: only our signed delivery token
or our Message-ID may change a state, a report tied by address alone is
recorded, and the same event arriving twice is recorded once.

- **generic**: a JSON list of events behind a bearer token
  (:func:`check_bearer`, :func:`generic_reports`);
- **Amazon SES via SNS**: the SNS message signature (SignatureVersion 1,
  SHA1withRSA, or 2, SHA256withRSA) is checked against the signing
  certificate (:class:`SnsVerifier`). ``SigningCertURL`` and ``SubscribeURL``
  must be https URLs on ``sns.<region>.amazonaws.com`` (or ``.com.cn``) of the
  topic's own region, checked before any request is made, so a forged message
  cannot make the server fetch anything else. The topic must be on the
  configured list and the signed ``Timestamp`` within ``max_age``;
- **Mailgun**: HMAC-SHA256 of timestamp + token with the signing key
  (:func:`mailgun_event`); the timestamp within ``max_age`` and each token
  accepted once (stored, so it holds across processes).

Nothing here serves HTTP: the web layer hands in the body and headers and
answers a :class:`WebhookError` with its ``status``. The one outward request
(the signing certificate, the subscription confirmation) goes through a
:data:`Fetch` callable, httpx by default, which tests replace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from briefing.audience.bounces import Report, apply
from briefing.config import Config, MailgunHookConfig, SesHookConfig, check_email
from briefing.domain.states import BounceKind
from briefing.domain.tokens import DELIVERY_TOKEN_LENGTH, Signer
from briefing.errors import BriefingError
from briefing.pipeline.personalise import DELIVERY_HEADER
from briefing.store import Database
from briefing.store.webhooks import first_use

logger = logging.getLogger(__name__)

SOURCE_GENERIC = "webhook:generic"
SOURCE_SES = "webhook:ses"
SOURCE_MAILGUN = "webhook:mailgun"

CERTIFICATE_LIMIT = 64 * 1024  # an SNS signing certificate is about 2 KB
CONFIRMATION_LIMIT = 64 * 1024
FETCH_TIMEOUT = 5.0
_CACHED_CERTIFICATES = 16

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_DELIVERY_TOKEN = re.compile(rf"^[a-z2-7]{{{DELIVERY_TOKEN_LENGTH}}}$")
_SNS_HOST = re.compile(r"^sns\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$")
_CERTIFICATE_PATH = re.compile(r"^/[A-Za-z0-9._-]{1,200}\.pem$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


class WebhookError(BriefingError):
    """Refuse a webhook request, with the HTTP status to answer and why.

    400 a body that cannot be read, 401 missing credentials, 403 wrong
    credentials, a forged or stale signature, a foreign topic or URL, 502 a
    signing certificate that could not be fetched.
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


Fetch = Callable[[str, int], bytes]
"""Fetch a URL already checked against the SNS host rule: ``fetch(url, limit) -> body``."""


class HttpFetcher:
    """Fetch with httpx: a short timeout, no redirects, at most ``limit`` bytes."""

    def __init__(self, timeout: float = FETCH_TIMEOUT) -> None:
        self.timeout = timeout

    def __call__(self, url: str, limit: int) -> bytes:
        """Return the body of a GET of ``url``, or raise WebhookError (502)."""
        chunks: list[bytes] = []
        size = 0
        try:
            with (
                httpx.Client(timeout=self.timeout, follow_redirects=False) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise WebhookError(f"{url} answered {response.status_code}", status=502)
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise WebhookError(f"{url} sent more than {limit} bytes", status=502)
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise WebhookError(f"could not fetch {url}: {exc}", status=502) from exc
        return b"".join(chunks)


def read_json(body: bytes) -> Any:
    """Parse a request body as JSON, or raise WebhookError (400) saying where it broke."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise WebhookError(f"the body is not UTF-8 JSON: {exc.reason}", status=400) from None
    except json.JSONDecodeError as exc:
        raise WebhookError(
            f"the body is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            status=400,
        ) from None
    except RecursionError:
        raise WebhookError("the body is not JSON we read: nested too deeply", status=400) from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookError(f"{what} must be a JSON object", status=400)
    return value


def message_ids_of(value: object) -> tuple[str, ...]:
    """Return a Message-ID as stored (in angle brackets) from a provider's spelling of it."""
    if not isinstance(value, str) or not value.strip() or len(value) > 300:
        return ()
    bare = value.strip().strip("<>").strip()
    return (f"<{bare}>",) if bare and _PRINTABLE.match(bare) else ()


def _token_of(value: object) -> tuple[str, ...]:
    if isinstance(value, str) and _DELIVERY_TOKEN.match(value.strip().lower()):
        return (value.strip().lower(),)
    return ()


def _status_in(*texts: object) -> str | None:
    for text in texts:
        if isinstance(text, str) and (found := _STATUS.search(text)):
            return found.group(0)
    return None


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def act(
    config: Config,
    database: Database,
    signer: Signer,
    report: Report | None,
    *,
    source: str,
    now: datetime,
    once: tuple[str, str, datetime] | None = None,
) -> list[str]:
    """Record a report and act on it by the bounce policy, in one transaction.

    With ``once`` (provider, signed token, forget tokens seen before) the token
    is remembered in the same transaction, and a token used before refuses the
    request (403) with nothing changed.
    """
    with database.transaction() as session:
        if once is not None:
            provider, token, forget_before = once
            if not first_use(session, provider, token, now=now, forget_before=forget_before):
                raise WebhookError(
                    "this signature token was already used (a replayed request)", status=403
                )
        if report is None:
            return []
        return apply(session, config, signer, report, source=source, now=now)


# -- generic ----------------------------------------------------------------------------------


def check_bearer(authorization: str | None, secret: str) -> None:
    """Accept ``Authorization: Bearer <secret>`` (compared in constant time), else 401."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise WebhookError("an Authorization: Bearer token is required", status=401)
    if not hmac.compare_digest(given.strip().encode("utf-8"), secret.encode("utf-8")):
        raise WebhookError("the bearer token is not valid", status=401)


class GenericEvent(BaseModel):
    """One event of the generic endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["hard", "soft", "complaint", "unsubscribe"] = Field(
        description="hard or soft bounce, complaint, or unsubscribe request."
    )
    recipient: str = Field(max_length=320, description="The address the message went to.")
    status: str | None = Field(
        default=None,
        max_length=40,
        description="Enhanced status code such as 5.1.1 (bounces) or a feedback type (complaints).",
    )
    delivery: str | None = Field(
        default=None, description="Our delivery token (the X-Briefing-Delivery header)."
    )
    message_id: str | None = Field(
        default=None, max_length=300, description="Our Message-ID, with or without <>."
    )
    id: str | None = Field(
        default=None,
        max_length=200,
        description="The sender's id of the event; the same id is recorded once.",
    )

    @field_validator("recipient")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_email(value.strip())

    @field_validator("status")
    @classmethod
    def _one_token(cls, value: str | None) -> str | None:
        if value is not None and not _PRINTABLE.match(value):
            raise ValueError("expected a status such as 5.1.1 or a feedback type such as abuse")
        return value

    @field_validator("delivery")
    @classmethod
    def _delivery(cls, value: str | None) -> str | None:
        if value is not None and not _token_of(value):
            raise ValueError(
                f"expected our delivery token ({DELIVERY_TOKEN_LENGTH} characters a-z, 2-7)"
            )
        return value.strip().lower() if value is not None else None


@dataclass(frozen=True)
class EventError:
    """Why one event of a generic request was refused (the others go on)."""

    index: int
    message: str


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'event'}: "
        f"{item['msg'].removeprefix('Value error, ')}"
        for item in error.errors()
    )


def generic_reports(body: bytes) -> list[Report | EventError]:
    """Read the generic endpoint's body: a JSON list of events, each a report or its error."""
    events = read_json(body)
    if not isinstance(events, list):
        raise WebhookError("the body must be a JSON list of events", status=400)
    read: list[Report | EventError] = []
    for index, raw in enumerate(events):
        try:
            event = GenericEvent.model_validate(raw)
        except ValidationError as exc:
            read.append(EventError(index, _problems(exc)))
            continue
        key = f"generic:{event.id}" if event.id else f"generic:sha256:{_digest(raw)}"
        read.append(
            Report(
                BounceKind(event.kind),
                (event.recipient,),
                event.status,
                (event.delivery,) if event.delivery else (),
                message_ids_of(event.message_id),
                key=key,
            )
        )
    return read


# -- Amazon SES via SNS -----------------------------------------------------------------------

_SIGNED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNATURE_HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}


def string_to_sign(message: Mapping[str, str]) -> bytes:
    """Return what SNS signs: each signed field's name and value, one per line, in AWS's order.

    The fields depend on the message type; ``Subject`` is signed only when present.
    """
    lines: list[str] = []
    for name in _SIGNED_FIELDS[message["Type"]]:
        if name == "Subject" and name not in message:
            continue
        lines.extend((name, message[name]))
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def check_sns_url(url: str, region: str, *, what: str, certificate: bool) -> str:
    """Return ``url`` if it is https on ``sns.<region>.amazonaws.com[.cn]``, else refuse (403).

    Checked before any request: a message whose signature is not yet verified
    must not be able to make this server fetch anything else.
    """
    if not _PRINTABLE.match(url) or "\\" in url:
        raise WebhookError(f"{what} is not a plain URL", status=403)
    parts = urlsplit(url)
    host = _SNS_HOST.match(parts.netloc)
    if parts.scheme != "https":
        raise WebhookError(f"{what} must be an https URL, got {parts.scheme or 'none'}", status=403)
    if host is None:
        raise WebhookError(
            f"{what} must be on sns.<region>.amazonaws.com, got {parts.netloc!r}", status=403
        )
    if host.group(1) != region:
        raise WebhookError(
            f"{what} is in region {host.group(1)}, but the topic is in {region}", status=403
        )
    if parts.fragment:
        raise WebhookError(f"{what} must not have a fragment", status=403)
    if certificate and (not _CERTIFICATE_PATH.match(parts.path) or parts.query):
        raise WebhookError(f"{what} must name a .pem file, got {parts.path!r}", status=403)
    if not certificate and (
        parts.path != "/" or parse_qs(parts.query).get("Action") != ["ConfirmSubscription"]
    ):
        raise WebhookError(f"{what} must be an SNS ConfirmSubscription request", status=403)
    return url


def _timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookError(f"Timestamp {value!r} is not an ISO 8601 time", status=400) from None
    if moment.tzinfo is None:
        raise WebhookError(f"Timestamp {value!r} has no timezone", status=400)
    return moment.astimezone(UTC)


def _within(moment: datetime, now: datetime, window: timedelta, what: str) -> None:
    if abs(now - moment) > window:
        raise WebhookError(
            f"{what} {moment:%Y-%m-%dT%H:%M:%SZ} is more than {window} from now "
            "(too old, or a replay)",
            status=403,
        )


@dataclass(frozen=True)
class SnsMessage:
    """An SNS message whose signature, topic and time were checked."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    subscribe_url: str | None


class SnsVerifier:
    """Check SNS messages: topic, time, certificate URL, signature (certificates cached per URL)."""

    def __init__(
        self, settings: SesHookConfig, fetch: Fetch, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.fetch = fetch
        self.clock = clock
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def verify(self, body: bytes, message_type: str | None = None) -> SnsMessage:
        """Return the checked message, or raise WebhookError; fetches nothing it did not check."""
        data = _object(read_json(body), "the SNS message")
        kind = data.get("Type")
        if not isinstance(kind, str) or kind not in _SIGNED_FIELDS:
            raise WebhookError(f"unknown SNS message Type {kind!r}", status=400)
        if message_type is not None and message_type != kind:
            raise WebhookError(
                f"x-amz-sns-message-type {message_type!r} does not match Type {kind!r}", status=400
            )
        needed = [n for n in _SIGNED_FIELDS[kind] if n != "Subject"]
        needed += ["Signature", "SignatureVersion", "SigningCertURL"]
        missing = [name for name in needed if not isinstance(data.get(name), str)]
        if "Subject" in data and not isinstance(data["Subject"], str):
            missing.append("Subject")
        if missing:
            raise WebhookError(f"the SNS message lacks {', '.join(missing)}", status=400)
        fields: dict[str, str] = {name: data[name] for name in (*needed, "Subject") if name in data}
        topic = fields["TopicArn"]
        if topic not in self.settings.topics:
            raise WebhookError(f"topic {topic!r} is not in webhooks.ses.topics", status=403)
        region = topic.split(":")[3]
        _within(_timestamp(fields["Timestamp"]), self.clock(), self.settings.max_age, "Timestamp")
        certificate_url = check_sns_url(
            fields["SigningCertURL"], region, what="SigningCertURL", certificate=True
        )
        subscribe_url = None
        if kind == "SubscriptionConfirmation":
            subscribe_url = check_sns_url(
                fields["SubscribeURL"], region, what="SubscribeURL", certificate=False
            )
        algorithm = _SIGNATURE_HASHES.get(fields["SignatureVersion"])
        if algorithm is None:
            raise WebhookError(
                f"SignatureVersion {fields['SignatureVersion']!r} is not 1 or 2", status=403
            )
        try:
            signature = base64.b64decode(fields["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookError("the Signature is not base64", status=403) from None
        key = self._public_key(certificate_url)
        try:
            key.verify(signature, string_to_sign(fields), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise WebhookError("the SNS signature does not verify", status=403) from None
        return SnsMessage(kind, fields["MessageId"], topic, fields["Message"], subscribe_url)

    def _public_key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            cached = self._keys.get(url)
        if cached is not None:
            return cached
        pem = self.fetch(url, CERTIFICATE_LIMIT)
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise WebhookError(f"{url} is not a PEM certificate", status=502) from None
        now = self.clock()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise WebhookError(f"the signing certificate at {url} is not valid now", status=403)
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookError(f"the signing certificate at {url} is not RSA", status=403)
        with self._lock:
            if len(self._keys) >= _CACHED_CERTIFICATES:
                self._keys.pop(next(iter(self._keys)))
            self._keys[url] = key
        return key

    def confirm(self, message: SnsMessage) -> None:
        """Confirm a subscription: GET its (checked) SubscribeURL."""
        if message.subscribe_url is None:
            raise WebhookError("this SNS message has no SubscribeURL", status=400)
        self.fetch(message.subscribe_url, CONFIRMATION_LIMIT)


def _ses_headers(mail: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return our delivery tokens (``mail.headers``) and Message-IDs (``mail.commonHeaders``)."""
    tokens: list[str] = []
    headers = mail.get("headers")
    for header in headers if isinstance(headers, list) else []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == (
            DELIVERY_HEADER.lower()
        ):
            tokens.extend(_token_of(header.get("value")))
    common = mail.get("commonHeaders")
    ids = message_ids_of(common.get("messageId")) if isinstance(common, dict) else ()
    return tuple(dict.fromkeys(tokens)), ids


def ses_report(message: SnsMessage) -> Report | None:
    """Read an SES notification: Bounce (Permanent hard, Transient soft) or Complaint.

    Other notifications (Delivery, Send, ...) return None: nothing to record.
    """
    try:
        payload = _object(read_json(message.message.encode("utf-8")), "the SES notification")
    except WebhookError as exc:
        raise WebhookError(f"the SNS Message: {exc.message}", status=400) from None
    kind = payload.get("notificationType") or payload.get("eventType")
    mail = payload.get("mail")
    tokens, ids = _ses_headers(mail if isinstance(mail, dict) else {})
    if kind == "Bounce":
        bounce = _object(payload.get("bounce"), "bounce")
        bounce_type = bounce.get("bounceType")
        report_kind = {"Permanent": BounceKind.HARD, "Transient": BounceKind.SOFT}.get(
            str(bounce_type), BounceKind.OTHER
        )
        statuses: dict[str, str] = {}
        recipients: list[str] = []
        listed = bounce.get("bouncedRecipients")
        for entry in listed if isinstance(listed, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("emailAddress"), str):
                continue
            address = entry["emailAddress"].strip()[:320]
            recipients.append(address)
            status = _status_in(entry.get("status"), entry.get("diagnosticCode"))
            if status is not None:
                statuses[address] = status
        feedback = bounce.get("feedbackId")
        key = f"ses:{feedback}" if isinstance(feedback, str) else f"sns:{message.message_id}"
        return Report(report_kind, tuple(recipients), None, tokens, ids, key=key, statuses=statuses)
    if kind == "Complaint":
        complaint = _object(payload.get("complaint"), "complaint")
        listed = complaint.get("complainedRecipients")
        recipients = [
            entry["emailAddress"].strip()[:320]
            for entry in (listed if isinstance(listed, list) else [])
            if isinstance(entry, dict) and isinstance(entry.get("emailAddress"), str)
        ]
        feedback_type = complaint.get("complaintFeedbackType")
        feedback = complaint.get("feedbackId")
        key = f"ses:{feedback}" if isinstance(feedback, str) else f"sns:{message.message_id}"
        return Report(
            BounceKind.COMPLAINT,
            tuple(recipients),
            feedback_type[:40] if isinstance(feedback_type, str) else None,
            tokens,
            ids,
            key=key,
        )
    return None


# -- Mailgun ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailgunEvent:
    """A Mailgun request whose signature and time were checked: its token and its report."""

    token: str
    report: Report | None


def mailgun_event(
    body: bytes, signing_key: str, settings: MailgunHookConfig, now: datetime
) -> MailgunEvent:
    """Check a Mailgun webhook's signature and time, and read its event.

    The token is not yet remembered: :func:`act` does that in the transaction
    that records the event, so a refused token leaves nothing behind.
    """
    data = _object(read_json(body), "the Mailgun request")
    signature = data.get("signature")
    if not isinstance(signature, dict):
        raise WebhookError("the request has no signature object", status=401)
    timestamp, token, given = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if isinstance(timestamp, int):
        timestamp = str(timestamp)
    if not (isinstance(timestamp, str) and timestamp.isdigit() and len(timestamp) <= 10):
        raise WebhookError("signature.timestamp must be Unix seconds", status=401)
    if not (isinstance(token, str) and 0 < len(token) <= 200 and isinstance(given, str)):
        raise WebhookError("signature.token and signature.signature are required", status=401)
    _within(
        datetime.fromtimestamp(int(timestamp), UTC), now, settings.max_age, "signature.timestamp"
    )
    expected = hmac.new(
        signing_key.encode("utf-8"), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8")):
        raise WebhookError("the Mailgun signature does not verify", status=403)
    event = _object(data.get("event-data"), "event-data")
    return MailgunEvent(token, mailgun_report(event))


def mailgun_report(event: Mapping[str, Any]) -> Report | None:
    """Read one Mailgun event: failed (permanent hard, temporary soft), complained, unsubscribed.

    Other events (delivered, opened, ...) return None: nothing to record.
    """
    name = event.get("event")
    recipient = event.get("recipient")
    recipients = (recipient.strip()[:320],) if isinstance(recipient, str) else ()
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    headers = {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, dict) else {}
    tokens = _token_of(headers.get(DELIVERY_HEADER.lower()))
    ids = message_ids_of(headers.get("message-id"))
    event_id = event.get("id")
    key = (
        f"mailgun:{event_id}"
        if isinstance(event_id, str) and event_id
        else f"mailgun:sha256:{_digest(event)}"
    )
    if name == "failed":
        severity = event.get("severity")
        kind = {"permanent": BounceKind.HARD, "temporary": BounceKind.SOFT}.get(
            str(severity), BounceKind.OTHER
        )
        status_info = event.get("delivery-status")
        info = status_info if isinstance(status_info, dict) else {}
        status = _status_in(info.get("enhanced-code"), info.get("message"), info.get("description"))
        return Report(kind, recipients, status, tokens, ids, key=key)
    if name == "complained":
        return Report(BounceKind.COMPLAINT, recipients, None, tokens, ids, key=key)
    if name == "unsubscribed":
        return Report(BounceKind.UNSUBSCRIBE, recipients, None, tokens, ids, key=key)
    return None
