"""``briefing send``: dispatch the editions that are due and deliver them."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType

import click
from rich.console import Console

from briefing.audience.confirmations import composers
from briefing.cli.app import App, parse_at, pass_app
from briefing.cli.progress import failures_table, live_progress, report_table
from briefing.deliver import DkimSigner, Transport, make_transport
from briefing.deliver.parallel import deliver_on_machine
from briefing.deliver.transactional import drain_transactional
from briefing.editions.dispatch import dispatch
from briefing.store.ledger import count_due


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into a graceful stop; a second SIGINT quits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(number: int, frame: FrameType | None) -> None:
        if stop.is_set() and number == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        click.echo(
            f"{signal.Signals(number).name}: stopping after the messages in flight "
            "(Ctrl-C again to quit at once; a later `briefing send` resumes)",
            err=True,
        )

    previous = {
        number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def send_transactional(
    app: App, transport: Transport, dkim: DkimSigner | None, clock: Callable[[], datetime]
) -> None:
    """Send the queued confirmations and say how it went (nothing in redirect mode)."""
    config = app.config
    if config.delivery.redirect_to:
        return
    counts = drain_transactional(
        config,
        app.database,
        composers(config, app.signer),
        transport=transport,
        dkim=dkim,
        clock=clock,
    )
    if counts:
        done = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        click.echo(f"confirmations: {done}")


@click.command("send")
@click.option("--briefing", "briefing_key", help="Only this briefing.")
@click.option("--at", "at_text", help="Dispatch as if it were this time (ISO 8601; naive is UTC).")
@click.option(
    "--now",
    "force",
    is_flag=True,
    help="Send today's edition now to every subscription that has none, whatever its send time.",
)
@click.option(
    "--no-deliver",
    "no_deliver",
    is_flag=True,
    help="Only dispatch: put the due editions in the ledger and stop (`briefing send` or "
    "`briefing serve` delivers them later).",
)
@pass_app
def send_command(
    app: App, briefing_key: str | None, at_text: str | None, force: bool, no_deliver: bool
) -> None:
    """Dispatch due editions into the ledger, then deliver what the ledger holds.

    Queued confirmations go out first and again last (those queued meanwhile).
    Exits 0 when the run worked, whatever single recipients did; 1 when the run
    itself failed or stopped (refused session, a streak of the same refusal, an
    error); 130 when stopped by SIGINT or SIGTERM.
    """
    config = app.config
    if briefing_key:
        config.briefing(briefing_key)
    at = parse_at(at_text)
    dispatched = dispatch(config, app.database, app.signer, at, briefing=briefing_key, force=force)
    for name in dispatched.paused:
        click.echo(f"paused: {name} (nothing dispatched)")
    for line in dispatched.held_lines():
        click.echo(f"{line}; `briefing approve` sends them")
    click.echo(
        f"dispatched {dispatched.dispatched} edition(s) in {dispatched.variants} variant(s): "
        f"{dispatched.pending} to send, {dispatched.skipped} skipped (empty), "
        f"{dispatched.suppressed} suppressed, {dispatched.expired} expired "
        f"({dispatched.seconds:.1f} s)"
    )
    for note in dispatched.notes:
        click.echo(f"note: {note}")
    if no_deliver:
        click.echo("--no-deliver: the ledger holds them; nothing was sent")
        return
    dkim = DkimSigner.from_config(config)
    transport = make_transport(config)
    clock: Callable[[], datetime] = (lambda: at) if at_text else (lambda: datetime.now(UTC))
    if config.delivery.redirect_to:
        click.echo(
            f"redirect: every message goes to {config.delivery.redirect_to} with inert "
            "links; the ledger is not touched"
        )
    with app.database.transaction() as session:
        total = count_due(session, clock(), briefing_key)
    stop = threading.Event()
    console = Console(stderr=True, highlight=False)
    try:
        send_transactional(app, transport, dkim, clock)
        with stop_on_signals(stop), live_progress(console, total) as progress:
            report = deliver_on_machine(
                config,
                app.database,
                app.signer,
                transport,
                briefing=briefing_key,
                clock=clock if at_text else None,
                stop=stop,
                progress=progress,
                dkim=dkim,
                due=total,
            )
        if not stop.is_set():
            send_transactional(app, transport, dkim, clock)
    finally:
        transport.close()
    click.echo(
        f"delivered: {report.sent} sent, {report.deferred} deferred, {report.failed} failed, "
        f"{report.bounced} bounced, {report.cancelled} cancelled, {report.suppressed} suppressed, "
        f"{report.expired} expired, {report.released} left pending"
        + (f" ({report.processes} processes)" if report.processes > 1 else "")
    )
    out = Console(highlight=False, width=max(100, Console().width))
    out.print(report_table(report))
    if (failures := failures_table(report)) is not None:
        out.print(failures)
    if config.delivery.transport == "outbox" and report.sent:
        click.echo(f"messages: {config.outbox_path / 'new'}")
    if stop.is_set():
        click.echo("stopped on request; run `briefing send` again to resume", err=True)
        sys.exit(130)
    if report.stopped:
        click.secho(f"error: the run stopped: {report.stopped}", fg="red", err=True)
        if report.stop_hint:
            click.echo(f"hint: {report.stop_hint}", err=True)
        click.echo(
            f"{report.released} delivery(ies) left pending, none marked failed for it; "
            "run `briefing send` again once fixed",
            err=True,
        )
        sys.exit(1)
    # Recipients refused one by one (bounced, failed) are the list's news, not the run's:
    # they are in the report and the ledger, and the exit code stays 0 for cron and systemd.


COMMANDS = [send_command]
