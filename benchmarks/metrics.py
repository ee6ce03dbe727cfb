"""How long `/metrics` takes at 10k, 100k and 1M delivery rows, in process and over HTTP.

    python benchmarks/metrics.py [--sizes 10k,100k,1M] [--days 30] [--repeat 15]
                                 [--db sqlite,postgresql] [--no-baseline]
                                 [--layout dispatched|interleaved]

For each size N and database, a fresh ledger (migrated to head) is filled in
bulk with N editions and their N digest deliveries, spread evenly over
``--days`` issue dates ending today across two briefings (older days settled:
sent, with some bounced, failed, skipped; the last day still sending). The
window is ``metrics.window`` (1 day, by send time): with ``--days 30`` the
queries read a thirtieth of the ledger (one day's sends, as in a ledger that
keeps a month of a daily briefing); ``--days 1`` is the worst case, every row
in the window. Ids follow the issue dates, as dispatch inserts editions day
after day (``--layout interleaved``: consecutive ids cycle through the dates, as
this script filled them before; no real ledger looks like that). Then, in the same run, it times
(median of ``--repeat``):

- ``collect``: the collector in process (read the database, build the
  families, render the text format);
- ``http``: ``GET /metrics`` with the bearer token from a live uvicorn server;
- ``baseline``: the collector with migration 0012's window indexes dropped
  (the schema before it), and the ratio baseline / collect.

PostgreSQL is the local server (``BRIEFING_BENCH_POSTGRES``, default
``postgresql+psycopg://postgres@localhost/postgres``); a fresh database is
created and dropped per size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from briefing.config import METRICS_TOKEN_ENV, Config, load_config  # noqa: E402
from briefing.domain.states import DeliveryState  # noqa: E402
from briefing.store import Database, open_database  # noqa: E402
from briefing.web import create_app  # noqa: E402
from briefing.web.metrics import LedgerCollector  # noqa: E402
from tests.support.factories import config_dict  # noqa: E402
from tests.support.web import live_server  # noqa: E402

ADMIN = os.environ.get(
    "BRIEFING_BENCH_POSTGRES", "postgresql+psycopg://postgres@localhost/postgres"
)
TOKEN = "benchmark-metrics-token-0123456789"
BRIEFINGS = ("daily", "weekly")
D = DeliveryState
SETTLED = (D.SENT,) * 16 + (D.BOUNCED, D.FAILED, D.SKIPPED, D.SUPPRESSED)
# The indexes of migration 0012 that the window queries use (dropped for the baseline).
WINDOW_INDEXES = (
    "ix_editions_scheduled_briefing editions scheduled_at,briefing,id",
    "ix_deliveries_edition_status deliveries edition_id,status",
)
TODAY = (D.SENT,) * 6 + (D.PENDING,) * 3 + (D.SENDING, D.DEFERRED)


def size(text_value: str) -> int:
    """Read 10k, 100k, 1M or a plain number."""
    units = {"k": 1_000, "m": 1_000_000}
    last = text_value[-1].lower()
    return int(float(text_value[:-1]) * units[last]) if last in units else int(text_value)


def write_config(folder: Path, url: str) -> Config:
    """Write a two-briefing project on ``url``."""
    data = config_dict(database_url=url)
    weekly = dict(data["briefings"]["daily"], title="The Weekly", list_id="weekly.example.org")
    data["briefings"]["weekly"] = weekly
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(folder / "config.yaml")


def fill(database: Database, count: int, days: int, layout: str = "dispatched") -> None:
    """Insert ``count`` editions and their deliveries in bulk, over ``days`` issue dates.

    ``dispatched``: ids grow with the issue date, as dispatch inserts them day
    after day; ``interleaved``: consecutive ids cycle through the dates (no real
    ledger looks like this).
    """
    # The newest issue is the last one whose 07:00 send time has passed: between midnight
    # and 07:00 UTC, today's would still be ahead and the window would hold two days.
    today = (datetime.now(UTC) - timedelta(hours=7)).date()
    chunk = 50_000
    subscribers = count // (days * len(BRIEFINGS)) + 1
    # Row id i is made of number keys[i - 1]: the oldest issue date first when dispatched.
    keys = list(range(1, count + 1))
    if layout == "dispatched":
        keys.sort(key=lambda k: (-(k % days), k))
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO subscribers (id, email, created_at) "
                "VALUES (:id, :email, '2026-01-01 00:00:00')"
            ),
            [{"id": n, "email": f"reader{n}@example.com"} for n in range(1, subscribers + 1)],
        )
        for start in range(1, count + 1, chunk):
            stop = min(count + 1, start + chunk)
            editions = []
            deliveries = []
            for row_id in range(start, stop):
                n = keys[row_id - 1]
                age = n % days
                issue: date = today - timedelta(days=age)
                at = datetime.combine(issue, datetime.min.time()) + timedelta(hours=7)
                state = TODAY[n % len(TODAY)] if age == 0 else SETTLED[n % len(SETTLED)]
                editions.append(
                    {
                        "id": row_id,
                        "briefing": BRIEFINGS[n // days % len(BRIEFINGS)],
                        "subscriber_id": n // (days * len(BRIEFINGS)) + 1,
                        "issue_date": issue,
                        "scheduled_at": at,
                        "created_at": at,
                    }
                )
                deliveries.append(
                    {
                        "id": row_id,
                        "edition_id": row_id,
                        "status": state.value,
                        "message_id": f"<{n:040x}@news.example.org>",
                        "at": at,
                    }
                )
            connection.execute(
                text(
                    "INSERT INTO editions (id, briefing, subscriber_id, issue_date, scheduled_at, "
                    "created_at) VALUES (:id, :briefing, :subscriber_id, :issue_date, "
                    ":scheduled_at, :created_at)"
                ),
                editions,
            )
            connection.execute(
                text(
                    "INSERT INTO deliveries (id, kind, edition_id, status, message_id, attempts, "
                    "created_at, updated_at) VALUES (:id, 'digest', :edition_id, :status, "
                    ":message_id, 1, :at, :at)"
                ),
                deliveries,
            )
    analyze(database)


def analyze(database: Database) -> None:
    """Do what autovacuum does after a bulk load: statistics, and on PostgreSQL the visibility
    map that lets the planner read from the indexes alone."""
    if database.is_sqlite:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    else:
        with database.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )


def median_ms(work: Callable[[], object], repeat: int) -> float:
    """Return the median milliseconds of ``work`` over ``repeat`` runs (after one warm-up)."""
    work()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def measure(config: Config, database: Database, repeat: int, baseline: bool) -> dict[str, float]:
    """Time the collector, the HTTP scrape and (optionally) the baseline without the index."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(config, database))
    figures = {"collect": median_ms(lambda: generate_latest(registry), repeat)}
    app = create_app(config, database, [b"benchmark-key"], drain_interval=None, register=False)
    with live_server(app) as origin, httpx.Client(base_url=origin, timeout=60) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        path = "/b/metrics"
        assert client.get(path, headers=headers).status_code == 200
        figures["http"] = median_ms(lambda: client.get(path, headers=headers), repeat)
    if baseline:
        with database.engine.begin() as connection:
            for index in WINDOW_INDEXES:
                connection.exec_driver_sql(f"DROP INDEX {index.split()[0]}")
        figures["baseline"] = median_ms(lambda: generate_latest(registry), max(3, repeat // 3))
        with database.engine.begin() as connection:
            for index in WINDOW_INDEXES:
                name, table, columns = index.split()
                connection.exec_driver_sql(f"CREATE INDEX {name} ON {table} ({columns})")
    return figures


def run(
    backend: str, count: int, days: int, repeat: int, baseline: bool, folder: Path, layout: str
) -> None:
    """Fill one ledger and print its figures."""
    name = None
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'metrics-{count}.db'}"
    else:
        name = f"briefing_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        config = write_config(folder / f"{backend}-{count}", url)
        database = open_database(config.database)
        started = time.perf_counter()
        fill(database, count, days, layout)
        filled = time.perf_counter() - started
        figures = measure(config, database, repeat, baseline)
        database.dispose()
        since = datetime.now(UTC).replace(tzinfo=None) - config.metrics.window
        with database.engine.connect() as connection:
            in_window = connection.execute(
                text("SELECT count(*) FROM editions WHERE scheduled_at >= :since"),
                {"since": since},
            ).scalar_one()
        line = (
            f"{backend:<10} {count:>9,} rows  ~{in_window:>9,} in window  "
            f"collect {figures['collect']:8.2f} ms  http {figures['http']:8.2f} ms"
        )
        if "baseline" in figures:
            line += (
                f"  baseline (no 0012 index) {figures['baseline']:9.2f} ms"
                f"  x{figures['baseline'] / figures['collect']:.1f}"
            )
        print(f"{line}  (filled in {filled:.0f} s)", flush=True)
    finally:
        if name is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()


def main() -> None:
    """Parse the options and run every size on every database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1M")
    parser.add_argument("--days", type=int, default=30, help="issue dates the rows spread over")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--db", default="sqlite", help="sqlite, postgresql or both (comma)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--layout",
        choices=("dispatched", "interleaved"),
        default="dispatched",
        help="ids growing with the issue date (as dispatch writes them) or cycling through them",
    )
    args = parser.parse_args()
    os.environ[METRICS_TOKEN_ENV] = TOKEN
    print(
        f"/metrics: rows over {args.days} issue date(s) ({args.layout}), window 1 day, "
        f"median of {args.repeat} (baseline: of {max(3, args.repeat // 3)})"
    )
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.db.split(","):
            for count in (size(item) for item in args.sizes.split(",")):
                run(
                    backend,
                    count,
                    args.days,
                    args.repeat,
                    not args.no_baseline,
                    Path(folder),
                    args.layout,
                )


if __name__ == "__main__":
    main()
