"""/metrics, /healthz and /readyz on a real uvicorn server, read during a real SMTP send."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from briefing.config import METRICS_TOKEN_ENV, Config
from briefing.deliver import deliver, make_transport
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database, open_database
from briefing.web import create_app
from tests.support.delivery import delivery_settings, reader, subscribe
from tests.support.factories import KEY, NOW, make_project
from tests.support.migrations import upgrade_to
from tests.support.smtp_server import Handler, Received, Rule, smtp_server
from tests.support.web import AT, live_server

TOKEN = "metrics-test-token-0123456789"
# Editions of the tests are issued on fixed dates; the window reaches back to them.
METRICS = {"window": "3650d"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(body: str) -> Samples:
    """Parse a Prometheus text body into {(name, labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def states(found: Samples, briefing: str = "daily") -> dict[str, float]:
    """Return the non-zero delivery counts of ``briefing`` by state."""
    return {
        dict(labels)["state"]: count
        for (name, labels), count in found.items()
        if name == "briefing_deliveries" and dict(labels)["briefing"] == briefing and count
    }


@pytest.fixture
def app_server(
    request: pytest.FixtureRequest,
) -> Iterator[Any]:
    """Yield a function serving a config's web app and returning (origin, stop)."""
    stack: list[Any] = []

    def start(config: Config, database: Database, *, register: bool = False) -> str:
        app = create_app(config, database, [KEY], drain_interval=None, register=register)
        server = live_server(app)
        stack.append(server)
        return server.__enter__()

    yield start
    for server in reversed(stack):
        server.__exit__(None, None, None)


def scrape(origin: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{origin}/b/metrics", headers=headers, timeout=10)


def test_a_scrape_during_a_real_send_sees_the_counts_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_server: Any
) -> None:
    monkeypatch.setenv(METRICS_TOKEN_ENV, TOKEN)
    during: list[Samples] = []
    origin = ""

    def scrape_once(_message: Received) -> None:
        if not during:  # the first message is on the wire: scrape from the SMTP server's thread
            during.append(samples(scrape(origin).text))

    rules = {reader(2): Rule(rcpt="550 5.1.1 <reader2@example.com>: no such user")}
    with smtp_server(Handler(rules=rules, on_message=scrape_once)) as server:
        config = make_project(
            tmp_path, delivery=delivery_settings(server, batch_size=50), metrics=METRICS
        )
        database = open_database(config.database)
        ingest(config, database, NOW)
        subscribe(config, database, [reader(n) for n in range(6)])
        origin = app_server(config, database, register=True)

        before = samples(scrape(origin).text)
        assert states(before) == {}  # nothing dispatched yet: every state listed at zero
        assert value(before, "briefing_deliveries", briefing="daily", state="sent") == 0
        assert ("briefing_seconds_since_last_dispatch", (("briefing", "daily"),)) not in before
        assert value(before, "briefing_live_processes", kind="web") == 1
        assert value(before, "briefing_live_processes", kind="serve") == 0

        dispatch(config, database, Signer([KEY]), AT)
        queued = samples(scrape(origin).text)
        assert states(queued) == {"pending": 6}
        assert value(queued, "briefing_editions_due_unsent", briefing="daily") == 6
        assert value(queued, "briefing_oldest_due_unsent_seconds", briefing="daily") > 0
        assert value(queued, "briefing_seconds_since_last_dispatch", briefing="daily") >= 0
        assert value(queued, "briefing_seconds_since_last_ingest") >= 0

        transport = make_transport(config)
        try:
            deliver(config, database, Signer([KEY]), transport, clock=lambda: AT)
        finally:
            transport.close()

    (mid,) = during
    assert states(mid).get("sending", 0) >= 1  # claimed and on the wire while scraped
    assert sum(states(mid).values()) == 6
    after = samples(scrape(origin).text)
    assert states(after) == {"sent": 5, "bounced": 1}
    assert value(after, "briefing_editions_due_unsent", briefing="daily") == 0
    assert value(after, "briefing_oldest_due_unsent_seconds", briefing="daily") == 0
    assert value(after, "briefing_paused", briefing="daily") == 0
    assert value(after, "briefing_sources_configured") == 3
    assert value(after, "briefing_sources_failing") == 0


def test_without_the_token_401_with_a_wrong_one_403(
    project: Config, database: Database, monkeypatch: pytest.MonkeyPatch, app_server: Any
) -> None:
    monkeypatch.setenv(METRICS_TOKEN_ENV, TOKEN)
    origin = app_server(project, database)
    missing = scrape(origin, token=None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "briefing_" not in missing.text
    wrong = scrape(origin, token=TOKEN + "x")
    assert wrong.status_code == 403 and "briefing_" not in wrong.text
    right = scrape(origin)
    assert right.status_code == 200
    assert right.headers["content-type"].startswith("text/plain")
    assert "briefing_deliveries" in right.text


def test_the_allow_list_admits_its_clients_and_refuses_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_server: Any
) -> None:
    monkeypatch.delenv(METRICS_TOKEN_ENV, raising=False)
    inside = make_project(tmp_path / "in", metrics={"allow": ["127.0.0.0/8"]})
    outside = make_project(tmp_path / "out", metrics={"allow": ["10.0.0.0/8", "2001:db8::/32"]})
    assert scrape(app_server(inside, open_database(inside.database)), token=None).status_code == 200
    refused = scrape(app_server(outside, open_database(outside.database)), token=None)
    assert refused.status_code == 403


def test_metrics_are_off_unless_configured(
    project: Config, database: Database, monkeypatch: pytest.MonkeyPatch, app_server: Any
) -> None:
    monkeypatch.delenv(METRICS_TOKEN_ENV, raising=False)
    assert scrape(app_server(project, database)).status_code == 404


def test_health_answers_without_serve_and_fails_when_the_sqlite_file_is_gone(
    project: Config, database: Database, app_server: Any
) -> None:
    origin = app_server(project, database)
    health = httpx.get(f"{origin}/b/healthz", timeout=10)
    ready = httpx.get(f"{origin}/b/readyz", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok", "database": "ok"})
    assert ready.status_code == 200
    assert ready.json()["revision"] == ready.json()["head"] is not None
    assert ready.headers["cache-control"] == "no-store"

    path = database.sqlite_path
    assert path is not None
    shutil.rmtree(path.parent)  # the folder of the SQLite file, with its -wal and -shm
    gone = httpx.get(f"{origin}/b/healthz", timeout=10)
    assert gone.status_code == 503
    assert gone.json()["status"] == "unavailable" and "gone" in gone.json()["database"]
    assert httpx.get(f"{origin}/b/readyz", timeout=10).status_code == 503


def test_readyz_is_503_while_migrations_are_pending(
    project: Config, app_server: Any, tmp_path: Path
) -> None:
    database = open_database(project.database, upgrade=False)
    upgrade_to(database, "0009")
    origin = app_server(project, database)
    ready = httpx.get(f"{origin}/b/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["status"] == "migrations pending"
    assert ready.json()["revision"] == "0009" and ready.json()["head"] != "0009"
    assert httpx.get(f"{origin}/b/healthz", timeout=10).status_code == 200  # it answers


def test_health_on_postgresql_fails_when_its_database_is_dropped(
    tmp_path: Path, postgres_url: str, app_server: Any
) -> None:
    config = make_project(tmp_path, database_url=postgres_url)
    database = open_database(config.database)
    origin = app_server(config, database)
    assert httpx.get(f"{origin}/b/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{origin}/b/readyz", timeout=10).status_code == 200

    name = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(
        postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    try:
        health = httpx.get(f"{origin}/b/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert httpx.get(f"{origin}/b/readyz", timeout=10).status_code == 503
    finally:
        database.dispose()
        with admin.connect() as connection:  # the fixture drops it again at the end
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
