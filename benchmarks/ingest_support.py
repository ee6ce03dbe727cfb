"""What the ingest benchmarks share: a config of many sources in a temporary folder."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from briefing.config import Config, load_config  # noqa: E402


@contextlib.contextmanager
def bench_config(sources: list[str], ingest: dict[str, Any] | None = None) -> Iterator[Config]:
    """Yield the config of one ``feeds`` section reading ``sources``, in a temporary folder.

    Its SQLite store lives in that folder too, so every use starts empty.
    """
    settings: dict[str, Any] = {
        "site": {
            "name": "Bench",
            "base_url": "https://bench.example.org",
            "from_address": "b@bench.example.org",
            "postal_address": "1 Bench Road",
        },
        "sections": {"feeds": {"title": "Feeds", "sources": sources}},
        "briefings": {
            "daily": {
                "title": "Daily",
                "list_id": "daily.bench.example.org",
                "sections": ["feeds"],
            }
        },
    }
    if ingest:
        settings["ingest"] = ingest
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(settings))
        yield load_config(path)


def start_workers() -> None:
    """Start the worker processes ingest reads documents in, so no clock counts their start."""
    from briefing.ingest.readers import FEED, ReadContext
    from briefing.ingest.workers import Fetched, ReadLimits, read_document

    context = ReadContext(label="warm-up", sections=("feeds",), known_sections=frozenset())
    document = (
        b'<rss version="2.0"><channel><title>W</title><item><title>W</title></item></channel></rss>'
    )
    read_document(FEED, Fetched(document, "warm-up"), context, ReadLimits())
