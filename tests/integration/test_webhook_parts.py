"""The webhook parts that touch the outside: the certificate fetcher and the token store."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from briefing.audience.webhooks import HttpFetcher, WebhookError
from briefing.cli import cli
from briefing.store import Database, open_database
from briefing.store.webhooks import first_use
from tests.support.factories import make_project
from tests.support.feedserver import redirect, serve, static

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def test_the_fetcher_returns_a_small_body_and_refuses_redirects_errors_and_big_bodies() -> None:
    fetch = HttpFetcher(timeout=2)
    with serve() as server:
        server.routes["/cert.pem"] = static(b"-----BEGIN CERTIFICATE-----", "text/plain")
        server.routes["/big.pem"] = static(b"x" * 70_000, "text/plain")
        server.routes["/moved.pem"] = redirect(server.url("/cert.pem"))
        assert fetch(server.url("/cert.pem"), 1024) == b"-----BEGIN CERTIFICATE-----"
        for path, why in (
            ("/big.pem", "sent more than 65536 bytes"),
            ("/moved.pem", "answered 302"),  # never followed: it could lead anywhere
            ("/missing.pem", "answered 404"),
        ):
            with pytest.raises(WebhookError, match=why) as refused:
                fetch(server.url(path), 65_536)
            assert refused.value.status == 502
        assert [seen.path for seen in server.requests].count("/cert.pem") == 1
    with pytest.raises(WebhookError, match="could not fetch") as refused:
        fetch(server.url("/cert.pem"), 1024)  # the server is gone
    assert refused.value.status == 502


def race_for_one_token(database: Database) -> list[bool]:
    """Two transactions use one token at once; return what each was told, first one first."""
    results: dict[str, bool] = {}
    inserted = threading.Event()

    def first() -> None:
        with database.transaction() as session:
            results["first"] = first_use(
                session, "mailgun", "t" * 50, now=NOW, forget_before=NOW - timedelta(minutes=10)
            )
            inserted.set()
            time.sleep(0.3)  # the second is now waiting on the row (or the database lock)

    def second() -> None:
        inserted.wait(5)
        with database.transaction() as session:
            results["second"] = first_use(
                session, "mailgun", "t" * 50, now=NOW, forget_before=NOW - timedelta(minutes=10)
            )

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return [results["first"], results["second"]]


def check_token_store(database: Database) -> None:
    assert race_for_one_token(database) == [True, False]
    with database.transaction() as session:
        assert first_use(session, "other", "t" * 50, now=NOW, forget_before=NOW) is True
        # Once older than the window the token is forgotten (its timestamp fails anyway).
        later = NOW + timedelta(minutes=11)
        forget = later - timedelta(minutes=10)
        assert first_use(session, "mailgun", "t" * 50, now=later, forget_before=forget) is True


def test_each_token_is_used_once_across_transactions_on_sqlite(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'briefing.db'}")
    try:
        check_token_store(database)
    finally:
        database.dispose()


def test_each_token_is_used_once_across_transactions_on_postgresql(postgres_url: str) -> None:
    database = open_database(postgres_url)
    try:
        check_token_store(database)
    finally:
        database.dispose()


def test_config_check_lists_the_webhooks_and_warns_of_missing_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRIEFING_WEBHOOK_TOKEN", raising=False)
    monkeypatch.setenv("BRIEFING_MAILGUN_SIGNING_KEY", "m" * 32)
    config = make_project(
        tmp_path,
        webhooks={
            "generic": True,
            "ses": {"topics": ["arn:aws:sns:eu-west-1:123456789012:bounces"]},
            "mailgun": {},
        },
    )
    result = CliRunner().invoke(
        cli, ["--config", str(config.base_dir / "config.yaml"), "config", "check"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "webhooks: generic (/hooks/events), ses (/hooks/ses, 1 topic(s)), mailgun (/hooks/mailgun)"
        in result.output
    )
    assert "BRIEFING_WEBHOOK_TOKEN is not set; `briefing web` needs it" in result.output
    assert "BRIEFING_MAILGUN_SIGNING_KEY is not set" not in result.output
