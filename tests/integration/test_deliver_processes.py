"""Delivery in several processes on one machine (``delivery.processes``).

Real child processes (spawned by ``briefing send``) share one ledger and the
real test SMTP server: every reader gets one copy, each child claims under
its own name, a stop reaches all of them, and a child or a supervisor killed
with SIGKILL loses nothing (a child's duplicates stay within its connections
x ``unrecorded_per_connection``).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select

from briefing.cli import cli
from briefing.config import Config
from briefing.deliver.dkim import DkimSigner
from briefing.deliver.parallel import PARALLEL_FROM, process_count, split
from briefing.domain.tokens import Purpose, Signer
from briefing.ops.scheduler import drain_ledger
from briefing.store import Database
from briefing.store.ledger import claim_order
from briefing.store.schema import Delivery, DeliveryAttempt
from tests.support.delivery import AT, reader, smtp_project, status_counts, without_date
from tests.support.factories import KEY
from tests.support.smtp_server import Handler, Received, Rule, Server, smtp_server

SUBSCRIBERS = 60
POOL = 4
UNRECORDED = 2


def project(
    tmp_path: Path, server: Server, database_url: str | None = None, **delivery: object
) -> tuple[Config, Database]:
    settings: dict[str, object] = {
        "processes": 2,
        "batch_size": 5,
        "unrecorded_per_connection": UNRECORDED,
    }
    settings.update(delivery)
    return smtp_project(
        tmp_path,
        server,
        count=SUBSCRIBERS,
        database_url=database_url,
        smtp={"pool_size": POOL},
        **settings,
    )


def send_args(config: Config) -> list[str]:
    return ["--config", str(config.base_dir / "config.yaml"), "send", "--at", AT.isoformat()]


@contextmanager
def sending(config: Config) -> Iterator[subprocess.Popen[str]]:
    """Run ``briefing send`` in its own process, as cron would; kill it if the block fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    env["BRIEFING_SECRET_KEY"] = KEY.decode()
    process = subprocess.Popen(
        [sys.executable, "-m", "briefing", *send_args(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def claimers(database: Database) -> set[int]:
    """Return the pids of the processes holding live claims (owners are host:pid:random).

    A claim handed back is ``pending`` again, or ``sending`` with its lease ended (a
    dead owner's, which any run may take at once).
    """
    with database.transaction() as session:
        owners = session.scalars(
            select(Delivery.owner)
            .where(Delivery.status == "sending", Delivery.lease_until > datetime.now(UTC))
            .distinct()
        )
        return {int(owner.split(":")[1]) for owner in owners if owner}


def wait_for_claimers(database: Database, count: int, timeout: float = 60) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(pids := claimers(database)) >= count:
            return pids
        time.sleep(0.02)
    raise AssertionError(
        f"fewer than {count} processes ever held claims: {status_counts(database)}"
    )


def copies(received: list[Received]) -> dict[str, list[Received]]:
    grouped: dict[str, list[Received]] = {}
    for message in received:
        grouped.setdefault(message.recipient, []).append(message)
    return grouped


def assert_each_reader_once(received: list[Received], database: Database) -> None:
    """Every reader got exactly one copy, and the ledger says every delivery was sent."""
    grouped = copies(received)
    assert sorted(grouped) == sorted(reader(n) for n in range(SUBSCRIBERS))
    assert all(len(messages) == 1 for messages in grouped.values())
    assert status_counts(database) == Counter({"sent": SUBSCRIBERS})


def sent_by(database: Database) -> Counter[str]:
    """Count sent attempts by owner."""
    with database.transaction() as session:
        owners = session.scalars(
            select(DeliveryAttempt.owner).where(DeliveryAttempt.outcome == "sent")
        )
        return Counter(owners)


def send_again(config: Config) -> str:
    result = CliRunner().invoke(cli, send_args(config), env={"BRIEFING_SECRET_KEY": KEY.decode()})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_deliver_every_message_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    with smtp_server(Handler(default=Rule(delay=0.01))) as server:
        config, database = project(tmp_path, server, url)
        output = send_again(config)
    assert "60 sent" in output and "(2 processes)" in output, output
    assert_each_reader_once(server.handler.received, database)
    owners = sent_by(database)
    # Two children, neither of them this (the supervising) process, each with its share.
    assert len(owners) == 2, owners
    assert all(f":{os.getpid()}:" not in owner for owner in owners)
    assert all(count > 0 for count in owners.values())
    database.dispose()


def test_sigterm_stops_every_process_and_a_second_send_finishes(tmp_path: Path) -> None:
    with smtp_server(Handler(default=Rule(delay=0.1))) as server:
        config, database = project(tmp_path, server)
        with sending(config) as process:
            children = wait_for_claimers(database, 2)
            assert process.pid not in children
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
        assert process.returncode == 130, out + err
        assert "stopped on request" in err
        # Every claim was handed back (pending again) or settled: nothing waits for a lease.
        left = status_counts(database)
        assert set(left) <= {"sent", "pending"} and left["pending"] > 0, left
        assert claimers(database) == set()
        output = send_again(config)
    assert f"{left['pending']} sent" in output, output
    assert_each_reader_once(server.handler.received, database)  # a clean stop: no duplicate
    database.dispose()


def test_a_child_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    with smtp_server(Handler(default=Rule(delay=0.1))) as server:
        config, database = project(tmp_path, server)
        with sending(config) as process:
            children = wait_for_claimers(database, 2)
            victim = min(children)
            os.kill(victim, signal.SIGKILL)
            out, err = process.communicate(timeout=60)
        # The run stops and says so; the other child hands its claims back.
        assert process.returncode == 1, out + err
        assert f"(pid {victim}) exited with code -9" in err, err
        # The dead child's claims were handed back by the supervisor: none waits for a lease.
        assert claimers(database) == set()
        send_again(config)
    grouped = copies(server.handler.received)
    assert sorted(grouped) == sorted(reader(n) for n in range(SUBSCRIBERS))  # nobody lost
    duplicates = sum(len(messages) - 1 for messages in grouped.values())
    # At most what the dead child had on the wire unrecorded: its connections x U.
    assert duplicates <= split(POOL, 2)[0] * UNRECORDED, duplicates
    for messages in grouped.values():
        assert len({message.message_id for message in messages}) == 1
        assert len({without_date(message.data) for message in messages}) == 1
    assert status_counts(database) == Counter({"sent": SUBSCRIBERS})
    database.dispose()


def test_children_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    with smtp_server(Handler(default=Rule(delay=0.1))) as server:
        config, database = project(tmp_path, server)
        with sending(config) as process:
            children = wait_for_claimers(database, 2)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            # Orphaned, the children finish what is on the wire and hand the rest back.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(alive(pid) for pid in children):
                time.sleep(0.05)
            assert not any(alive(pid) for pid in children)
        assert claimers(database) == set()
        send_again(config)
    assert_each_reader_once(server.handler.received, database)  # they stopped cleanly
    database.dispose()


def alive(pid: int) -> bool:
    """Tell whether ``pid`` runs (a zombie child of init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_how_many_processes_a_run_takes(tmp_path: Path) -> None:
    with smtp_server(Handler()) as server:
        config, database = project(tmp_path, server, processes="auto")
    database.dispose()
    explicit = config.model_copy(
        update={"delivery": config.delivery.model_copy(update={"processes": 3})}
    )
    # Explicit: as asked, but never more than the connections or the batches due.
    assert process_count(explicit, connections=4, due=1_000) == 3
    assert process_count(explicit, connections=2, due=1_000) == 2
    assert process_count(explicit, connections=4, due=6) == 2  # batches of 5
    assert process_count(explicit, connections=4, due=0) == 1
    # auto: one per PARALLEL_FROM due, at most the CPUs (and 4).
    assert process_count(config, connections=8, due=PARALLEL_FROM - 1) == 1
    assert process_count(config, connections=8, due=10 * PARALLEL_FROM) == min(
        len(os.sched_getaffinity(0)), 4
    )
    # Redirect mode reads the ledger without claims; the outbox has one writer.
    redirect = explicit.model_copy(
        update={"delivery": explicit.delivery.model_copy(update={"redirect_to": "qa@example.com"})}
    )
    assert process_count(redirect, connections=4, due=1_000) == 1
    outbox = explicit.model_copy(
        update={"delivery": explicit.delivery.model_copy(update={"transport": "outbox"})}
    )
    assert process_count(outbox, connections=4, due=1_000) == 1
    assert split(8, 3) == [3, 3, 2] and split(4, 2) == [2, 2]


def test_signers_travel_to_a_child_process_by_their_keys() -> None:
    signer = Signer([KEY, b"an older key"])
    copy = pickle.loads(pickle.dumps(signer))
    token = signer.sign(Purpose.UNSUBSCRIBE, 42)
    assert copy.sign(Purpose.UNSUBSCRIBE, 42) == token
    assert copy.verify(token, Purpose.UNSUBSCRIBE) == 42
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    dkim = DkimSigner("sel", "example.com", key, source="test key")
    again = pickle.loads(pickle.dumps(dkim))
    message = b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    # Ed25519 signatures are deterministic: the same key signs the same bytes alike.
    assert again.sign(message).split(b"t=")[0] == dkim.sign(message).split(b"t=")[0]


def test_the_scheduler_drains_in_several_processes(tmp_path: Path) -> None:
    with smtp_server(Handler()) as server:
        config, database = project(tmp_path, server)
        drain = drain_ledger(config, database, Signer([KEY]), ["daily"], clock=lambda: AT)
    report = drain.delivered["daily"]
    assert (report.sent, report.processes, drain.failures) == (SUBSCRIBERS, 2, {})
    assert sorted(m.recipient for m in server.handler.received) == sorted(
        reader(n) for n in range(SUBSCRIBERS)
    )
    assert len(sent_by(database)) == 2
    database.dispose()


def test_parts_of_the_claim_order_are_disjoint_and_cover_it(tmp_path: Path) -> None:
    with smtp_server(Handler()) as server:
        _, database = project(tmp_path, server)
    with database.transaction() as session:
        whole = claim_order(session, AT, 1_000)
        parts = [claim_order(session, AT, 1_000, part=(k, 3)) for k in range(3)]
    assert len(whole) == SUBSCRIBERS
    assert all(i % 3 == k for k, part in enumerate(parts) for i in part)
    assert sorted(i for part in parts for i in part) == sorted(whole)
    # Each part keeps the whole order's sequence (domains in turn, then id).
    assert all(part == [i for i in whole if i in set(part)] for part in parts)
    database.dispose()
