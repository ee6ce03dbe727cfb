"""Drain the delivery ledger through a transport with a pool of workers.

One coordinating thread owns the database: it claims batches of due
deliveries, checks them (subscription, suppression, deadline), hands the
sendable ones to ``transport.connections`` worker threads, records every
outcome, renews the leases, and retries temporary failures with backoff.
Workers build each message (:mod:`briefing.deliver.messages`: personalise,
sign with DKIM) and send it; they never touch the database.

Crash safety rests on one rule: a worker never has more than
``delivery.unrecorded_per_connection`` (U, default 2) messages handed to the
relay whose outcomes are not committed. Outcomes are committed in groups
(every result that arrived while the previous commit ran), so the rule costs
one short SQLite/PostgreSQL transaction per group, not per message; with
U = 2 a worker sends its next message while the last one's commit runs, so
a slow commit (PostgreSQL's fsync) overlaps the wire instead of stalling it.
After ``kill -9`` at any moment the messages the relay took without the
ledger knowing are at most U per worker, that is at most pool size x U. A
later run (or another worker, once the lease lapses) takes over the dead
run's claims and resends exactly those, with the same Message-ID and bytes
(only Date differs).

Temporary failures (4xx, timeouts, dropped connections) are retried within
the run, then left ``deferred`` for a later run (:mod:`briefing.deliver.retry`).
Permanent failures are final; a hard bounce (5.1.x) also suppresses the
address. A refused session (:class:`SessionError`) or many recipients in a row
refused with the same reply (:mod:`briefing.deliver.streak`) stop the run:
claims are handed back and nobody is marked failed for it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from briefing.config import Config
from briefing.deliver.dkim import DkimSigner
from briefing.deliver.messages import MessageMaker, build_problem
from briefing.deliver.report import DeliveryReport
from briefing.deliver.retry import RetryPolicy, RetryQueue
from briefing.deliver.streak import Streak, StreakKey, recipient_refused, status_key
from briefing.deliver.transports import Transport, TransportResult
from briefing.domain.states import DeliveryState
from briefing.domain.tokens import Signer
from briefing.errors import BriefingError, SessionError
from briefing.pipeline.compose import MessageTemplate
from briefing.store import Database, ledger
from briefing.store.ledger import AttemptOutcome, Outgoing, Settlement, new_owner

logger = logging.getLogger(__name__)

__all__ = ["DeliveryReport", "deliver"]

PROGRESS_EVERY = 0.25  # seconds between progress callbacks
# Batches whose claiming order is read at once: ranking the due rows by recipient domain
# reads the whole backlog, so it is done once per this many batches, not for each.
CLAIM_LOOKAHEAD = 50
GROUP_WAIT = 0.002  # seconds a group commit may wait for more outcomes to join it


def deliver(
    config: Config,
    database: Database,
    signer: Signer,
    transport: Transport,
    *,
    briefing: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    owner: str | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[DeliveryReport], None] | None = None,
    dkim: DkimSigner | None = None,
    take_over_local: bool = True,
    part: tuple[int, int] | None = None,
) -> DeliveryReport:
    """Send every due delivery in the ledger through ``transport``; return what happened.

    ``stop``, once set (SIGINT, SIGTERM, the scheduler shutting down), stops
    claiming, lets messages in flight finish, hands unsent claims back and
    returns. ``progress`` is called from this thread a few times a second with
    the report so far. ``take_over_local`` (``briefing send``, one machine)
    first takes over the claims of dead processes on this host at once;
    ``briefing deliver`` workers pass False and wait for leases to lapse.
    ``part`` ``(k, n)``: only the deliveries whose id is k modulo n (process
    k of the n of one run, :mod:`briefing.deliver.parallel`).
    With ``delivery.redirect_to`` set every message goes to that address
    instead and the ledger is only read.
    """
    run = _Run(
        config,
        database,
        signer,
        transport,
        briefing=briefing,
        clock=clock,
        owner=owner or new_owner(),
        stop=stop or threading.Event(),
        progress=progress,
        dkim=dkim,
        take_over_local=take_over_local,
        part=part,
    )
    return run.execute()


@dataclass(slots=True)
class _Job:
    outgoing: Outgoing
    attempt: int  # 1 for the first try in this run


class _Committed:
    """Set once by the coordinating thread when an outcome is committed; waited for once.

    A lock taken at creation and released by the commit: a worker's wait is
    one acquire in C, where a ``threading.Event`` builds a condition per message.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()


@dataclass(slots=True)
class _Done:
    job: _Job
    started: datetime
    finished: datetime
    result: TransportResult | None = None
    session_error: SessionError | None = None
    skipped: bool = False  # cancelled while queued
    committed: _Committed = field(default_factory=_Committed)


class _Run:
    """One delivery run: the coordinating thread's state."""

    def __init__(
        self,
        config: Config,
        database: Database,
        signer: Signer,
        transport: Transport,
        *,
        briefing: str | None,
        clock: Callable[[], datetime],
        owner: str,
        stop: threading.Event,
        progress: Callable[[DeliveryReport], None] | None,
        dkim: DkimSigner | None,
        take_over_local: bool = True,
        part: tuple[int, int] | None = None,
    ) -> None:
        self.take_over_local = take_over_local
        self.config = config
        self.delivery = config.delivery
        self.database = database
        self.transport = transport
        self.briefing = briefing
        self.clock = clock
        self.owner = owner
        self.stop = stop
        self.progress = progress
        self.redirect_to = config.delivery.redirect_to
        self.lease = timedelta(seconds=self.delivery.lease)
        self.unrecorded = self.delivery.unrecorded_per_connection
        self.report = DeliveryReport(redirected_to=self.redirect_to)
        # SimpleQueue: a hand-off in C, two per message (a job out, its result back).
        self.work: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        self.maker = MessageMaker(config, signer, transport, dkim=dkim)
        self.outstanding: dict[int, _Job] = {}  # claimed by us, not settled
        self.retry = RetryPolicy(self.delivery.retry)
        self.retries: RetryQueue[_Job] = RetryQueue()  # waiting out a backoff
        self.cancelled: set[int] = set()
        self.active = 0  # jobs handed to workers whose result is not recorded yet
        self.streak = Streak(self.delivery.same_failure_limit)  # same refusal in a row
        self.tripped_key: StreakKey | None = None  # the reply of a streak that stopped the run
        self.stopping = False
        self.last_seen = 0  # redirect mode pages through the ledger by id
        # A group of outcomes alone is committed through one connection held for the run.
        self.outcome_log: ledger.OutcomeLog | None = None
        self.claims = ledger.Claimer(
            self.owner,
            self.delivery.batch_size,
            lookahead=CLAIM_LOOKAHEAD,
            briefing=self.briefing,
            lease=self.lease,
            part=part,
        )

    # -- the coordinating loop ---------------------------------------------------------

    def execute(self) -> DeliveryReport:
        started = time.monotonic()
        workers = [
            threading.Thread(target=self._worker, name=f"delivery-{n}", daemon=True)
            for n in range(max(1, self.transport.connections))
        ]
        if not self.redirect_to:
            self.outcome_log = ledger.outcome_log(
                self.database, self.owner, flush=self.delivery.outcome_commit == "flush"
            )
        for worker in workers:
            worker.start()
        try:
            if not self.redirect_to and self.take_over_local:
                with self.database.transaction() as session:
                    ledger.release_dead_claims(session, self.clock())
            exhausted = False
            last_heartbeat = last_progress = time.monotonic()
            low_water = max(self.transport.connections * 2, self.delivery.batch_size // 2)
            while True:
                self._drain(timeout=0.05 if self.active else 0.0)
                moment = time.monotonic()
                self.report.elapsed = moment - started
                if moment - last_heartbeat >= self.delivery.heartbeat:
                    self._heartbeat()
                    last_heartbeat = moment
                if self.progress and moment - last_progress >= PROGRESS_EVERY:
                    self._report_progress()
                    last_progress = moment
                if self.stop.is_set() and not self.stopping:
                    self.stopping = True
                    self.report.stopped = self.report.stopped or "stopped on request"
                if self.stopping:
                    self._release_unsent()
                    if self.active == 0:
                        break
                    continue
                self._queue_due_retries()
                if not exhausted and self.work.qsize() < low_water:
                    exhausted = not self._claim_batch()
                if exhausted and not self.outstanding:
                    break
                due = self.retries.next_due()
                if not self.active and due is not None:
                    time.sleep(min(0.05, max(0.0, due - time.monotonic())))
        finally:
            # On an error too: workers skip (and hand back) whatever is still queued.
            self.stopping = True
            for _ in workers:
                self.work.put(None)
            try:
                self._drain_until_idle(workers)
            finally:
                if self.outcome_log is not None:
                    self.outcome_log.close()
                    self.outcome_log = None
        self.report.elapsed = time.monotonic() - started
        self._report_progress()
        return self.report

    def _drain_until_idle(self, workers: list[threading.Thread]) -> None:
        # Workers finishing a message wait for its commit: keep committing until all are out.
        while any(worker.is_alive() for worker in workers):
            self._drain(timeout=0.05)
        self._drain(timeout=0.0)

    def _report_progress(self) -> None:
        if self.progress:
            self.report.in_flight = self.active
            self.progress(self.report)

    # -- claiming ----------------------------------------------------------------------

    def _claim_batch(self) -> bool:
        """Claim and check one batch; queue the sendable. Return False when nothing was due."""
        now = self.clock()
        with self.database.transaction() as session:
            if self.redirect_to:
                ids = ledger.due_ids(
                    session, now, self.last_seen, self.delivery.batch_size, self.briefing
                )
                if ids:
                    self.last_seen = ids[-1]
            else:
                ids = self.claims.claim(session, now)
            if not ids:
                return False
            outgoing, settled = ledger.load(session, self.config, ids, now)
            if not self.redirect_to:
                ledger.settle(session, self.owner, settled, now)
            for variant_id in {o.variant_id for o in outgoing}:
                if not self.maker.knows(variant_id):
                    stored = ledger.variant_message(session, variant_id)
                    self.maker.add(variant_id, MessageTemplate.from_bytes(*stored))
        for settlement in settled:
            self._count_settlement(settlement)
        for item in outgoing:
            job = _Job(item, 1)
            self.outstanding[item.delivery_id] = job
            self._hand_out(job)
        return True

    def _count_settlement(self, settlement: Settlement) -> None:
        self.report.count(settlement.status, settlement.delivery_id)
        if settlement.status != DeliveryState.SUPPRESSED:
            logger.info(
                "delivery %d%s: %s (%s)",
                settlement.delivery_id,
                f" to {settlement.recipient}" if settlement.recipient else "",
                settlement.status,
                settlement.reason,
            )

    def _hand_out(self, job: _Job) -> None:
        self.active += 1
        self.work.put(job)

    def _queue_due_retries(self) -> None:
        moment = time.monotonic()
        expired: list[Settlement] = []
        for delivery_id, job in self.retries.pop_due(moment):
            if delivery_id not in self.outstanding:
                continue
            if delivery_id in self.cancelled:
                self.outstanding.pop(delivery_id)
                self.report.count(DeliveryState.CANCELLED, delivery_id)
                continue
            if self.clock() > job.outgoing.deadline:
                self.outstanding.pop(delivery_id)
                expired.append(
                    Settlement(
                        delivery_id,
                        DeliveryState.EXPIRED,
                        "not sent before the briefing's deadline",
                        job.outgoing.recipient,
                    )
                )
                continue
            self._hand_out(job)
        if expired and not self.redirect_to:
            with self.database.transaction() as session:
                ledger.settle(session, self.owner, expired, self.clock())
        for settlement in expired:
            self._count_settlement(settlement)

    def _heartbeat(self) -> None:
        if self.redirect_to:
            return
        with self.database.transaction() as session:
            cancelled = ledger.heartbeat(session, self.owner, self.clock(), self.lease)
        # Workers skip these when they come up; counted as cancelled then.
        self.cancelled |= cancelled

    def _release_unsent(self) -> None:
        unsent: list[int] = []
        while True:
            try:
                job = self.work.get_nowait()
            except queue.Empty:
                break
            if job is None:  # pragma: no cover - sentinels are only put after the loop
                continue
            self.active -= 1
            unsent.append(job.outgoing.delivery_id)
        unsent.extend(self.retries.clear())
        unsent = [i for i in unsent if self.outstanding.pop(i, None) is not None]
        if not unsent:
            return
        if not self.redirect_to:
            with self.database.transaction() as session:
                ledger.release(session, self.owner, unsent, self.clock())
        self.report.withdraw(unsent)
        self.report.released += len(unsent)

    # -- workers -----------------------------------------------------------------------

    def _worker(self) -> None:
        uncommitted: deque[_Done] = deque()
        while True:
            job = self.work.get()
            if job is None:
                for done in uncommitted:
                    done.committed.wait()
                return
            done = self._send(job)
            self.results.put(done)
            uncommitted.append(done)
            # The crash-safety rule: before the next message, at most U - 1 of this worker's
            # outcomes are uncommitted, so at most U are unrecorded while it is on the wire.
            while len(uncommitted) >= self.unrecorded:
                uncommitted.popleft().committed.wait()

    def _send(self, job: _Job) -> _Done:
        outgoing = job.outgoing
        started = self.clock()
        if outgoing.delivery_id in self.cancelled or self.stopping:
            return _Done(job, started, started, skipped=True)
        try:
            letter = self.maker.letter(outgoing, started)
        except (BriefingError, ValueError, UnicodeError) as exc:
            # Bad data for this one recipient (a name or address the header cannot hold).
            result = TransportResult(
                DeliveryState.FAILED,
                reply=f"cannot build the message: {build_problem(exc)}",
                stage="compose",
            )
            return _Done(job, started, self.clock(), result=result)
        try:
            result = self.transport.send(letter.sender, letter.recipient, letter.message)
        except SessionError as exc:
            return _Done(job, started, self.clock(), session_error=exc)
        except Exception as exc:
            logger.exception(
                "delivery %d to %s: transport error", outgoing.delivery_id, letter.recipient
            )
            result = TransportResult(
                DeliveryState.DEFERRED, reply=f"transport error: {exc!r}", stage="send"
            )
        return _Done(job, started, self.clock(), result=result)

    # -- recording ---------------------------------------------------------------------

    def _drain(self, timeout: float) -> None:
        try:
            batch = [self.results.get(timeout=timeout) if timeout else self.results.get_nowait()]
        except queue.Empty:
            return
        # One commit per group of outcomes: wait a moment for one from every connection
        # (never longer than GROUP_WAIT; each worker is busy with its next message meanwhile,
        # so the crash bound is untouched), as a group costs about the same whatever its size.
        target = min(max(1, self.transport.connections), self.active)
        deadline = time.monotonic() + GROUP_WAIT
        while True:
            try:
                batch.append(self.results.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if len(batch) >= target or not timeout or self.stopping or remaining <= 0:
                break
            try:
                batch.append(self.results.get(timeout=remaining))
            except queue.Empty:
                break
        try:
            self._record(batch)
        finally:
            for done in batch:
                done.committed.set()

    def _record(self, batch: list[_Done]) -> None:
        now = self.clock()
        outcomes: list[AttemptOutcome] = []
        bounces: list[tuple[int, str, str | None]] = []
        release: list[int] = []
        for done in batch:
            self.active -= 1
            delivery_id = done.job.outgoing.delivery_id
            if done.skipped:
                if delivery_id in self.cancelled:
                    self.report.count(DeliveryState.CANCELLED, delivery_id)
                else:
                    release.append(delivery_id)
                self.outstanding.pop(delivery_id, None)
                continue
            if done.session_error is not None:
                self._stop_for(done.session_error)
                release.append(delivery_id)
                self.outstanding.pop(delivery_id, None)
                continue
            assert done.result is not None
            if self._late_in_streak(done.result):
                # Sent while the commit that tripped the streak ran: the same refusal,
                # so the same verdict: the relay's fault, handed back, nobody failed.
                release.append(delivery_id)
                self.outstanding.pop(delivery_id, None)
                continue
            outcome = self._judge(done, now)
            outcomes.append(outcome)
            if self.streak.tripped and self.tripped_key is None:
                # Later results of this group with the same refusal are handed back, not counted.
                self.tripped_key = self.streak.key
            if outcome.status == DeliveryState.BOUNCED:
                bounces.append((delivery_id, done.job.outgoing.recipient, outcome.reply))
        if self.redirect_to:
            release.clear()
        elif self.outcome_log is not None and not (bounces or release or self.streak.tripped):
            if outcomes:
                self.outcome_log.write(outcomes, now)
        else:
            with self.database.transaction() as session:
                if outcomes:
                    ledger.write_outcomes(
                        session,
                        self.owner,
                        outcomes,
                        now,
                        self.lease,
                        flush=self.delivery.outcome_commit == "flush",
                    )
                for delivery_id, recipient, reply in bounces:
                    ledger.suppress_bounce(session, delivery_id, recipient, reply, now)
                if release:
                    ledger.release(session, self.owner, release, now)
                if self.streak.tripped:
                    ledger.reopen(session, self.streak.ids, now)
        if release:
            self.report.withdraw(release)
            self.report.released += len(release)
        if self.streak.tripped:
            self._stop_for_streak()

    def _judge(self, done: _Done, now: datetime) -> AttemptOutcome:
        """Decide what a result leaves the delivery in, and count it."""
        job, result = done.job, done.result
        assert result is not None
        outgoing = job.outgoing
        delivery_id = outgoing.delivery_id
        status = result.outcome
        next_attempt: datetime | None = None
        if result.outcome == DeliveryState.SENT:
            self.streak.sent()
        elif result.outcome in (DeliveryState.FAILED, DeliveryState.BOUNCED):
            self.streak.refuse(delivery_id, outgoing.recipient, result)
        elif result.outcome == DeliveryState.DEFERRED:
            if self.retry.again_in_run(job.attempt) and not self.stopping:
                status = DeliveryState.SENDING  # still ours: retried in this run after a backoff
                due = time.monotonic() + self.retry.delay(job.attempt)
                self.retries.push(due, delivery_id, _Job(outgoing, job.attempt + 1))
                self.report.retries += 1
            else:
                status, next_attempt = self.retry.leave(now, outgoing.deadline)
        if status != DeliveryState.SENDING:
            self.outstanding.pop(delivery_id, None)
            self.report.count(status, delivery_id)
            if status != DeliveryState.SENT:
                reply = result.reply or ""
                self.report.note_failure(delivery_id, outgoing.recipient, status, reply)
                logger.warning(
                    "delivery %d to %s: %s at %s: %s",
                    delivery_id,
                    outgoing.recipient,
                    status,
                    result.stage,
                    reply,
                )
        return AttemptOutcome(
            delivery_id,
            status,
            result.outcome,
            done.started,
            done.finished,
            code=result.code,
            reply=result.reply,
            stage=result.stage,
            next_attempt_at=next_attempt,
        )

    def _stop_for(self, error: SessionError) -> None:
        if not self.stopping:
            logger.error("stopping the run: %s", error.message)
            self.report.stopped = error.message
            self.report.stop_hint = error.hint
        self.stopping = True

    def _late_in_streak(self, result: TransportResult) -> bool:
        if self.tripped_key is None or result.outcome not in (
            DeliveryState.FAILED,
            DeliveryState.BOUNCED,
        ):
            return False
        if recipient_refused(result):
            return False
        return (result.stage, result.code, status_key(result)) == self.tripped_key

    def _stop_for_streak(self) -> None:
        self.tripped_key = self.streak.key
        count = len(self.streak)
        ids = set(self.streak.ids)
        moved = [f for i, f in self.report.failed_by_id.items() if i in ids]
        self.report.withdraw(self.streak.ids)
        self.report.released += count
        stage, code, status = self.streak.key or (None, None, None)
        reply = moved[-1].reply if moved else f"{code} {status}"
        self._stop_for(
            SessionError(
                self.transport.describe(),
                stage or "send",
                f"{count} recipients in a row were refused with the same reply ({reply}); "
                "that is the relay or the message, not the recipients, so they are left pending",
                hint="Read the reply, fix the cause (content filter, sender, relay rules), then "
                "run `briefing send` again.",
            )
        )
        self.streak.reset()
