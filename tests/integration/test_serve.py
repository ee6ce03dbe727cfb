"""`briefing serve` as a real process: due now, sent once, restarted, refused, steered by ops.

The project's `scheduler.dispatch_interval` and `control_interval` are set to
1s so each test takes seconds; subscribers are due in the current minute of
their own timezone. Every wait polls for a condition with a generous bound.
"""

from __future__ import annotations

import mailbox
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from briefing.config import Config
from briefing.store import open_database
from briefing.store.schema import Delivery, Edition, Subscriber
from tests.support.factories import make_project, subscribe

KEY = "serve-test-key"
FAST = {"dispatch_interval": "1s", "control_interval": "1s"}
WAIT = 60.0


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    env["BRIEFING_SECRET_KEY"] = KEY
    return env


def briefing(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one `briefing` command in its own process, as from another terminal."""
    return subprocess.run(
        [sys.executable, "-m", "briefing", "--config", str(config.base_dir / "config.yaml"), *args],
        capture_output=True,
        text=True,
        env=environment(),
        cwd="/",
        timeout=120,
    )


class Serve:
    """A `briefing serve` process whose log is read from a file."""

    def __init__(self, config: Config, log: Path, *options: str) -> None:
        self.log_path = log
        self._log: IO[str] = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "briefing",
                "--config",
                str(config.base_dir / "config.yaml"),
                *options,
                "serve",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment(),
            cwd="/",
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, pattern: str, count: int = 1) -> str:
        """Wait until ``pattern`` appears ``count`` times in the log; return the last match."""
        deadline = time.monotonic() + WAIT
        while True:
            found = re.findall(pattern, self.text())
            if len(found) >= count:
                return str(found[-1])
            assert self.process.poll() is None, f"serve exited early:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {pattern!r} in the log:\n{self.text()}"
            time.sleep(0.1)

    def stop(self) -> int:
        """Send SIGTERM and wait for the process to end; return its exit status."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=WAIT)
        self._log.close()
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)
        self._log.close()


@pytest.fixture
def serves(tmp_path: Path) -> Iterator[list[Serve]]:
    """Collect started services and kill any left running by a failed test."""
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.kill()


def start(serves: list[Serve], config: Config, *options: str) -> Serve:
    serve = Serve(config, config.base_dir / f"serve-{len(serves)}.log", *options)
    serves.append(serve)
    return serve


def due_now(email: str, timezone: str) -> str:
    """A subscriber row whose send time is the current minute in ``timezone``."""
    return f"{email},,daily,,{timezone},{datetime.now(ZoneInfo(timezone)):%H:%M},daily"


def subscribe_earlier(config: Config, rows: list[str]) -> None:
    """Import rows as if imported an hour ago, so today's send time counts for them."""
    database = open_database(config.database)
    subscribe(config, database, rows, datetime.now(UTC) - timedelta(hours=1))
    database.dispose()


def outbox(config: Config) -> Counter[str]:
    box = mailbox.Maildir(str(config.outbox_path), create=True)
    return Counter(str(box.get_message(key)["To"]) for key in box.iterkeys())


def sent_times(config: Config) -> dict[str, tuple[datetime, datetime]]:
    """Return email -> (scheduled at, sent at) of the sent deliveries."""
    database = open_database(config.database)
    with database.transaction() as session:
        rows = session.execute(
            select(Subscriber.email, Edition.scheduled_at, Delivery.sent_at)
            .join(Edition, Edition.subscriber_id == Subscriber.id)
            .join(Delivery, Delivery.edition_id == Edition.id)
            .where(Delivery.status == "sent")
        ).all()
    database.dispose()
    return {email: (scheduled, sent) for email, scheduled, sent in rows}


def test_due_now_goes_once_through_a_restart(tmp_path: Path, serves: list[Serve]) -> None:
    config = make_project(tmp_path, scheduler=FAST)
    subscribe_earlier(
        config,
        [
            due_now("kol@example.com", "Asia/Kolkata"),
            due_now("nyc@example.com", "America/New_York"),
        ],
    )
    first = start(serves, config)
    first.wait_for(r"start-up catch-up: 2 edition\(s\) dispatched \(2 pending, .*\), 2 sent")
    assert outbox(config) == {"kol@example.com": 1, "nyc@example.com": 1}
    for scheduled, sent in sent_times(config).values():
        assert scheduled <= sent < scheduled + timedelta(minutes=2)
    assert first.stop() == 0
    log = first.text()
    assert "serve stopping on SIGTERM: letting the running job finish" in log
    assert "serve stopped; scheduler lock released" in log
    assert " ERROR " not in log and " WARNING " not in log  # a clean stop is no error

    second = start(serves, config)
    second.wait_for(r"start-up catch-up: 0 edition\(s\) dispatched .*, 0 sent")
    second.wait_for(r"serve started")
    assert second.stop() == 0
    assert outbox(config) == {"kol@example.com": 1, "nyc@example.com": 1}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_second_serve_refuses_and_the_lock_dies_with_the_first(
    tmp_path: Path, serves: list[Serve], request: pytest.FixtureRequest, backend: str
) -> None:
    extra = (
        {"database_url": request.getfixturevalue("postgres_url")} if backend == "postgresql" else {}
    )
    config = make_project(tmp_path, scheduler=FAST, **extra)
    first = start(serves, config)
    first.wait_for(r"serve started")
    refused = briefing(config, "serve")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "error: another `briefing serve` is already running on" in refused.stderr
    assert f"pid {first.pid}" in refused.stderr
    assert "hint: Only one `briefing serve` may run per database" in refused.stderr
    assert "Traceback" not in refused.stderr
    first.kill()  # SIGKILL: the lock must go with the process
    third = start(serves, config)
    third.wait_for(r"serve started")
    assert third.stop() == 0


def test_serve_stops_when_its_lock_file_is_deleted(tmp_path: Path, serves: list[Serve]) -> None:
    config = make_project(tmp_path, scheduler=FAST)
    serve = start(serves, config)
    serve.wait_for(r"serve started")
    (config.base_dir / "var" / "briefing.db.scheduler.lock").unlink()
    # A new scheduler could now lock a new file: this one must not keep running beside it.
    assert serve.process.wait(timeout=WAIT) == 1
    assert "error: lost the file lock" in serve.text()


def test_pause_resume_and_run_now_from_another_terminal(
    tmp_path: Path, serves: list[Serve]
) -> None:
    config = make_project(tmp_path, scheduler=FAST)
    later = datetime.now(ZoneInfo("Europe/London")) + timedelta(hours=6)
    subscribe_earlier(config, [f"later@example.com,,daily,,Europe/London,{later:%H:%M},daily"])
    # --debug logs every dispatch run, so the test can count them.
    serve = start(serves, config, "--debug")
    serve.wait_for(r"start-up catch-up: 0 edition\(s\) dispatched")

    paused = briefing(config, "pause", "daily")
    assert paused.returncode == 0 and "paused daily" in paused.stdout
    assert f"scheduler: briefing serve pid {serve.pid}" in paused.stdout
    serve.wait_for(r"briefing daily: paused by \S+ at")
    subscribe_earlier(config, [due_now("due@example.com", "Europe/London")])
    runs = len(re.findall(r"dispatch at ", serve.text()))
    serve.wait_for(r"dispatch at ", count=runs + 2)
    assert outbox(config) == {}
    assert "due@example.com" not in sent_times(config)

    refused = briefing(config, "run-now", "daily")
    assert refused.returncode == 1 and "daily is paused" in refused.stderr

    resumed = briefing(config, "resume", "daily")
    assert resumed.returncode == 0
    assert "the next dispatch sends 1 edition(s) still before the deadline" in resumed.stdout
    serve.wait_for(r"briefing daily: delivered 1 sent")
    assert outbox(config) == {"due@example.com": 1}

    ran = briefing(config, "run-now", "daily")
    assert ran.returncode == 0, ran.stderr
    assert (
        f"asked the running scheduler to run daily now: briefing serve pid {serve.pid}"
        in ran.stdout
    )
    assert "done: 1 edition(s) dispatched since the request: 1 sent" in ran.stdout
    assert outbox(config) == {"due@example.com": 1, "later@example.com": 1}
    assert re.search(
        r"briefing daily: run-now requested at .* done: 1 edition\(s\) dispatched, "
        r"1 sent",
        serve.text(),
    )
    assert serve.stop() == 0
