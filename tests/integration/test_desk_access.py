"""The desk's accounts, sessions and access, over a real server: every refusal a user could meet."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from starlette.routing import Route

from briefing.config import Config
from briefing.domain.states import DeskAction, Role
from briefing.store import Database, open_database
from briefing.store.schema import DeskSession, DeskUser
from briefing.web.desk import routes as desk_routes
from tests.support.desk import DESK, PASSWORD, DeskSite, serve_desk, session_cookie
from tests.support.factories import make_project
from tests.support.web import form_token


def desk_project(tmp_path: Path, **desk: object) -> Config:
    """Return a small project with these ``desk:`` settings."""
    return make_project(tmp_path, world=1, sport=1, wire=1, desk=desk)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DeskSite]:
    config = desk_project(
        tmp_path, idle_timeout="10m", max_age="1h", failures_per_account=3,
        failures_per_network=8, failure_window="15m",
    )  # fmt: skip
    database = open_database(config.database)
    with serve_desk(config, database) as served:
        yield served
    database.dispose()


def stored_sessions(database: Database) -> list[str]:
    with database.transaction() as session:
        return list(session.scalars(select(DeskSession.id_hash)))


def test_an_anonymous_visitor_is_sent_to_the_login_and_back(site: DeskSite) -> None:
    for path in ("", "activity", "ops/users", "password"):
        response = site.get(DESK + path, None)
        assert response.status_code == 303
        assert response.headers["location"].startswith(DESK + "login")
    asked = site.get(DESK + "activity?page=2", None)
    assert asked.headers["location"] == DESK + "login?next=/b/desk/activity%3Fpage%3D2"
    assert site.post(DESK + "logout", None, {}).headers["location"] == DESK + "login"
    site.add("ann", Role.EDITOR)
    back = site.login("ann", next="/b/desk/activity?page=2")
    assert back.status_code == 303
    assert back.headers["location"] == "/b/desk/activity?page=2"


def test_every_desk_route_but_the_login_refuses_an_anonymous_visitor(site: DeskSite) -> None:
    guarded = [
        (method, route.path)
        for route in desk_routes()
        if isinstance(route, Route) and route.path != "/desk/login"
        for method in sorted(route.methods or ())
        if method != "HEAD"
    ]
    assert len(guarded) >= 6
    for method, path in guarded:
        response = site.client.request(method, "/b" + path, headers=site.cookie_header("made-up"))
        assert response.status_code == 303, (method, path)
        assert response.headers["location"].startswith(DESK + "login"), (method, path)


def test_login_sets_a_strict_http_only_cookie_and_stores_only_its_hash(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    response = site.login("ann")
    header = next(h for h in response.headers.get_list("set-cookie") if "briefing_desk" in h)
    flags = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/b/desk"} <= flags
    sid = session_cookie(response)
    assert sid and len(sid) >= 43
    assert stored_sessions(site.database) == [hashlib.sha256(sid.encode()).hexdigest()]
    home = site.get(DESK, sid)
    assert home.status_code == 200
    assert "The Daily" in home.text and "ann (editor)" in home.text
    assert "Content-Security-Policy" in home.headers
    assert home.headers["Cache-Control"] == "no-store"


def test_roles_are_enforced_on_every_route(site: DeskSite) -> None:
    site.add("ed", Role.EDITOR)
    site.add("op", Role.OPS)
    site.add("root", Role.ADMIN)
    editor, ops, admin = (site.session(name) for name in ("ed", "op", "root"))
    refused = site.get(DESK + "ops/users", editor)
    assert refused.status_code == 403
    assert "This page is for ops accounts" in refused.text
    assert "<td>root</td>" not in refused.text
    for sid in (ops, admin):
        listing = site.get(DESK + "ops/users", sid)
        assert listing.status_code == 200
        assert all(f"<td>{name}</td>" in listing.text for name in ("ed", "op", "root"))
    assert "Accounts</a>" not in site.get(DESK, editor).text
    assert "Accounts</a>" in site.get(DESK, ops).text


def test_wrong_passwords_are_limited_per_account_without_telling_who_exists(
    site: DeskSite,
) -> None:
    site.add("ann", Role.EDITOR)
    for name in ("ann", "nobody"):
        answers = [site.login(name, "not the password at all") for _ in range(3)]
        assert [a.status_code for a in answers] == [400, 400, 400]
        assert all("do not match an account" in a.text for a in answers)
        limited = site.login(name, PASSWORD)  # even the right password waits now
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "900"
        assert "Too many failed logins for this account or from your network" in limited.text
        assert session_cookie(limited) is None
    site.clock.now += timedelta(minutes=16)
    assert site.login("ann").status_code == 303


def test_parallel_wrong_passwords_cannot_outrun_the_limit(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    token = form_token(site.client.get(DESK + "login").text)
    form = {"form_token": token, "name": "ann", "password": "not the password at all"}
    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = sorted(
            pool.map(lambda _: site.client.post(DESK + "login", data=form).status_code, range(10))
        )
    assert codes == [400] * 3 + [429] * 7


def test_wrong_passwords_are_limited_per_network(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    for index in range(8):  # eight names, two failures each at most: under the account limit
        assert site.login(f"guess{index % 4}", "wrong password here").status_code == 400
    refused = site.login("ann")
    assert refused.status_code == 429
    assert "from your network" in refused.text


def test_a_cookie_planted_before_login_is_never_the_session_after(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    site.add("mallory", Role.EDITOR)
    planted = "planted-by-someone-else-0123456789abcdefghijk"
    response = site.login("ann", cookie=planted)
    sid = session_cookie(response)
    assert sid and sid != planted
    assert site.get(DESK, planted).status_code == 303
    # A real session of another account, planted in the browser, ends at the login.
    theirs = site.session("mallory")
    mine = session_cookie(site.login("ann", cookie=theirs))
    assert mine and mine != theirs
    assert site.get(DESK, theirs).status_code == 303
    assert "ann (editor)" in site.get(DESK, mine).text


def test_forms_without_this_sessions_csrf_token_are_refused(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    site.add("bob", Role.EDITOR)
    sid = site.session("ann")
    other = site.session("bob")
    for data in ({}, {"csrf_token": "0" * 64}, {"csrf_token": site.csrf(other)}):
        refused = site.post(DESK + "logout", sid, data)
        assert refused.status_code == 403
        assert "security token" in refused.text
    cross = site.post(
        DESK + "logout", sid, {"csrf_token": site.csrf(sid)}, origin="https://evil.example"
    )
    assert cross.status_code == 403
    assert site.get(DESK, sid).status_code == 200  # still logged in: nothing ran
    login = site.client.post(DESK + "login", data={"name": "ann", "password": PASSWORD})
    assert login.status_code == 403  # the login form needs its own signed token
    out = site.post(DESK + "logout", sid, {"csrf_token": site.csrf(sid)})
    assert out.status_code == 303
    assert session_cookie(out) == ""
    assert site.get(DESK, sid).status_code == 303


def test_a_removed_accounts_session_is_dead_at_once(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    sid = site.session("ann")
    assert site.get(DESK, sid).status_code == 200
    site.accounts.remove("ann", site.clock(), site.accounts_actor())
    assert site.get(DESK, sid).status_code == 303
    assert stored_sessions(site.database) == []


def test_a_password_change_ends_every_other_session(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    here, there = site.session("ann"), site.session("ann")
    new = "a different long password"
    mismatch = site.post(
        DESK + "password",
        here,
        {"csrf_token": site.csrf(here), "current": PASSWORD, "new": new, "again": new + "x"},
    )
    assert mismatch.status_code == 400 and "differ" in mismatch.text
    changed = site.post(
        DESK + "password",
        here,
        {"csrf_token": site.csrf(here), "current": PASSWORD, "new": new, "again": new},
    )
    assert changed.status_code == 303
    fresh = session_cookie(changed)
    assert fresh and fresh not in (here, there)
    assert site.get(DESK, here).status_code == 303
    assert site.get(DESK, there).status_code == 303
    assert site.get(DESK + "password?done=1", fresh).status_code == 200
    assert site.login("ann", PASSWORD).status_code == 400
    assert site.login("ann", new).status_code == 303
    # From the command line: every session ends.
    ended = site.accounts.set_password(
        "ann", "yet another password", site.clock(), site.accounts_actor()
    )
    assert ended == 2
    assert site.get(DESK, fresh).status_code == 303


def test_sessions_expire_when_idle_and_at_their_maximum_age(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    idle = site.session("ann")
    assert [user.sessions for user in site.accounts.users(site.clock())] == [1]
    site.clock.now += timedelta(minutes=11)
    assert [user.sessions for user in site.accounts.users(site.clock())] == [0]  # not counted
    expired = site.get(DESK + "activity", idle)
    assert expired.status_code == 303 and session_cookie(expired) == ""
    assert expired.headers["location"] == DESK + "login?next=/b/desk/activity&done=expired"
    assert "Your session ended" in site.client.get(expired.headers["location"]).text
    busy = site.session("ann")
    for _ in range(6):  # used every 9 minutes: never idle, but 54 minutes old
        site.clock.now += timedelta(minutes=9)
        assert site.get(DESK, busy).status_code == 200
    site.clock.now += timedelta(minutes=7)  # 61 minutes after the login
    assert site.get(DESK, busy).status_code == 303
    assert stored_sessions(site.database) == []


@pytest.mark.parametrize(
    "wanted",
    [
        "https://evil.example/",
        "//evil.example/b/desk/",
        "/\\evil.example/b/desk/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/b/subscribe",
        "/b/desk/login",
        "/b/desk/\r\nSet-Cookie:x=1",
        "http:/b/desk/",
    ],
)
def test_next_never_leaves_the_desk(site: DeskSite, wanted: str) -> None:
    site.add("ann", Role.EDITOR)
    response = site.login("ann", next=wanted)
    assert response.status_code == 303
    assert response.headers["location"] == DESK


def test_the_activity_list_shows_who_did_what(site: DeskSite) -> None:
    site.add("ed", Role.EDITOR)
    site.add("op", Role.OPS)
    site.login("op", "a wrong password!")
    editor, ops = site.session("ed"), site.session("op")
    site.post(DESK + "logout", editor, {"csrf_token": site.csrf(editor)})
    editor = site.session("ed")
    own = site.get(DESK + "activity", editor).text
    assert own.count(f"<td>{DeskAction.LOGIN}</td>") == 2 and DeskAction.LOGOUT in own
    assert "<td>op</td>" not in own
    everyone = site.get(DESK + "activity", ops).text
    assert "<td>op</td>" in everyone and "<td>ed</td>" in everyone
    assert DeskAction.LOGIN_REFUSED in everyone and DeskAction.USER_ADDED in everyone


def test_a_login_rehashes_a_password_hashed_with_older_parameters(tmp_path: Path) -> None:
    config = desk_project(tmp_path)
    database = open_database(config.database)
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    with serve_desk(config, database, hasher=stronger) as site:
        site.add("ann", Role.EDITOR)  # hashed with the fast test parameters
        with database.transaction() as session:
            before = session.scalars(select(DeskUser.password_hash)).one()
        assert site.login("ann").status_code == 303
        with database.transaction() as session:
            after = session.scalars(select(DeskUser.password_hash)).one()
    database.dispose()
    assert "$m=1024,t=1,p=1$" in before and "$m=2048,t=2,p=1$" in after
    assert stronger.verify(after, PASSWORD)
