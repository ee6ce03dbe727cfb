"""The desk's redirect rule, CSRF tokens and role reach, without a server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from briefing.audience.accounts import Accounts
from briefing.config import DeskConfig
from briefing.domain.states import Role
from briefing.store import open_database
from briefing.web.desk.auth import Desk
from tests.support.factories import make_project


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accounts]:
    config = make_project(tmp_path_factory.mktemp("desk"), world=0, sport=0, wire=0)
    database = open_database(config.database)
    yield Accounts(database, config.desk)
    database.dispose()


@pytest.fixture
def desk(accounts: Accounts) -> Desk:
    return Desk.build(accounts, "/b", "https://news.example.org/b", [b"new key", b"old key"])


@pytest.mark.parametrize(
    ("wanted", "followed"),
    [
        ("/b/desk/", "/b/desk/"),
        ("/b/desk/activity?page=2", "/b/desk/activity?page=2"),
        ("/b/desk/ops/users", "/b/desk/ops/users"),
        (None, "/b/desk/"),
        ("", "/b/desk/"),
        ("https://evil.example/b/desk/", "/b/desk/"),
        ("//evil.example/b/desk/", "/b/desk/"),
        ("/\\evil.example", "/b/desk/"),
        ("/b/desk/\\..\\x", "/b/desk/"),
        ("/b/desk/\x00", "/b/desk/"),
        ("/b/desk/login?next=//evil.example", "/b/desk/"),
        ("/b/deskx", "/b/desk/"),
        ("/b/u/token", "/b/desk/"),
        ("data:text/html,hi", "/b/desk/"),
        ("/b/desk/" + "a" * 2001, "/b/desk/"),
    ],
)
def test_next_is_followed_only_to_a_desk_page(
    desk: Desk, wanted: str | None, followed: str
) -> None:
    assert desk.safe_next(wanted) == followed


def test_csrf_tokens_belong_to_one_session_and_survive_a_key_rotation(
    desk: Desk, accounts: Accounts
) -> None:
    token = desk.csrf("session-a")
    assert desk.csrf_valid("session-a", token)
    assert not desk.csrf_valid("session-b", token)
    assert not desk.csrf_valid("session-a", token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not desk.csrf_valid("session-a", "")
    rotated = Desk.build(accounts, "/b", "https://news.example.org/b", [b"old key"])
    assert desk.csrf_valid("session-a", rotated.csrf("session-a"))
    assert desk.secure and not Desk.build(accounts, "", "http://localhost:8080", [b"k"]).secure


def test_admin_reaches_every_page_and_the_others_their_own() -> None:
    assert all(Role.ADMIN.may(role) for role in Role)
    assert Role.EDITOR.may(Role.EDITOR) and not Role.EDITOR.may(Role.OPS)
    assert Role.OPS.may(Role.OPS) and not Role.OPS.may(Role.EDITOR)
    assert not Role.OPS.may(Role.ADMIN)


def test_sessions_must_last_a_while() -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        DeskConfig.model_validate({"idle_timeout": "0s"})
