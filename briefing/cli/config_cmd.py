"""``briefing config check``: validate config.yaml and say what it holds."""

from __future__ import annotations

import os

import click

from briefing.cli.app import App, pass_app
from briefing.config import SECRET_KEY_ENV
from briefing.ingest import plan_sources


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@pass_app
def check(app: App) -> None:
    """Validate config.yaml; exit 1 with the key path of every problem."""
    config = app.config
    sources = plan_sources(config)
    click.echo(
        f"{app.config_path}: OK — {len(config.sections)} sections, {len(sources)} sources, "
        f"{len(config.briefings)} briefing(s): {', '.join(config.briefings)}"
    )
    click.echo(f"database: {config.database}")
    click.echo(f"transport: {config.delivery.transport} ({config.outbox_path})")
    if not os.environ.get(SECRET_KEY_ENV):
        click.echo(f"warning: {SECRET_KEY_ENV} is not set; send and preview need it", err=True)


COMMANDS = [config_group]
