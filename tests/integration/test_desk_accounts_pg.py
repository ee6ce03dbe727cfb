"""Desk accounts on PostgreSQL: sessions die with their account, activity keeps the name."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from briefing.audience.accounts import Accounts, Actor
from briefing.config import DeskConfig
from briefing.domain.states import DeskAction, Role
from briefing.store import open_database
from briefing.store.schema import DeskActivity, DeskSession
from tests.support.desk import FAST_HASHER, PASSWORD, START
from tests.support.factories import KEY

SETTINGS = DeskConfig.model_validate(
    {"idle_timeout": "10m", "max_age": "1h", "failures_per_account": 2}
)


def test_accounts_sessions_and_limits_on_postgresql(postgres_url: str) -> None:
    database = open_database(postgres_url)
    try:
        accounts = Accounts(database, SETTINGS, KEY, FAST_HASHER)
        cli = Actor(None, "ops (command line)")
        accounts.add("ann", Role.EDITOR, PASSWORD, START, cli)
        first = accounts.login("ann", PASSWORD, "192.0.2.1", START, replacing=None)
        assert first.user is not None and first.session_id
        second = accounts.login("ann", PASSWORD, "192.0.2.1", START, replacing=first.session_id)
        assert second.session_id and accounts.resume(first.session_id, START).user is None
        later = START + timedelta(minutes=5)
        check = accounts.resume(second.session_id, later)
        assert check.user is not None and check.user.name == "ann"
        for _ in range(2):
            assert (
                accounts.login("ann", "wrong password!", "192.0.2.9", later, replacing=None).user
                is None
            )
        assert accounts.login("ann", PASSWORD, "192.0.2.1", later, replacing=None).limited
        accounts.remove("ann", later, cli)
        assert accounts.resume(second.session_id, later).user is None
        with database.transaction() as session:
            assert session.scalars(select(DeskSession)).all() == []
            rows = session.execute(
                select(DeskActivity.user_id, DeskActivity.user_name, DeskActivity.action)
            ).all()
        assert all(user_id is None for user_id, _, _ in rows)  # SET NULL, the name kept
        assert ("ann", DeskAction.LOGIN_LIMITED) in {(name, action) for _, name, action in rows}
    finally:
        database.dispose()
