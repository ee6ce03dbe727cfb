"""Run the briefing as a service: ingest on an interval, dispatch every minute.

``briefing serve`` builds an APScheduler 3.x ``BackgroundScheduler`` with a
memory job store and static jobs, recreated at every start:

- ``start-up``, once at once: ingest, then dispatch, so editions missed while
  the service was down go out if still before their deadline (and are
  recorded expired if not);
- ``ingest`` every ``scheduler.ingest_interval``;
- ``dispatch`` every ``scheduler.dispatch_interval`` (a minute), on the minute:
  every briefing's due editions go into the ledger, then the ledger is drained;
- ``controls`` every ``scheduler.control_interval``: ``briefing run-now``
  requests written by other processes (the main thread checks the scheduler
  lock as often, and stops the service if it was lost);
- ``bounces`` every ``bounces.imap.poll_every``, when set: the bounce mailbox
  read as ``briefing bounces poll`` reads it.

Nothing lives in APScheduler's store: every state ops change (pause, resume,
run-now) is a row in ``briefing_controls`` that each run reads, because 3.x
job stores must never be shared between processes and a running scheduler
never sees another process's changes to them. Dispatch is idempotent (unique
edition keys) and reads the clock, so a late run is always right: jobs have no
misfire limit, and a backlog of missed runs coalesces into one.

SIGTERM or SIGINT stops the service gracefully: no new job starts, the
running one finishes, and the scheduler lock is released.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from briefing.audience.confirmations import composers
from briefing.audience.imap import poll
from briefing.audience.lifecycle import purge
from briefing.config import Config, format_duration, imap_password
from briefing.deliver import DeliveryReport, DkimSigner, make_transport
from briefing.deliver.parallel import deliver_on_machine
from briefing.deliver.transactional import DRAIN_INTERVAL, drain_transactional
from briefing.domain.states import ProcessKind
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import DispatchReport, dispatch
from briefing.errors import BriefingError, SchedulerError
from briefing.ingest import ingest
from briefing.ops.controls import ControlState, clear_run_now, read_controls
from briefing.ops.locks import acquire_scheduler_lock
from briefing.ops.presence import Presence
from briefing.store import Database

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# How soon the main thread notices SIGTERM or SIGINT.
SIGNAL_POLL_SECONDS = 0.2
# How much longer than ingest.total_timeout start-up dispatch waits for the start-up ingest:
# fetches end at their deadline, but the documents still have to be read and stored.
STARTUP_INGEST_SLACK = 5.0


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


@dataclass
class Drain:
    """What draining the ledger did, per briefing."""

    delivered: dict[str, DeliveryReport] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def drain_ledger(
    config: Config,
    database: Database,
    signer: Signer,
    briefings: Iterable[str],
    clock: Clock,
    stop: threading.Event | None = None,
) -> Drain:
    """Deliver what the ledger holds for ``briefings``: the scheduler's one call of the engine.

    Briefing by briefing, so a paused one is left alone and one that fails
    never holds back the others.
    """
    drain = Drain()
    dkim = DkimSigner.from_config(config)
    transport = make_transport(config)
    try:
        for name in briefings:
            if stop is not None and stop.is_set():
                break
            try:
                drain.delivered[name] = deliver_on_machine(
                    config,
                    database,
                    signer,
                    transport,
                    briefing=name,
                    clock=None if clock is utc_now else clock,
                    stop=stop,
                    dkim=dkim,
                )
                report = drain.delivered[name]
                if report.stopped and stop is not None and stop.is_set():
                    # A clean stop (SIGTERM, SIGINT): nothing went wrong, the rest waits.
                    logger.info(
                        "briefing %s: delivery stopped for shutdown; %d claim(s) handed back "
                        "unsent, sent at the next start",
                        name,
                        report.released,
                    )
                elif report.stopped:
                    logger.error("briefing %s: delivery stopped: %s", name, report.stopped)
            except Exception as exc:  # one briefing's failure must not stop the others
                drain.failures[name] = _describe_error(exc)
                logger.error("briefing %s: delivery failed: %s", name, drain.failures[name])
                logger.debug("briefing %s: delivery traceback", name, exc_info=True)
    finally:
        transport.close()
    for name, report in drain.delivered.items():
        if report.handled:
            logger.info(
                "briefing %s: delivered %d sent, %d deferred, %d failed, %d cancelled, "
                "%d suppressed, %d expired",
                name,
                report.sent,
                report.deferred,
                report.failed,
                report.cancelled,
                report.suppressed,
                report.expired,
            )
    return drain


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, BriefingError):
        return f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message
    return f"{exc.__class__.__name__}: {exc}"


@dataclass
class Tick:
    """What one scheduled dispatch did: per briefing dispatched, then the drain."""

    dispatched: dict[str, DispatchReport] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    drain: Drain = field(default_factory=Drain)


@dataclass
class RunNow:
    """What one run-now did for a briefing."""

    briefing: str
    dispatched: DispatchReport
    drain: Drain


class Service:
    """The jobs of ``briefing serve``; each reads ops state from the tables when it runs."""

    def __init__(
        self,
        config: Config,
        database: Database,
        signer: Signer,
        *,
        clock: Clock = utc_now,
        deliver: bool = True,
    ) -> None:
        # False: dispatch only; `briefing deliver` workers drain the ledger (and confirmations).
        self.delivers = deliver
        self.config = config
        self.database = database
        self.signer = signer
        self.clock = clock
        # One dispatch at a time, scheduled or run-now: they share the ledger and variants.
        # Re-entrant because start-up holds it across its ingest and its dispatch.
        self._dispatching = threading.RLock()
        self._ingesting = threading.Lock()
        self._paused: set[str] = set()
        # Set when serve is told to stop: a running drain stops claiming and lets the
        # messages in flight finish (set from the main loop, never from a signal handler).
        self.stopping = threading.Event()
        self._mail_dkim: tuple[DkimSigner | None] | None = None  # read once, when first needed

    # --- jobs -----------------------------------------------------------------

    def start_up(self) -> None:
        """Ingest, then dispatch what came due while the service was down."""
        # Hold dispatch back until start-up has ingested, so catch-up editions are not
        # cut from stale content by the first scheduled dispatch; but no longer than one
        # fetch may take (plus a little), so a hanging feed never delays the sends.
        with self._dispatching:
            ingesting = threading.Thread(
                target=self._guarded("start-up ingest", self.ingest_sources),
                name="start-up ingest",
                daemon=True,
            )
            ingesting.start()
            wait = self.config.ingest.total_timeout.total_seconds() + STARTUP_INGEST_SLACK
            ingesting.join(wait)
            if ingesting.is_alive():
                logger.warning(
                    "start-up ingest still running after %gs (ingest.total_timeout plus %gs); "
                    "dispatching now with what is stored, the ingest goes on",
                    wait,
                    STARTUP_INGEST_SLACK,
                )
            tick = self.dispatch_due()
        reports = tick.dispatched.values()
        logger.info(
            "start-up catch-up: %d edition(s) dispatched (%d pending, %d skipped, "
            "%d suppressed, %d expired), %d sent",
            sum(r.dispatched for r in reports),
            sum(r.pending for r in reports),
            sum(r.skipped for r in reports),
            sum(r.suppressed for r in reports),
            sum(r.expired for r in reports),
            sum(r.sent for r in tick.drain.delivered.values()),
        )

    def send_transactional(self) -> None:
        """Send queued confirmations (a paused briefing does not hold them)."""
        if self.stopping.is_set() or not self.delivers:
            return
        if self._mail_dkim is None:
            self._mail_dkim = (DkimSigner.from_config(self.config),)
        drain_transactional(
            self.config,
            self.database,
            composers(self.config, self.signer),
            dkim=self._mail_dkim[0],
            clock=self.clock,
        )

    def poll_bounces(self) -> None:
        """Read the bounce mailbox (``bounces.imap``) as ``briefing bounces poll`` does."""
        if self.stopping.is_set():
            return
        counts: Counter[str] = Counter()
        for polled in poll(
            self.config, self.database, self.signer, imap_password(), now=self.clock()
        ):
            handled = polled.handled
            counts["unreadable" if handled.problem else str(handled.report.kind)] += 1
        if counts:
            logger.info(
                "bounces poll: %s",
                ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())),
            )

    def purge_signups(self) -> None:
        """Delete expired unconfirmed sign-ups (and what was typed in them) and stale links."""
        purged = purge(self.database, self.clock())
        if purged.confirmations or purged.subscribers or purged.requests:
            logger.info(
                "purge: %d expired sign-up(s), %d pending subscription(s), %d address(es), "
                "%d self-service link(s) deleted",
                purged.confirmations,
                purged.subscriptions,
                purged.subscribers,
                purged.requests,
            )

    def ingest_sources(self) -> None:
        """Read every source; log one line per source that changed or failed."""
        with self._ingesting:
            reports = ingest(self.config, self.database, self.clock())
        for report in reports:
            if report.failures:
                logger.warning(
                    "source %s: %s; %s", report.label, report.status, "; ".join(report.failures)
                )
            elif report.new or report.updated:
                logger.info(
                    "source %s: %d new, %d updated", report.label, report.new, report.updated
                )
        logger.info(
            "ingest: %d source(s), %d new and %d updated article(s), %d source(s) failed",
            len(reports),
            sum(r.new for r in reports),
            sum(r.updated for r in reports),
            sum(1 for r in reports if r.failed),
        )

    def dispatch_due(self) -> Tick:
        """Put every briefing's due editions in the ledger, then drain the unpaused ones."""
        with self._dispatching:
            now = self.clock()
            logger.debug("dispatch at %s", now.isoformat(timespec="seconds"))
            self._log_pauses(read_controls(self.database))
            tick = Tick()
            for name in self.config.briefings:
                try:
                    tick.dispatched[name] = dispatch(
                        self.config, self.database, self.signer, now, briefing=name
                    )
                except Exception as exc:  # one briefing's failure must not stop the others
                    tick.failures[name] = _describe_error(exc)
                    logger.error("briefing %s: dispatch failed: %s", name, tick.failures[name])
                    logger.debug("briefing %s: dispatch traceback", name, exc_info=True)
            tick.drain = self._drain()
            return tick

    def take_run_now_requests(self) -> list[RunNow]:
        """Run what ``briefing run-now`` asked for from other processes."""
        requests = {
            name: state
            for name, state in read_controls(self.database).items()
            if state.run_now_requested_at is not None
        }
        if not requests:
            return []
        # A dispatch is running: leave the requests for the next poll, seconds away.
        if not self._dispatching.acquire(blocking=False):
            return []
        try:
            return [ran for state in requests.values() if (ran := self._run_request(state))]
        finally:
            self._dispatching.release()

    # --- run-now --------------------------------------------------------------

    def run_now(self, briefing: str) -> RunNow:
        """Dispatch today's edition of ``briefing`` to everyone who has none, and deliver it."""
        with self._dispatching:
            return self._run_now(briefing)

    def _run_now(self, briefing: str) -> RunNow:
        report = dispatch(
            self.config, self.database, self.signer, self.clock(), briefing=briefing, force=True
        )
        drain = Drain() if report.paused else self._drain(only=briefing)
        return RunNow(briefing, report, drain)

    def _run_request(self, state: ControlState) -> RunNow | None:
        name, requested_at = state.briefing, state.run_now_requested_at
        assert requested_at is not None
        now = self.clock()
        settings = self.config.briefings.get(name)
        dropped = None
        if settings is None:
            dropped = "no such briefing in config.yaml"
        elif state.paused:
            dropped = "the briefing is paused"
        elif now - requested_at > settings.deadline:
            dropped = f"older than the briefing's deadline ({format_duration(settings.deadline)})"
        ran = None
        if dropped:
            logger.warning(
                "briefing %s: run-now requested at %s dropped: %s",
                name,
                f"{requested_at:%Y-%m-%d %H:%M:%S} UTC",
                dropped,
            )
        else:
            try:
                ran = self._run_now(name)
            except Exception as exc:  # the request stays; the next poll tries again
                logger.error("briefing %s: run-now failed: %s", name, _describe_error(exc))
                logger.debug("briefing %s: run-now traceback", name, exc_info=True)
                return None
            delivered = ran.drain.delivered.get(name, DeliveryReport())
            problem = delivered.stopped or ran.drain.failures.get(name)
            if problem:
                logger.warning(
                    "briefing %s: run-now requested at %s did not finish (%s): %d edition(s) "
                    "dispatched, %d sent",
                    name,
                    f"{requested_at:%Y-%m-%d %H:%M:%S} UTC",
                    problem,
                    ran.dispatched.dispatched,
                    delivered.sent,
                )
            else:
                logger.info(
                    "briefing %s: run-now requested at %s done: %d edition(s) dispatched, %d sent",
                    name,
                    f"{requested_at:%Y-%m-%d %H:%M:%S} UTC",
                    ran.dispatched.dispatched,
                    delivered.sent,
                )
        clear_run_now(self.database, name, requested_at, self.clock())
        return ran

    # --- the ledger -----------------------------------------------------------

    def _drain(self, only: str | None = None) -> Drain:
        if not self.delivers:
            return Drain()  # the deliver workers take it from the ledger
        # Read pauses afresh: ops may have paused since this dispatch began.
        controls = read_controls(self.database)
        self._log_pauses(controls)
        names = [only] if only else list(self.config.briefings)
        active = [n for n in names if not controls.get(n, ControlState(n)).paused]
        return drain_ledger(
            self.config, self.database, self.signer, active, self.clock, self.stopping
        )

    def _log_pauses(self, controls: dict[str, ControlState]) -> None:
        for name in self.config.briefings:
            state = controls.get(name, ControlState(name))
            if state.paused and name not in self._paused:
                self._paused.add(name)
                since = f"{state.paused_at:%Y-%m-%d %H:%M:%S} UTC" if state.paused_at else "?"
                logger.info(
                    "briefing %s: paused by %s at %s; nothing is dispatched or delivered "
                    "until `briefing resume %s`",
                    name,
                    state.paused_by or "?",
                    since,
                    name,
                )
            elif not state.paused and name in self._paused:
                self._paused.discard(name)
                logger.info(
                    "briefing %s: resumed; editions still before their deadline go "
                    "out now, later ones are recorded expired",
                    name,
                )

    # --- the APScheduler side ---------------------------------------------------

    def scheduler(self, now: datetime) -> BackgroundScheduler:
        """Build the scheduler with the static jobs, the first dispatch at ``now``."""
        settings = self.config.scheduler
        overruns = Overruns()
        scheduler = BackgroundScheduler(
            logger=overruns.logger,
            jobstores={"default": MemoryJobStore()},
            # Ingest, dispatch, the run-now poll and transactional mail may each be busy at once.
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        # Whole minutes: a 07:00 subscriber is dispatched at 07:00:00, not 07:00:41.
        minute = now.replace(second=0, microsecond=0)
        jobs = [
            ("start-up", self.start_up, DateTrigger(run_date=now, timezone=UTC)),
            (
                "ingest",
                self.ingest_sources,
                _every(settings.ingest_interval, start=now + settings.ingest_interval),
            ),
            ("dispatch", self.dispatch_due, _every(settings.dispatch_interval, start=minute)),
            (
                "controls",
                self.take_run_now_requests,
                _every(settings.control_interval, start=minute),
            ),
            (
                "mail",
                self.send_transactional,
                _every(timedelta(seconds=DRAIN_INTERVAL), start=now),
            ),
            ("purge", self.purge_signups, _every(self.config.web.purge_interval, start=now)),
        ]
        imap = self.config.bounces.imap
        if imap is not None and imap.poll_every is not None:
            jobs.append(("bounces", self.poll_bounces, _every(imap.poll_every, start=now)))
        for name, run, trigger in jobs:
            scheduler.add_job(self._guarded(name, run), trigger, id=name, name=name)
        scheduler.add_listener(overruns.finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        return scheduler

    @staticmethod
    def _guarded(job: str, run: Callable[[], object]) -> Callable[[], None]:
        def guarded() -> None:
            try:
                run()
            except Exception as exc:  # the service goes on; the next run tries again
                logger.error("%s job failed: %s", job, _describe_error(exc))
                logger.debug("%s job traceback", job, exc_info=True)

        return guarded


class _SchedulerLog(logging.LoggerAdapter[logging.Logger]):
    """APScheduler's logger, with its "maximum number of running instances" lines taken out."""

    def __init__(self, overruns: Overruns) -> None:
        super().__init__(logging.getLogger("apscheduler.scheduler"), {})
        self.overruns = overruns

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Pass every line on, except a skipped start of a job still running."""
        if isinstance(msg, str) and "maximum number of running instances" in msg and args:
            self.overruns.skipped(str(args[0]).split(" (trigger", 1)[0])
            return
        super().log(level, msg, *args, **kwargs)


class Overruns:
    """Log one line per overrun of a job, not one per skipped start.

    A job (a long dispatch, a slow drain) that is still running when its next
    start comes is not started twice (``max_instances`` 1); APScheduler logs a
    warning for every start it skips, once a second for the one-second jobs.
    Here the first skipped start of an overrun is logged once, at INFO, and the
    count is logged when the job finishes.
    """

    def __init__(self) -> None:
        self.logger = _SchedulerLog(self)
        self._skips: dict[str, int] = {}
        self._guard = threading.Lock()

    def skipped(self, job: str) -> None:
        """Note one skipped start of ``job``; log the first of an overrun."""
        with self._guard:
            first = job not in self._skips
            self._skips[job] = self._skips.get(job, 0) + 1
        if first:
            logger.info(
                "job %s is still running at its next start; starts are skipped until it ends",
                job,
            )

    def finished(self, event: JobExecutionEvent) -> None:
        """Close an overrun when its job ends (a listener of executed and failed jobs)."""
        with self._guard:
            count = self._skips.pop(event.job_id, 0)
        if count:
            logger.debug("job %s ended after %d skipped start(s)", event.job_id, count)


def _every(interval: timedelta, *, start: datetime) -> IntervalTrigger:
    return IntervalTrigger(seconds=interval.total_seconds(), start_date=start, timezone=UTC)


def serve(config: Config, database: Database, signer: Signer, *, deliver: bool = True) -> None:
    """Run the scheduler until SIGTERM or SIGINT; refuse if another one holds the database.

    ``deliver=False``: ingest and dispatch only; ``briefing deliver`` workers send.
    The process is in the live-process table while it runs.
    """
    imap = config.bounces.imap
    if imap is not None and imap.poll_every is not None:
        imap_password()  # missing: stop at start, naming the variable, not at each poll
    lock = acquire_scheduler_lock(database)
    received: list[str] = []

    def on_signal(number: int, _frame: FrameType | None) -> None:
        # Only note it: taking a lock here could deadlock the interrupted main thread.
        received.append(signal.Signals(number).name)

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)
    }
    scheduler = None
    service = Service(config, database, signer, deliver=deliver)
    presence = Presence(
        database,
        ProcessKind.SERVE,
        interval=config.delivery.heartbeat,
        detail={"deliver": deliver, "briefings": len(config.briefings)},
    )
    try:
        presence.start()
        scheduler = service.scheduler(utc_now())
        scheduler.start()
        settings = config.scheduler
        logger.info(
            "serve started: %d briefing(s), ingest every %s, dispatch every %s%s; holding the %s",
            len(config.briefings),
            format_duration(settings.ingest_interval),
            format_duration(settings.dispatch_interval),
            "" if deliver else " (delivery left to `briefing deliver` workers)",
            lock.description,
        )
        check_every = settings.control_interval.total_seconds()
        next_check = time.monotonic() + check_every
        while not received:
            time.sleep(SIGNAL_POLL_SECONDS)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + check_every
                if not lock.held():
                    raise SchedulerError(
                        f"lost the {lock.description}; stopping so that two schedulers never "
                        "run at once",
                        hint="Check the database (or that nobody deleted the lock file), then "
                        "start `briefing serve` again.",
                    )
        logger.info("serve stopping on %s: letting the running job finish", received[0])
    finally:
        service.stopping.set()
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=True)
        presence.stop()
        lock.release()
        for number, handler in previous.items():
            signal.signal(number, handler)
    logger.info("serve stopped; scheduler lock released")
