"""Measure dispatch by set and chunked import at 10k and 100k subscribers, each in its own process.

For each N (``--sizes``, default 10,000 and 100,000) a fresh SQLite project
(the ~70 KB digests of ``send_throughput.py``, five section sets) gets, each
phase a ``briefing`` command in a child process so that its peak RSS is its
own:

- ``subscribers import`` of N rows (wall time, peak RSS);
- ``send --now --no-deliver``: dispatch of N editions (wall, RSS);
- ``subscribers import`` of another N rows while ``send --now --no-deliver``
  of a second briefing starts one second in: the send must finish while the
  import still runs (no "database is locked"), and its time is printed.

The per-subscriber cost and the ratio of the two sizes show whether the work
grows per subscriber or per variant (memory should not grow with N).

Run: ``.venv/bin/python benchmarks/dispatch_import.py [--sizes 10000 100000]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.send_throughput import AT, SECTION_SETS, write_project  # noqa: E402
from briefing.config import load_config  # noqa: E402
from briefing.ingest import ingest  # noqa: E402
from briefing.store import open_database  # noqa: E402


@dataclass
class Phase:
    """One child process: wall time, peak RSS, exit code and output."""

    seconds: float
    rss_mb: float
    code: int
    output: str
    started: float
    ended: float


def start(config: Path, *args: str) -> tuple[subprocess.Popen[str], float]:
    """Start a ``briefing`` command in a child process."""
    command = [sys.executable, "-m", "briefing", "--config", str(config), *args]
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ
    )
    return child, time.perf_counter()


def finish(child: subprocess.Popen[str], started: float) -> Phase:
    """Wait for a child; return its wall time and its own peak RSS (wait4)."""
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    ended = time.perf_counter()
    child.returncode = os.waitstatus_to_exitcode(status)
    return Phase(ended - started, usage.ru_maxrss / 1024, child.returncode, output, started, ended)


def subscribers(path: Path, first: int, count: int, briefing: str) -> Path:
    """Write ``count`` readers from number ``first`` on, over the section sets."""
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,briefing,sections,timezone,send_time,frequency\n")
        for n in range(first, first + count):
            sections = ";".join(SECTION_SETS[n % len(SECTION_SETS)])
            out.write(f"reader{n}@example.com,Reader {n},{briefing},{sections},UTC,07:00,daily\n")
    return path


def add_second_briefing(config: Path) -> None:
    """Give the project a second briefing, ``evening``, for the send during the import."""
    text = config.read_text(encoding="utf-8")
    evening = (
        "  evening:\n    title: The Evening Briefing\n    list_id: evening.news.example.org\n"
        '    sections: [world, sport]\n    send_time: "19:00"\n    timezone: UTC\n'
        "    deadline: 1w\n"
    )
    config.write_text(text.replace("briefings:\n", "briefings:\n" + evening, 1), encoding="utf-8")


def run_size(count: int) -> dict[str, Phase]:
    """Run the three phases for ``count`` subscribers; return them by name."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-dispatch-{count}-"))
    config_path = write_project(folder, 2525, 8, 14)
    add_second_briefing(config_path)
    config = load_config(config_path)
    database = open_database(config.database)
    ingest(config, database, AT - timedelta(minutes=30))
    database.dispose()
    at = AT.isoformat()
    phases: dict[str, Phase] = {}
    daily = subscribers(folder / "daily.csv", 0, count, "daily")
    phases["import"] = finish(*start(config_path, "subscribers", "import", str(daily)))
    # --now: the readers subscribed today (wall clock), after the benchmark's send time.
    phases["dispatch"] = finish(*start(config_path, "send", "--now", "--at", at, "--no-deliver"))
    # A send of ``evening`` (its readers imported first) during an import of N more rows.
    evening = subscribers(folder / "evening.csv", 10 * count, 1000, "evening")
    finish(*start(config_path, "subscribers", "import", str(evening)))
    more = subscribers(folder / "more.csv", count, count, "daily")
    importing = start(config_path, "subscribers", "import", str(more))
    time.sleep(1.0)
    sending = start(
        config_path, "send", "--briefing", "evening", "--now", "--at", at, "--no-deliver"
    )
    phases["send during import"] = finish(*sending)
    phases["import during send"] = finish(*importing)
    return phases


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    os.environ.setdefault("BRIEFING_SECRET_KEY", "benchmark-key-not-secret")
    results = {count: run_size(count) for count in args.sizes}
    print(f"{'phase':<22} {'N':>9} {'wall s':>8} {'us/sub':>8} {'peak RSS MB':>12}  result")
    for count, phases in results.items():
        for name, phase in phases.items():
            last = phase.output.strip().splitlines()[-1:] or [""]
            shown = re.sub(r"\s+", " ", last[0])[:70]
            if name == "dispatch":
                shown = next(
                    (line for line in phase.output.splitlines() if line.startswith("dispatched")),
                    shown,
                )[:70]
            per = phase.seconds / count * 1e6
            print(
                f"{name:<22} {count:>9,} {phase.seconds:>8.2f} {per:>8.1f} "
                f"{phase.rss_mb:>12.0f}  exit {phase.code}: {shown}"
            )
        send, other = phases["send during import"], phases["import during send"]
        verdict = "while the import ran" if send.ended < other.ended else "AFTER the import"
        print(f"  N={count:,}: the send finished {verdict}")
    if len(args.sizes) >= 2:
        small, big = args.sizes[0], args.sizes[-1]
        for name in ("import", "dispatch"):
            ratio = results[big][name].seconds / results[small][name].seconds
            rss = results[big][name].rss_mb / results[small][name].rss_mb
            print(
                f"{name}: {big:,} vs {small:,} subscribers ({big / small:.0f}x): "
                f"time x{ratio:.1f}, peak RSS x{rss:.2f}"
            )


if __name__ == "__main__":
    main()
