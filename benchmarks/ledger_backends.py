"""Measure delivery on PostgreSQL against SQLite in one run, with and without group-commit overlap.

The same project (realistic ~70 KB digests, a few variants) is set up twice,
once on a SQLite file and once on a fresh PostgreSQL database, and the engine
delivers the whole ledger into one Postfix ``smtp-sink`` (fetched as
``benchmarks/send_throughput.py`` does) with ``delivery.unrecorded_per_connection``
1 (each connection waits for its last outcome's commit) and 2 (the next message
goes while that commit runs). Rounds alternate between the configurations;
medians are printed with the ratio PostgreSQL / SQLite.

Run: ``.venv/bin/python benchmarks/ledger_backends.py`` (PostgreSQL from
``BRIEFING_BENCH_POSTGRES``, default the local server as ``postgres``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from send_throughput import (  # noqa: E402
    AT,
    fetch_postfix,
    reset_ledger,
    smtp_sink,
    subscribe,
    timed,
    write_project,
)
from sqlalchemy import create_engine, text  # noqa: E402

from briefing.audience.imports import import_subscribers  # noqa: E402
from briefing.config import Config, load_config  # noqa: E402
from briefing.deliver import deliver, make_transport  # noqa: E402
from briefing.domain.tokens import Signer  # noqa: E402
from briefing.editions.dispatch import dispatch  # noqa: E402
from briefing.ingest import ingest  # noqa: E402
from briefing.store import Database, open_database  # noqa: E402

ADMIN = os.environ.get(
    "BRIEFING_BENCH_POSTGRES", "postgresql+psycopg://postgres@localhost/postgres"
)


def set_up(
    folder: Path, port: int, pool: int, count: int, url: str | None
) -> tuple[Config, Database]:
    """Write the project (on ``url`` when given), import ``count`` readers and dispatch."""
    folder.mkdir(parents=True)
    path = write_project(folder, port, pool, 20)
    if url:
        with path.open("a", encoding="utf-8") as out:
            out.write(f"database_url: {url}\n")
    config = load_config(path)
    database = open_database(config.database)
    signer = Signer([os.environ["BRIEFING_SECRET_KEY"].encode()])
    ingest(config, database, AT - timedelta(minutes=30))
    import_subscribers(config, database, subscribe(folder, count), AT - timedelta(minutes=10))
    dispatch(config, database, signer, AT)
    return config, database


def run(config: Config, database: Database, unrecorded: int, commit: str) -> int:
    """Deliver the whole ledger; return how many were sent."""
    delivery = config.delivery.model_copy(
        update={"unrecorded_per_connection": unrecorded, "outcome_commit": commit}
    )
    config = config.model_copy(update={"delivery": delivery})
    signer = Signer([os.environ["BRIEFING_SECRET_KEY"].encode()])
    transport = make_transport(config)
    try:
        report = deliver(config, database, signer, transport, clock=lambda: AT)
    finally:
        transport.close()
    if report.stopped or report.sent != report.handled:
        raise SystemExit(f"the send did not complete: {report}")
    return report.sent


def main() -> None:
    """Set up both databases, deliver alternately, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("BRIEFING_SECRET_KEY", "benchmark-key-not-secret")
    root = fetch_postfix()
    folder = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    name = f"briefing_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        with smtp_sink(root) as port:
            started = time.perf_counter()
            backends = {
                "sqlite": set_up(folder / "sqlite", port, args.pool, args.subscribers, None),
                "postgresql": set_up(folder / "pg", port, args.pool, args.subscribers, url),
            }
            print(
                f"setup: {args.subscribers:,} subscribers on each backend in "
                f"{time.perf_counter() - started:.1f} s; pool {args.pool}; "
                f"{args.rounds} rounds, medians below"
            )
            # (backend, unrecorded_per_connection, outcome_commit); commit mode is PG only.
            cases = [
                ("sqlite", 1, "flush"),
                ("postgresql", 1, "flush"),
                ("sqlite", 2, "flush"),
                ("postgresql", 2, "flush"),
                ("postgresql", 2, "async"),
            ]
            rates: dict[tuple[str, int, str], list[float]] = {}
            for _ in range(args.rounds):
                for case in cases:
                    config, database = backends[case[0]]
                    reset_ledger(database)
                    measured = timed(
                        lambda c=config, d=database, u=case[1], m=case[2]: run(c, d, u, m)
                    )
                    rates.setdefault(case, []).append(measured.rate)
            print(f"{'backend':<12}{'unrecorded':>11}{'commit':>8}{'msg/s (median)':>16}  rounds")
            for case in cases:
                values = rates[case]
                shown = " ".join(f"{v:.0f}" for v in values)
                backend, unrecorded, commit = case
                print(
                    f"{backend:<12}{unrecorded:>11}{commit:>8}"
                    f"{statistics.median(values):>16.0f}  {shown}"
                )
            lite = {u: statistics.median(rates[("sqlite", u, "flush")]) for u in (1, 2)}
            for backend, unrecorded, commit in cases:
                if backend == "postgresql":
                    pg = statistics.median(rates[(backend, unrecorded, commit)])
                    print(
                        f"PostgreSQL ({unrecorded}, {commit}) / SQLite ({unrecorded}): "
                        f"{pg / lite[unrecorded]:.2f}"
                    )
            for _, database in backends.values():
                database.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
