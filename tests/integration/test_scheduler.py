"""The scheduler's jobs on a controlled clock: local times, DST, downtime, pause, run-now."""

from __future__ import annotations

import logging
import mailbox
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ops.controls import clear_run_now, control_of, pause, request_run_now, resume
from briefing.ops.locks import acquire_scheduler_lock
from briefing.ops.scheduler import Service
from briefing.store import Database, open_database
from briefing.store.schema import Delivery, Edition, Subscriber
from tests.support.factories import KEY, config_dict, make_project, subscribe

LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ledger(database: Database) -> dict[tuple[str, str], tuple[str, datetime | None]]:
    """Return (email, issue date) -> (delivery status, sent at)."""
    with database.transaction() as session:
        rows = session.execute(
            select(Subscriber.email, Edition.issue_date, Delivery.status, Delivery.sent_at)
            .join(Edition, Edition.subscriber_id == Subscriber.id)
            .join(Delivery, Delivery.edition_id == Edition.id)
        ).all()
    return {(email, str(day)): (status, sent) for email, day, status, sent in rows}


def outbox(config: Config) -> Counter[str]:
    """Count the messages in the outbox per recipient."""
    box = mailbox.Maildir(str(config.outbox_path), create=True)
    return Counter(str(box.get_message(key)["To"]) for key in box.iterkeys())


def other_process(config: Config) -> Database:
    """Open the same database through its own engine, as `briefing pause` would."""
    return open_database(config.database)


@pytest.fixture
def daily(tmp_path: Path) -> Config:
    """A project whose `daily` briefing sends even when nothing is new (timing tests)."""
    briefings = config_dict()["briefings"]
    briefings["daily"]["skip_if_empty"] = False
    return make_project(tmp_path, briefings=briefings)


@pytest.fixture
def service(daily: Config, database: Database, signer: Signer) -> Iterator[Service]:
    yield Service(daily, database, signer)


def run_ticks(service: Service, start: datetime, end: datetime, step: timedelta) -> None:
    """Start the service at ``start`` and run its dispatch at every ``step`` until ``end``."""
    with time_machine.travel(start, tick=False) as traveller:
        service.start_up()
        moment = start + step
        while moment < end:
            traveller.move_to(moment)
            service.dispatch_due()
            moment += step


SUBSCRIBERS = [
    "ldn@example.com,,daily,,Europe/London,07:00,daily",
    "night@example.com,,daily,,Europe/London,01:30,daily",
    "nyc@example.com,,daily,,America/New_York,07:00,weekdays",
    "kol@example.com,,daily,,Asia/Kolkata,06:30,weekly:sun",
]


def test_spring_forward_week(service: Service, daily: Config, database: Database) -> None:
    # 29 March 2026: London jumps from 01:00 GMT to 02:00 BST (New York changed on 8 March).
    subscribe(daily, database, SUBSCRIBERS, LONG_AGO)
    run_ticks(service, utc(2026, 3, 27), utc(2026, 3, 31), timedelta(minutes=30))
    sent = {key: at for key, (status, at) in ledger(database).items() if status == "sent"}
    assert sent == {
        ("ldn@example.com", "2026-03-27"): utc(2026, 3, 27, 7),  # 07:00 GMT
        ("ldn@example.com", "2026-03-28"): utc(2026, 3, 28, 7),
        ("ldn@example.com", "2026-03-29"): utc(2026, 3, 29, 6),  # 07:00 BST
        ("ldn@example.com", "2026-03-30"): utc(2026, 3, 30, 6),
        ("night@example.com", "2026-03-27"): utc(2026, 3, 27, 1, 30),
        ("night@example.com", "2026-03-28"): utc(2026, 3, 28, 1, 30),
        # 01:30 does not exist on the 29th: the first valid minute is 02:00 BST.
        ("night@example.com", "2026-03-29"): utc(2026, 3, 29, 1),
        ("night@example.com", "2026-03-30"): utc(2026, 3, 30, 0, 30),
        ("nyc@example.com", "2026-03-27"): utc(2026, 3, 27, 11),  # Friday, then Monday
        ("nyc@example.com", "2026-03-30"): utc(2026, 3, 30, 11),
        ("kol@example.com", "2026-03-29"): utc(2026, 3, 29, 1),  # Sunday 06:30 IST
    }
    expired = sorted(key for key, (status, _) in ledger(database).items() if status == "expired")
    # Started on the 27th at 00:00 UTC: the previous editions had passed their deadline.
    assert expired == [
        ("ldn@example.com", "2026-03-26"),
        ("night@example.com", "2026-03-26"),
        ("nyc@example.com", "2026-03-25"),
        ("nyc@example.com", "2026-03-26"),
    ]
    assert outbox(daily) == {
        "ldn@example.com": 4,
        "night@example.com": 4,
        "nyc@example.com": 2,
        "kol@example.com": 1,
    }


def test_autumn_fold_week(service: Service, daily: Config, database: Database) -> None:
    # 25 October 2026: 01:00-02:00 happens twice in London (BST, then GMT).
    subscribe(daily, database, SUBSCRIBERS, LONG_AGO)
    run_ticks(service, utc(2026, 10, 24, 0, 15), utc(2026, 10, 27), timedelta(minutes=15))
    sent = {key: at for key, (status, at) in ledger(database).items() if status == "sent"}
    assert sent == {
        ("ldn@example.com", "2026-10-24"): utc(2026, 10, 24, 6),  # 07:00 BST
        ("ldn@example.com", "2026-10-25"): utc(2026, 10, 25, 7),  # 07:00 GMT
        ("ldn@example.com", "2026-10-26"): utc(2026, 10, 26, 7),
        ("night@example.com", "2026-10-24"): utc(2026, 10, 24, 0, 30),
        # The first 01:30 of the 25th, once; the second 01:30 (01:30 UTC) sends nothing.
        ("night@example.com", "2026-10-25"): utc(2026, 10, 25, 0, 30),
        ("night@example.com", "2026-10-26"): utc(2026, 10, 26, 1, 30),
        ("nyc@example.com", "2026-10-26"): utc(2026, 10, 26, 11),  # New York is still on EDT
        ("kol@example.com", "2026-10-25"): utc(2026, 10, 25, 1),
    }
    assert outbox(daily)["night@example.com"] == 3


def test_nothing_before_the_local_minute(
    service: Service, daily: Config, database: Database
) -> None:
    subscribe(daily, database, ["ldn@example.com,,daily,,Europe/London,07:00,daily"], LONG_AGO)
    with time_machine.travel(utc(2026, 11, 26, 6, 59, 59), tick=False) as traveller:
        service.start_up()
        assert ("ldn@example.com", "2026-11-26") not in ledger(database)
        traveller.move_to(utc(2026, 11, 26, 7, 0, 0))
        service.dispatch_due()
    assert ledger(database)[("ldn@example.com", "2026-11-26")] == ("sent", utc(2026, 11, 26, 7))


def test_downtime_before_the_deadline_sends_at_start_up_once(
    daily: Config, database: Database, signer: Signer
) -> None:
    subscribe(daily, database, ["ldn@example.com,,daily,,Europe/London,07:00,daily"], LONG_AGO)
    # Down at 07:00, back at 09:00; the deadline is 3h.
    with time_machine.travel(utc(2026, 11, 26, 9), tick=False) as traveller:
        Service(daily, database, signer).start_up()
        assert ledger(database)[("ldn@example.com", "2026-11-26")] == ("sent", utc(2026, 11, 26, 9))
        traveller.move_to(utc(2026, 11, 26, 9, 5))
        restarted = Service(daily, database, signer)
        restarted.start_up()
        restarted.dispatch_due()
    assert outbox(daily) == {"ldn@example.com": 1}


def test_downtime_past_the_deadline_expires_and_reports(
    daily: Config, database: Database, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe(daily, database, ["ldn@example.com,,daily,,Europe/London,07:00,daily"], LONG_AGO)
    caplog.set_level(logging.INFO, logger="briefing")
    with time_machine.travel(utc(2026, 11, 26, 10, 30), tick=False):  # 07:00 + 3h has passed
        Service(daily, database, signer).start_up()
    assert ledger(database)[("ldn@example.com", "2026-11-26")] == ("expired", None)
    assert outbox(daily) == {}
    assert (
        "briefing daily, edition 2026-11-26: dispatched 0 pending, 0 skipped, 0 suppressed, "
        "1 expired" in caplog.text
    )
    assert (
        "start-up catch-up: 2 edition(s) dispatched (0 pending, 0 skipped, 0 suppressed, "
        "2 expired), 0 sent" in caplog.text
    )


def test_pause_from_another_process_then_resume_before_the_deadline(
    service: Service, daily: Config, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe(daily, database, ["ldn@example.com,,daily,,Europe/London,07:00,daily"], LONG_AGO)
    caplog.set_level(logging.INFO, logger="briefing")
    ops = other_process(daily)
    with time_machine.travel(utc(2026, 11, 26, 6, 50), tick=False) as traveller:
        service.start_up()
        pause(ops, "daily", utc(2026, 11, 26, 6, 55), by="ops@desk")
        traveller.move_to(utc(2026, 11, 26, 7))
        service.dispatch_due()
        traveller.move_to(utc(2026, 11, 26, 7, 30))
        service.dispatch_due()
        assert ("ldn@example.com", "2026-11-26") not in ledger(database)
        assert "briefing daily: paused by ops@desk at 2026-11-26 06:55:00 UTC" in caplog.text
        resume(ops, "daily", utc(2026, 11, 26, 8))
        traveller.move_to(utc(2026, 11, 26, 8))
        service.dispatch_due()
    assert ledger(database)[("ldn@example.com", "2026-11-26")] == ("sent", utc(2026, 11, 26, 8))
    assert "briefing daily: resumed" in caplog.text
    ops.dispose()


def test_resume_past_the_deadline_sends_nothing(
    service: Service, daily: Config, database: Database
) -> None:
    subscribe(daily, database, ["ldn@example.com,,daily,,Europe/London,07:00,daily"], LONG_AGO)
    pause(database, "daily", utc(2026, 11, 26, 6), by="ops@desk")
    with time_machine.travel(utc(2026, 11, 26, 7), tick=False) as traveller:
        service.start_up()
        resume(database, "daily", utc(2026, 11, 26, 10, 30))
        traveller.move_to(utc(2026, 11, 26, 10, 30))
        service.dispatch_due()
    assert ledger(database)[("ldn@example.com", "2026-11-26")] == ("expired", None)
    assert outbox(daily) == {}


def test_pause_holds_back_what_was_already_dispatched(
    service: Service, daily: Config, database: Database, signer: Signer
) -> None:
    subscribe(daily, database, ["ldn@example.com,,daily,,Europe/London,07:00,daily"], LONG_AGO)
    # Dispatched (by `briefing send`, say) just before ops paused: the ledger holds it pending.
    assert dispatch(daily, database, signer, utc(2026, 11, 26, 7)).pending == 1
    pause(database, "daily", utc(2026, 11, 26, 7), by="ops@desk")
    with time_machine.travel(utc(2026, 11, 26, 7, 1), tick=False) as traveller:
        service.dispatch_due()
        assert ledger(database)[("ldn@example.com", "2026-11-26")] == ("pending", None)
        resume(database, "daily", utc(2026, 11, 26, 7, 2))
        traveller.move_to(utc(2026, 11, 26, 7, 2))
        service.dispatch_due()
    assert ledger(database)[("ldn@example.com", "2026-11-26")][0] == "sent"


def test_run_now_request_is_taken_once(
    service: Service, daily: Config, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe(
        daily,
        database,
        [
            "ldn@example.com,,daily,,Europe/London,07:00,daily",
            "nyc@example.com,,daily,,America/New_York,07:00,daily",
        ],
        LONG_AGO,
    )
    caplog.set_level(logging.INFO, logger="briefing")
    ops = other_process(daily)
    with time_machine.travel(utc(2026, 11, 26, 5), tick=False) as traveller:
        service.start_up()
        assert service.take_run_now_requests() == []
        request_run_now(ops, "daily", utc(2026, 11, 26, 5))
        (ran,) = service.take_run_now_requests()
        assert ran.dispatched.pending == 2
        assert control_of(ops, "daily").run_now_requested_at is None
        assert service.take_run_now_requests() == []
        traveller.move_to(utc(2026, 11, 26, 7))  # London's own send time: already has today's
        service.dispatch_due()
        traveller.move_to(utc(2026, 11, 26, 12))
        service.dispatch_due()
    book = ledger(database)
    assert book[("ldn@example.com", "2026-11-26")] == ("sent", utc(2026, 11, 26, 5))
    # 05:00 UTC is midnight in New York: run-now sent the 26th, and 07:00 EST adds nothing.
    assert book[("nyc@example.com", "2026-11-26")] == ("sent", utc(2026, 11, 26, 5))
    assert outbox(daily) == {"ldn@example.com": 1, "nyc@example.com": 1}
    assert (
        "briefing daily: run-now requested at 2026-11-26 05:00:00 UTC done: 2 edition(s) "
        "dispatched, 2 sent" in caplog.text
    )
    ops.dispose()


@pytest.mark.parametrize(
    ("paused", "requested", "reason"),
    [
        (True, utc(2026, 11, 26, 5), "the briefing is paused"),
        (False, utc(2026, 11, 26, 1), "older than the briefing's deadline (3h)"),
    ],
)
def test_run_now_request_dropped(
    service: Service,
    daily: Config,
    database: Database,
    caplog: pytest.LogCaptureFixture,
    paused: bool,
    requested: datetime,
    reason: str,
) -> None:
    subscribe(daily, database, ["ldn@example.com,,daily,,Europe/London,07:00,daily"], LONG_AGO)
    if paused:
        pause(database, "daily", utc(2026, 11, 26, 5), by="ops@desk")
    request_run_now(database, "daily", requested)
    with time_machine.travel(utc(2026, 11, 26, 5), tick=False):
        assert service.take_run_now_requests() == []
    assert ledger(database) == {}
    assert control_of(database, "daily").run_now_requested_at is None
    assert (
        f"briefing daily: run-now requested at {requested:%Y-%m-%d %H:%M:%S} UTC dropped: "
        f"{reason}" in caplog.text
    )


def test_a_newer_run_now_request_is_not_cleared_by_the_older(database: Database) -> None:
    request_run_now(database, "daily", utc(2026, 11, 26, 5))
    first = control_of(database, "daily").run_now_requested_at
    assert first is not None
    request_run_now(database, "daily", utc(2026, 11, 26, 5, 1))
    assert not clear_run_now(database, "daily", first, utc(2026, 11, 26, 5, 2))
    assert control_of(database, "daily").run_now_requested_at == utc(2026, 11, 26, 5, 1)


def test_one_failing_briefing_does_not_stop_the_others(
    tmp_path: Path, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    briefings = config_dict()["briefings"]
    briefings["broken"] = {
        **briefings["daily"],
        "list_id": "broken.news.example.org",
        "subject": "{{ title",
    }
    config = make_project(tmp_path, briefings=briefings)
    database = open_database(config.database)
    subscribe(
        config,
        database,
        [
            "ldn@example.com,,daily,,Europe/London,07:00,daily",
            "ldn@example.com,,broken,,Europe/London,07:00,daily",
        ],
        LONG_AGO,
    )
    with time_machine.travel(utc(2026, 11, 26, 7), tick=False):
        service = Service(config, database, signer)
        service.ingest_sources()
        tick = service.dispatch_due()
    assert "subject template" in tick.failures["broken"]
    assert tick.drain.delivered["daily"].sent == 1
    assert "briefing broken: dispatch failed: subject template" in caplog.text
    database.dispose()


def test_start_up_ingests_before_dispatching(
    daily: Config, database: Database, signer: Signer
) -> None:
    subscribe(daily, database, ["ldn@example.com,,daily,world,Europe/London,07:00,daily"], LONG_AGO)
    with time_machine.travel(utc(2026, 11, 26, 7, 30), tick=False):
        Service(daily, database, signer).start_up()
    with database.transaction() as session:
        edition = session.scalars(select(Edition).where(Edition.variant_id.is_not(None))).one()
        assert edition.variant is not None and edition.variant.item_count == 3


def test_a_clean_stop_mid_delivery_is_logged_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from briefing.ops.scheduler import drain_ledger
    from tests.support.delivery import AT, reader, smtp_project
    from tests.support.smtp_server import Handler, Rule, smtp_server

    caplog.set_level(logging.INFO, logger="briefing")
    slow = Handler(rules={reader(n): Rule(delay=0.5) for n in range(6)})
    with smtp_server(slow) as server:
        config, database = smtp_project(tmp_path, server, count=6)
        stop = threading.Event()  # what serve sets on SIGTERM or SIGINT
        timer = threading.Timer(0.3, stop.set)
        timer.start()
        drain = drain_ledger(config, database, Signer([KEY]), ["daily"], lambda: AT, stop)
        timer.cancel()
    assert drain.delivered["daily"].stopped
    assert "briefing daily: delivery stopped for shutdown" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_long_job_logs_one_line_per_overrun(caplog: pytest.LogCaptureFixture) -> None:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
    from apscheduler.schedulers.background import BackgroundScheduler

    from briefing.ops.scheduler import Overruns

    caplog.set_level(logging.DEBUG)
    # In-process CLI tests leave the "briefing" logger at INFO (serve and web set it so).
    caplog.set_level(logging.DEBUG, logger="briefing")
    overruns = Overruns()
    scheduler = BackgroundScheduler(
        logger=overruns.logger,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=UTC,
    )
    ended = threading.Event()

    def long_job() -> None:
        if not ended.is_set():  # only the first run is long: one overrun
            time.sleep(1.5)
            ended.set()

    scheduler.add_job(long_job, "interval", seconds=0.2, id="dispatch", name="dispatch")
    scheduler.add_listener(overruns.finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    try:
        assert ended.wait(10)
        # The end is logged by the listener once the job returns; a loaded machine may take a while.
        deadline = time.monotonic() + 10
        while not re.search(r"job dispatch ended after", caplog.text):
            assert time.monotonic() < deadline, "the end of the overrun was never logged"
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert "maximum number of running instances" not in caplog.text
    overrun = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert overrun == [
        "job dispatch is still running at its next start; starts are skipped until it ends"
    ]
    assert re.search(r"job dispatch ended after \d+ skipped start\(s\)", caplog.text)


def test_run_now_reports_a_run_the_scheduler_did_not_finish(
    service: Service, daily: Config, database: Database
) -> None:
    # `briefing serve` took the request and was told to stop half-way: the ledger still
    # holds the editions, and run-now must say so and fail, not print "done".
    subscribe(
        daily,
        database,
        [f"r{n}@example.com,,daily,,Europe/London,07:00,daily" for n in range(3)],
        LONG_AGO,
    )
    lock = acquire_scheduler_lock(database)
    try:
        command = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "briefing",
                "--config",
                str(daily.base_dir / "config.yaml"),
                "run-now",
                "daily",
                "--wait",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "BRIEFING_SECRET_KEY": KEY.decode()},
            cwd="/",
        )
        service.stopping.set()
        deadline = time.monotonic() + 60
        ran: list[object] = []
        while not ran and time.monotonic() < deadline and command.poll() is None:
            ran = list(service.take_run_now_requests())
            time.sleep(0.1)
        lock.release()
        out, err = command.communicate(timeout=60)
    finally:
        if command.poll() is None:
            command.kill()
        lock.release()
    assert ran, (out, err)
    assert command.returncode == 1, (out, err)
    assert "not finished: 3 edition(s) dispatched since the request: 3 pending" in out
    assert "done" not in out
    assert "the run did not finish: 3 edition(s) still to send" in err
