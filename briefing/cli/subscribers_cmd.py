"""``briefing subscribers``: import lists of subscribers."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from briefing.cli.app import App, pass_app
from briefing.subscribers import import_subscribers


@click.group("subscribers")
def subscribers_group() -> None:
    """Manage subscribers and their subscriptions."""


@subscribers_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_app
def import_command(app: App, file: Path) -> None:
    """Import a CSV of subscribers; bad rows are reported, good rows land (exit 1 if any bad)."""
    report = import_subscribers(app.config, app.database, file, datetime.now(UTC))
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    for line in report.refused:
        click.echo(f"refused {line}")
    for line in report.kept:
        click.echo(f"kept    {line}")
    click.echo(
        f"{file}: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.kept)} kept their own preferences, "
        f"{len(report.refused)} refused, {len(report.errors)} bad row(s)"
    )
    if report.errors:
        sys.exit(1)


COMMANDS = [subscribers_group]
