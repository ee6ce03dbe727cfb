"""How long finding a delivery by its Message-ID takes, with migration 0006's index and without.

    python benchmarks/message_id_lookup.py [--deliveries 200000] [--lookups 200] [--repeat 3]

A webhook or a returned DSN that quotes our Message-ID is tied to its delivery
by ``store.bounces.delivery_by_message_id``. This fills a fresh temporary
SQLite ledger (migrated to head) with ``--deliveries`` rows in one bulk
statement, then times ``--lookups`` lookups of random existing Message-IDs
through that function, ``--repeat`` times, with the index
``ix_deliveries_message_id``; then drops the index (the schema before 0006)
and times the same lookups again in the same run. Prints the median time per
lookup of each and their ratio.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from briefing.store import Database, open_database  # noqa: E402
from briefing.store.bounces import delivery_by_message_id  # noqa: E402


def message_id(n: int) -> str:
    """Return a Message-ID shaped like ours: 40 hex digits at the sender's domain."""
    return f"<{n:040x}@news.example.org>"


def fill(path: Path, count: int) -> None:
    """Insert ``count`` sent digest deliveries in one statement (editions are not needed here)."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA foreign_keys=OFF")  # the rows point at no real edition
        with connection:
            connection.executemany(
                "INSERT INTO deliveries (kind, edition_id, status, message_id, attempts, "
                "created_at, updated_at) VALUES ('digest', ?, 'sent', ?, 1, "
                "'2026-11-26 07:00:00', '2026-11-26 07:00:00')",
                ((n, message_id(n)) for n in range(1, count + 1)),
            )
    finally:
        connection.close()


def time_lookups(database: Database, wanted: list[str], repeat: int) -> float:
    """Return the median seconds per lookup over ``repeat`` rounds of every id in ``wanted``."""
    rounds = []
    for _ in range(repeat):
        with database.transaction() as session:
            started = time.perf_counter()
            for value in wanted:
                if delivery_by_message_id(session, [value]) is None:
                    raise SystemExit(f"lookup of {value} found nothing")
            rounds.append((time.perf_counter() - started) / len(wanted))
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    wanted = [message_id(random.Random(n).randint(1, args.deliveries)) for n in range(args.lookups)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "briefing.db"
        database = open_database(f"sqlite:///{path}")
        started = time.perf_counter()
        fill(path, args.deliveries)
        print(f"filled {args.deliveries:,} deliveries in {time.perf_counter() - started:.1f} s")
        indexed = time_lookups(database, wanted, args.repeat)
        database.dispose()
        connection = sqlite3.connect(path)
        connection.execute("DROP INDEX ix_deliveries_message_id")
        connection.close()
        database = open_database(f"sqlite:///{path}")
        scanned = time_lookups(database, wanted, args.repeat)
        database.dispose()
    print(f"lookups: {args.lookups} x {args.repeat} rounds, medians per lookup")
    print(f"  with ix_deliveries_message_id (0006):  {indexed * 1e6:10.1f} us")
    print(f"  without it (a scan, before 0006):      {scanned * 1e6:10.1f} us")
    print(f"  ratio without / with:                   {scanned / indexed:10.0f} x")


if __name__ == "__main__":
    main()
