"""How fast ingest reads real feed files, against feedparser alone on the same files.

    python benchmarks/ingest.py [--data ../shared/data] [--repeat 5]

Every file of ``<data>/feeds`` (licences aside) is one source. Each
repetition times, in the same run and on the same files:

- **feedparser alone**: ``feedparser.parse`` of each file's bytes (already in
  memory), nothing else;
- **read**: our readers (gunzip, charset decoding, repairs, feedparser,
  sanitising with nh3, plain text, dates, identities), no storage;
- **read in workers**: the same through :func:`briefing.ingest.workers.read_document`,
  one document at a time in the worker processes ingest uses (started before
  the clock starts), results sent back to this process;
- **ingest**: ``briefing.ingest.ingest`` into a fresh temporary SQLite store
  (the database is created and migrated before the clock starts), reading
  each file from disk, storing every article and the sources' health.

It prints the median over the repetitions of files/s and items/s for each,
and the ratios to feedparser alone: what our cleaning and our storage cost.
Items are feedparser's entries for the first row (it reads no JSON Feed and
gives up on some broken files we repair), drafts read for the second, and
entries stored for the third (new or, for the same story in two files,
unchanged; duplicates within one document are skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from briefing.config import load_config  # noqa: E402
from briefing.errors import SourceError  # noqa: E402
from briefing.ingest import ingest  # noqa: E402
from briefing.ingest.readers import ReadContext, reader_for  # noqa: E402
from briefing.ingest.workers import ReadLimits, read_document  # noqa: E402
from briefing.store import open_database  # noqa: E402

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def feed_files(data: Path) -> list[Path]:
    """Every feed file under ``data/feeds`` except the licences."""
    folder = data / "feeds"
    return sorted(p for p in folder.rglob("*") if p.is_file() and "_licenses" not in p.parts)


def time_feedparser(blobs: list[bytes]) -> tuple[float, int]:
    started = time.perf_counter()
    items = sum(len(feedparser.parse(blob).entries) for blob in blobs)
    return time.perf_counter() - started, items


def time_read(files: list[Path]) -> tuple[float, int]:
    context = ReadContext(label="bench", sections=("feeds",), known_sections=frozenset({"feeds"}))
    items = 0
    started = time.perf_counter()
    for path in files:
        with contextlib.suppress(SourceError):  # the failures are counted by ingest
            items += len(reader_for(path).read(path, context).drafts)
    return time.perf_counter() - started, items


def time_read_workers(files: list[Path]) -> tuple[float, int]:
    context = ReadContext(label="bench", sections=("feeds",), known_sections=frozenset({"feeds"}))
    limits = ReadLimits()
    with contextlib.suppress(SourceError):  # start the workers before the clock
        read_document(reader_for(files[0]), files[0], context, limits)
    items = 0
    started = time.perf_counter()
    for path in files:
        with contextlib.suppress(SourceError):
            items += len(read_document(reader_for(path), path, context, limits).drafts)
    return time.perf_counter() - started, items


def time_ingest(files: list[Path]) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "site": {
                        "name": "Bench",
                        "base_url": "https://bench.example.org",
                        "from_address": "b@bench.example.org",
                        "postal_address": "1 Bench Road",
                    },
                    "sections": {"feeds": {"title": "Feeds", "sources": [str(p) for p in files]}},
                    "briefings": {
                        "daily": {
                            "title": "Daily",
                            "list_id": "daily.bench.example.org",
                            "sections": ["feeds"],
                        }
                    },
                }
            )
        )
        config = load_config(path)
        database = open_database(config.database)
        try:
            started = time.perf_counter()
            reports = ingest(config, database, NOW)
            elapsed = time.perf_counter() - started
        finally:
            database.dispose()
    stored = sum(r.new + r.updated + r.unchanged for r in reports)
    return elapsed, stored, sum(r.failed for r in reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="folder holding feeds/ (default ../shared/data)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default 5)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # failures are counted below, not logged one by one
    files = feed_files(args.data)
    if not files:
        sys.exit(f"no feed files under {args.data / 'feeds'}")
    blobs = [path.read_bytes() for path in files]
    megabytes = sum(map(len, blobs)) / 1e6
    rows: dict[str, list[tuple[float, int]]] = {
        "feedparser": [],
        "read": [],
        "workers": [],
        "ingest": [],
    }
    failed = 0
    for _ in range(args.repeat):
        rows["feedparser"].append(time_feedparser(blobs))
        rows["read"].append(time_read(files))
        rows["workers"].append(time_read_workers(files))
        elapsed, stored, failed = time_ingest(files)
        rows["ingest"].append((elapsed, stored))
    print(f"{len(files)} files, {megabytes:.1f} MB, {args.repeat} repetitions; medians:")
    base = statistics.median(seconds for seconds, _ in rows["feedparser"])
    labels = {
        "feedparser": "feedparser alone",
        "read": "read (decode, repair, parse, clean)",
        "workers": "read in worker processes",
        "ingest": "ingest (read + SQLite store)",
    }
    print(
        f"{'':<36} {'seconds':>8} {'files/s':>8} {'items':>6} {'items/s':>8} {'x feedparser':>12}"
    )
    for key, results in rows.items():
        seconds = statistics.median(s for s, _ in results)
        items = results[-1][1]
        print(
            f"{labels[key]:<36} {seconds:>8.3f} {len(files) / seconds:>8.1f} {items:>6} "
            f"{items / seconds:>8.0f} {seconds / base:>12.2f}"
        )
    print(f"ingest: {failed} of {len(files)} files named and failed (not feeds, empty, invalid)")


if __name__ == "__main__":
    main()
