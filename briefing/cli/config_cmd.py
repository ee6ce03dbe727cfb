"""``briefing config check``: validate config.yaml and say what it holds."""

from __future__ import annotations

import os

import click

from briefing.cli.app import App, pass_app
from briefing.config import (
    DKIM_KEY_ENV,
    MAILGUN_SIGNING_KEY_ENV,
    SECRET_KEY_ENV,
    SMTP_PASSWORD_ENV,
    WEBHOOK_TOKEN_ENV,
    Config,
)
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
    delivery = config.delivery
    if delivery.transport == "smtp" and delivery.smtp is not None:
        smtp = delivery.smtp
        click.echo(
            f"transport: smtp {smtp.host}:{smtp.port} ({smtp.security}), "
            f"{smtp.pool_size} connection(s)"
        )
    else:
        click.echo(f"transport: {delivery.transport} ({config.outbox_path})")
    if delivery.redirect_to:
        click.echo(f"redirect: every message goes to {delivery.redirect_to} (ledger untouched)")
    if not os.environ.get(SECRET_KEY_ENV):
        click.echo(f"warning: {SECRET_KEY_ENV} is not set; send and preview need it", err=True)
    for warning in delivery_warnings(config):
        click.echo(f"warning: {warning}", err=True)
    hooks = config.webhooks
    served = [
        *(["generic (/hooks/events)"] if hooks.generic else []),
        *([f"ses (/hooks/ses, {len(hooks.ses.topics)} topic(s))"] if hooks.ses else []),
        *(["mailgun (/hooks/mailgun)"] if hooks.mailgun else []),
    ]
    if served:
        click.echo(f"webhooks: {', '.join(served)}")
    for needed, variable in (
        (hooks.generic, WEBHOOK_TOKEN_ENV),
        (hooks.mailgun, MAILGUN_SIGNING_KEY_ENV),
    ):
        if needed and not os.environ.get(variable):
            click.echo(f"warning: {variable} is not set; `briefing web` needs it", err=True)


def delivery_warnings(config: Config) -> list[str]:
    """Return what an operator should fix before sending over SMTP."""
    delivery = config.delivery
    warnings: list[str] = []
    if delivery.transport != "smtp":
        return warnings
    if delivery.dkim is None or not os.environ.get(DKIM_KEY_ENV):
        missing = (
            "delivery.dkim is not set" if delivery.dkim is None else f"{DKIM_KEY_ENV} is not set"
        )
        warnings.append(
            f"SMTP is on without DKIM ({missing}): RFC 8058 one-click unsubscribe expects "
            "List-Unsubscribe and List-Unsubscribe-Post to be covered by a DKIM signature"
        )
    smtp = delivery.smtp
    if smtp is not None and smtp.username and not os.environ.get(SMTP_PASSWORD_ENV):
        warnings.append(f"{SMTP_PASSWORD_ENV} is not set; smtp.username needs it")
    return warnings


COMMANDS = [config_group]
