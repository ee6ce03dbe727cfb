"""``briefing web``: serve the public endpoints (unsubscribe, preferences, sign-up)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import click

from briefing.cli.app import App, pass_app
from briefing.config import signing_keys


@click.command("web")
@click.option("--host", help="Address to listen on [default: web.host, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port to listen on [default: web.port, 8080]."
)
@pass_app
def web_command(app: App, host: str | None, port: int | None) -> None:
    """Serve one-click unsubscribe, preferences, sign-up and browser copies over HTTP."""
    # Imported here so other commands do not pay for starting the web stack.
    from briefing.web.server import bind, serve

    config = app.config
    keys = signing_keys()
    database = app.database
    host = host or config.web.host
    port = config.web.port if port is None else port
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    prefix = urlsplit(config.site.base_url).path.rstrip("/")
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving {config.site.base_url}/... on http://{shown}:{bound_port}{prefix}/")
    click.echo(f"sign-up form: http://{shown}:{bound_port}{prefix}/subscribe  (Ctrl-C stops)")
    level = logging.DEBUG if app.debug else logging.INFO
    # A server should say what it did (unsubscribes, confirmations) without -v.
    logging.getLogger("briefing").setLevel(level)
    serve(config, database, keys, sock=sock, log_level=level)


COMMANDS = [web_command]
