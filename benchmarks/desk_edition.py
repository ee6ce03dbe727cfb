"""Time the desk's coming-edition page against the service it shows, in the same run.

The project of ``approval.py`` (the ~70 KB digests of ``send_throughput.py``,
five section sets, so five variants; ``approval: required``) with N
subscribers (``--subscribers``, default 20,000) and the six overrides of that
benchmark, served on 127.0.0.1 by the real web app with its desk. Measured,
``--runs`` times each (default 7) after one uncounted warm-up, taking turns:

- ``issue_view``: the service alone, called in this process (the baseline:
  it cuts every variant as dispatch would);
- ``edition page``: ``GET <base>/desk/edition/daily/<date>`` over HTTP with a
  logged-in editor's cookie (the service, the approval status, the template).

Prints each median and the ratio of the page to ``issue_view``.

Run: ``.venv/bin/python benchmarks/desk_edition.py [--subscribers 20000] [--runs 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.approval import EDITS, prepare  # noqa: E402
from benchmarks.send_throughput import AT  # noqa: E402
from briefing.config import load_config  # noqa: E402
from briefing.domain.states import Role  # noqa: E402
from briefing.editions.issue import issue_view  # noqa: E402
from briefing.editions.overrides import override  # noqa: E402
from briefing.store import open_database  # noqa: E402
from tests.support.desk import DESK, serve_desk  # noqa: E402


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = prepare(Path(folder), args.subscribers, "required")
        # serve_desk's client drives the desk at /b/desk/, the tests' base_url path.
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("example.org/briefing\n", "example.org/b\n", 1), "utf-8")
        config = load_config(path)
        assert config.site.base_url.endswith("/b"), config.site.base_url
        database = open_database(config.database)
        day = AT.date()
        for kind, url, text in EDITS:
            override(config, database, "daily", day, kind, url, who="bench", now=AT, text=text)
        with serve_desk(config, database) as site:
            site.clock.now = AT + timedelta(seconds=30)
            site.add("ann", Role.EDITOR)
            sid = site.session("ann")
            page = f"{DESK}edition/daily/{day.isoformat()}"

            def get(path: str) -> Callable[[], object]:
                def run() -> object:
                    response = site.get(path, sid)
                    assert response.status_code == 200, response.text[:500]
                    return response

                return run

            cases: dict[str, Callable[[], object]] = {
                "issue_view": lambda: issue_view(config, database, "daily", day, site.clock()),
                "edition page": get(page),
            }
            view = issue_view(config, database, "daily", day, site.clock())
            size = len(site.get(page, sid).content)
            times: dict[str, list[float]] = {name: [] for name in cases}
            for run in range(args.runs + 1):
                for name, case in cases.items():
                    started = time.perf_counter()
                    case()
                    if run:  # the first round warms up
                        times[name].append(time.perf_counter() - started)
        database.dispose()
    items = sum(len(variant.items) for variant in view.upcoming)
    print(
        f"desk edition page: {args.subscribers:,} subscribers, {len(view.upcoming)} variants, "
        f"{items} items shown, {len(view.overrides)} overrides, page {size:,} bytes; "
        f"medians of {args.runs} runs (ms):"
    )
    for name, values in times.items():
        ms = sorted(value * 1000 for value in values)
        print(f"  {name:<13} median {statistics.median(ms):8.1f}   min {ms[0]:8.1f}")
    ratio = statistics.median(times["edition page"]) / statistics.median(times["issue_view"])
    print(f"  edition page / issue_view (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
