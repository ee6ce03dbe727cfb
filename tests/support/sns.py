"""Sign Amazon SNS messages as SNS does, with a test key and a self-signed certificate.

AWS is not reachable here, so the test plays SNS: an RSA key, a certificate
for it, and messages signed over AWS's string to sign (written out here from
AWS's documentation, independently of the code under test). The fetcher the
application is given serves that certificate and records every URL asked for.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGION = "us-east-1"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:briefing-bounces"
CERT_URL = f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0000000000000000.pem"
SUBSCRIBE_URL = (
    f"https://sns.{REGION}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}"
    "&Token=2336412f37fb687f5d51e6e2425"
)

# AWS's order of the signed fields, per message type (Subject only when present).
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


@dataclass
class FakeSns:
    """A signing key, its certificate, and a fetcher that serves it and records each call."""

    key: rsa.RSAPrivateKey
    certificate_pem: bytes
    calls: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, now: datetime) -> FakeSns:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate.public_bytes(serialization.Encoding.PEM))

    def fetch(self, url: str, limit: int) -> bytes:
        """Serve the certificate at its URL and answer the subscription confirmation."""
        self.calls.append(url)
        if url == CERT_URL:
            return self.certificate_pem
        return b"<ConfirmSubscriptionResponse/>"

    def sign(self, message: dict[str, str], version: str = "1") -> dict[str, str]:
        """Add SignatureVersion and Signature to ``message``, signed as SNS signs it."""
        names = NOTIFICATION_FIELDS if message["Type"] == "Notification" else SUBSCRIPTION_FIELDS
        text = "".join(f"{name}\n{message[name]}\n" for name in names if name in message).encode()
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text, padding.PKCS1v15(), algorithm)
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
        }


def timestamp(at: datetime) -> str:
    """Write a time as SNS does: 2026-11-26T07:05:00.000Z."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def notification(payload: dict[str, Any], at: datetime, **fields: str) -> dict[str, str]:
    """Return an unsigned SNS Notification carrying ``payload`` (an SES notification)."""
    message = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(payload),
        "Timestamp": timestamp(at),
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe",
    }
    message.update(fields)
    return message


def subscription(at: datetime, **fields: str) -> dict[str, str]:
    """Return an unsigned SNS SubscriptionConfirmation."""
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37fb687f5d51e6e2425",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": timestamp(at),
        "SigningCertURL": CERT_URL,
    }
    message.update(fields)
    return message


def ses_bounce(
    bounce_type: str,
    recipient: str,
    *,
    status: str | None,
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
    feedback_id: str | None = None,
) -> dict[str, Any]:
    """Return an SES bounce notification as SES writes it."""
    entry: dict[str, Any] = {"emailAddress": recipient, "action": "failed"}
    if status:
        entry["status"] = status
        entry["diagnosticCode"] = f"smtp; 550 {status} mailbox problem"
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [entry],
            "timestamp": "2026-11-26T07:01:00.000Z",
            "feedbackId": feedback_id or f"0100-{uuid.uuid4()}",
        },
        "mail": _mail(recipient, headers, message_id),
    }


def ses_complaint(
    recipient: str, *, headers: dict[str, str] | None = None, message_id: str | None = None
) -> dict[str, Any]:
    """Return an SES complaint notification."""
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2026-11-26T07:02:00.000Z",
            "feedbackId": f"0100-{uuid.uuid4()}",
        },
        "mail": _mail(recipient, headers, message_id),
    }


def _mail(recipient: str, headers: dict[str, str] | None, message_id: str | None) -> dict[str, Any]:
    return {
        "timestamp": "2026-11-26T07:00:00.000Z",
        "messageId": "0100018c-ses-own-id",
        "source": "briefing@news.example.org",
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [{"name": name, "value": value} for name, value in (headers or {}).items()],
        "commonHeaders": {"messageId": message_id or "<not-ours@elsewhere.example>"},
    }
