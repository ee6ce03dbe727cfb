"""Serve ``GET <base>/metrics``: the ops picture in Prometheus text format.

Every value is read from the database when Prometheus scrapes
(:mod:`briefing.store.metrics`), by a custom collector, so the numbers are
right however many ``serve``, ``deliver`` and ``web`` processes run, and any
``web`` process may be scraped. Labels are only ``briefing``, ``state`` and
``kind``: never a source, an edition, an address or a date, so the number of
series stays bounded by the config.

The endpoint is off unless a bearer token (``BRIEFING_METRICS_TOKEN``) or a
client allow-list (``metrics.allow``) is configured. A client in the list is
served; otherwise a request without credentials is answered 401, and a wrong
token or a client outside the list 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from briefing.config import METRICS_TOKEN_ENV, Config, webhook_secret
from briefing.domain.states import DeliveryState, ProcessKind
from briefing.store import Database
from briefing.store.metrics import OpsPicture, read_ops_picture

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def families(config: Config, picture: OpsPicture) -> list[Metric]:
    """Turn the picture into metric families (every configured briefing, state and kind listed)."""
    deliveries = GaugeMetricFamily(
        "briefing_deliveries",
        "Digest deliveries of recent editions (send time within metrics.window) "
        "by briefing and state.",
        labels=["briefing", "state"],
    )
    due = GaugeMetricFamily(
        "briefing_editions_due_unsent",
        "Recent editions whose send time has come and whose delivery is still open "
        "(pending, deferred or sending), paused briefings included.",
        labels=["briefing"],
    )
    lag = GaugeMetricFamily(
        "briefing_oldest_due_unsent_seconds",
        "Seconds since the send time of the oldest edition due and unsent (0 when none).",
        labels=["briefing"],
    )
    paused = GaugeMetricFamily(
        "briefing_paused", "1 when the briefing is paused, else 0.", labels=["briefing"]
    )
    dispatched = GaugeMetricFamily(
        "briefing_seconds_since_last_dispatch",
        "Seconds since the briefing's newest edition was put in the ledger (absent: never).",
        labels=["briefing"],
    )
    for briefing in config.briefings:
        for state in DeliveryState:
            deliveries.add_metric(
                [briefing, state.value], picture.deliveries.get((briefing, state), 0)
            )
        waiting = picture.backlog.get(briefing)
        due.add_metric([briefing], waiting.editions if waiting else 0)
        lag.add_metric(
            [briefing],
            max(0.0, (picture.now - waiting.oldest_due).total_seconds()) if waiting else 0.0,
        )
        paused.add_metric([briefing], 1 if briefing in picture.paused else 0)
        last = picture.last_dispatch.get(briefing)
        if last is not None:
            dispatched.add_metric([briefing], max(0.0, (picture.now - last).total_seconds()))
    sources = picture.sources
    ingest = GaugeMetricFamily(
        "briefing_seconds_since_last_ingest",
        "Seconds since a configured source was last read successfully (absent: never).",
    )
    if sources.last_success is not None:
        ingest.add_metric([], max(0.0, (picture.now - sources.last_success).total_seconds()))
    live = GaugeMetricFamily(
        "briefing_live_processes",
        "Processes with a fresh heartbeat in the live-process table, by kind.",
        labels=["kind"],
    )
    for kind in ProcessKind:
        live.add_metric([kind.value], sum(1 for row in picture.processes if row.kind == kind))
    return [
        deliveries,
        due,
        lag,
        paused,
        dispatched,
        ingest,
        GaugeMetricFamily(
            "briefing_sources_configured", "Sources in config.yaml.", value=sources.configured
        ),
        GaugeMetricFamily(
            "briefing_sources_failing",
            "Configured sources whose last read failed (one or more failures in a row).",
            value=sources.failing,
        ),
        GaugeMetricFamily(
            "briefing_source_failures_in_a_row_max",
            "The most failures in a row of any configured source.",
            value=sources.max_failures_in_a_row,
        ),
        live,
    ]


class LedgerCollector(Collector):
    """Collect the ops picture from the database at each scrape."""

    def __init__(self, config: Config, database: Database) -> None:
        self.config = config
        self.database = database

    def collect(self) -> Iterator[Metric]:
        """Read the database and yield every family, then how long reading took."""
        started = time.perf_counter()
        yield from families(self.config, read_ops_picture(self.config, self.database))
        yield GaugeMetricFamily(
            "briefing_metrics_collect_seconds",
            "Seconds this scrape spent reading the database.",
            value=time.perf_counter() - started,
        )


class MetricsGuard:
    """Decide who may scrape: a client in the allow-list, or the bearer token."""

    def __init__(self, token: str | None, allow: list[str]) -> None:
        self.token = token
        self.networks: list[Network] = [ipaddress.ip_network(item, strict=False) for item in allow]

    @classmethod
    def from_config(cls, config: Config) -> MetricsGuard:
        """Read the token from the environment (when set) and the allow-list from config."""
        token = (
            webhook_secret(METRICS_TOKEN_ENV, "bearer token of GET <base>/metrics")
            if os.environ.get(METRICS_TOKEN_ENV)
            else None
        )
        return cls(token, config.metrics.allow)

    @property
    def enabled(self) -> bool:
        """Tell whether /metrics is served at all."""
        return self.token is not None or bool(self.networks)

    def refusal(self, request: Request) -> Response | None:
        """Return the 401/403 answer for a request that may not scrape, else None."""
        if self._allowed_client(request):
            return None
        if self.token is None:
            return PlainTextResponse("this client may not read the metrics\n", status_code=403)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return PlainTextResponse(
                "an Authorization: Bearer token is required\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        if not hmac.compare_digest(given.strip().encode("utf-8"), self.token.encode("utf-8")):
            return PlainTextResponse("the bearer token is not valid\n", status_code=403)
        return None

    def _allowed_client(self, request: Request) -> bool:
        if not self.networks or request.client is None:
            return False
        try:
            address = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class MetricsEndpoint:
    """The ``GET <base>/metrics`` handler with its registry and guard."""

    def __init__(self, config: Config, database: Database, guard: MetricsGuard) -> None:
        self.guard = guard
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LedgerCollector(config, database))

    async def scrape(self, request: Request) -> Response:
        """Answer a scrape, or refuse it."""
        if not self.guard.enabled:
            raise HTTPException(404)
        refused = self.guard.refusal(request)
        if refused is not None:
            logger.info("refused a metrics scrape from %s", request.client)
            return refused
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
