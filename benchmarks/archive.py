"""How long the archive's queries take over a long history, with and without migration 0014's index.

    python benchmarks/archive.py [--subscribers 2k,10k] [--days 90] [--variants 8]
                                 [--db sqlite,postgresql] [--repeat 9] [--explain]

For each number of subscribers S and database, a fresh database (migrated to
head) is filled in bulk with ``--days`` issues of one briefing, each with
``--variants`` variants (the first with the default sections, each carrying
a few KB of HTML as real ones do), and S editions per issue with their digest
deliveries in a settled mix of states (the newest issue still sending). Then,
in the same run, it times (median of ``--repeat``):

- ``dates``: one page of issue dates (20, newest first), the keyset every page starts with;
- ``page``: a desk page: 10 issues, their variants and the figures of all of them
  (one GROUP BY over 10 x S editions);
- ``issue``: one issue with its variants and figures (S editions);
- ``public``: a page of the public archive (30 issues of the default sections);
- ``baseline``: ``dates`` and ``public`` again with ``ix_variants_briefing_issue_date``
  dropped (the schema before 0014), and the ratios.

``--explain`` prints PostgreSQL's plans of the dates, figures and public queries.
PostgreSQL is the local server (``BRIEFING_BENCH_POSTGRES``, default
``postgresql+psycopg://postgres@localhost/postgres``); a fresh database is
created and dropped per size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from benchmarks.metrics import ADMIN, analyze, median_ms, size  # noqa: E402
from briefing.config import load_config  # noqa: E402
from briefing.domain.states import DeliveryState  # noqa: E402
from briefing.store import Database, open_database  # noqa: E402
from briefing.store.archive import (  # noqa: E402
    archived_issue,
    archived_issues,
    issue_dates,
    public_issues,
)
from tests.support.factories import config_dict  # noqa: E402

D = DeliveryState
SETTLED = (D.SENT,) * 16 + (D.BOUNCED, D.FAILED, D.SKIPPED, D.SUPPRESSED)
TODAY = (D.SENT,) * 6 + (D.PENDING,) * 3 + (D.SENDING, D.DEFERRED)
DEFAULT = ["world", "business", "sport"]
OTHERS = (["world"], ["business"], ["sport"], ["world", "sport"], ["world", "business"])
INDEX = "ix_variants_briefing_issue_date"
HTML = "<p>" + "An archived story with its summary. " * 100 + "</p>"  # ~3.7 KB


def fill(database: Database, subscribers: int, days: int, per_day: int) -> None:
    """Insert the variants, subscribers, editions and deliveries in bulk."""
    today = datetime.now(UTC).date()
    variants = []
    for age in range(days):
        issue: date = today - timedelta(days=age)
        at = datetime.combine(issue, datetime.min.time()) + timedelta(hours=7)
        for k in range(per_day):
            sections = DEFAULT if k == 0 else OTHERS[(k - 1) % len(OTHERS)]
            variants.append(
                {
                    "id": age * per_day + k + 1,
                    "key": f"v{age}-{k}",
                    "sections": json.dumps(sections),
                    "issue_date": issue,
                    "at": at + timedelta(minutes=k),
                    "subject": f"The Daily of {issue}: headline {k}",
                }
            )
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO variants (id, key, briefing, sections, locale, issue_date, cut_at, "
                "created_at, subject, item_count, html_size, notes, html, text, message, "
                "placeholders) VALUES (:id, :key, 'daily', :sections, 'en_GB', :issue_date, :at, "
                f":at, :subject, 12, 60000, '[]', '{HTML}', 'text', :message, '{{}}')"
            ),
            [dict(row, message=b"") for row in variants],
        )
        connection.execute(
            text(
                "INSERT INTO subscribers (id, email, created_at) "
                "VALUES (:id, :email, '2026-01-01 00:00:00')"
            ),
            [{"id": n, "email": f"reader{n}@example.com"} for n in range(1, subscribers + 1)],
        )
        ident = 0
        for age in range(days):
            issue = today - timedelta(days=age)
            at = datetime.combine(issue, datetime.min.time()) + timedelta(hours=7)
            editions, deliveries = [], []
            for n in range(1, subscribers + 1):
                ident += 1
                states = TODAY if age == 0 else SETTLED
                editions.append(
                    {
                        "id": ident,
                        "subscriber_id": n,
                        "issue_date": issue,
                        "at": at,
                        "variant_id": age * per_day + n % per_day + 1,
                    }
                )
                deliveries.append(
                    {
                        "id": ident,
                        "status": states[n % len(states)].value,
                        "message_id": f"<{ident:040x}@news.example.org>",
                        "at": at,
                    }
                )
            connection.execute(
                text(
                    "INSERT INTO editions (id, briefing, subscriber_id, issue_date, scheduled_at, "
                    "variant_id, cut_at, created_at) VALUES (:id, 'daily', :subscriber_id, "
                    ":issue_date, :at, :variant_id, :at, :at)"
                ),
                editions,
            )
            connection.execute(
                text(
                    "INSERT INTO deliveries (id, kind, edition_id, status, message_id, attempts, "
                    "created_at, updated_at) VALUES (:id, 'digest', :id, :status, :message_id, 1, "
                    ":at, :at)"
                ),
                deliveries,
            )
    analyze(database)


def explain(database: Database, per_day: int) -> None:
    """Print PostgreSQL's plans of the archive's queries, as the store sends them."""
    from sqlalchemy import func, select

    from briefing.store.archive import _sections_are
    from briefing.store.schema import Delivery, Edition, Variant

    dates = (
        select(Variant.issue_date)
        .where(Variant.briefing == "daily")
        .group_by(Variant.issue_date)
        .order_by(Variant.issue_date.desc())
        .limit(21)
    )
    ids = list(range(1, 10 * per_day + 1))
    figures = (
        select(Edition.variant_id, Delivery.status, func.count())
        .join(Delivery, Delivery.edition_id == Edition.id)
        .where(Edition.variant_id.in_(ids))
        .group_by(Edition.variant_id, Delivery.status)
    )
    one_issue = (
        select(Edition.variant_id, Delivery.status, func.count())
        .join(Delivery, Delivery.edition_id == Edition.id)
        .where(
            Edition.variant_id.in_(list(range(per_day + 1, 2 * per_day + 1))),
        )
        .group_by(Edition.variant_id, Delivery.status)
    )
    public = (
        select(Variant.issue_date)
        .where(Variant.briefing == "daily", _sections_are(DEFAULT))  # type: ignore[arg-type]
        .group_by(Variant.issue_date)
        .order_by(Variant.issue_date.desc())
        .limit(30)
    )
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    with database.engine.connect() as connection:
        queries = (
            ("dates", dates),
            ("figures of a page", figures),
            ("figures of one issue", one_issue),
            ("public", public),
        )
        for name, query in queries:
            sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + sql).scalars()
            print(f"  -- {name}")
            for line in plan:
                print(f"     {line}")


def measure(database: Database, repeat: int, newest: date) -> dict[str, float]:
    """Time the queries, then the index-free baseline of the two the index serves."""

    def session_run(work: Callable[..., object]) -> Callable[[], object]:
        def run() -> object:
            with database.transaction() as session:
                return work(session)

        return run

    queries: dict[str, Callable[[], object]] = {
        "dates": session_run(lambda s: issue_dates(s, "daily", limit=20)),
        "page": session_run(lambda s: archived_issues(s, "daily", limit=10)),
        "issue": session_run(lambda s: archived_issue(s, "daily", newest - timedelta(days=1))),
        "public": session_run(lambda s: public_issues(s, "daily", DEFAULT, limit=30)),
    }
    figures = {name: median_ms(work, repeat) for name, work in queries.items()}
    with database.engine.begin() as connection:
        connection.exec_driver_sql(f"DROP INDEX {INDEX}")
    if database.is_sqlite:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    for name in ("dates", "public"):
        figures[f"{name} baseline"] = median_ms(queries[name], repeat)
    with database.engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE INDEX {INDEX} ON variants (briefing, issue_date)")
    return figures


def run(
    backend: str,
    subscribers: int,
    days: int,
    per_day: int,
    repeat: int,
    show_plans: bool,
    folder: Path,
) -> None:
    """Fill one database and print its figures."""
    name = None
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'archive-{subscribers}.db'}"
    else:
        name = f"briefing_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        project = folder / f"{backend}-{subscribers}"
        project.mkdir(parents=True, exist_ok=True)
        (project / "config.yaml").write_text(
            yaml.safe_dump(config_dict(database_url=url)), encoding="utf-8"
        )
        database = open_database(load_config(project / "config.yaml").database)
        started = time.perf_counter()
        fill(database, subscribers, days, per_day)
        filled = time.perf_counter() - started
        newest = datetime.now(UTC).date()
        figures = measure(database, repeat, newest)
        print(
            f"{backend:<10} {subscribers:>7,} subscribers x {days} issues "
            f"({subscribers * days:,} editions, {days * per_day:,} variants)  "
            f"dates {figures['dates']:.2f} ms  page(10) {figures['page']:.1f} ms  "
            f"issue {figures['issue']:.1f} ms  public(30) {figures['public']:.2f} ms  |  "
            f"without 0014: dates {figures['dates baseline']:.2f} ms "
            f"x{figures['dates baseline'] / figures['dates']:.1f}, public "
            f"{figures['public baseline']:.2f} ms "
            f"x{figures['public baseline'] / figures['public']:.1f}  (filled in {filled:.0f} s)",
            flush=True,
        )
        if show_plans and not database.is_sqlite:
            explain(database, per_day)
        database.dispose()
    finally:
        if name is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()


def main() -> None:
    """Parse the options and run every size on every database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="2k,10k")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--variants", type=int, default=8, help="variants per issue")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--db", default="sqlite", help="sqlite, postgresql or both (comma)")
    parser.add_argument("--explain", action="store_true", help="print PostgreSQL's plans")
    args = parser.parse_args()
    print(f"archive queries: median of {args.repeat}, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.db.split(","):
            for subscribers in (size(item) for item in args.subscribers.split(",")):
                run(
                    backend,
                    subscribers,
                    args.days,
                    args.variants,
                    args.repeat,
                    args.explain,
                    Path(folder),
                )


if __name__ == "__main__":
    main()
