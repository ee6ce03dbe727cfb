"""``briefing sources``: the health of every configured source."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from briefing.cli.app import App, pass_app
from briefing.ops.sources import source_health


def _when(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "never"


@click.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per source.")
@pass_app
def sources_command(app: App, as_json: bool) -> None:
    """Show each configured source's health: last success, last error, failures in a row."""
    health = source_health(app.config, app.database)
    if as_json:
        for item in health:
            click.echo(json.dumps(asdict(item), ensure_ascii=False))
        return
    width = max((len(item.label) for item in health), default=6)
    click.echo(
        f"{'kind':<8}  {'source':<{width}}  {'last success (UTC)':<20}  {'fails':>5}  "
        f"{'items':>6}  validators"
    )
    for item in health:
        validators = (
            ", ".join(
                name
                for name, present in (("ETag", item.etag), ("Last-Modified", item.last_modified))
                if present
            )
            or "-"
        )
        click.echo(
            f"{item.kind:<8}  {item.label:<{width}}  {_when(item.last_success_at):<20}  "
            f"{item.consecutive_failures:>5}  {item.items_seen:>6}  {validators}"
        )
        if item.label != item.location:
            click.echo(f"          location: {item.location}")
        if item.last_checked_at is None:
            click.echo("          not ingested yet")
        if item.flagged:
            click.echo(
                f"          FLAGGED: failing {item.consecutive_failures} runs in a row "
                f"(threshold {app.config.ingest.flag_after_failures})"
            )
        if item.last_error:
            click.echo(f"          last error: {item.last_error}")
    flagged = sum(item.flagged for item in health)
    failing = sum(item.consecutive_failures > 0 for item in health)
    click.echo(f"{len(health)} sources: {failing} failing on the last run, {flagged} flagged")


COMMANDS = [sources_command]
