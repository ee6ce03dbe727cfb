"""``briefing inbound``: receive returned mail over LMTP or SMTP from the relay."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from briefing.audience.inbound import Receiver, run_receiver
from briefing.cli.app import App, pass_app


@click.command("inbound")
@click.option("--host", help="Address to listen on [default: inbound.host, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port to listen on [default: inbound.port]."
)
@click.option(
    "--protocol",
    type=click.Choice(["lmtp", "smtp"]),
    help="lmtp (one reply per recipient) or smtp [default: inbound.protocol, lmtp].",
)
@pass_app
def inbound_command(app: App, host: str | None, port: int | None, protocol: str | None) -> None:
    """Receive bounces, complaints and mailed unsubscribes from the relay, and act on each."""
    config = app.config
    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if protocol:
        overrides["protocol"] = protocol
    settings = config.inbound.model_copy(update=overrides)
    signer = app.signer
    database = app.database
    # A server should say what it did (each message, each refusal) without -v.
    logging.getLogger("briefing").setLevel(logging.DEBUG if app.debug else logging.INFO)
    stop = threading.Event()

    def on_signal(number: int, _frame: FrameType | None) -> None:
        stop.set()

    def ready(receiver: Receiver) -> None:
        shown = f"[{receiver.host}]" if ":" in receiver.host else receiver.host
        click.echo(
            f"inbound: {receiver.protocol.upper()} on {shown}:{receiver.port} for "
            f"{receiver.handler.recipients.describe()}; at most {settings.max_bytes} bytes "
            "a message (SIGTERM or Ctrl-C stops)",
        )

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        handler = run_receiver(config, database, signer, stop, settings=settings, on_ready=ready)
    finally:
        for number, handler_before in previous.items():
            signal.signal(number, handler_before)
    click.echo(f"inbound: stopped after {handler.handled} message(s) handled")


COMMANDS = (inbound_command,)
