"""Provider webhooks on a real server: generic JSON, SES through SNS, Mailgun.

Each test sends real editions to the outbox, posts what a provider would post
to a live `briefing web` app, and checks the subscriptions, suppressions,
ledger and bounce events in the database afterwards. The SES tests play SNS
(tests/support/sns.py): the certificate fetcher is the one boundary replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.errors import SecretError
from briefing.store import Database, open_database
from briefing.store.schema import BounceEvent, Delivery, Edition, Subscriber, WebhookToken
from briefing.store.suppressions import suppressions_of
from briefing.web import create_app
from tests.support.factories import KEY, make_project
from tests.support.sns import (
    CERT_URL,
    SUBSCRIBE_URL,
    FakeSns,
    notification,
    ses_bounce,
    ses_complaint,
    subscription,
)
from tests.support.web import Clock, live_server, message_to, parse, send_editions, subscription_of

WEBHOOK_TOKEN = "generic-webhook-token-4f1c9a7e"
MAILGUN_KEY = "mailgun-signing-key-0b7d2c91e5a4"
HOOKS = {
    "generic": True,
    "ses": {"topics": ["arn:aws:sns:us-east-1:123456789012:briefing-bounces"]},
    "mailgun": {},
    "max_body": 64 * 1024,
}


@dataclass
class Hooked:
    """A project whose editions were sent, served with every webhook on."""

    config: Config
    database: Database
    clock: Clock
    sns: FakeSns
    client: httpx.Client

    def sent(self, address: str) -> tuple[str, str]:
        """Return the delivery token and Message-ID of the digest sent to ``address``."""
        message = parse(message_to(self.config, address))
        return str(message["X-Briefing-Delivery"]), str(message["Message-ID"])

    def standing(self, address: str) -> tuple[str, set[str], str]:
        """Return the subscription's state, the suppression reasons and the delivery's state."""
        with self.database.transaction() as session:
            reasons = {row.reason for row in suppressions_of(session, address)}
            delivery = session.scalar(
                select(Delivery.status)
                .join(Edition, Edition.id == Delivery.edition_id)
                .join(Subscriber, Subscriber.id == Edition.subscriber_id)
                .where(Subscriber.email == address)
            )
        return subscription_of(self.database, address).status, reasons, str(delivery)

    def events(self) -> list[tuple[str, str, str | None, str | None, str]]:
        """Return every recorded event: source, kind, address, how matched, action."""
        with self.database.transaction() as session:
            rows = session.scalars(select(BounceEvent).order_by(BounceEvent.id))
            return [(e.source, e.kind, e.email, e.matched_by, e.action) for e in rows]


ACTIVE = ("active", set(), "sent")


@pytest.fixture
def hooked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hooked]:
    monkeypatch.setenv("BRIEFING_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    monkeypatch.setenv("BRIEFING_MAILGUN_SIGNING_KEY", MAILGUN_KEY)
    config = make_project(tmp_path / "site", webhooks=HOOKS)
    database = open_database(config.database)
    send_editions(config, database, Signer([KEY]))
    clock = Clock()
    sns = FakeSns.create(clock.now)
    app = create_app(config, database, [KEY], clock=clock, drain_interval=None, fetch=sns.fetch)
    with live_server(app) as origin, httpx.Client(base_url=f"{origin}/b", timeout=10) as client:
        yield Hooked(config, database, clock, sns, client)
    database.dispose()


# -- generic ----------------------------------------------------------------------------------


def post_events(hooked: Hooked, events: Any, token: str | None = WEBHOOK_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return hooked.client.post("/hooks/events", json=events, headers=headers)


def test_generic_events_with_our_token_act_and_an_address_alone_is_only_recorded(
    hooked: Hooked,
) -> None:
    ann_token, _ = hooked.sent("ann@example.com")
    _, bob_message_id = hooked.sent("bob@example.com")
    events = [
        {"kind": "hard", "recipient": "ann@example.com", "status": "5.1.1", "delivery": ann_token},
        {"kind": "complaint", "recipient": "bob@example.com", "message_id": bob_message_id},
        {"kind": "hard", "recipient": "cy@example.com", "status": "5.1.1"},  # no token: forged?
        {"kind": "bounce", "recipient": "not an address"},
    ]
    response = post_events(hooked, events)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["actions"] == ["bounced: suppressed for every briefing"]
    assert results[1]["actions"] == ["complained: suppressed for every briefing"]
    assert results[2]["actions"] == ["recorded: matched by address alone"]
    assert results[3]["index"] == 3 and "kind" in results[3]["error"]
    assert "recipient" in results[3]["error"]

    assert hooked.standing("ann@example.com") == ("bounced", {"bounced"}, "bounced")
    assert hooked.standing("bob@example.com") == ("complained", {"complained"}, "complained")
    assert hooked.standing("cy@example.com") == ACTIVE
    assert [(source, kind, matched) for source, kind, _, matched, _ in hooked.events()] == [
        ("webhook:generic", "hard", "token"),
        ("webhook:generic", "complaint", "message-id"),
        ("webhook:generic", "hard", "address"),
    ]

    # The same events again: recorded once, nothing moves twice.
    again = post_events(hooked, events[:3])
    assert [r["actions"] for r in again.json()["results"]] == [["already recorded"]] * 3
    assert len(hooked.events()) == 3


def test_a_generic_unsubscribe_event_ends_only_that_briefing(hooked: Hooked) -> None:
    token, _ = hooked.sent("cy@example.com")
    response = post_events(
        hooked, [{"kind": "unsubscribe", "recipient": "cy@example.com", "delivery": token}]
    )
    assert response.json()["results"][0]["actions"] == ["unsubscribed from daily"]
    assert hooked.standing("cy@example.com")[0] == "unsubscribed"
    assert hooked.events()[0][3] == "token"


def test_generic_requests_without_the_right_token_or_readable_json_change_nothing(
    hooked: Hooked,
) -> None:
    token, _ = hooked.sent("ann@example.com")
    event = [{"kind": "hard", "recipient": "ann@example.com", "status": "5.1.1", "delivery": token}]
    missing = post_events(hooked, event, token=None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = post_events(hooked, event, token=WEBHOOK_TOKEN[:-1] + "x")
    assert wrong.status_code == 401 and wrong.json() == {"error": "the bearer token is not valid"}

    auth = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    broken = hooked.client.post("/hooks/events", content=b'[{"kind": "hard",', headers=auth)
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("the body is not JSON:")
    assert "line 1, column" in broken.json()["error"]
    not_list = hooked.client.post("/hooks/events", content=b'{"kind": "hard"}', headers=auth)
    assert not_list.status_code == 400
    assert not_list.json() == {"error": "the body must be a JSON list of events"}
    binary = hooked.client.post("/hooks/events", content=b"\xff\xfe[]", headers=auth)
    assert binary.status_code == 400
    huge = hooked.client.post("/hooks/events", content=b"[" + b" " * 70_000 + b"]", headers=auth)
    assert huge.status_code == 413

    def trickle() -> Iterator[bytes]:  # no Content-Length: the cap holds while reading
        yield b"["
        for _ in range(70):
            yield b" " * 1000
        yield b"]"

    chunked = hooked.client.post("/hooks/events", content=trickle(), headers=auth)
    assert chunked.status_code == 413
    assert chunked.json() == {"error": "the body is larger than webhooks.max_body"}

    assert hooked.standing("ann@example.com") == ACTIVE
    assert hooked.events() == []


def test_each_endpoint_is_off_unless_configured_and_needs_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_project(tmp_path / "plain")
    database = open_database(config.database)
    app = create_app(config, database, [KEY], drain_interval=None)
    with live_server(app) as origin, httpx.Client(base_url=f"{origin}/b") as client:
        for path in ("/hooks/events", "/hooks/ses", "/hooks/mailgun"):
            assert client.post(path, content=b"[]").status_code == 404

    monkeypatch.delenv("BRIEFING_WEBHOOK_TOKEN", raising=False)
    generic = make_project(tmp_path / "generic", webhooks={"generic": True})
    with pytest.raises(SecretError, match="BRIEFING_WEBHOOK_TOKEN is not set"):
        create_app(generic, database, [KEY], drain_interval=None)
    database.dispose()


# -- Amazon SES through SNS -------------------------------------------------------------------


def post_sns(hooked: Hooked, message: dict[str, str]) -> httpx.Response:
    return hooked.client.post(
        "/hooks/ses",
        content=json.dumps(message).encode(),
        headers={"x-amz-sns-message-type": message["Type"], "Content-Type": "text/plain"},
    )


def test_sns_subscription_is_confirmed_and_ses_notifications_act_with_either_signature(
    hooked: Hooked,
) -> None:
    sns, now = hooked.sns, hooked.clock.now
    confirm = post_sns(hooked, sns.sign(subscription(now)))
    assert confirm.status_code == 200, confirm.text
    assert sns.calls == [CERT_URL, SUBSCRIBE_URL]

    ann_token, _ = hooked.sent("ann@example.com")
    hard = ses_bounce(
        "Permanent", "ann@example.com", status="5.1.1", headers={"X-Briefing-Delivery": ann_token}
    )
    signed = sns.sign(notification(hard, now, Subject="Amazon SES Email Event Notification"), "1")
    response = post_sns(hooked, signed)
    assert response.status_code == 200, response.text
    assert response.json() == {"actions": ["bounced: suppressed for every briefing"]}

    _, bob_message_id = hooked.sent("bob@example.com")
    complaint = ses_complaint("bob@example.com", message_id=bob_message_id.strip("<>"))
    response = post_sns(hooked, sns.sign(notification(complaint, now), "2"))
    assert response.json() == {"actions": ["complained: suppressed for every briefing"]}

    cy_token, _ = hooked.sent("cy@example.com")
    soft = ses_bounce(
        "Transient", "cy@example.com", status="4.2.2", headers={"X-Briefing-Delivery": cy_token}
    )
    response = post_sns(hooked, sns.sign(notification(soft, now), "2"))
    assert response.json() == {"actions": ["counted: soft bounce 1 of 3"]}

    # SNS delivers at least once: the same notification again records nothing new.
    assert post_sns(hooked, signed).json() == {"actions": ["already recorded"]}
    assert sns.calls == [CERT_URL, SUBSCRIBE_URL]  # the certificate is cached per URL

    assert hooked.standing("ann@example.com") == ("bounced", {"bounced"}, "bounced")
    assert hooked.standing("bob@example.com") == ("complained", {"complained"}, "complained")
    assert hooked.standing("cy@example.com") == ACTIVE
    assert [(e[0], e[1], e[3]) for e in hooked.events()] == [
        ("webhook:ses", "hard", "token"),
        ("webhook:ses", "complaint", "message-id"),
        ("webhook:ses", "soft", "token"),
    ]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"SigningCertURL": "https://evil.example/x.pem"}, "SigningCertURL must be on sns."),
        (
            {"SigningCertURL": "https://sns.us-east-1.amazonaws.com.evil.example/x.pem"},
            "SigningCertURL must be on sns.",
        ),
        (
            {"SigningCertURL": "http://sns.us-east-1.amazonaws.com/x.pem"},
            "SigningCertURL must be an https URL",
        ),
        (
            {"SigningCertURL": "https://sns.us-east-1.amazonaws.com@evil.example/x.pem"},
            "SigningCertURL must be on sns.",
        ),
        (
            {"SigningCertURL": "https://sns.eu-west-1.amazonaws.com/x.pem"},
            "is in region eu-west-1, but the topic is in us-east-1",
        ),
        (
            {"SubscribeURL": "https://evil.example/?Action=ConfirmSubscription"},
            "SubscribeURL must be on sns.",
        ),
        (
            {"SubscribeURL": "https://sns.us-east-1.amazonaws.com/internal?Action=Other"},
            "SubscribeURL must be an SNS ConfirmSubscription request",
        ),
        (
            {"TopicArn": "arn:aws:sns:us-east-1:999999999999:someone-else"},
            "is not in webhooks.ses.topics",
        ),
        ({"Timestamp": "2026-11-26T05:00:00.000Z"}, "too old, or a replay"),
        ({"Timestamp": "2026-11-26T09:30:00.000Z"}, "too old, or a replay"),
    ],
)
def test_sns_messages_with_foreign_urls_topics_or_old_times_are_refused_before_any_fetch(
    hooked: Hooked, fields: dict[str, str], error: str
) -> None:
    message = hooked.sns.sign(subscription(hooked.clock.now, **fields))
    response = post_sns(hooked, message)
    assert response.status_code == 403
    assert error in response.json()["error"]
    assert hooked.sns.calls == []


def test_a_bad_sns_signature_is_refused_and_nothing_is_confirmed_or_recorded(
    hooked: Hooked,
) -> None:
    sns, now = hooked.sns, hooked.clock.now
    ann_token, _ = hooked.sent("ann@example.com")
    payload = ses_bounce(
        "Permanent", "ann@example.com", status="5.1.1", headers={"X-Briefing-Delivery": ann_token}
    )
    signed = sns.sign(notification(payload, now))
    other = ses_bounce("Permanent", "bob@example.com", status="5.1.1")
    forged = {**signed, "Message": json.dumps(other)}
    response = post_sns(hooked, forged)
    assert response.status_code == 403
    assert response.json() == {"error": "the SNS signature does not verify"}

    # A signature made for version 1 does not pass as version 2, nor an unknown version.
    as_v2 = post_sns(hooked, {**signed, "SignatureVersion": "2"})
    assert as_v2.status_code == 403
    unknown = post_sns(hooked, {**signed, "SignatureVersion": "3"})
    assert unknown.status_code == 403 and "is not 1 or 2" in unknown.json()["error"]

    confirmation = sns.sign(subscription(now))
    tampered = {**confirmation, "Token": "another-token"}
    assert post_sns(hooked, tampered).status_code == 403
    assert SUBSCRIBE_URL not in sns.calls  # only the certificate was ever fetched

    malformed = hooked.client.post("/hooks/ses", content=b"{not json")
    assert malformed.status_code == 400
    lacking = post_sns(hooked, {"Type": "Notification", "TopicArn": "x"})
    assert lacking.status_code == 400 and "lacks" in lacking.json()["error"]

    assert hooked.standing("ann@example.com") == ACTIVE
    assert hooked.events() == []


# -- Mailgun ----------------------------------------------------------------------------------


def mailgun_body(
    event: dict[str, Any], timestamp: int, token: str, key: str = MAILGUN_KEY
) -> dict[str, Any]:
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
        "event-data": event,
    }


def failed(recipient: str, message_id: str, severity: str = "permanent") -> dict[str, Any]:
    return {
        "id": f"event-{recipient}-{severity}",
        "event": "failed",
        "severity": severity,
        "reason": "bounce",
        "recipient": recipient,
        "delivery-status": {
            "code": 550,
            "message": "5.1.1 The email account that you tried to reach does not exist.",
            "description": "",
        },
        "message": {"headers": {"message-id": message_id.strip("<>"), "to": recipient}},
    }


def test_a_signed_mailgun_event_acts_once_and_replays_or_stale_ones_are_refused(
    hooked: Hooked,
) -> None:
    now = int(hooked.clock.now.timestamp())
    _, ann_message_id = hooked.sent("ann@example.com")
    body = mailgun_body(failed("ann@example.com", ann_message_id), now, "a" * 50)
    first = hooked.client.post("/hooks/mailgun", json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"actions": ["bounced: suppressed for every briefing"]}

    replayed = hooked.client.post("/hooks/mailgun", json=body)
    assert replayed.status_code == 403
    assert "already used" in replayed.json()["error"]

    # Mailgun's retry of the same event carries a new token: recorded once all the same.
    retry = hooked.client.post(
        "/hooks/mailgun",
        json=mailgun_body(failed("ann@example.com", ann_message_id), now, "b" * 50),
    )
    assert retry.json() == {"actions": ["already recorded"]}

    _, bob_message_id = hooked.sent("bob@example.com")
    stale = mailgun_body(failed("bob@example.com", bob_message_id), now - 3600, "c" * 50)
    assert hooked.client.post("/hooks/mailgun", json=stale).status_code == 403
    forged = mailgun_body(failed("bob@example.com", bob_message_id), now, "d" * 50, key="guess")
    response = hooked.client.post("/hooks/mailgun", json=forged)
    assert response.status_code == 403
    assert response.json() == {"error": "the Mailgun signature does not verify"}
    unsigned = hooked.client.post("/hooks/mailgun", json={"event-data": failed("x@y.org", "<a@b>")})
    assert unsigned.status_code == 401

    complained = {
        "id": "event-bob-complained",
        "event": "complained",
        "recipient": "bob@example.com",
        "message": {"headers": {"message-id": bob_message_id}},
    }
    response = hooked.client.post("/hooks/mailgun", json=mailgun_body(complained, now, "e" * 50))
    assert response.json() == {"actions": ["complained: suppressed for every briefing"]}
    _, cy_message_id = hooked.sent("cy@example.com")
    unsubscribed = {
        "id": "event-cy-unsubscribed",
        "event": "unsubscribed",
        "recipient": "cy@example.com",
        "message": {"headers": {"message-id": cy_message_id.strip("<>")}},
    }
    response = hooked.client.post("/hooks/mailgun", json=mailgun_body(unsubscribed, now, "f" * 50))
    assert response.json() == {"actions": ["unsubscribed from daily"]}

    assert hooked.standing("ann@example.com") == ("bounced", {"bounced"}, "bounced")
    assert hooked.standing("bob@example.com") == ("complained", {"complained"}, "complained")
    assert hooked.standing("cy@example.com")[0] == "unsubscribed"
    assert [(e[0], e[1], e[3]) for e in hooked.events()] == [
        ("webhook:mailgun", "hard", "message-id"),
        ("webhook:mailgun", "complaint", "message-id"),
        ("webhook:mailgun", "unsubscribe", "message-id"),
    ]

    # Tokens are kept while their timestamp could still pass, then pruned.
    with hooked.database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(WebhookToken)) == 4
    hooked.clock.now += timedelta(minutes=11)
    later = int(hooked.clock.now.timestamp())
    delivered = {"id": "event-delivered", "event": "delivered", "recipient": "cy@example.com"}
    response = hooked.client.post("/hooks/mailgun", json=mailgun_body(delivered, later, "g" * 50))
    assert response.json() == {"actions": []}
    with hooked.database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(WebhookToken)) == 1
