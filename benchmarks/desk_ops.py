"""How long the desk's ops pages take at 10k, 100k and 1M delivery rows, against the CLI's reads.

    python benchmarks/desk_ops.py [--sizes 10k,100k,1M] [--days 30] [--repeat 9]
                                  [--db sqlite,postgresql]

The ledger is filled as ``benchmarks/metrics.py`` fills it (N editions and
their deliveries over ``--days`` issue dates across two briefings; older days
settled with some bounced and failed, the last day still sending). Then, in
the same run, it times (median of ``--repeat``), in process:

- ``issues page``: the counts of the deliveries page (its first page of
  issue dates), against ``baseline``: ``briefing deliveries``' unbounded
  count of every issue;
- ``failures page``: one issue's first 50 failures, against the unbounded
  ``briefing deliveries --edition B:DATE --failed`` list;
- ``open issues``: what cancelling a live run reads first;

and over HTTP from a live server with a logged-in ops session:
``GET /desk/ops/``, ``/desk/ops/deliveries`` and one issue's page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from benchmarks.metrics import ADMIN, fill, median_ms, size, write_config  # noqa: E402
from briefing.audience.accounts import Accounts, Actor  # noqa: E402
from briefing.domain.states import Role  # noqa: E402
from briefing.ops.deliveries import (  # noqa: E402
    Target,
    failures,
    issue_summaries,
    issues_between,
    open_issues,
)
from briefing.store import open_database  # noqa: E402
from briefing.web import create_app  # noqa: E402
from briefing.web.desk.auth import COOKIE  # noqa: E402
from briefing.web.desk.ops import FAILURES_PER_PAGE, issue_window  # noqa: E402
from tests.support.web import form_token, live_server  # noqa: E402

KEY = b"benchmark-key"
HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "a long enough password"


def run(backend: str, count: int, days: int, repeat: int, folder: Path) -> None:
    """Fill one ledger and print its figures."""
    name = None
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'desk-ops-{count}.db'}"
    else:
        name = f"briefing_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        config = write_config(folder / f"{backend}-{count}", url)
        database = open_database(config.database)
        fill(database, count, days)
        now = datetime.now(UTC)
        first, last = issue_window(now, 1)
        issue = Target(briefing="daily", issue_date=now.date().replace(day=1))
        figures = {
            "issues page": median_ms(lambda: issues_between(database, first, last), repeat),
            "baseline issues": median_ms(lambda: issue_summaries(database), repeat),
            "failures page": median_ms(
                lambda: failures(database, issue, limit=FAILURES_PER_PAGE + 1), repeat
            ),
            "baseline failures": median_ms(lambda: failures(database, issue), repeat),
            "open issues": median_ms(lambda: open_issues(database, "daily"), repeat),
        }
        Accounts(database, config.desk, KEY, HASHER).add(
            "olga", Role.OPS, PASSWORD, now, Actor(None, "benchmark")
        )
        app = create_app(
            config, database, [KEY], drain_interval=None, register=False, desk_hasher=HASHER
        )
        with live_server(app) as origin, httpx.Client(base_url=origin, timeout=120) as client:
            desk = "/b/desk/"
            login = client.get(desk + "login")
            answer = client.post(
                desk + "login",
                data={"form_token": form_token(login.text), "name": "olga", "password": PASSWORD},
            )
            sid = answer.cookies.get(COOKIE) or answer.headers["set-cookie"].split(";")[0].split(
                "="
            )[1].strip('"')
            headers = {"Cookie": f"{COOKIE}={sid}"}
            for label, path in (
                ("GET ops/", "ops/"),
                ("GET deliveries", "ops/deliveries"),
                ("GET issue", f"ops/deliveries/daily/{issue.issue_date}"),
            ):
                response = client.get(desk + path, headers=headers)
                assert response.status_code == 200, (path, response.status_code)
                figures[label] = median_ms(
                    lambda path=path: client.get(desk + path, headers=headers), repeat
                )
        database.dispose()
        print(
            f"{backend:<10} {count:>9,} rows  "
            + "  ".join(f"{label} {value:8.2f} ms" for label, value in figures.items())
            + f"  | issues x{figures['baseline issues'] / figures['issues page']:.1f}"
            + f"  failures x{figures['baseline failures'] / figures['failures page']:.1f}",
            flush=True,
        )
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
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--db", default="sqlite", help="sqlite, postgresql or both (comma)")
    args = parser.parse_args()
    print(f"desk ops pages: rows over {args.days} issue date(s), median of {args.repeat}")
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.db.split(","):
            for count in (size(item) for item in args.sizes.split(",")):
                run(backend, count, args.days, args.repeat, Path(folder))
    started = time.strftime("%H:%M:%S")
    print(f"done at {started}")


if __name__ == "__main__":
    main()
