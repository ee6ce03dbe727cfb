"""``briefing bounces``: read the mail that came back, and list what it did."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from briefing.audience.bounces import Handled, intake, recent_events
from briefing.cli.app import App, pass_app
from briefing.config import imap_password
from briefing.errors import BriefingError


@click.group("bounces", invoke_without_command=True)
@click.option("--limit", default=50, show_default=True, help="How many events to list.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.pass_context
def bounces_group(context: click.Context, limit: int, as_json: bool) -> None:
    """List recent bounces, complaints, automatic replies and mailed unsubscribes."""
    if context.invoked_subcommand is not None:
        return
    app = context.find_object(App)
    assert app is not None
    events = recent_events(app.database, limit)
    if as_json:
        for event in events:
            click.echo(json.dumps(event, ensure_ascii=False))
        return
    if not events:
        click.echo("no bounce events recorded")
        return
    for event in events:
        click.echo(
            f"{event['at']}  {event['kind']:<11} {event['status'] or '-':<8} "
            f"{event['email'] or '-'}  delivery {event['delivery'] or '-'} "
            f"({event['matched_by'] or 'unmatched'}): {event['action']}"
        )


@bounces_group.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Classify only; change nothing in the database.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per message.")
@click.option(
    "--move-to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Move each handled message into this Maildir (its cur/), so the next run skips it.",
)
@pass_app
def import_command(
    app: App, path: Path, dry_run: bool, as_json: bool, move_to: Path | None
) -> None:
    """Read a Maildir, an mbox or one message file of returned mail, and act on each message."""
    counts: dict[str, int] = {}
    for handled in intake(
        app.config,
        app.database,
        app.signer,
        path,
        now=datetime.now(UTC),
        dry_run=dry_run,
        move_to=move_to,
    ):
        _echo(handled, counts, as_json=as_json, dry_run=dry_run)
    if not as_json:
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no messages"
        click.echo(f"{summary}{' (dry run: nothing changed)' if dry_run else ''}")


@bounces_group.command("poll")
@click.option("--dry-run", is_flag=True, help="Classify only; change and move nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per message.")
@pass_app
def poll_command(app: App, dry_run: bool, as_json: bool) -> None:
    """Read the IMAP folder bounces.imap names, act on each message, and move it when handled."""
    from briefing.audience.imap import poll

    config = app.config
    if config.bounces.imap is None:
        raise BriefingError(
            "bounces.imap is not set in config.yaml",
            hint="Add bounces.imap with host, user and folder (see docs/configuration.md).",
        )
    password = imap_password()
    counts: dict[str, int] = {}
    for polled in poll(
        config, app.database, app.signer, password, now=datetime.now(UTC), dry_run=dry_run
    ):
        _echo(polled.handled, counts, as_json=as_json, dry_run=dry_run)
    if not as_json:
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no messages"
        imap = config.bounces.imap
        assert imap is not None
        moved = (
            " (dry run: nothing changed or moved)"
            if dry_run
            else f"; handled ones moved to {imap.handled_folder}"
            + (f", unreadable ones to {imap.failed_folder}" if counts.get("unreadable") else "")
        )
        click.echo(f"{summary}{moved}" if counts else f"{summary}{' (dry run)' if dry_run else ''}")


COMMANDS = (bounces_group,)


def _echo(handled: Handled, counts: dict[str, int], *, as_json: bool, dry_run: bool) -> None:
    """Print one handled message (a JSON line, or a line of text) and count it by kind."""
    if handled.problem is not None:
        click.echo(f"warning: {handled.file}: not handled: {handled.problem}", err=True)
        counts["unreadable"] = counts.get("unreadable", 0) + 1
        return
    kind = str(handled.report.kind)
    counts[kind] = counts.get(kind, 0) + 1
    if as_json:
        click.echo(json.dumps(handled.as_json(), ensure_ascii=False))
    else:
        who = ", ".join(handled.report.recipients) or "-"
        done = "; ".join(handled.actions) or ("dry run" if dry_run else "-")
        click.echo(f"{handled.file}: {kind} {handled.report.status or ''} {who}: {done}")
