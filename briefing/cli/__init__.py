"""The ``briefing`` command line: one group, commands in a module per area.

Errors are caught once, here: the message and a hint, exit status 1; the full
traceback only with ``--debug``.
"""

from __future__ import annotations

import logging
import sys

import click

from briefing.cli.app import App
from briefing.errors import BriefingError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="BRIEFING_CONFIG",
    default="config.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Path of config.yaml (env BRIEFING_CONFIG).",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@click.version_option(package_name="briefing")
@click.pass_context
def cli(context: click.Context, config_path: str, debug: bool, verbose: bool) -> None:
    """Turn a newsroom's feeds into timezone-aware email briefings."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    context.obj = App(config_path=config_path, debug=debug)
    context.call_on_close(context.obj.close)


def _register() -> None:
    # Imported here so each module can import `cli` without a cycle.
    from briefing.cli import (
        bounces_cmd,
        config_cmd,
        content_cmd,
        deliver_cmd,
        delivery_cmd,
        edition_cmd,
        inbound_cmd,
        schedule_cmd,
        send_cmd,
        sources_cmd,
        status_cmd,
        subscribers_cmd,
        users_cmd,
        web_cmd,
    )

    modules = (
        config_cmd,
        content_cmd,
        send_cmd,
        delivery_cmd,
        sources_cmd,
        subscribers_cmd,
        web_cmd,
        schedule_cmd,
        bounces_cmd,
        inbound_cmd,
        deliver_cmd,
        users_cmd,
        edition_cmd,
        status_cmd,
    )
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Run the CLI; report a BriefingError as message + hint and exit 1."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except BriefingError as exc:
        if debug:
            raise
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
