"""What the desk's preview page costs, against one cut of the same variant, in the same run.

    python benchmarks/desk_preview.py [--subscribers 2000] [--runs 5]

One SQLite project (the ~70 KB digests of ``send_throughput.py``, 14 items
over four sections) with N subscribers is prepared once, and served on a real
uvicorn server with the desk (an editor logged in, Argon2 at test costs). Each
round times, in turn:

- ``cut``: ``build_variant`` of one section set, as dispatch cuts it (the baseline);
- ``preview_content``: the same edition in memory with inert links and the whole message;
- ``page``: ``GET .../preview?sections=...`` over HTTP (one preview);
- ``page + frames``: that page and its three ``preview/html`` frames, as a browser loads them;
- ``as subscriber``: ``GET .../preview?subscriber=...`` (their subscription looked up first);
- ``test send``: ``POST .../test`` to one address (a preview, a ledger row, the activity line).

Each figure is the median of ``--runs`` rounds after one uncounted warm-up;
ratios are against ``cut`` from the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.send_throughput import AT, SECTION_SETS, write_project  # noqa: E402
from briefing.audience.imports import import_subscribers  # noqa: E402
from briefing.config import load_config  # noqa: E402
from briefing.domain.states import Role  # noqa: E402
from briefing.domain.tokens import Signer  # noqa: E402
from briefing.editions.preview import preview_content  # noqa: E402
from briefing.editions.variants import VariantSpec, build_variant, ordered_sections  # noqa: E402
from briefing.ingest import ingest  # noqa: E402
from briefing.store import open_database  # noqa: E402
from tests.support.desk import DESK, csrf_of, serve_desk  # noqa: E402
from tests.support.factories import KEY  # noqa: E402

SECTIONS = SECTION_SETS[0]


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-desk-preview-"))
    path = write_project(folder, 2525, 8, 14)
    text = path.read_text(encoding="utf-8")
    # The desk's test helpers serve the site under /b, as the tests' projects do.
    text = text.replace("https://news.example.org/briefing", "https://news.example.org/b")
    path.write_text(
        text + "desk:\n  test_recipients: [proofs@news.example.org]\n", encoding="utf-8"
    )
    config = load_config(path)
    database = open_database(config.database)
    ingest(config, database, AT - timedelta(minutes=30))
    rows = folder / "subscribers.csv"
    with rows.open("w", encoding="utf-8") as out:
        out.write("email,name,briefing,sections,timezone,send_time,frequency\n")
        for n in range(args.subscribers):
            sections = ";".join(SECTION_SETS[n % len(SECTION_SETS)])
            out.write(f"reader{n}@example.com,Reader {n},daily,{sections},UTC,07:00,daily\n")
    import_subscribers(config, database, rows, AT - timedelta(hours=1))
    signer = Signer([KEY])
    day = AT.date()
    spec = VariantSpec(
        briefing="daily",
        sections=ordered_sections(config, "daily", list(SECTIONS)),
        since=None,
        cut_at=AT,
        locale=config.briefings["daily"].locale,
        issue_date=day,
    )
    query = "sections=" + ",".join(SECTIONS)
    with serve_desk(config, database) as site:
        site.clock.now = AT
        site.add("ed", Role.EDITOR)
        sid = site.session("ed")
        preview = f"{DESK}edition/daily/{day.isoformat()}/preview"

        def page() -> str:
            response = site.get(f"{preview}?{query}", sid)
            assert response.status_code == 200, response.text[:300]
            return response.text

        def page_and_frames() -> None:
            html = page()
            frames = re.findall(r'<iframe [^>]*src="([^"]+)"', html)
            assert len(frames) == 3
            for src in frames:
                assert site.get(unescape(src), sid).status_code == 200

        def as_subscriber() -> None:
            response = site.get(f"{preview}?subscriber=reader7@example.com", sid)
            assert response.status_code == 200, response.text[:300]

        token = csrf_of(page())

        def test_send() -> None:
            response = site.post(
                f"{DESK}edition/daily/{day.isoformat()}/test",
                sid,
                {
                    "csrf_token": token,
                    "sections": ",".join(SECTIONS),
                    "to": "proofs@news.example.org",
                },
            )
            assert response.status_code == 303, response.text[:300]

        cases: dict[str, Callable[[], object]] = {
            "cut": lambda: build_variant(database, config, spec, feedback_key=signer.feedback_key),
            "preview_content": lambda: preview_content(
                config,
                database,
                signer,
                briefing="daily",
                at=AT,
                sections=list(SECTIONS),
                issue_date=day,
            ),
            "page": page,
            "page + frames": page_and_frames,
            "as subscriber": as_subscriber,
            "test send": test_send,
        }
        for case in cases.values():  # warm-up: templates compiled, caches filled
            case()
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, case in cases.items():
                started = time.perf_counter()
                case()
                times[name].append(time.perf_counter() - started)
    database.dispose()
    load = os.getloadavg()
    print(
        f"desk preview: {args.subscribers:,} subscribers, {args.runs} runs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    base = statistics.median(times["cut"])
    print(f"{'case':<18}{'median ms':>12}{'min ms':>10}{'max ms':>10}{'x cut':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<18}{median * 1000:>12.1f}{min(values) * 1000:>10.1f}"
            f"{max(values) * 1000:>10.1f}{median / base:>8.2f}"
        )


if __name__ == "__main__":
    main()
