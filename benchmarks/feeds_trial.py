"""Try ingest as a new user would, on every real feed file, from disk and over HTTP.

    python benchmarks/feeds_trial.py [--data ../shared/data] [--out DIR]

Writes ``DIR/config.yaml`` (default: a temporary folder; its store, ``DIR/var``,
is started afresh) with one source per
file of ``<data>/feeds`` (licences aside) as a local path, and again as a URL
served by Python's own ``http.server`` on 127.0.0.1 (it sends Last-Modified
and answers If-Modified-Since with 304, as most static servers do). Then runs
``briefing --config DIR/config.yaml ingest`` twice, exactly as a user types
it, keeps each run's output in ``DIR/run1.txt`` / ``DIR/run2.txt`` and prints
a summary. It checks that:

- both runs exit 1, and every unreadable file is named with a reason, as a
  local path and as a URL alike;
- every readable file is ingested on the first run: ``new``, or, for an HTTP
  source whose stories the local copy already stored, ``updated`` (they join
  the second section) or ``unchanged``;
- on the second run every readable HTTP source is ``unchanged`` through a
  304, and no source has anything new.

Exit status 0 when all of that holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(new|updated|unchanged|failed)\s+(\S+)\s+(.*)$")
COUNTS = re.compile(r"(\d+) new, (\d+) updated, (\d+) unchanged")


class QuietHandler(SimpleHTTPRequestHandler):
    """Serve files quietly, without Nagle's 40 ms stalls between headers and body."""

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""


def feed_files(feeds: Path) -> list[Path]:
    """Every feed file under ``feeds`` except the licences."""
    return sorted(p for p in feeds.rglob("*") if p.is_file() and "_licenses" not in p.parts)


def write_config(out: Path, files: list[Path], feeds: Path, base_url: str) -> Path:
    urls = [f"{base_url}/{path.relative_to(feeds).as_posix()}" for path in files]
    config = {
        "site": {
            "name": "Feed Trial",
            "base_url": "https://trial.example.org",
            "from_address": "trial@trial.example.org",
            "postal_address": "1 Trial Street",
        },
        "sections": {
            "local": {"title": "Local files", "sources": [str(path) for path in files]},
            "web": {"title": "Over HTTP", "sources": urls},
        },
        "briefings": {
            "daily": {
                "title": "Trial",
                "list_id": "trial.example.org",
                "sections": ["local", "web"],
            },
        },
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def ingest(config: Path, out: Path, run: int) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "briefing", "--config", str(config), "ingest"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    text = done.stdout + ("\n[stderr]\n" + done.stderr if done.stderr else "")
    (out / f"run{run}.txt").write_text(text, encoding="utf-8")
    return done.returncode, done.stdout


def parse(stdout: str) -> dict[str, dict[str, Any]]:
    """Read the ingest report: per source, status, counts, 304 and failure reasons."""
    sources: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            status, label, rest = match.groups()
            counts = COUNTS.search(rest)
            current = sources[label] = {
                "status": status,
                "new": int(counts.group(1)) if counts else 0,
                "unchanged": int(counts.group(3)) if counts else 0,
                "not_modified": "HTTP 304" in rest,
                "failures": [],
            }
        elif current is not None and line.strip().startswith("failed: "):
            current["failures"].append(line.strip().removeprefix("failed: "))
    return sources


def summarise(name: str, sources: dict[str, dict[str, Any]], local: set[str]) -> None:
    for kind, keep in (("local", lambda s: s in local), ("http", lambda s: s not in local)):
        chosen = {k: v for k, v in sources.items() if keep(k)}
        statuses = Counter(v["status"] for v in chosen.values())
        print(
            f"{name} {kind:<5}: {len(chosen)} sources: "
            + ", ".join(f"{statuses[s]} {s}" for s in ("new", "updated", "unchanged", "failed"))
            + f"; {sum(v['new'] for v in chosen.values())} items new, "
            f"{sum(v['unchanged'] for v in chosen.values())} unchanged, "
            f"{sum(v['not_modified'] for v in chosen.values())} not modified (304)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="folder holding feeds/ (default ../shared/data)",
    )
    parser.add_argument("--out", type=Path, help="folder for config.yaml, the store and outputs")
    args = parser.parse_args()
    feeds = (args.data / "feeds").resolve()
    files = feed_files(feeds)
    if not files:
        print(f"no feed files under {feeds}", file=sys.stderr)
        return 1
    out = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="feeds-trial-"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "var", ignore_errors=True)  # a fresh store: the trial starts as new
    handler = functools.partial(QuietHandler, directory=str(feeds))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        config = write_config(out, files, feeds, base_url)
        local = {str(path) for path in files}
        print(f"{len(files)} files from {feeds}; config and outputs in {out}")
        code1, stdout1 = ingest(config, out, 1)
        code2, stdout2 = ingest(config, out, 2)
    finally:
        server.shutdown()
        server.server_close()
    first, second = parse(stdout1), parse(stdout2)
    print(f"run 1 exit {code1}, run 2 exit {code2}")
    summarise("run 1", first, local)
    summarise("run 2", second, local)
    failed = {label: v["failures"] for label, v in first.items() if v["status"] == "failed"}
    print(f"unreadable files, named with the reason ({len(failed)} sources):")
    for label, reasons in failed.items():
        if label in local:
            shown = str(Path(label).relative_to(feeds))
            print(f"  {shown}: {reasons[0].split(': ', 1)[1] if reasons else '(no reason!)'}")
    problems = []
    if (code1, code2) != (1, 1):
        problems.append(f"expected exit 1 twice, got {code1} and {code2}")
    if len(first) != 2 * len(files):
        problems.append(f"expected {2 * len(files)} sources in the report, got {len(first)}")
    for label, v in first.items():
        if v["status"] == "failed" and not all(f.startswith(label + ": ") for f in v["failures"]):
            problems.append(f"{label}: failure does not name the file: {v['failures']}")
        if v["status"] not in ("new", "updated", "failed", "unchanged"):
            problems.append(f"{label}: unexpected status {v['status']}")
    local_failed = {Path(k).relative_to(feeds).as_posix() for k in failed if k in local}
    http_failed = {k.split("/", 3)[3] for k in failed if k not in local}
    if local_failed != http_failed:
        problems.append(f"local and HTTP failures differ: {sorted(local_failed ^ http_failed)}")
    for label, v in second.items():
        if v["new"]:
            problems.append(f"{label}: {v['new']} new on the second run")
        if label not in local and v["status"] != "failed" and not v["not_modified"]:
            problems.append(f"{label}: second run was not a 304")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("trial: OK" if not problems else f"trial: {len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
