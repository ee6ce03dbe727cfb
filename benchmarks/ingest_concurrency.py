"""How long an ingest of many HTTP sources takes when some of them hang or trickle.

    python benchmarks/ingest_concurrency.py [--sources 200] [--hanging 5] [--trickling 5]
        [--total-timeout 3] [--repeat 3] [--baseline-repeat 3]

Serves ``--sources`` small RSS feeds from local HTTP servers on 127.0.0.1
(``--servers`` of them, each its own host:port, so the per-host limit is
realistic) of which ``--hanging`` accept the request and never answer and
``--trickling`` send their headers, then one body byte every 0.5 s (so no
read timeout ever fires). The slow ones are spread evenly through the config.
Each repetition ingests every source into a fresh temporary SQLite store with
the configured ``ingest.concurrency`` and ``ingest.per_host``, and again with
concurrency 1 (the sequential baseline, one source after another), in the same
run; the worker processes that read documents are started before the first
clock (the first run would otherwise pay for their start). It prints the
median wall time of each against ``ingest.total_timeout``, and checks that
every good source was stored and every slow one named.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest_support import bench_config, start_workers  # noqa: E402

from briefing.ingest import ingest  # noqa: E402
from briefing.store import open_database  # noqa: E402

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
STOP = threading.Event()


def feed(path: str) -> bytes:
    """A feed of five stories unique to ``path``."""
    items = "".join(
        f"<item><title>Story {n} of {path}</title><link>https://bench.example.org{path}/{n}</link>"
        f"<guid>https://bench.example.org{path}/{n}</guid>"
        f"<description>&lt;p&gt;Text of story {n}, with a few words.&lt;/p&gt;</description></item>"
        for n in range(5)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{path}</title>'
        f"<link>https://bench.example.org{path}</link>{items}</channel></rss>"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    """``/good/N`` answers at once, ``/hang/N`` never, ``/trickle/N`` a byte every 0.5 s."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if self.path.startswith("/hang/"):
                STOP.wait(600)
                return
            body = feed(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path.startswith("/trickle/"):
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    if STOP.wait(0.5):
                        return
            else:
                self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the output quiet."""


@contextlib.contextmanager
def servers(count: int) -> Iterator[list[str]]:
    """Run ``count`` HTTP servers on 127.0.0.1; yield their base URLs."""
    running = []
    for _ in range(count):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        running.append((server, thread))
    try:
        yield [f"http://127.0.0.1:{server.server_address[1]}" for server, _ in running]
    finally:
        STOP.set()
        for server, thread in running:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def plan(bases: list[str], sources: int, hanging: int, trickling: int) -> list[str]:
    """Source URLs round-robin over the servers, the slow ones spread evenly.

    Spread over the config and over the hosts too: slow sources all on one host
    would wait for each other, ``ingest.per_host`` at a time.
    """
    slow = ["hang"] * hanging + ["trickle"] * trickling
    step = max(sources // max(len(slow), 1), 1)
    kinds = ["good"] * sources
    for n, kind in enumerate(slow):
        kinds[(n * step + n) % sources] = kind
    return [f"{bases[n % len(bases)]}/{kind}/{n}" for n, kind in enumerate(kinds)]


def run(urls: list[str], total_timeout: float, concurrency: int, per_host: int) -> dict[str, Any]:
    ingest_settings = {
        "connect_timeout": "5s",
        "read_timeout": "30s",
        "total_timeout": f"{total_timeout:g}s",
        "concurrency": concurrency,
        "per_host": per_host,
    }
    with bench_config(urls, ingest_settings) as config:
        database = open_database(config.database)
        try:
            started = time.perf_counter()
            reports = ingest(config, database, NOW)
            elapsed = time.perf_counter() - started
        finally:
            database.dispose()
    good = [r for r in reports if "/good/" in r.label]
    slow = [r for r in reports if "/good/" not in r.label]
    return {
        "seconds": elapsed,
        "good_stored": sum(1 for r in good if r.new == 5 and not r.failed),
        "good": len(good),
        "slow_named": sum(1 for r in slow if r.failed and "total timeout" in r.failures[0]),
        "slow": len(slow),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=200, help="sources in all (default 200)")
    parser.add_argument("--hanging", type=int, default=5, help="sources that never answer")
    parser.add_argument("--trickling", type=int, default=5, help="sources that trickle bytes")
    parser.add_argument("--servers", type=int, default=20, help="local servers (hosts)")
    parser.add_argument("--total-timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--concurrency", type=int, default=8, help="ingest.concurrency")
    parser.add_argument("--per-host", type=int, default=2, help="ingest.per_host")
    parser.add_argument("--repeat", type=int, default=3, help="concurrent repetitions")
    parser.add_argument("--baseline-repeat", type=int, default=3, help="sequential repetitions")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the slow sources are counted below, not logged
    start_workers()  # as a long-running `serve` has them: no run counts their start
    with servers(args.servers) as bases:
        urls = plan(bases, args.sources, args.hanging, args.trickling)
        modes = [
            ("concurrent", args.concurrency, args.per_host, args.repeat),
            ("sequential", 1, 1, args.baseline_repeat),
        ]
        rows = []
        for name, concurrency, per_host, repeat in modes:
            runs = [
                run(urls, args.total_timeout, concurrency, per_host) for _ in range(max(repeat, 1))
            ]
            seconds = [r["seconds"] for r in runs]
            rows.append((name, concurrency, per_host, seconds, runs[-1]))
    print(
        f"{args.sources} sources on {args.servers} local hosts: {args.hanging} hang, "
        f"{args.trickling} trickle; ingest.total_timeout {args.total_timeout:g}s"
    )
    print(
        f"{'mode':<11} {'conc.':>5} {'host':>4} {'median s':>9} {'min-max s':>12} "
        f"{'x total_timeout':>15}  good stored  slow named"
    )
    for name, concurrency, per_host, seconds, last in rows:
        median = statistics.median(seconds)
        print(
            f"{name:<11} {concurrency:>5} {per_host:>4} {median:>9.2f} "
            f"{min(seconds):>5.2f}-{max(seconds):<6.2f} {median / args.total_timeout:>15.2f}  "
            f"{last['good_stored']:>5}/{last['good']:<5}  {last['slow_named']:>4}/{last['slow']}"
        )
    concurrent, sequential = (statistics.median(row[3]) for row in rows)
    print(f"sequential / concurrent: {sequential / concurrent:.1f}x")


if __name__ == "__main__":
    main()
