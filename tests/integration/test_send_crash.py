"""Kill ``briefing send`` midway, run it again: nobody skipped, duplicates within the stated bound.

The bound is pool size x ``delivery.unrecorded_per_connection`` (default 2: a
connection sends its next message while the last one's outcome commits).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from sqlalchemy import func, select

from briefing.config import Config
from briefing.store import Database
from briefing.store.schema import Delivery
from tests.support.delivery import AT, reader, smtp_project, status_counts, without_date
from tests.support.factories import KEY
from tests.support.smtp_server import Handler, Received, Server, smtp_server

SUBSCRIBERS = 2000
POOL = 4
UNRECORDED = 2  # delivery.unrecorded_per_connection's default


def send(config: Config) -> subprocess.Popen[str]:
    """Start ``briefing send`` in its own process, as ops would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    env["BRIEFING_SECRET_KEY"] = KEY.decode()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "briefing",
            "--config",
            str(config.base_dir / "config.yaml"),
            "send",
            "--at",
            AT.isoformat(),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def signal_after(count: int, number: signal.Signals, holder: dict[str, subprocess.Popen[str]]):  # type: ignore[no-untyped-def]
    """Return an on_message hook that signals the sender when the server holds ``count`` messages.

    It runs before the server replies 250, so for SIGKILL that message is in
    flight: taken by the server, never acknowledged to the sender.
    """
    seen = [0]

    def hook(_message: Received) -> None:
        seen[0] += 1
        if seen[0] == count and "process" in holder:
            holder["process"].send_signal(number)

    return hook


def by_recipient(server: Server) -> dict[str, list[Received]]:
    grouped: dict[str, list[Received]] = defaultdict(list)
    for message in server.handler.received:
        grouped[message.recipient].append(message)
    return grouped


def sending_rows(database: Database) -> int:
    with database.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == "sending")
            )
            or 0
        )


def test_kill_9_midway_then_rerun_finishes_with_duplicates_within_the_pool(
    tmp_path: Path,
) -> None:
    holder: dict[str, subprocess.Popen[str]] = {}
    handler = Handler(
        pipelining=True, on_message=signal_after(SUBSCRIBERS // 3, signal.SIGKILL, holder)
    )
    with smtp_server(handler) as server:
        config, database = smtp_project(
            tmp_path, server, count=SUBSCRIBERS, smtp={"pool_size": POOL}
        )
        holder["process"] = first = send(config)
        first.communicate(timeout=120)
        assert first.returncode == -signal.SIGKILL
        received_at_kill = len(server.handler.received)
        assert SUBSCRIBERS // 3 <= received_at_kill < SUBSCRIBERS
        assert status_counts(database)["sent"] < received_at_kill + 1
        holder.clear()
        # At once: the dead run's claims are taken over without waiting for its leases.
        second = send(config)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, out + err
    grouped = by_recipient(server)
    assert set(grouped) == {reader(n) for n in range(SUBSCRIBERS)}  # nobody skipped
    duplicates = {recipient: copies for recipient, copies in grouped.items() if len(copies) > 1}
    assert sum(len(copies) - 1 for copies in duplicates.values()) <= POOL * UNRECORDED
    assert duplicates, "the message in flight at the kill should have gone twice"
    for copies in duplicates.values():
        assert len({copy.message_id for copy in copies}) == 1
        assert len({without_date(copy.data) for copy in copies}) == 1
    assert status_counts(database) == {"sent": SUBSCRIBERS}
    assert sending_rows(database) == 0


def test_sigterm_finishes_in_flight_records_them_and_a_rerun_resumes(tmp_path: Path) -> None:
    holder: dict[str, subprocess.Popen[str]] = {}
    handler = Handler(on_message=signal_after(200, signal.SIGTERM, holder))
    with smtp_server(handler) as server:
        config, database = smtp_project(tmp_path, server, count=600, smtp={"pool_size": POOL})
        holder["process"] = first = send(config)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 130, out + err
        assert "stopping after the messages in flight" in err
        counts = status_counts(database)
        # Graceful: everything the server took is recorded, nothing is left claimed.
        assert counts["sent"] == len(server.handler.received) < 600
        assert counts["sent"] + counts["pending"] == 600
        assert sending_rows(database) == 0
        holder.clear()
        second = send(config)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, out + err
    grouped = by_recipient(server)
    assert {len(copies) for copies in grouped.values()} == {1} and len(grouped) == 600
    assert status_counts(database) == {"sent": 600}
