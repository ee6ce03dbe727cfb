"""Measure what the approval gate and per-issue overrides cost dispatch, against plain dispatch.

One SQLite project (the ~70 KB digests of ``send_throughput.py``, five
section sets, so five variants) with N subscribers (``--subscribers``,
default 20,000) is prepared once; each measured run dispatches one issue on
a fresh copy of that database file, in this process:

- ``plain``: ``approval: none``, no overrides (the baseline);
- ``overrides``: the same with six overrides of the issue (pin, drop,
  headline, summary, source, add);
- ``held``: ``approval: required`` and not approved: dispatch only counts
  the subscriptions waiting, creating nothing;
- ``approved``: ``approval: required``, approved, with the six overrides.

Each figure is the median of ``--runs`` (default 3), after one uncounted
warm-up run, the cases taking turns in each round; the ratios are against
``plain`` from the same run.

Run: ``.venv/bin/python benchmarks/approval.py [--subscribers 20000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.send_throughput import AT, SECTION_SETS, write_project  # noqa: E402
from briefing.audience.imports import import_subscribers  # noqa: E402
from briefing.config import Config, load_config  # noqa: E402
from briefing.domain.states import OverrideKind  # noqa: E402
from briefing.domain.tokens import Signer  # noqa: E402
from briefing.editions.approval import approve  # noqa: E402
from briefing.editions.dispatch import dispatch  # noqa: E402
from briefing.editions.overrides import override  # noqa: E402
from briefing.ingest import ingest  # noqa: E402
from briefing.store import open_database  # noqa: E402

URL = "https://news.example.org/{}/{}/a-long-slug-for-the-story".format
EDITS = (
    (OverrideKind.PIN, URL("world", 7), None),
    (OverrideKind.DROP, URL("business", 0), None),
    (OverrideKind.HEADLINE, URL("world", 1), "An editor's headline for the story"),
    (OverrideKind.SUMMARY, URL("politics", 2), "An editor's summary, one sentence long."),
    (OverrideKind.SOURCE, URL("technology", 3), None),
    (OverrideKind.ADD, URL("sport", 11), None),
)


def prepare(folder: Path, count: int, approval: str) -> Path:
    """Write the project with ``approval`` and N subscribers; return its config path."""
    config_path = write_project(folder, 2525, 8, 14)
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(
        text.replace(
            "    list_id: daily.news.example.org\n",
            f"    list_id: daily.news.example.org\n    approval: {approval}\n",
            1,
        ),
        encoding="utf-8",
    )
    config = load_config(config_path)
    database = open_database(config.database)
    ingest(config, database, AT - timedelta(minutes=30))
    rows = folder / "subscribers.csv"
    with rows.open("w", encoding="utf-8") as out:
        out.write("email,name,briefing,sections,timezone,send_time,frequency\n")
        for n in range(count):
            sections = ";".join(SECTION_SETS[n % len(SECTION_SETS)])
            out.write(f"reader{n}@example.com,Reader {n},daily,{sections},UTC,07:00,daily\n")
    import_subscribers(config, database, rows, AT - timedelta(hours=1))
    database.dispose()
    return config_path


def database_file(config: Config) -> Path:
    return Path(config.database.removeprefix("sqlite:///"))


def measure(
    config: Config, pristine: Path, signer: Signer, *, edits: bool, approved: bool
) -> tuple[float, int, int]:
    """Dispatch once on a fresh copy; return seconds, editions created and subscriptions held."""
    target = database_file(config)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(pristine, target)
    database = open_database(config.database)
    try:
        day = AT.date()
        if edits:
            for kind, url, text in EDITS:
                override(config, database, "daily", day, kind, url, who="bench", now=AT, text=text)
        if approved:
            approve(config, database, "daily", day, who="bench", now=AT)
        started = time.perf_counter()
        report = dispatch(config, database, signer, AT + timedelta(seconds=30))
        seconds = time.perf_counter() - started
        return seconds, report.dispatched, sum(report.held.values())
    finally:
        database.dispose()


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    signer = Signer([b"benchmark-key-not-secret"])
    cases = {
        "plain": ("none", False, False),
        "overrides": ("none", True, False),
        "held": ("required", False, False),
        "approved": ("required", True, True),
    }
    projects: dict[str, tuple[Config, Path]] = {}
    for approval in ("none", "required"):
        folder = Path(tempfile.mkdtemp(prefix=f"bench-approval-{approval}-"))
        config = load_config(prepare(folder, args.subscribers, approval))
        pristine = folder / "pristine.db"
        shutil.copyfile(database_file(config), pristine)
        projects[approval] = (config, pristine)
    # One run first, not counted: templates compiled, modules imported, caches warm.
    measure(*projects["none"], signer, edits=False, approved=False)
    # Cases take turns within each round, so a slow spell of a shared machine hits them alike.
    runs: dict[str, list[tuple[float, int, int]]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, (approval, edits, approved) in cases.items():
            config, pristine = projects[approval]
            runs[name].append(measure(config, pristine, signer, edits=edits, approved=approved))
    results = {
        name: (statistics.median(r[0] for r in done), done[0][1], done[0][2])
        for name, done in runs.items()
    }
    base = results["plain"][0]
    print(f"{args.subscribers:,} subscribers, 5 variants, median of {args.runs} run(s)")
    print(f"{'case':<10} {'median s':>9} {'us/sub':>8} {'x plain':>8} {'editions':>9} {'held':>8}")
    for name, (seconds, editions, held) in results.items():
        print(
            f"{name:<10} {seconds:>9.3f} {seconds / args.subscribers * 1e6:>8.1f} "
            f"{seconds / base:>8.2f} {editions:>9,} {held:>8,}"
        )


if __name__ == "__main__":
    main()
