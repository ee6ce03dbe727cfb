"""``briefing users``: add, list, re-password and remove the desk's accounts."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from briefing.audience.accounts import Accounts, Actor
from briefing.cli.app import App, pass_app
from briefing.domain.states import Role


def _accounts(app: App) -> Accounts:
    return Accounts(app.database, app.config.desk)


def _read_password(from_stdin: bool) -> str:
    """Read a password: one line of standard input, or asked twice with a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    password: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return password


PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking.",
)


@click.group("users")
def users_group() -> None:
    """Manage the desk's accounts (editors, ops, admins); there is no default account."""


@users_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    required=True,
    help="editor: the coming editions; ops: sends and accounts' list; admin: both.",
)
@PASSWORD_STDIN
@pass_app
def add_command(app: App, name: str, role: str, password_stdin: bool) -> None:
    """Add an account NAME with a role; the password is asked twice (or read from stdin)."""
    password = _read_password(password_stdin)
    user = _accounts(app).add(name, Role(role), password, datetime.now(UTC), Actor.command_line())
    click.echo(f"added {user.name} ({user.role.value}); log in at {_login_url(app)}")


def _login_url(app: App) -> str:
    return f"{app.config.site.base_url}/desk/login"


@users_group.command("list")
@pass_app
def list_command(app: App) -> None:
    """List the accounts: name, role, when made, when the password last changed, sessions."""
    users = _accounts(app).users(datetime.now(UTC))
    if not users:
        click.echo("no accounts yet; add one with: briefing users add NAME --role admin")
        return
    width = max(4, *(len(user.name) for user in users))
    click.echo(
        f"{'name':<{width}}  {'role':<6}  {'created (UTC)':<16}  {'password (UTC)':<16}  sessions"
    )
    for user in users:
        click.echo(
            f"{user.name:<{width}}  {user.role.value:<6}  {user.created_at:%Y-%m-%d %H:%M}  "
            f"{user.password_changed_at:%Y-%m-%d %H:%M}  {user.sessions:>8}"
        )


@users_group.command("passwd")
@click.argument("name")
@PASSWORD_STDIN
@pass_app
def passwd_command(app: App, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME; every session of the account ends."""
    password = _read_password(password_stdin)
    ended = _accounts(app).set_password(name, password, datetime.now(UTC), Actor.command_line())
    click.echo(f"password of {name.strip().lower()} changed; {ended} session(s) ended")


@users_group.command("remove")
@click.argument("name")
@pass_app
def remove_command(app: App, name: str) -> None:
    """Remove the account NAME; its sessions end at once. Its activity stays listed."""
    _accounts(app).remove(name, datetime.now(UTC), Actor.command_line())
    click.echo(f"removed {name.strip().lower()}")


COMMANDS = [users_group]
