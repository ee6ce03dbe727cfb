"""Deliver with several processes on one machine: the engine's drain, run N times at once.

One process sends at most one core's worth: building messages, the SMTP
dialogue and recording outcomes all run under one interpreter lock. With
``delivery.processes`` above 1 (``auto``: the cores this process may use, at
most :data:`AUTO_MOST`), a run over SMTP with enough due deliveries starts
that many drains in child processes and only supervises them:

- ``smtp.pool_size`` is split between them, so the relay sees as many
  sessions as before and the crash bound (connections x
  ``unrecorded_per_connection`` messages sent twice at most) is unchanged;
- each claims its own batches from the ledger under its own owner and
  leases, as separate ``briefing deliver`` workers do, so a child killed
  with ``kill -9`` loses nothing: its claims are handed back when the run
  ends (or taken over by the next run on this host). Child k of n claims
  only deliveries whose id is k modulo n: walking one shared order, each
  would mostly find rows another had just taken;
- ``delivery.rate_limit`` is split between them (and, for ``briefing
  deliver``, between the live workers as well, refreshed at heartbeat);
- their reports are added up; a run that one child had to stop (a refused
  session, a streak of the same refusal) stops the others too.

SIGINT and SIGTERM reach the supervisor, which asks the children to stop
after the messages in flight; a child whose supervisor has died stops the
same way. Small runs stay in one process: a child takes over a second of CPU
to start, what thousands of messages cost.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

from briefing.config import Config
from briefing.deliver.dkim import DkimSigner
from briefing.deliver.engine import PROGRESS_EVERY, deliver
from briefing.deliver.ratelimit import RateLimiter
from briefing.deliver.report import DeliveryReport
from briefing.deliver.transports import Transport, make_transport
from briefing.domain.tokens import Signer
from briefing.errors import BriefingError
from briefing.store import Database, ledger, open_database
from briefing.store.ledger import new_owner

logger = logging.getLogger(__name__)

__all__ = ["AUTO_MOST", "PARALLEL_FROM", "deliver_on_machine", "process_count"]

AUTO_MOST = 4  # processes ``auto`` starts at most
# Due deliveries per process below which fewer processes finish sooner: a child takes about
# 1.4 s of CPU to start (imports, the database, the transport), what ~5,000 messages cost.
PARALLEL_FROM = 10_000
LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
WATCH_EVERY = 0.1  # seconds between a child's looks at the supervisor and the stop event


def available_cpus() -> int:
    """Return the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def process_count(config: Config, connections: int, due: int) -> int:
    """Return how many processes should deliver ``due`` deliveries over ``connections``.

    One unless the transport is SMTP and ``delivery.processes`` asks for more;
    never more than the connections (each process needs one of its own) nor
    than batches due. ``auto`` also starts no more than one process per
    :data:`PARALLEL_FROM` due deliveries. Redirect mode reads the ledger
    without claiming it, so it always runs in one process.
    """
    delivery = config.delivery
    if delivery.transport != "smtp" or delivery.smtp is None or delivery.redirect_to:
        return 1
    if delivery.processes == "auto":
        wanted = min(available_cpus(), AUTO_MOST, due // PARALLEL_FROM)
    else:
        wanted = min(delivery.processes, -(-due // delivery.batch_size))
    return max(1, min(wanted, connections))


def split(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` near-equal positive shares (larger ones first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if n < extra else 0) for n in range(parts)]


def deliver_on_machine(
    config: Config,
    database: Database,
    signer: Signer,
    transport: Transport,
    *,
    briefing: str | None = None,
    clock: Callable[[], datetime] | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[DeliveryReport], None] | None = None,
    dkim: DkimSigner | None = None,
    take_over_local: bool = True,
    due: int | None = None,
    owner: str | None = None,
    live_workers: Callable[[], int] | None = None,
) -> DeliveryReport:
    """Drain the ledger as :func:`~briefing.deliver.engine.deliver` does, in several processes when it pays.

    ``clock`` is the run's clock (``--at`` fixes it; None: real time); child
    processes cannot share a function, so they take the moment it gives when
    the run starts as their fixed clock unless it is None. ``due``
    is the number of due deliveries when the caller knows it (counted here
    otherwise). ``transport`` sends and ``owner`` names the claims when the run
    stays in this process; child processes open their own share of
    ``smtp.pool_size`` and claim under their own names. ``live_workers``
    returns the number of live ``briefing deliver`` workers sharing the rate
    limit (read at every look, so heartbeats refresh it).
    """
    stop = stop or threading.Event()
    clock = clock or _utc_now
    at = None if clock is _utc_now else clock()
    if due is None and process_count(config, transport.connections, 1 << 62) > 1:
        with database.transaction() as session:
            due = ledger.count_due(session, clock(), briefing)
    processes = process_count(config, transport.connections, due or 0)
    if processes == 1:
        return deliver(
            config,
            database,
            signer,
            transport,
            briefing=briefing,
            clock=clock,
            owner=owner,
            stop=stop,
            progress=progress,
            dkim=dkim,
            take_over_local=take_over_local,
        )
    if take_over_local:
        with database.transaction() as session:
            ledger.release_dead_claims(session, clock())
    shares = split(transport.connections, processes)
    logger.info(
        "delivering in %d processes of %s connection(s)", processes, "+".join(map(str, shares))
    )
    run = _Supervisor(
        [
            _Share(
                n,
                _with_pool(config, size),
                signer,
                dkim,
                briefing,
                at,
                processes,
                logging.getLogger().getEffectiveLevel(),
            )
            for n, size in enumerate(shares)
        ],
        stop,
        progress,
        live_workers,
    )
    report = run.execute()
    report.processes = processes
    if run.dead_owners:
        # A child killed mid-run (OOM, kill -9) left claims; it was reaped here, so it is
        # dead for certain: no need to judge by host and pid, nor to wait for the lease.
        with database.transaction() as session:
            ledger.end_leases(session, run.dead_owners)
    return report


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _with_pool(config: Config, pool_size: int) -> Config:
    smtp = config.delivery.smtp
    assert smtp is not None
    delivery = config.delivery.model_copy(
        update={"smtp": smtp.model_copy(update={"pool_size": pool_size})}
    )
    return config.model_copy(update={"delivery": delivery})


@dataclass(frozen=True)
class _Share:
    """What one child process needs to run its drain (pickled to it)."""

    index: int
    config: Config
    signer: Signer
    dkim: DkimSigner | None
    briefing: str | None
    at: datetime | None
    processes: int
    log_level: int


class _Supervisor:
    """Start the children, watch them, add their reports up."""

    def __init__(
        self,
        shares: Sequence[_Share],
        stop: threading.Event,
        progress: Callable[[DeliveryReport], None] | None,
        live_workers: Callable[[], int] | None,
    ) -> None:
        self.shares = shares
        self.stop = stop
        self.progress = progress
        self.live_workers = live_workers
        context = multiprocessing.get_context("spawn")
        self.events: multiprocessing.Queue[tuple[str, int, Any]] = context.Queue()
        self.halt = context.Event()
        self.workers: Synchronized[int] = context.Value("i", 1)
        self.processes = [
            context.Process(
                target=_child,
                args=(share, self.events, self.halt, self.workers, os.getpid()),
                name=f"briefing-deliver-{share.index + 1}",
            )
            for share in shares
        ]
        self.latest: dict[int, DeliveryReport] = {}  # progress so far, by child
        self.final: dict[int, DeliveryReport] = {}
        self.problems: dict[int, str] = {}  # children that failed or died
        self.owners: dict[int, str] = {}  # each child's name in its claims
        self.dead_owners: list[str] = []  # those of children that died mid-run
        self.stopped: str | None = None  # why the run stopped, as one child said
        self.stop_hint: str | None = None

    def execute(self) -> DeliveryReport:
        started = time.monotonic()
        last_progress = started
        try:
            for process in self.processes:
                process.start()
            while len(self.final) + len(self.problems) < len(self.processes):
                if self.stop.is_set():
                    self.halt.set()
                if self.live_workers is not None:
                    self.workers.value = max(1, self.live_workers())
                self._receive(timeout=WATCH_EVERY)
                if self.progress and time.monotonic() - last_progress >= PROGRESS_EVERY:
                    self.progress(self._total(time.monotonic() - started))
                    last_progress = time.monotonic()
            for process in self.processes:
                process.join()
        finally:
            # Only on an error here (a second Ctrl-C): the children go as a crash would;
            # their claims are taken over at once by the next run on this host.
            for process in self.processes:
                if process.is_alive():
                    process.kill()
                    process.join()
            self.events.close()
        report = self._total(time.monotonic() - started)
        if self.progress:
            self.progress(report)
        return report

    def _receive(self, timeout: float) -> None:
        try:
            message = self.events.get(timeout=timeout)
        except queue.Empty:
            self._notice_deaths()
            return
        self._handle(*message)

    def _handle(self, kind: str, index: int, payload: Any) -> None:
        if kind == "owner":
            self.owners[index] = payload
        elif kind == "progress":
            self.latest[index] = payload
        elif kind == "done":
            self.final[index] = payload
            self.latest.pop(index, None)
            if payload.stopped and not self.halt.is_set():
                # A refused session or a streak: the same relay refuses the others too.
                self.stopped, self.stop_hint = payload.stopped, payload.stop_hint
                self.halt.set()
        else:
            self._fail(index, str(payload))

    def _notice_deaths(self) -> None:
        exited = [
            (share.index, process)
            for share, process in zip(self.shares, self.processes, strict=True)
            if process.exitcode is not None
        ]
        if not exited:
            return
        # A child's last word is in the pipe before it exits: read everything first.
        while True:
            try:
                self._handle(*self.events.get_nowait())
            except queue.Empty:
                break
        for index, process in exited:
            if index in self.final or index in self.problems:
                continue
            if index in self.owners:
                self.dead_owners.append(self.owners[index])
            self._fail(
                index,
                f"delivery process {index + 1} (pid {process.pid}) exited with code "
                f"{process.exitcode}; its unsent claims are handed back",
            )

    def _fail(self, index: int, problem: str) -> None:
        logger.error("%s", problem)
        self.problems[index] = problem
        self.latest.pop(index, None)
        if self.stopped is None:
            self.stopped = problem
        self.halt.set()

    def _total(self, elapsed: float) -> DeliveryReport:
        total = DeliveryReport()
        for report in [*self.final.values(), *self.latest.values()]:
            total.counts.update(report.counts)
            total.released += report.released
            total.retries += report.retries
            total.in_flight += report.in_flight
            total.states.update(report.states)
            total.failed_by_id.update(report.failed_by_id)
            if report.stopped and self.stopped is None and not self.stop.is_set():
                self.stopped, self.stop_hint = report.stopped, report.stop_hint
        total.stopped = self.stopped or (
            "stopped on request" if self.stop.is_set() and self.final else None
        )
        total.stop_hint = self.stop_hint
        total.elapsed = elapsed
        return total


def _snapshot(report: DeliveryReport) -> DeliveryReport:
    """Return the counts of ``report``, without the per-delivery detail, for the progress bar."""
    return DeliveryReport(
        counts=report.counts.copy(),
        released=report.released,
        retries=report.retries,
        in_flight=report.in_flight,
        elapsed=report.elapsed,
    )


def _child(
    share: _Share,
    events: multiprocessing.Queue[tuple[str, int, Any]],
    halt: ProcessEvent,
    workers: Synchronized[int],
    parent: int,
) -> None:
    """Run one share of the drain in this child process; report to the supervisor."""
    logging.basicConfig(level=share.log_level, format=LOG_FORMAT)
    # The supervisor decides when to stop; a Ctrl-C at the terminal reaches it too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: stop.set())
    config = share.config
    database: Database | None = None
    transport: Transport | None = None
    try:
        database = open_database(config.database)
        transport = make_transport(config)
        limiter = getattr(transport, "limiter", None)

        def watch() -> None:
            while not stop.is_set():
                if halt.is_set() or os.getppid() != parent:
                    stop.set()
                    return
                if isinstance(limiter, RateLimiter):
                    limiter.share(workers.value * share.processes)
                time.sleep(WATCH_EVERY)

        if isinstance(limiter, RateLimiter):
            limiter.share(workers.value * share.processes)
        watcher = threading.Thread(target=watch, name="supervisor-watch", daemon=True)
        watcher.start()
        at = share.at
        owner = new_owner()
        events.put(("owner", share.index, owner))
        report = deliver(
            config,
            database,
            share.signer,
            transport,
            briefing=share.briefing,
            clock=_utc_now if at is None else (lambda: at),
            owner=owner,
            stop=stop,
            progress=lambda so_far: events.put(("progress", share.index, _snapshot(so_far))),
            dkim=share.dkim,
            take_over_local=False,
            part=(share.index, share.processes),
        )
        events.put(("done", share.index, report))
    except BriefingError as exc:
        events.put(("error", share.index, f"delivery process {share.index + 1}: {exc}"))
    except Exception as exc:
        logger.exception("delivery process %d failed", share.index + 1)
        events.put(("error", share.index, f"delivery process {share.index + 1}: {exc!r}"))
    finally:
        stop.set()
        if transport is not None:
            transport.close()
        if database is not None:
            database.dispose()
