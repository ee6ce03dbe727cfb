"""Who may scrape /metrics: the allow-list, the bearer token, and the config that sets them."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from briefing.errors import BriefingError
from briefing.web.metrics import MetricsGuard
from tests.support.factories import config_dict, make_config
from tests.unit.domain.test_config import problems

TOKEN = "a-long-enough-metrics-token"


def request(client: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "method": "GET", "headers": headers, "client": (client, 5)})


def status(guard: MetricsGuard, client: str, authorization: str | None = None) -> int:
    refused = guard.refusal(request(client, authorization))
    return 200 if refused is None else refused.status_code


def test_the_allow_list_takes_networks_and_addresses_of_both_families() -> None:
    guard = MetricsGuard(None, ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])
    assert guard.enabled
    assert status(guard, "10.20.30.40") == 200
    assert status(guard, "192.0.2.7") == 200 and status(guard, "192.0.2.8") == 403
    assert status(guard, "2001:db8::1") == 200 and status(guard, "2001:db9::1") == 403
    assert status(guard, "not-an-address") == 403


def test_the_token_outside_the_list() -> None:
    guard = MetricsGuard(TOKEN, ["10.0.0.0/8"])
    assert status(guard, "10.1.1.1") == 200  # in the list: no token needed
    assert status(guard, "192.0.2.1") == 401
    assert status(guard, "192.0.2.1", "Basic dXNlcjpwYXNz") == 401
    assert status(guard, "192.0.2.1", f"Bearer {TOKEN}x") == 403
    assert status(guard, "192.0.2.1", f"bearer {TOKEN}") == 200


def test_off_without_a_token_or_a_list() -> None:
    assert not MetricsGuard(None, []).enabled


def test_a_short_token_in_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIEFING_METRICS_TOKEN", "short")
    with pytest.raises(BriefingError, match="BRIEFING_METRICS_TOKEN is shorter"):
        MetricsGuard.from_config(make_config(tmp_path))


def test_a_bad_network_names_its_key(tmp_path: Path) -> None:
    found = problems(tmp_path, config_dict(metrics={"allow": ["10.0.0.0/8", "intranet"]}))
    assert any("metrics.allow" in line and "'intranet'" in line for line in found), found
