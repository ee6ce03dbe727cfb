"""``briefing deliver``: a drain-only delivery worker; ``briefing processes``: who is running.

Run one ``briefing deliver`` per machine (or several) against one
PostgreSQL: each claims batches of the ledger with ``FOR UPDATE SKIP LOCKED``
under leases that the database's clock ends, so a worker that dies (even by
``kill -9``) loses nothing: its claims are taken over by any other worker once
their lease lapses. Dispatch stays with the one ``briefing serve``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import click
from rich.console import Console
from rich.table import Table

from briefing.audience.confirmations import composers
from briefing.cli.app import App, parse_at, pass_app
from briefing.cli.send_cmd import stop_on_signals
from briefing.deliver import DeliveryReport, DkimSigner, make_transport
from briefing.deliver.parallel import deliver_on_machine
from briefing.deliver.ratelimit import RateLimiter
from briefing.deliver.transactional import drain_transactional
from briefing.domain.states import DeliveryState, ProcessKind
from briefing.ops.presence import Presence
from briefing.store.ledger import new_owner
from briefing.store.processes import STALE_AFTER_BEATS, live_processes
from briefing.store.processes import now as database_now

logger = logging.getLogger(__name__)


@click.command("deliver")
@click.option("--briefing", "briefing_key", help="Only this briefing's digests.")
@click.option(
    "--exit-when-idle",
    is_flag=True,
    help="Drain what is claimable now, then exit (for batch jobs and benchmarks).",
)
@click.option(
    "--at",
    "at_text",
    help="Judge deadlines and retry times as if it were this time (ISO 8601; naive is UTC); "
    "leases always follow the database's clock.",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.05, 300),
    default=2.0,
    show_default=True,
    help="Seconds to wait between looks at an empty ledger.",
)
@pass_app
def deliver_command(
    app: App, briefing_key: str | None, exit_when_idle: bool, at_text: str | None, poll: float
) -> None:
    """Drain the delivery ledger (digests and confirmations) without dispatching.

    Run as many as you like, on as many machines, against one PostgreSQL; one
    `briefing serve --no-deliver` dispatches. Each worker takes its share of
    delivery.rate_limit (the limit divided by the live workers). SIGTERM or
    SIGINT: finish the messages in flight, hand unsent claims back, exit.
    Exits 0 when the worker worked (whatever single recipients did); 1 when a
    run stopped (refused session, a streak of the same refusal, an error);
    130 when stopped by SIGINT or SIGTERM.
    """
    config = app.config
    if briefing_key:
        config.briefing(briefing_key)
    if config.delivery.redirect_to:
        click.echo(
            f"redirect: every message goes to {config.delivery.redirect_to} with inert "
            "links; the ledger is not touched"
        )
    # The worker's name in claims; a restarted worker is a new owner and takes its own
    # old claims over like anyone else's: when their lease lapses.
    owner = new_owner()
    at = parse_at(at_text) if at_text else None
    clock: Callable[[], datetime] = (lambda: at) if at else (lambda: datetime.now(UTC))
    dkim = DkimSigner.from_config(config)
    transport = make_transport(config)
    limiter = getattr(transport, "limiter", None)

    def take_share(workers: int) -> None:
        if isinstance(limiter, RateLimiter) and limiter.limit is not None:
            share = limiter.share(workers)
            logger.debug("rate share: %s msg/s (%d live worker(s))", share, workers)

    def live_workers() -> int:
        return limiter.workers if isinstance(limiter, RateLimiter) else 1

    stop = threading.Event()
    total: Counter[DeliveryState] = Counter()
    released = 0
    stopped: DeliveryReport | None = None
    detail = {
        "owner": owner,
        "briefing": briefing_key,
        "exit_when_idle": exit_when_idle,
        "connections": transport.connections,
        "rate_limit": config.delivery.rate_limit,
    }
    presence = Presence(
        app.database,
        ProcessKind.DELIVER,
        interval=config.delivery.heartbeat,
        detail=detail,
        on_beat=take_share,
    )
    click.echo(
        f"deliver worker {owner}: {transport.describe()}, {transport.connections} "
        f"connection(s){', only ' + briefing_key if briefing_key else ''}"
    )
    try:
        with stop_on_signals(stop), presence:
            while not stop.is_set():
                mail: Counter[DeliveryState] = Counter()
                if not config.delivery.redirect_to:
                    mail = drain_transactional(
                        config,
                        app.database,
                        composers(config, app.signer),
                        transport=transport,
                        dkim=dkim,
                        clock=clock,
                        owner=owner,
                        take_over_local=False,
                    )
                report = deliver_on_machine(
                    config,
                    app.database,
                    app.signer,
                    transport,
                    briefing=briefing_key,
                    clock=clock if at else None,
                    stop=stop,
                    dkim=dkim,
                    take_over_local=False,
                    owner=owner,
                    live_workers=live_workers,
                )
                total.update(report.counts)
                total.update(mail)
                released += report.released
                if report.handled or mail:
                    click.echo(_pass_line(report, mail))
                if report.stopped and not stop.is_set():
                    stopped = report
                    break
                if exit_when_idle and not report.handled and not mail:
                    break
                if not report.handled and not mail:
                    stop.wait(poll)
    finally:
        transport.close()
    click.echo(
        "worker done: "
        + ", ".join(f"{total[state]} {state}" for state in _SHOWN)
        + f", {released} handed back"
    )
    if stop.is_set():
        click.echo("stopped on request; unsent claims were handed back", err=True)
        sys.exit(130)
    if stopped is not None:
        click.secho(f"error: the run stopped: {stopped.stopped}", fg="red", err=True)
        if stopped.stop_hint:
            click.echo(f"hint: {stopped.stop_hint}", err=True)
        sys.exit(1)


_SHOWN = (
    DeliveryState.SENT,
    DeliveryState.DEFERRED,
    DeliveryState.FAILED,
    DeliveryState.BOUNCED,
    DeliveryState.CANCELLED,
    DeliveryState.SUPPRESSED,
    DeliveryState.EXPIRED,
)


def _pass_line(report: DeliveryReport, mail: Counter[DeliveryState]) -> str:
    parts = [f"{report.counts[state]} {state}" for state in _SHOWN if report.counts[state]]
    line = f"delivered {', '.join(parts) or 'nothing'} in {report.elapsed:.1f}s"
    if report.processes > 1:
        line += f" by {report.processes} processes"
    if mail:
        line += "; confirmations: " + ", ".join(f"{n} {s}" for s, n in sorted(mail.items()))
    return line


@click.command("processes")
@click.option("--kind", type=click.Choice([k.value for k in ProcessKind]), help="Only this kind.")
@pass_app
def processes_command(app: App, kind: str | None) -> None:
    """List the live serve, deliver and web processes with their last heartbeat."""
    stale = STALE_AFTER_BEATS * app.config.delivery.heartbeat
    with app.database.transaction() as session:
        rows = live_processes(
            session, ProcessKind(kind) if kind else None, stale=timedelta(seconds=stale)
        )
        moment = database_now(session)
    if not rows:
        click.echo("no live processes" + (f" of kind {kind}" if kind else ""))
        return
    table = Table(title="live processes (times by the database's clock)")
    for column in ("kind", "host", "pid", "started", "last heartbeat", "detail"):
        table.add_column(column)
    for row in rows:
        age = (moment - row.heartbeat_at).total_seconds()
        detail = ", ".join(f"{k}={v}" for k, v in row.detail.items() if v not in (None, False))
        table.add_row(
            row.kind.value,
            row.host,
            str(row.pid),
            f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC",
            f"{max(0.0, age):.0f}s ago",
            detail,
        )
    Console(highlight=False, width=max(100, Console().width)).print(table)


COMMANDS = [deliver_command, processes_command]
