"""Score every message of a demo run with SpamAssassin's local rules and print the scores.

A check, not a timed test: it copies the repository to a temporary folder,
runs ``make demo`` there with this checkout's virtual environment (ingest the
samples, import the sample subscribers, send today's edition to the Maildir
outbox), then pipes each message through ``spamassassin -L -t`` (local tests
only: no DNS or network lists) and prints each message's score and the rules
that hit. Exits 1 when a message hits a rule in ``--forbid`` (by default the
ones our preheader and Message-ID must never trigger), 0 otherwise.

    .venv/bin/python benchmarks/spamassassin_check.py

Without ``spamassassin`` on PATH (Debian: ``apt-get install spamassassin``)
it prints why and exits 0: skipped.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("HTML_FONT_LOW_CONTRAST", "FONT_INVIS_MSGID", "FONT_INVIS_DIRECT", "MSGID_RANDY")
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s", re.MULTILINE)
_SCORE = re.compile(r"Content analysis details:\s+\((-?\d+(?:\.\d+)?) points")


def demo_messages(folder: Path, venv: Path) -> list[Path]:
    """Run ``make demo`` in a copy of the repository; return the messages it wrote."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = folder / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(
        ["make", "demo", f"VENV={venv}", "-o", f"{venv}/bin/briefing"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return sorted((folder / "var" / "outbox" / "new").iterdir())


def score(message: Path) -> tuple[float, dict[str, float]]:
    """Return SpamAssassin's score of one message and the rules that hit, with their points."""
    report = subprocess.run(
        ["spamassassin", "-L", "-t"],
        stdin=message.open("rb"),
        check=False,
        capture_output=True,
        timeout=300,
    ).stdout.decode("utf-8", "replace")
    total = _SCORE.search(report)
    details = report.split("Content analysis details:", 1)[-1]
    rules = {name: float(points) for points, name in _RULE.findall(details)}
    return (float(total.group(1)) if total else float("nan")), rules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N messages")
    parser.add_argument("--forbid", nargs="*", default=list(FORBIDDEN))
    args = parser.parse_args()
    if shutil.which("spamassassin") is None:
        print("skipped: spamassassin is not installed (apt-get install spamassassin)")
        return 0
    with tempfile.TemporaryDirectory(prefix="briefing-sa-") as tmp:
        messages = demo_messages(Path(tmp), args.venv.resolve())
        if args.limit:
            messages = messages[: args.limit]
        hits: dict[str, int] = {}
        bad = 0
        for message in messages:
            total, rules = score(message)
            shown = ", ".join(f"{name} {points:+.1f}" for name, points in sorted(rules.items()))
            print(f"{total:5.1f}  {message.name}  {shown}")
            for name in rules:
                hits[name] = hits.get(name, 0) + 1
            bad += any(name in args.forbid for name in rules)
    print(
        f"{len(messages)} message(s); rules hit: "
        + ", ".join(f"{n} x{c}" for n, c in sorted(hits.items()))
    )
    if bad:
        print(f"{bad} message(s) hit a forbidden rule: {', '.join(args.forbid)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
