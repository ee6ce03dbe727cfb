"""Serve the desk on a real server and drive it with httpx: accounts, logins, cookies, forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from argon2 import PasswordHasher

from briefing.audience.accounts import Accounts, Actor, DeskUser
from briefing.config import Config
from briefing.domain.states import Role
from briefing.store import Database
from briefing.web import create_app
from briefing.web.desk.auth import COOKIE, CSRF_FIELD
from tests.support.factories import KEY
from tests.support.web import Clock, form_token, live_server

# Real Argon2id with small costs, so a test logs in within milliseconds.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "a long enough password"
DESK = "/b/desk/"  # the test project's base_url path is /b
START = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def session_cookie(response: httpx.Response) -> str | None:
    """Return the session id a response sets ("" when it clears the cookie), or None."""
    for header in response.headers.get_list("set-cookie"):
        match = re.match(rf"{COOKIE}=([^;]*)", header)
        if match:
            value = match.group(1).strip('"')
            return "" if "max-age=0" in header.lower() else value
    return None


def csrf_of(html: str) -> str:
    """Return the session's CSRF token from a desk page."""
    match = re.search(rf'name="{CSRF_FIELD}" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@dataclass
class DeskSite:
    """A live desk: its origin, an httpx client, the app's clock and the accounts service."""

    config: Config
    database: Database
    accounts: Accounts
    clock: Clock
    client: httpx.Client

    def add(self, name: str, role: Role, password: str = PASSWORD) -> DeskUser:
        """Add an account as the command line would."""
        return self.accounts.add(name, role, password, self.clock(), Actor(None, "test"))

    def accounts_actor(self) -> Actor:
        """Return who a test's own account changes are recorded as."""
        return Actor(None, "test")

    def login(
        self,
        name: str,
        password: str = PASSWORD,
        *,
        cookie: str | None = None,
        next: str | None = None,
    ) -> httpx.Response:
        """Post the login form as a browser would: its form token, the name and password."""
        page = self.client.get(DESK + "login")
        data = {"form_token": form_token(page.text), "name": name, "password": password}
        if next is not None:
            data["next"] = next
        return self.client.post(DESK + "login", data=data, headers=self.cookie_header(cookie))

    def session(self, name: str, password: str = PASSWORD) -> str:
        """Log in and return the new session id."""
        response = self.login(name, password)
        assert response.status_code == 303, response.text
        sid = session_cookie(response)
        assert sid
        return sid

    @staticmethod
    def cookie_header(sid: str | None) -> dict[str, str]:
        # The cookie is Secure (base_url is https) and this server is plain http, so
        # it is sent by hand, as a browser would send it to the https site.
        return {"Cookie": f"{COOKIE}={sid}"} if sid is not None else {}

    def get(self, path: str, sid: str | None) -> httpx.Response:
        """GET a desk page with a session cookie."""
        return self.client.get(path, headers=self.cookie_header(sid))

    def post(
        self, path: str, sid: str | None, data: dict[str, str], **headers: str
    ) -> httpx.Response:
        """POST a desk form with a session cookie (and any extra headers)."""
        return self.client.post(path, data=data, headers=self.cookie_header(sid) | headers)

    def csrf(self, sid: str) -> str:
        """Return the CSRF token the desk's pages carry for a session."""
        return csrf_of(self.get(DESK, sid).text)


@contextmanager
def serve_desk(
    config: Config,
    database: Database,
    hasher: PasswordHasher = FAST_HASHER,
    *,
    drain_interval: float | None = None,
) -> Iterator[DeskSite]:
    """Serve ``config``'s site with its desk on 127.0.0.1; yield it with a client.

    With ``drain_interval`` the web process sends transactional mail itself.
    """
    clock = Clock(START)
    app = create_app(
        config,
        database,
        [KEY],
        clock=clock,
        drain_interval=drain_interval,
        register=False,
        desk_hasher=hasher,
    )
    accounts = Accounts(database, config.desk, KEY, FAST_HASHER)
    with live_server(app) as origin, httpx.Client(base_url=origin, timeout=10) as client:
        yield DeskSite(config, database, accounts, clock, client)
