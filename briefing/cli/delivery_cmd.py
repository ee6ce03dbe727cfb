"""``briefing deliveries`` and ``briefing cancel``: read the ledger, and pull an edition."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from briefing.cli.app import App, pass_app
from briefing.domain.states import DeliveryState
from briefing.ops.deliveries import cancel_sending, issue_summaries
from briefing.ops.deliveries import failures as failed_deliveries
from briefing.store import ledger

EDITION_HELP = "An edition id, or BRIEFING:YYYY-MM-DD for a briefing's issue of that date."


@click.command("deliveries")
@click.option("--edition", "edition_text", metavar="E", help=EDITION_HELP)
@click.option(
    "--failed",
    "show_failed",
    is_flag=True,
    help="List who failed or bounced and the server's reply.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def deliveries_command(
    app: App, edition_text: str | None, show_failed: bool, as_json: bool
) -> None:
    """Summarise the delivery ledger by briefing, issue date and status."""
    target = ledger.parse_target(edition_text, app.config) if edition_text else None
    rows = issue_summaries(app.database, target)
    failures = failed_deliveries(app.database, target) if show_failed else []
    if as_json:
        data: dict[str, object] = {
            "editions": [
                {
                    "briefing": row.briefing,
                    "issue_date": row.issue_date.isoformat(),
                    "total": row.total,
                    "counts": row.counts,
                }
                for row in rows
            ]
        }
        if show_failed:
            data["failed"] = [
                {
                    "delivery": f.delivery_id,
                    "edition": f.edition_id,
                    "briefing": f.briefing,
                    "issue_date": f.issue_date.isoformat(),
                    "recipient": f.recipient,
                    "status": f.status,
                    "attempts": f.attempts,
                    "code": f.code,
                    "reply": f.reply,
                }
                for f in failures
            ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    console = Console(highlight=False, width=max(100, Console().width))
    if not rows:
        click.echo("no deliveries" + (f" for {target}" if target else ""))
        return
    states = [s for s in DeliveryState if any(s in row.counts for row in rows)]
    table = Table(title="deliveries", title_justify="left")
    table.add_column("briefing")
    table.add_column("issue date")
    for state in states:
        table.add_column(state, justify="right")
    table.add_column("total", justify="right")
    for row in rows:
        table.add_row(
            row.briefing,
            row.issue_date.isoformat(),
            *(f"{row.counts.get(s, 0):,}" for s in states),
            f"{row.total:,}",
        )
    console.print(table)
    if show_failed:
        if not failures:
            click.echo("nobody failed")
            return
        listing = Table(title="failed and bounced", title_justify="left")
        for column in ("edition", "recipient", "status", "attempts", "reply"):
            listing.add_column(column)
        for f in failures:
            listing.add_row(
                str(f.edition_id),
                f.recipient or "(removed)",
                f.status,
                str(f.attempts),
                f.reply or "",
            )
        console.print(listing)


@click.command("cancel")
@click.argument("edition_text", metavar="EDITION-OR-BRIEFING-DATE")
@click.option(
    "--reason",
    default="cancelled by ops",
    show_default=True,
    help="Recorded on each cancelled delivery.",
)
@pass_app
def cancel_command(app: App, edition_text: str, reason: str) -> None:
    """Stop any further sending of an edition (an id, or BRIEFING:YYYY-MM-DD).

    Unsent deliveries are marked cancelled. Those a run had already claimed are
    dropped at its next heartbeat, but a message already on the wire may still
    go out: they are reported as in flight. Messages already taken by the relay
    stay sent.
    """
    target = ledger.parse_target(edition_text, app.config)
    stopped, sent = cancel_sending(app.database, target, datetime.now(UTC), reason)
    click.echo(
        f"{target}: {stopped.cancelled} cancelled, {stopped.in_flight} in flight "
        f"(may still go out), {sent} already sent"
    )


COMMANDS = [deliveries_command, cancel_command]
