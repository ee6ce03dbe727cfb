"""How fast ingest reads real feed files, against feedparser alone on the same files.

    python benchmarks/ingest.py [--data ../shared/data] [--repeat 7] [--per-feed]

Every file of ``<data>/feeds`` (licences aside) is one source. The comparison
that matters, our read against feedparser alone, is made file by file and
interleaved, so a busy moment on a shared machine falls on both: in each
repetition every file is parsed by

- **feedparser alone**: ``feedparser.parse`` of the file's bytes (already in
  memory), nothing else; then, at once,
- **read**: our readers on the same file (gunzip, charset decoding, repairs,
  feedparser, sanitising with nh3, links, plain text, dates, identities), no
  storage;

the order of the two alternating between repetitions, after one untimed pass
(imports and first calls). Both are timed in wall
and CPU (``time.process_time``) seconds. Per file the median over the
repetitions is taken; the totals are the sums of those medians, and the ratio
read / feedparser is given for the total, for the middle file and for the
worst files (``--per-feed`` lists every file). Then, after the interleaved part,
whole passes over the files:

- **read in workers**: the same through :func:`briefing.ingest.workers.read_document`,
  one document at a time in the worker processes ingest uses (started before
  the clock starts), results sent back to this process;
- **ingest**: ``briefing.ingest.ingest`` into a fresh temporary SQLite store
  (the database is created and migrated before the clock starts), reading
  each file from disk, storing every article and the sources' health.

Items are feedparser's entries for feedparser alone (it reads no JSON Feed and
gives up on some broken files we repair) and drafts read for ours.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import feedparser
from ingest_support import ROOT, bench_config, start_workers

from briefing.errors import SourceError
from briefing.ingest import ingest
from briefing.ingest.readers import ReadContext, reader_for
from briefing.ingest.workers import ReadLimits, read_document
from briefing.store import open_database

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
CONTEXT = ReadContext(label="bench", sections=("feeds",), known_sections=frozenset({"feeds"}))


def feed_files(data: Path) -> list[Path]:
    """Every feed file under ``data/feeds`` except the licences."""
    folder = data / "feeds"
    return sorted(p for p in folder.rglob("*") if p.is_file() and "_licenses" not in p.parts)


@dataclass
class Timings:
    """Wall and CPU seconds of one way of reading one file, over the repetitions."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    items: int = 0

    def median(self, clock: str) -> float:
        return statistics.median(self.wall if clock == "wall" else self.cpu)


def timed(work: Callable[[], int], into: Timings) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    into.items = work()
    into.cpu.append(time.process_time() - cpu)
    into.wall.append(time.perf_counter() - wall)


def parse_alone(blob: bytes) -> int:
    return len(feedparser.parse(blob).entries)


def read_ours(path: Path) -> int:
    try:
        return len(reader_for(path).read(path, CONTEXT).drafts)
    except SourceError:  # failures are counted by ingest
        return 0


def time_read_workers(files: list[Path]) -> tuple[float, int]:
    limits = ReadLimits()
    with contextlib.suppress(SourceError):  # start the workers before the clock
        read_document(reader_for(files[0]), files[0], CONTEXT, limits)
    items = 0
    started = time.perf_counter()
    for path in files:
        with contextlib.suppress(SourceError):
            items += len(read_document(reader_for(path), path, CONTEXT, limits).drafts)
    return time.perf_counter() - started, items


def time_ingest(files: list[Path]) -> tuple[float, int, int]:
    with bench_config([str(p) for p in files]) as config:
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
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (default 7)")
    parser.add_argument("--passes", type=int, default=3, help="workers/ingest passes (default 3)")
    parser.add_argument("--per-feed", action="store_true", help="list every file's ratio")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # failures are counted below, not logged one by one
    files = feed_files(args.data)
    if not files:
        sys.exit(f"no feed files under {args.data / 'feeds'}")
    blobs = [path.read_bytes() for path in files]
    megabytes = sum(map(len, blobs)) / 1e6
    alone = [Timings() for _ in files]
    ours = [Timings() for _ in files]
    for path, blob in zip(files, blobs, strict=True):  # warm up: imports, first calls
        parse_alone(blob)
        read_ours(path)
    for repetition in range(args.repeat):
        for n, (path, blob) in enumerate(zip(files, blobs, strict=True)):
            pair = [
                (lambda blob=blob: parse_alone(blob), alone[n]),
                (lambda path=path: read_ours(path), ours[n]),
            ]
            for work, into in pair if repetition % 2 == 0 else reversed(pair):
                timed(work, into)
    print(
        f"{len(files)} files, {megabytes:.1f} MB; feedparser alone and our read interleaved "
        f"file by file, {args.repeat} repetitions; per-file medians, summed:"
    )
    print(f"{'':<24} {'wall s':>8} {'cpu s':>8} {'items':>6}")
    for label, rows in (("feedparser alone", alone), ("read", ours)):
        wall = sum(t.median("wall") for t in rows)
        cpu = sum(t.median("cpu") for t in rows)
        print(f"{label:<24} {wall:>8.3f} {cpu:>8.3f} {sum(t.items for t in rows):>6}")
    for clock in ("wall", "cpu"):
        total = sum(t.median(clock) for t in ours) / sum(t.median(clock) for t in alone)
        ratios = sorted(
            (o.median(clock) / a.median(clock), path)
            for path, a, o in zip(files, alone, ours, strict=True)
            if a.median(clock) > 0
        )
        middle = statistics.median(r for r, _ in ratios)
        print(
            f"read / feedparser ({clock}): total {total:.2f}x, middle file {middle:.2f}x, "
            f"{sum(1 for r, _ in ratios if r > 1.3)} of {len(ratios)} files over 1.3x"
        )
    ranked = sorted(
        zip(files, alone, ours, strict=True),
        key=lambda row: row[2].median("cpu") - row[1].median("cpu"),
        reverse=True,
    )
    shown = ranked if args.per_feed else ranked[:8]
    print("files by CPU time our read adds" + ("" if args.per_feed else " (the 8 largest)") + ":")
    print(f"{'file':<52} {'KB':>6} {'alone ms':>9} {'read ms':>8} {'ratio':>6}")
    for path, a, o in shown:
        name = str(path.relative_to(args.data / "feeds"))[-52:]
        print(
            f"{name:<52} {path.stat().st_size / 1e3:>6.0f} {a.median('cpu') * 1e3:>9.1f} "
            f"{o.median('cpu') * 1e3:>8.1f} {o.median('cpu') / max(a.median('cpu'), 1e-9):>6.2f}"
        )
    start_workers()  # with the config's worker count: no pass counts their start
    whole: dict[str, list[float]] = {"workers": [], "ingest": []}
    counts: dict[str, int] = {}
    failed = 0
    for _ in range(args.passes):
        seconds, counts["workers"] = time_read_workers(files)
        whole["workers"].append(seconds)
        seconds, counts["ingest"], failed = time_ingest(files)
        whole["ingest"].append(seconds)
    base = sum(t.median("wall") for t in alone)
    print(f"whole passes, medians of {args.passes} (wall), against feedparser alone's sum:")
    for key, label in (
        ("workers", "read in worker processes"),
        ("ingest", "ingest (read + SQLite store)"),
    ):
        seconds = statistics.median(whole[key])
        print(f"{label:<30} {seconds:>8.3f} s {counts[key]:>6} items {seconds / base:>6.2f}x")
    print(f"ingest: {failed} of {len(files)} files named and failed (not feeds, empty, invalid)")


if __name__ == "__main__":
    main()
