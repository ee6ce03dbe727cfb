"""Serve ``GET <base>/healthz`` and ``GET <base>/readyz`` for load balancers and systemd.

- ``/healthz``: this web process is up and its database answers a trivial
  query within ``metrics.health_timeout``;
- ``/readyz``: the database's migration revision is the newest this code knows
  (run ``briefing`` once, or any command, to upgrade it).

Neither depends on ``briefing serve``: a stopped scheduler must not take
one-click unsubscribe offline behind a load balancer (its liveness is the
metric ``briefing_live_processes{kind="serve"}`` and a line of ``briefing
status``). Both answer JSON, 200 or 503, and never cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from briefing.errors import BriefingError
from briefing.store import Database
from briefing.store.metrics import check_database, schema_revisions

logger = logging.getLogger(__name__)

T = TypeVar("T")
NO_CACHE = {"Cache-Control": "no-store"}


class Health:
    """The two probes, with the database and how long to wait for it."""

    def __init__(self, database: Database, timeout: float) -> None:
        self.database = database
        self.timeout = timeout

    async def _within(self, work: Callable[[], T]) -> T:
        return await asyncio.wait_for(run_in_threadpool(work), timeout=self.timeout)

    async def healthz(self, _request: Request) -> JSONResponse:
        """Answer 200 when the database answers, else 503 saying why."""
        try:
            await self._within(lambda: check_database(self.database))
        except (BriefingError, OSError, TimeoutError) as exc:
            return _answer(503, status="unavailable", database=_why(exc))
        return _answer(200, status="ok", database="ok")

    async def readyz(self, _request: Request) -> JSONResponse:
        """Answer 200 when the migrations are current, else 503 with both revisions."""
        try:
            current, head = await self._within(lambda: schema_revisions(self.database))
        except (BriefingError, OSError, TimeoutError) as exc:
            return _answer(503, status="unavailable", database=_why(exc))
        if current != head:
            return _answer(503, status="migrations pending", revision=current, head=head)
        return _answer(200, status="ok", revision=current, head=head)


def _why(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        why = "the database did not answer in time"
    else:
        why = exc.message if isinstance(exc, BriefingError) else f"{exc.__class__.__name__}: {exc}"
    logger.warning("health check: %s", why)
    return why


def _answer(code: int, /, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=code, headers=NO_CACHE)
