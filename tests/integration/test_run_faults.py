"""A run of real size against a real aiosmtpd server: dead addresses and dead domains do not stall it.

Recipients refused one by one (5.1.x, 5.2.x) are the list's news, not a relay
fault: they never trip the same-reply stop, claims take recipient domains in
turn, the report counts each delivery once, and ``briefing send`` exits 0.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from briefing.cli import cli
from briefing.config import Config
from briefing.deliver import deliver, make_transport
from briefing.domain.tokens import Signer
from briefing.store import Database
from briefing.store.controls import set_paused
from briefing.store.ledger import ClaimQueue, claim, new_owner, release
from briefing.store.schema import Delivery, Edition, Subscriber
from briefing.store.suppressions import suppression_for
from tests.support.delivery import AT, reader, smtp_project, status_counts, statuses
from tests.support.factories import KEY
from tests.support.smtp_server import Handler, Rule, smtp_server


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())


def send(config: Config) -> Result:
    return CliRunner().invoke(
        cli,
        ["--config", str(config.base_dir / "config.yaml"), "send", "--at", AT.isoformat()],
    )


def domain_sorted(dead: str, dead_count: int, alive: list[str], per_domain: int) -> list[str]:
    addresses = [f"user{n:03d}@{dead}" for n in range(dead_count)]
    addresses += [f"user{n:03d}@{domain}" for domain in alive for n in range(per_domain)]
    return sorted(addresses, key=lambda a: (a.partition("@")[2], a))


def test_thirty_dead_addresses_first_do_not_stall_three_hundred(tmp_path: Path) -> None:
    addresses = [reader(n) for n in range(300)]
    dead = addresses[:30]
    rules = {a: Rule(rcpt=f"550 5.1.1 <{a}>: no such user") for a in dead}
    with smtp_server(Handler(rules=rules, pipelining=True)) as server:
        config, database = smtp_project(tmp_path, server, addresses=addresses)
        assert config.delivery.same_failure_limit < 30
        result = send(config)
    assert result.exit_code == 0, result.output
    assert "270 sent, 0 deferred, 0 failed, 30 bounced" in result.output
    assert status_counts(database) == {"sent": 270, "bounced": 30}
    assert server.handler.per_recipient() == dict.fromkeys(addresses[30:], 1)
    with database.transaction() as session:
        assert all(suppression_for(session, a, "daily") is not None for a in dead)


@pytest.mark.parametrize("reply", ["550 5.1.10 null MX: domain takes no mail", "552 5.2.2 full"])
def test_a_list_sorted_by_domain_with_one_dead_domain_is_delivered(
    tmp_path: Path, reply: str
) -> None:
    addresses = domain_sorted("a-dead.example", 40, ["b.example", "c.example"], 30)
    rules = {a: Rule(rcpt=reply) for a in addresses if a.endswith("@a-dead.example")}
    with smtp_server(Handler(rules=rules)) as server:
        config, database = smtp_project(
            tmp_path, server, addresses=addresses, batch_size=10, smtp={"pool_size": 2}
        )
        result = send(config)
    assert result.exit_code == 0, result.output
    counts = status_counts(database)
    assert counts["sent"] == 60 and counts["sent"] + counts["bounced"] + counts["failed"] == 100
    assert len(server.handler.received) == 60


def test_policy_refusals_in_a_row_still_stop_the_run_with_exit_1(tmp_path: Path) -> None:
    handler = Handler(default=Rule(rcpt="550 5.7.1 sender blocked for poor reputation"))
    with smtp_server(handler) as server:
        config, database = smtp_project(
            tmp_path, server, count=12, same_failure_limit=4, smtp={"pool_size": 1}
        )
        result = send(config)
    assert result.exit_code == 1, result.output
    assert "4 recipients in a row" in result.output
    assert status_counts(database) == {"pending": 12}


def test_a_hard_bounce_exits_0(tmp_path: Path) -> None:
    rules = {reader(1): Rule(rcpt="550 5.1.1 no such user")}
    with smtp_server(Handler(rules=rules)) as server:
        config, database = smtp_project(tmp_path, server, count=3)
        result = send(config)
    assert result.exit_code == 0, result.output
    assert "2 sent, 0 deferred, 0 failed, 1 bounced" in result.output
    assert statuses(database)[reader(1)] == "bounced"


def test_a_delivery_deferred_then_sent_in_one_run_counts_once(tmp_path: Path) -> None:
    rules = {reader(0): Rule(rcpt="451 4.3.0 mailbox busy, try later", times=3)}
    handler = Handler(rules=rules)

    ticks = itertools.count()

    def clock() -> datetime:
        # A long run: time passes, so the retry time of the deferred delivery comes within it.
        return AT + timedelta(seconds=0.1) * next(ticks)

    with smtp_server(handler) as server:
        config, database = smtp_project(
            tmp_path,
            server,
            count=40,
            batch_size=4,
            lease=600,
            retry={"attempts_per_run": 3, "backoff": 0.01, "max_backoff": 0.05, "later": "2s"},
            smtp={"pool_size": 1},
        )
        transport = make_transport(config)
        try:
            report = deliver(config, database, Signer([KEY]), transport, clock=clock)
        finally:
            transport.close()
    assert status_counts(database) == {"sent": 40}
    assert server.handler.per_recipient()[reader(0)] == 1
    assert (report.sent, report.deferred, report.handled) == (40, 0, 40)
    assert report.failures == []


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_claim_queue_keeps_domains_in_turn_and_rechecks_every_batch(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if engine == "postgresql" else None
    addresses = domain_sorted("a.example", 20, ["B.example", "c.example"], 5)
    with smtp_server() as server:
        _, database = smtp_project(tmp_path, server, addresses=addresses, database_url=url)
    try:
        by_id = _recipients(database)
        ranked_at_once = [a.partition("@")[2].lower() for a in first_claim(database, 100)]
        mine, theirs = new_owner(), new_owner()
        queue = ClaimQueue(size=6)  # two turns of the three domains, then ranked again
        batches: list[list[int]] = []
        while True:
            with database.transaction() as session:
                ids = claim(session, mine, AT, 3, queue=queue)
            if not ids:
                break
            batches.append(ids)
        claimed = [i for batch in batches for i in batch]
        assert [by_id[i].partition("@")[2].lower() for i in claimed] == ranked_at_once
        assert len(set(claimed)) == 30

        # Queued rows another run took, or whose briefing ops paused, are not claimed.
        with database.transaction() as session:
            release(session, mine, claimed, AT)
        queue, other = ClaimQueue(size=12), ClaimQueue(size=12)
        with database.transaction() as session:
            first = claim(session, mine, AT, 3, queue=queue)  # ranks 12, takes 3
            stolen = claim(session, theirs, AT, 6, queue=other)  # the next 6 of that ranking
            second = claim(session, mine, AT, 3, queue=queue)
        assert not set(stolen) & set(first + second)
        assert len(first) == len(second) == 3
        with database.transaction() as session:
            set_paused(session, "daily", AT, "ops")
        with database.transaction() as session:
            assert claim(session, mine, AT, 3, queue=queue) == []
        assert list(statuses(database).values()).count("sending") == 12
    finally:
        database.dispose()


def first_claim(database: Database, limit: int) -> list[str]:
    owner = new_owner()
    with database.transaction() as session:
        ids = claim(session, owner, AT, limit)
    by_id = _recipients(database)
    with database.transaction() as session:
        release(session, owner, ids, AT)
    return [by_id[i] for i in ids]


def _recipients(database: Database) -> dict[int, str]:
    with database.transaction() as session:
        rows = session.execute(
            select(Delivery.id, Subscriber.email)
            .join(Edition, Edition.id == Delivery.edition_id)
            .join(Subscriber, Subscriber.id == Edition.subscriber_id)
        ).all()
    return {delivery_id: email for delivery_id, email in rows}  # noqa: C416 (typed rows)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_claims_take_recipient_domains_in_turn(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if engine == "postgresql" else None
    addresses = domain_sorted("a.example", 20, ["B.example", "c.example"], 5)
    with smtp_server() as server:
        _, database = smtp_project(tmp_path, server, addresses=addresses, database_url=url)
    try:
        claimed = first_claim(database, 6)
        domains = [a.partition("@")[2].lower() for a in claimed]
        assert Counter(domains) == {"a.example": 2, "b.example": 2, "c.example": 2}
        everything = [a.partition("@")[2].lower() for a in first_claim(database, 100)]
        assert len(everything) == 30, everything
        assert all(len(set(everything[n : n + 3])) == 3 for n in range(0, 15, 3)), everything
        assert everything[15:] == ["a.example"] * 15
    finally:
        database.dispose()
