"""``briefing users add | list | passwd | remove`` on a real project, and what the desk sees of it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from click.testing import CliRunner, Result
from sqlalchemy import select

from briefing.cli import cli
from briefing.config import Config
from briefing.domain.states import DeskAction
from briefing.errors import AccountError
from briefing.store import Database, open_database
from briefing.store.schema import DeskActivity, DeskUser
from tests.support.desk import DESK, serve_desk
from tests.support.factories import make_project

PASSWORD = "correct horse battery"


def run(config: Config, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["--config", str(config.base_dir / "config.yaml"), *args], input=stdin
    )


def test_add_asks_twice_and_stores_only_an_argon2_hash(project: Config, database: Database) -> None:
    mismatch = run(
        project,
        "users",
        "add",
        "Ann",
        "--role",
        "editor",
        stdin="one password\nanother one\n" + PASSWORD + "\n" + PASSWORD + "\n",
    )
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output.lower()  # asked again, then accepted
    assert "added ann (editor)" in mismatch.output
    with database.transaction() as session:
        stored = session.scalars(select(DeskUser.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)


def test_bad_accounts_are_refused_naming_them(project: Config) -> None:
    cases = [
        (("add", "bob", "--role", "ops"), "short\n", "at least 10 characters"),
        (("add", "bad name!", "--role", "ops"), PASSWORD + "\n", "a name is 1 to 64"),
        (("add", "longname12", "--role", "ops"), "LongName12\n", "not be the account's name"),
        (("passwd", "nobody"), PASSWORD + "\n", "no such account"),
        (("remove", "nobody"), None, "no such account"),
    ]
    for args, stdin, reason in cases:
        extra = ("--password-stdin",) if stdin is not None else ()
        result = run(project, "users", *args, *extra, stdin=stdin)
        assert result.exit_code == 1
        assert isinstance(result.exception, AccountError), result.output
        assert args[1] in str(result.exception) and reason in str(result.exception)
    assert run(project, "users", "add", "bob", "--role", "chief").exit_code == 2
    assert "no accounts yet" in run(project, "users", "list").output


def test_list_passwd_and_remove_end_sessions_and_are_recorded(tmp_path: Path) -> None:
    config = make_project(tmp_path, world=1, sport=1, wire=1)
    for name, role in (("ann", "admin"), ("bob", "editor")):
        added = run(
            config, "users", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert added.exit_code == 0, added.output
    database = open_database(config.database)
    with serve_desk(config, database, hasher=PasswordHasher()) as site:
        site.clock.now = datetime.now(UTC)  # the command line counts live sessions by the real time
        bob = site.session("bob", PASSWORD)
        listing = run(config, "users", "list").output.splitlines()
        assert listing[0].split() == [
            "name",
            "role",
            "created",
            "(UTC)",
            "password",
            "(UTC)",
            "sessions",
        ]
        assert listing[2].split()[:2] == ["bob", "editor"] and listing[2].split()[-1] == "1"
        changed = run(
            config, "users", "passwd", "bob", "--password-stdin", stdin="a new long password\n"
        )
        assert "1 session(s) ended" in changed.output
        assert site.get(DESK, bob).status_code == 303
        bob = site.session("bob", "a new long password")
        assert run(config, "users", "remove", "bob").exit_code == 0
        assert site.get(DESK, bob).status_code == 303
        assert "bob" not in run(config, "users", "list").output
    with database.transaction() as session:
        actions = session.execute(
            select(DeskActivity.user_name, DeskActivity.action, DeskActivity.detail).order_by(
                DeskActivity.id
            )
        ).all()
    database.dispose()
    done = [(action, detail) for who, action, detail in actions if who.endswith("(command line)")]
    assert done == [
        (DeskAction.USER_ADDED, "ann (admin)"),
        (DeskAction.USER_ADDED, "bob (editor)"),
        (DeskAction.PASSWORD_CHANGED, "bob"),
        (DeskAction.USER_REMOVED, "bob (editor)"),
    ]
