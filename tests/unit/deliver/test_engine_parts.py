"""The engine's parts: transports and their registry, retry policy, streak guard, run report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from briefing.config import Config, RetryConfig, SmtpConfig
from briefing.deliver.report import DeliveryReport
from briefing.deliver.retry import RetryPolicy, RetryQueue
from briefing.deliver.streak import Streak, recipient_refused
from briefing.deliver.transports import (
    OutboxTransport,
    SmtpTransport,
    Transport,
    TransportResult,
    make_transport,
    to_wire,
    transport_factories,
)
from briefing.domain.states import DeliveryState
from briefing.errors import BriefingError
from tests.support.factories import make_config

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


class Recording(Transport):
    """A transport that keeps what it was given (a plugin would look like this)."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    def send(self, sender: str, recipient: str, message: bytes) -> TransportResult:
        self.sent.append((sender, recipient, message))
        return TransportResult(DeliveryState.SENT, code=250)

    def close(self) -> None:
        pass


def test_the_registry_names_every_built_in_transport() -> None:
    assert set(transport_factories()) == {"outbox", "smtp"}


def test_make_transport_builds_the_configured_one(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.outbox_path.parent.mkdir(parents=True)
    transport = make_transport(config)
    assert isinstance(transport, OutboxTransport)
    assert transport.describe() == "outbox"
    assert transport.connections == 1 and not transport.wire_form


def test_make_transport_looks_the_name_up_in_the_given_registry(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    made: list[Config] = []

    def recording(config: Config) -> Transport:
        made.append(config)
        return Recording()

    transport = make_transport(config, {"outbox": recording})
    assert isinstance(transport, Recording) and made == [config]
    with pytest.raises(BriefingError, match="not a known transport") as caught:
        make_transport(config, {"smtp": recording})
    assert caught.value.hint == "Use one of: smtp."


def test_the_contract_defaults_to_the_from_address_and_the_name() -> None:
    transport = Recording()
    assert transport.describe() == "recording"
    sender = transport.envelope_sender("a@example.org", briefing="daily", recipient="b@x.org")
    assert sender == "a@example.org"


def test_smtp_names_its_relay_and_fills_in_the_verp_sender() -> None:
    settings = SmtpConfig(
        host="relay.example.org",
        port=2525,
        security="none",
        envelope_sender="bounces+{briefing}-{recipient}@news.example.org",
    )
    transport = SmtpTransport(settings)
    assert transport.describe() == "relay.example.org:2525"
    sender = transport.envelope_sender(
        "briefing@news.example.org", briefing="daily", recipient="ann@example.com"
    )
    assert sender == "bounces+daily-ann=example.com@news.example.org"
    plain = SmtpTransport(SmtpConfig(host="relay.example.org", security="none"))
    assert plain.envelope_sender("x@y.org", briefing="daily", recipient="a@b.org") == "x@y.org"


def test_a_transport_result_holds_only_what_a_transport_may_say() -> None:
    result = TransportResult("deferred")  # type: ignore[arg-type]
    assert result.outcome is DeliveryState.DEFERRED
    with pytest.raises(ValueError, match="cannot report"):
        TransportResult(DeliveryState.SENDING)


def test_to_wire_uses_crlf_and_stuffs_dots() -> None:
    assert to_wire(b".top\n.mid\nend") == b"..top\r\n..mid\r\nend\r\n"
    assert to_wire(b"a\r\nb\r\n") == b"a\r\nb\r\n"


def test_retry_delay_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(RetryConfig(backoff=5, max_backoff=12), jitter=lambda low, high: 1.0)
    assert [policy.delay(attempt) for attempt in (1, 2, 3, 4)] == [5.0, 10.0, 12.0, 12.0]
    jittered = RetryPolicy(RetryConfig(backoff=4, max_backoff=100))
    assert all(2.0 <= jittered.delay(1) <= 6.0 for _ in range(50))


def test_retry_counts_tries_within_the_run() -> None:
    policy = RetryPolicy(RetryConfig(attempts_per_run=3))
    assert [policy.again_in_run(attempt) for attempt in (1, 2, 3)] == [True, True, False]


def test_a_delivery_left_for_later_is_due_before_its_deadline_or_expires() -> None:
    policy = RetryPolicy(RetryConfig(later=timedelta(minutes=10)))
    far = NOW + timedelta(hours=1)
    assert policy.leave(NOW, far) == (DeliveryState.DEFERRED, NOW + timedelta(minutes=10))
    near = NOW + timedelta(minutes=3)
    assert policy.leave(NOW, near) == (DeliveryState.DEFERRED, near)
    assert policy.leave(NOW, NOW) == (DeliveryState.EXPIRED, None)


def test_the_retry_queue_gives_jobs_back_when_due_earliest_first() -> None:
    waiting: RetryQueue[str] = RetryQueue()
    waiting.push(3.0, 3, "c")
    waiting.push(1.0, 1, "a")
    waiting.push(2.0, 2, "b")
    assert waiting.next_due() == 1.0
    assert list(waiting.pop_due(2.5)) == [(1, "a"), (2, "b")]
    assert len(waiting) == 1
    assert waiting.clear() == [3]
    assert waiting.next_due() is None


def refusal(status: str = "5.7.1", code: int = 554) -> TransportResult:
    return TransportResult(
        DeliveryState.FAILED, code=code, reply=f"{code} {status} rejected", stage="data-end"
    )


def test_the_streak_trips_on_the_same_refusal_in_a_row() -> None:
    streak = Streak(limit=3)
    streak.refuse(1, "a@x.org", refusal())
    streak.refuse(2, "b@x.org", refusal())
    assert not streak.tripped
    streak.refuse(3, "c@x.org", refusal())
    assert streak.tripped
    assert streak.ids == [1, 2, 3]
    assert streak.recipients == {"a@x.org", "b@x.org", "c@x.org"}
    assert streak.key == ("data-end", 554, "5.7.1")


def test_a_different_reply_or_a_send_breaks_the_streak() -> None:
    streak = Streak(limit=2)
    streak.refuse(1, "a@x.org", refusal())
    streak.refuse(2, "b@x.org", refusal("5.7.0", 550))
    assert len(streak) == 1 and not streak.tripped
    streak.sent()
    assert len(streak) == 0 and streak.key is None


@pytest.mark.parametrize(
    ("status", "code"),
    [("5.1.1", 550), ("5.1.2", 550), ("5.1.10", 556), ("5.2.2", 552), ("5.2.1", 550)],
)
def test_a_refusal_of_the_recipient_alone_never_counts_toward_the_streak(
    status: str, code: int
) -> None:
    streak = Streak(limit=2)
    streak.refuse(1, "a@x.org", refusal())
    for n in range(2, 40):
        streak.refuse(n, f"dead{n}@x.org", refusal(status, code))
    assert streak.ids == [1] and not streak.tripped  # neither counted nor breaking the streak
    streak.refuse(99, "b@x.org", refusal())
    assert streak.tripped and streak.ids == [1, 99]


def test_policy_refusals_still_count_toward_the_streak() -> None:
    streak = Streak(limit=3)
    for n in range(3):
        streak.refuse(n, f"r{n}@x.org", refusal("5.7.1", 550))
    assert streak.tripped
    assert not recipient_refused(refusal("5.7.1", 550))
    assert recipient_refused(refusal("5.1.1", 550))
    assert not recipient_refused(TransportResult(DeliveryState.FAILED, reply="550 no such user"))


def test_the_report_counts_by_state() -> None:
    report = DeliveryReport(elapsed=2.0)
    for delivery_id in range(4):
        report.count(DeliveryState.SENT, delivery_id)
    report.count(DeliveryState.FAILED, 10)
    report.count(DeliveryState.BOUNCED, 11)
    report.count(DeliveryState.SUPPRESSED, 12)
    assert (report.sent, report.failed, report.bounced, report.suppressed) == (4, 1, 1, 1)
    assert report.handled == 7
    assert report.rate == 2.0


def test_a_delivery_counts_once_by_its_last_state() -> None:
    report = DeliveryReport()
    report.count(DeliveryState.DEFERRED, 1)
    report.note_failure(1, "a@x.org", DeliveryState.DEFERRED, "451 later")
    report.count(DeliveryState.SENT, 1)
    report.count(DeliveryState.DEFERRED, 2)
    report.note_failure(2, "b@x.org", DeliveryState.DEFERRED, "451 later")
    report.count(DeliveryState.BOUNCED, 2)
    report.note_failure(2, "b@x.org", DeliveryState.BOUNCED, "550 5.1.1 no")
    assert (report.sent, report.deferred, report.bounced, report.handled) == (1, 0, 1, 2)
    assert report.problems == ["b@x.org: bounced: 550 5.1.1 no"]


def test_the_report_keeps_no_entry_per_sent_delivery() -> None:
    # A run of a million keeps counts, not a million ids: only deliveries whose
    # state the run may still change (deferred, refused) are remembered by id.
    report = DeliveryReport()
    for delivery_id in range(1000):
        report.count(DeliveryState.SENT, delivery_id)
    report.count(DeliveryState.DEFERRED, 2000)
    assert report.sent == 1000 and len(report.states) == 1
    report.count(DeliveryState.SENT, 2000)
    assert (report.sent, report.deferred, len(report.states)) == (1001, 0, 0)


def test_withdrawn_failures_are_no_longer_counted() -> None:
    report = DeliveryReport()
    report.count(DeliveryState.FAILED, 1)
    report.note_failure(1, "a@x.org", DeliveryState.FAILED, "554 no")
    report.count(DeliveryState.DEFERRED, 2)
    report.note_failure(2, "b@x.org", DeliveryState.DEFERRED, "451 later")
    report.withdraw([1])
    assert report.failed == 0 and report.deferred == 1
    assert [f.recipient for f in report.failures] == ["b@x.org"]
    assert report.problems == ["b@x.org: deferred: 451 later"]
