"""``briefing deliver`` workers side by side on one PostgreSQL ledger; serve without delivery.

Two real worker processes drain one ledger into the real test SMTP server;
one is killed with SIGKILL midway. Its claims lapse by the database's clock
and the survivor takes them over: nobody is skipped, every delivery ends in
a final state, and duplicates stay within the stated bound (the dead
worker's connections x ``delivery.unrecorded_per_connection``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from briefing.cli import cli
from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.ops.scheduler import Service
from briefing.store import Database
from briefing.store.ledger import claim
from briefing.store.processes import live_processes
from briefing.store.schema import Delivery, DeliveryAttempt
from tests.support.delivery import AT, reader, smtp_project, status_counts, without_date
from tests.support.factories import KEY
from tests.support.smtp_server import Handler, Received, Rule, smtp_server

SUBSCRIBERS = 80
POOL = 2
UNRECORDED = 2


def worker(config: Config, *extra: str) -> subprocess.Popen[str]:
    """Start ``briefing deliver`` in its own process, as systemd would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    env["BRIEFING_SECRET_KEY"] = KEY.decode()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "briefing",
            "--config",
            str(config.base_dir / "config.yaml"),
            "deliver",
            "--at",
            AT.isoformat(),
            "--poll",
            "0.2",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def holds_claims(database: Database, pid: int) -> bool:
    with database.transaction() as session:
        return bool(
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status == "sending", Delivery.owner.like(f"%:{pid}:%"))
            )
        )


def open_rows(database: Database) -> int:
    with database.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status.in_(["pending", "sending", "deferred"]))
            )
            or 0
        )


def test_two_workers_one_killed_the_other_takes_over_after_the_lease(
    tmp_path: Path, postgres_url: str
) -> None:
    workers: dict[str, subprocess.Popen[str]] = {}
    # A little time on the wire per message, so both workers are busy when one dies.
    handler = Handler(default=Rule(delay=0.1))
    with smtp_server(handler) as server:
        config, database = smtp_project(
            tmp_path,
            server,
            count=SUBSCRIBERS,
            database_url=postgres_url,
            smtp={"pool_size": POOL},
            batch_size=8,
            lease=5,
            heartbeat=0.5,
            unrecorded_per_connection=UNRECORDED,
        )
        try:
            workers["a"] = first = worker(config)
            workers["b"] = second = worker(config)
            # Kill the first once both hold claims: it dies with messages claimed and in flight.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                holds_claims(database, process.pid) for process in (first, second)
            ):
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            assert first.returncode == -signal.SIGKILL
            with database.transaction() as session:
                # Claims are named host:pid:random; the dead worker's are still "sending".
                held = set(
                    session.scalars(
                        select(Delivery.id).where(
                            Delivery.status == "sending",
                            Delivery.owner.like(f"%:{first.pid}:%"),
                        )
                    )
                )
            assert held, "the killed worker held claims at its death"
            # The survivor drains the rest, then the dead worker's claims once their lease ends.
            deadline = time.monotonic() + 90
            while open_rows(database) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert open_rows(database) == 0, status_counts(database)
            with database.transaction() as session:
                # The dead worker's last heartbeat is at least a lease (5 s) old by now.
                alive = live_processes(session, stale=timedelta(seconds=3))
            # The killed worker's row is stale by now; the survivor's is fresh.
            assert [row.pid for row in alive] == [second.pid]
            second.send_signal(signal.SIGTERM)
            out, err = second.communicate(timeout=60)
            assert second.returncode == 130, out + err
        finally:
            for process in workers.values():
                if process.poll() is None:
                    process.kill()
                    process.communicate()
    grouped: dict[str, list[Received]] = {}
    for message in server.handler.received:
        grouped.setdefault(message.recipient, []).append(message)
    assert set(grouped) == {reader(n) for n in range(SUBSCRIBERS)}  # nobody lost
    duplicates = sum(len(copies) - 1 for copies in grouped.values())
    assert duplicates <= POOL * UNRECORDED, duplicates
    for copies in grouped.values():
        assert len({copy.message_id for copy in copies}) == 1
        assert len({without_date(copy.data) for copy in copies}) == 1
    assert status_counts(database) == {"sent": SUBSCRIBERS}
    with database.transaction() as session:
        # What the dead worker held was sent by the survivor, after the lease lapsed.
        rows = session.execute(
            select(DeliveryAttempt.delivery_id, DeliveryAttempt.owner)
            .where(DeliveryAttempt.delivery_id.in_(held), DeliveryAttempt.outcome == "sent")
            .order_by(DeliveryAttempt.id)
        ).all()
        finishers: dict[int, str] = {row[0]: row[1] for row in rows}
    assert set(finishers) == held
    assert all(f":{second.pid}:" in owner for owner in finishers.values())
    database.dispose()


def test_a_skewed_worker_clock_cannot_take_a_live_lease_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    with smtp_server(Handler()) as server:
        _, database = smtp_project(tmp_path, server, count=4, database_url=postgres_url)
    with database.transaction() as session:
        mine = claim(session, "worker-a", AT, 2, lease=timedelta(seconds=1))
    assert len(mine) == 2
    with database.transaction() as session:
        # Its clock is a week ahead: by it, worker-a's lease ended long ago. Not by the server's.
        later = AT + timedelta(days=7)
        taken = claim(session, "worker-b", later, 10, lease=timedelta(minutes=5))
    assert not set(taken) & set(mine) and len(taken) == 2
    time.sleep(1.2)
    with database.transaction() as session:
        assert sorted(claim(session, "worker-c", AT, 10, lease=timedelta(minutes=5))) == mine
    database.dispose()


def test_serve_without_delivery_dispatches_and_a_worker_sends(tmp_path: Path) -> None:
    with smtp_server(Handler()) as server:
        config, database = smtp_project(tmp_path, server, count=0)
        # Subscribers exist but nothing is dispatched yet: serve --no-deliver dispatches only.
        from tests.support.delivery import subscribe

        subscribe(config, database, [reader(n) for n in range(5)])
        service = Service(config, database, Signer([KEY]), clock=lambda: AT, deliver=False)
        tick = service.dispatch_due()
        assert sum(r.pending for r in tick.dispatched.values()) == 5
        assert tick.drain.delivered == {}
        assert status_counts(database) == Counter({"pending": 5})
        assert server.handler.received == []
        result = CliRunner().invoke(
            cli,
            [
                "--config",
                str(config.base_dir / "config.yaml"),
                "deliver",
                "--exit-when-idle",
                "--at",
                AT.isoformat(),
            ],
            env={"BRIEFING_SECRET_KEY": KEY.decode()},
        )
    assert result.exit_code == 0, result.output
    assert "worker done: 5 sent" in result.output
    assert status_counts(database) == Counter({"sent": 5})
    assert sorted(m.recipient for m in server.handler.received) == sorted(
        reader(n) for n in range(5)
    )
    with database.transaction() as session:
        assert live_processes(session, stale=timedelta(minutes=1)) == []  # removed at exit


def test_async_outcome_commits_record_every_outcome_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    with smtp_server(Handler()) as server:
        config, database = smtp_project(
            tmp_path, server, count=12, database_url=postgres_url, outcome_commit="async"
        )
        result = CliRunner().invoke(
            cli,
            [
                "--config",
                str(config.base_dir / "config.yaml"),
                "deliver",
                "--exit-when-idle",
                "--at",
                AT.isoformat(),
            ],
            env={"BRIEFING_SECRET_KEY": KEY.decode()},
        )
    assert result.exit_code == 0, result.output
    assert status_counts(database) == Counter({"sent": 12})
    assert len(server.handler.received) == 12
    database.dispose()
