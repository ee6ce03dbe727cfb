"""Reading and checking provider webhooks, without a server: URLs, signed text, payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from briefing.audience.webhooks import (
    EventError,
    SnsMessage,
    WebhookError,
    check_bearer,
    check_sns_url,
    generic_reports,
    mailgun_event,
    mailgun_report,
    ses_report,
    string_to_sign,
)
from briefing.config import MailgunHookConfig, webhook_secret
from briefing.domain.states import BounceKind
from briefing.errors import BriefingError, ConfigError
from tests.support.factories import make_config
from tests.support.sns import ses_bounce

NOW = datetime(2026, 11, 26, 7, 5, tzinfo=UTC)
TOKEN = "a" * 32


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-01d088.pem", "us-east-1"),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem", "cn-north-1"),
        (
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-2.pem",
            "us-gov-west-1",
        ),
    ],
)
def test_sns_certificate_urls_on_the_topic_s_own_sns_host_are_accepted(
    url: str, region: str
) -> None:
    assert check_sns_url(url, region, what="SigningCertURL", certificate=True) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/x.pem\t",
        "https://sns.us-east-1.amazonaws.com\\@evil.example/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/../../internal/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem?redirect=https://evil.example",
        "https://sns.us-east-1.amazonaws.com/x.txt",
        "https://sns.us-east-1.amazonaws.com/x.pem#frag",
        "https://sns.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.co/x.pem",
        "https://xsns.us-east-1.amazonaws.com/x.pem",
        "https://169.254.169.254/latest/meta-data.pem",
        "file:///etc/passwd.pem",
        "",
    ],
)
def test_anything_else_is_refused_as_a_certificate_url(url: str) -> None:
    with pytest.raises(WebhookError) as refused:
        check_sns_url(url, "us-east-1", what="SigningCertURL", certificate=True)
    assert refused.value.status == 403


def test_a_subscribe_url_must_be_an_sns_confirm_subscription_request() -> None:
    good = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=t&Token=x"
    assert check_sns_url(good, "us-east-1", what="SubscribeURL", certificate=False) == good
    for url in (
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        "https://sns.us-east-1.amazonaws.com/other?Action=ConfirmSubscription",
        "https://evil.example/?Action=ConfirmSubscription",
    ):
        with pytest.raises(WebhookError):
            check_sns_url(url, "us-east-1", what="SubscribeURL", certificate=False)


def test_the_string_to_sign_follows_aws_s_field_order_per_message_type() -> None:
    notification = {
        "Type": "Notification",
        "MessageId": "m1",
        "TopicArn": "arn",
        "Message": "hello",
        "Timestamp": "2026-11-26T07:00:00.000Z",
        "UnsubscribeURL": "not signed",
    }
    assert string_to_sign(notification) == (
        b"Message\nhello\nMessageId\nm1\nTimestamp\n2026-11-26T07:00:00.000Z\n"
        b"TopicArn\narn\nType\nNotification\n"
    )
    assert b"Subject\nHi\nTimestamp" in string_to_sign({**notification, "Subject": "Hi"})
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m2",
        "Token": "tok",
        "TopicArn": "arn",
        "Message": "confirm",
        "SubscribeURL": "https://sns.example/",
        "Timestamp": "t",
    }
    assert string_to_sign(confirmation) == (
        b"Message\nconfirm\nMessageId\nm2\nSubscribeURL\nhttps://sns.example/\n"
        b"Timestamp\nt\nToken\ntok\nTopicArn\narn\nType\nSubscriptionConfirmation\n"
    )


def sns(payload: object) -> SnsMessage:
    return SnsMessage("Notification", "sns-1", "arn", json.dumps(payload), None)


def test_ses_notifications_map_to_reports_and_others_to_nothing() -> None:
    permanent = ses_bounce(
        "Permanent",
        "ann@example.com",
        status="5.1.1",
        headers={"x-briefing-delivery": TOKEN.upper(), "Subject": "x"},
        message_id="abc@news.example.org",
        feedback_id="fb-1",
    )
    report = ses_report(sns(permanent))
    assert report is not None
    assert (report.kind, report.recipients, report.statuses) == (
        BounceKind.HARD,
        ("ann@example.com",),
        {"ann@example.com": "5.1.1"},
    )
    assert report.delivery_tokens == (TOKEN,) and report.message_ids == ("<abc@news.example.org>",)
    assert report.key == "ses:fb-1"

    transient = ses_bounce("Transient", "bob@example.com", status=None)
    transient["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = "smtp; 452 4.2.2 over quota"
    report = ses_report(sns(transient))
    assert report is not None and report.kind == BounceKind.SOFT
    assert report.statuses == {"bob@example.com": "4.2.2"}

    undetermined = ses_report(sns(ses_bounce("Undetermined", "cy@example.com", status=None)))
    assert undetermined is not None and undetermined.kind == BounceKind.OTHER
    assert ses_report(sns({"notificationType": "Delivery", "mail": {}})) is None
    forged_header = ses_bounce("Permanent", "d@example.com", status="5.1.1")
    forged_header["mail"]["headers"] = [{"name": "X-Briefing-Delivery", "value": "not-a-token"}]
    report = ses_report(sns(forged_header))
    assert report is not None and report.delivery_tokens == ()
    with pytest.raises(WebhookError, match="the SNS Message: the body is not JSON"):
        ses_report(SnsMessage("Notification", "sns-2", "arn", "{broken", None))


def test_mailgun_events_map_to_reports() -> None:
    temporary = {
        "id": "ev-1",
        "event": "failed",
        "severity": "temporary",
        "recipient": "ann@example.com",
        "delivery-status": {"code": 452, "enhanced-code": "4.2.2", "message": "full"},
        "message": {"headers": {"Message-Id": "xyz@mg.example", "X-Briefing-Delivery": TOKEN}},
    }
    report = mailgun_report(temporary)
    assert report is not None
    assert (report.kind, report.status, report.key) == (BounceKind.SOFT, "4.2.2", "mailgun:ev-1")
    assert report.message_ids == ("<xyz@mg.example>",) and report.delivery_tokens == (TOKEN,)
    assert mailgun_report({"event": "opened", "recipient": "ann@example.com"}) is None
    no_id = mailgun_report({"event": "complained", "recipient": "ann@example.com"})
    assert no_id is not None and no_id.key.startswith("mailgun:sha256:")


def signed(timestamp: str, token: str, key: str = "k" * 20) -> bytes:
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": {"event": "delivered"},
        }
    ).encode()


def test_mailgun_signatures_and_timestamps_are_checked_before_anything_is_read() -> None:
    settings = MailgunHookConfig()
    now = str(int(NOW.timestamp()))
    assert mailgun_event(signed(now, "t1"), "k" * 20, settings, NOW).report is None
    for body, status in (
        (signed(now, "t1", key="other-key-0123456789"), 403),
        (signed(str(int((NOW - timedelta(minutes=6)).timestamp())), "t1"), 403),
        (signed(str(int((NOW + timedelta(minutes=6)).timestamp())), "t1"), 403),
        (signed("999999999999", "t1"), 401),  # not a time: refused, never a crash
        (signed("-5", "t1"), 401),
        (b'{"event-data": {}}', 401),
        (b"[1, 2]", 400),
    ):
        with pytest.raises(WebhookError) as refused:
            mailgun_event(body, "k" * 20, settings, NOW)
        assert refused.value.status == status, body


def test_generic_events_are_read_one_by_one() -> None:
    body = json.dumps(
        [
            {"kind": "soft", "recipient": "Ann@Example.com", "status": "4.2.2", "id": "e-1"},
            {"kind": "hard", "recipient": "bob@example.com", "delivery": "short"},
            {"kind": "hard", "recipient": "bob@example.com", "extra": 1},
            {"kind": "complaint", "recipient": "cy@example.com", "message_id": "m@x.org"},
        ]
    ).encode()
    first, bad_token, unknown, complaint = generic_reports(body)
    assert not isinstance(first, EventError) and first.key == "generic:e-1"
    assert isinstance(bad_token, EventError) and "delivery" in bad_token.message
    assert isinstance(unknown, EventError) and "extra" in unknown.message
    assert not isinstance(complaint, EventError) and complaint.message_ids == ("<m@x.org>",)
    again = generic_reports(body)[3]
    assert not isinstance(again, EventError) and again.key == complaint.key
    with pytest.raises(WebhookError, match="nested too deeply"):
        generic_reports(b"[" * 100_000 + b"]" * 100_000)


def test_the_bearer_token_must_be_given_and_equal() -> None:
    check_bearer("Bearer s3cret-token-value", "s3cret-token-value")
    check_bearer("bearer s3cret-token-value", "s3cret-token-value")
    for header in (None, "", "Basic czNjcmV0", "Bearer ", "Bearer s3cret-token-valuE"):
        with pytest.raises(WebhookError) as refused:
            check_bearer(header, "s3cret-token-value")
        assert refused.value.status == 401


def test_webhook_config_and_secrets_are_checked_with_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"webhooks\.ses\.topics: .*expected an SNS topic ARN"):
        make_config(tmp_path, webhooks={"ses": {"topics": ["my-topic"]}})
    with pytest.raises(ConfigError, match=r"webhooks\.ses\.topics: .*at least 1 item"):
        make_config(tmp_path, webhooks={"ses": {"topics": []}})
    monkeypatch.setenv("BRIEFING_WEBHOOK_TOKEN", "short")
    with pytest.raises(BriefingError, match="BRIEFING_WEBHOOK_TOKEN is shorter than 16"):
        webhook_secret("BRIEFING_WEBHOOK_TOKEN", "bearer token")
