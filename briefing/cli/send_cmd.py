"""``briefing send``: dispatch the editions that are due and deliver them."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from briefing.cli.app import App, parse_at, pass_app
from briefing.deliver import deliver, make_transport
from briefing.dispatch import dispatch


@click.command("send")
@click.option("--briefing", "briefing_key", help="Only this briefing.")
@click.option("--at", "at_text", help="Dispatch as if it were this time (ISO 8601; naive is UTC).")
@click.option("--now", "force", is_flag=True,
              help="Send today's edition now to every subscription that has none, "
              "whatever its send time.")  # fmt: skip
@pass_app
def send_command(app: App, briefing_key: str | None, at_text: str | None, force: bool) -> None:
    """Dispatch due editions into the ledger, then deliver what the ledger holds."""
    config = app.config
    if briefing_key:
        config.briefing(briefing_key)
    at = parse_at(at_text)
    dispatched = dispatch(config, app.database, app.signer, at, briefing=briefing_key, force=force)
    for name in dispatched.paused:
        click.echo(f"paused: {name} (nothing dispatched)")
    click.echo(
        f"dispatched {dispatched.dispatched} edition(s) in {dispatched.variants} variant(s): "
        f"{dispatched.pending} to send, {dispatched.skipped} skipped (empty), "
        f"{dispatched.suppressed} suppressed, {dispatched.expired} expired"
    )
    for note in dispatched.notes:
        click.echo(f"note: {note}")
    transport = make_transport(config)
    clock = (lambda: at) if at_text else (lambda: datetime.now(UTC))
    try:
        report = deliver(config, app.database, app.signer, transport, briefing=briefing_key,
                         clock=clock)  # fmt: skip
    finally:
        transport.close()
    click.echo(
        f"delivered: {report.sent} sent, {report.deferred} deferred, {report.failed} failed, "
        f"{report.cancelled} cancelled, {report.suppressed} suppressed, {report.expired} expired"
    )
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    if config.delivery.transport == "outbox" and report.sent:
        click.echo(f"messages: {config.outbox_path / 'new'}")
    if report.failed:
        sys.exit(1)


COMMANDS = [send_command]
