"""Outcomes are written alike on SQLite (executemany, in a session or through a run's own
driver connection) and PostgreSQL (one statement per group)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from briefing.domain.states import DeliveryState
from briefing.store.ledger import (
    AttemptOutcome,
    claim,
    new_owner,
    outcome_log,
    write_outcomes,
)
from briefing.store.schema import Delivery, DeliveryAttempt
from tests.support.delivery import AT, smtp_project
from tests.support.smtp_server import smtp_server

D = DeliveryState


@pytest.mark.parametrize("engine", ["sqlite", "sqlite-driver", "postgresql", "postgresql-driver"])
@pytest.mark.parametrize("flush", [True, False])
def test_outcomes_keep_their_guards_on_both_databases(
    tmp_path: Path, engine: str, flush: bool, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if engine.startswith("postgresql") else None
    with smtp_server() as server:
        _, database = smtp_project(tmp_path, server, count=6, database_url=url)
    owner = new_owner()
    lease = timedelta(minutes=2)
    try:
        with database.transaction() as session:
            ids = sorted(claim(session, owner, AT, 10, lease=lease))
        assert len(ids) == 6
        sent, deferred, failed, cancelled, stolen, retried = ids
        with database.transaction() as session:
            session.execute(
                update(Delivery).where(Delivery.id == cancelled).values(status=D.CANCELLED)
            )
            session.execute(update(Delivery).where(Delivery.id == stolen).values(owner="other"))
            lease_before = session.scalar(
                select(Delivery.lease_until).where(Delivery.id == retried)
            )
        later = AT + timedelta(minutes=10)
        finished = AT + timedelta(seconds=1)

        def outcome(
            delivery_id: int, status: D, attempt: D, code: int, reply: str
        ) -> AttemptOutcome:
            return AttemptOutcome(
                delivery_id,
                status,
                attempt,
                AT,
                finished,
                code=code,
                reply=reply,
                stage="data",
                next_attempt_at=later if status == D.DEFERRED else None,
            )

        outcomes = [
            outcome(sent, D.SENT, D.SENT, 250, "250 ok"),
            outcome(deferred, D.DEFERRED, D.DEFERRED, 451, "451 later"),
            outcome(failed, D.FAILED, D.FAILED, 550, "550 no such user"),
            outcome(cancelled, D.FAILED, D.FAILED, 550, "550 refused"),
            outcome(stolen, D.SENT, D.SENT, 250, "250 ok"),
            outcome(retried, D.SENDING, D.DEFERRED, 421, "421 busy"),
        ]
        if engine.endswith("-driver"):  # a run's group commits
            log = outcome_log(database, owner, flush=flush)
            assert log is not None
            try:
                log.write(outcomes, AT)
            finally:
                log.close()
        else:
            with database.transaction() as session:
                write_outcomes(session, owner, outcomes, AT, lease, flush=flush)
                if engine == "postgresql":  # async: this transaction only commits without the fsync
                    setting = session.execute(text("SHOW synchronous_commit")).scalar()
                    assert setting == ("on" if flush else "off")
        if engine.startswith("postgresql"):
            with database.transaction() as session:
                assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"
        with database.transaction() as session:
            rows = {
                row.id: row for row in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))
            }
            attempts = session.execute(
                select(DeliveryAttempt.delivery_id, DeliveryAttempt.outcome, DeliveryAttempt.code)
            ).all()
        # Every attempt is recorded, whatever became of its delivery.
        assert sorted(attempts) == sorted(
            (o.delivery_id, o.attempt.value, o.code) for o in outcomes
        )
        got = {i: (r.status, r.owner, r.attempts, r.last_code) for i, r in rows.items()}
        assert got == {
            sent: (D.SENT, None, 1, 250),
            deferred: (D.DEFERRED, None, 1, 451),
            failed: (D.FAILED, None, 1, 550),
            cancelled: (D.CANCELLED, owner, 0, None),  # cancelled meanwhile: left alone
            stolen: (D.SENDING, "other", 0, None),  # another run's claim now
            retried: (D.SENDING, owner, 1, 421),  # retried in this run: still ours
        }
        assert rows[sent].sent_at == finished and rows[sent].reason is None
        assert rows[deferred].next_attempt_at == later
        assert rows[deferred].reason == "451 later" and rows[deferred].lease_until is None
        assert rows[retried].lease_until == lease_before
        assert rows[failed].updated_at == AT
        if not engine.startswith("postgresql"):  # times are compared as text: stored in one form
            with database.transaction() as session:
                stored = dict(
                    session.execute(
                        text("SELECT id, updated_at FROM deliveries WHERE id IN (:a, :b)"),
                        {"a": failed, "b": cancelled},
                    ).all()
                )
            # The same time, written by the outcome statements and by the claim's Core update.
            assert stored[failed] == stored[cancelled] == "2026-11-26 07:00:00.000000"
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_group_the_database_refuses_is_rolled_back_whole_and_the_next_one_commits(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    with smtp_server() as server:
        _, database = smtp_project(tmp_path, server, count=2, database_url=url)
    owner = new_owner()
    try:
        with database.transaction() as session:
            first, second = sorted(claim(session, owner, AT, 10))

        def sent(delivery_id: int) -> AttemptOutcome:
            return AttemptOutcome(delivery_id, D.SENT, D.SENT, AT, AT, code=250, reply="250 ok")

        log = outcome_log(database, owner, flush=True)
        assert log is not None
        try:
            # The attempt row of a delivery that does not exist breaks the foreign key.
            with pytest.raises(Exception, match=r"(?i)foreign key"):
                log.write([sent(first), sent(second + 1000)], AT)
            log.write([sent(second)], AT)
        finally:
            log.close()
        with database.transaction() as session:
            statuses = dict(
                session.execute(select(Delivery.id, Delivery.status).order_by(Delivery.id)).all()
            )
            attempts = session.scalars(select(DeliveryAttempt.delivery_id)).all()
        assert statuses == {first: D.SENDING, second: D.SENT}
        assert attempts == [second]
    finally:
        database.dispose()
