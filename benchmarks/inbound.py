"""Measure returned-mail intake: ``briefing inbound`` over LMTP against the same intake called directly.

Builds a project (SQLite), then for ``--messages`` hard-bounce DSNs (each to
its own ``bounces+<token>@`` address, each with its own Message-ID) measures
in this one run:

- the baseline: :func:`briefing.audience.bounces.take` called directly, one
  transaction per message (what ``bounces import`` does per message);
- the same messages handed to the LMTP receiver over one connection from
  ``smtplib.LMTP``, one transaction per message, as a relay would.

Each is run ``--rounds`` times on a fresh database and the medians are
printed, in messages per second, with the ratio LMTP / direct: the cost of
the protocol and the worker thread on top of classify-and-store.

Run: ``.venv/bin/python benchmarks/inbound.py [--messages 500] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from briefing.audience.bounces import take  # noqa: E402
from briefing.config import Config  # noqa: E402
from briefing.store import Database, open_database  # noqa: E402
from tests.support.bounces import dsn  # noqa: E402
from tests.support.factories import make_config  # noqa: E402
from tests.support.inbound import SIGNER, receiver  # noqa: E402

DOMAIN = "news.example.org"


def messages(count: int) -> list[tuple[str, bytes]]:
    """Return ``count`` (bounce address, DSN) pairs, each naming its own delivery."""
    pairs = []
    for n in range(1, count + 1):
        address = f"bounces+{SIGNER.delivery_token(n)}@{DOMAIN}"
        raw = dsn(
            to=address,
            recipient=f"reader{n}@example.com",
            status="5.1.1",
            message_id=f"<bench-{n}@mx.example.net>",
        )
        pairs.append((address, raw))
    return pairs


def fresh(folder: Path, round_: int) -> tuple[Config, Database]:
    config = make_config(folder / f"round-{round_}", bounces={"domain": DOMAIN})
    return config, open_database(config.database)


def direct(config: Config, database: Database, pairs: list[tuple[str, bytes]]) -> float:
    start = time.perf_counter()
    for address, raw in pairs:
        copy = f"Delivered-To: {address}\r\n".encode() + raw
        take(config, database, SIGNER, address, copy, source="bench", now=datetime.now(UTC))
    return time.perf_counter() - start


def over_lmtp(config: Config, database: Database, pairs: list[tuple[str, bytes]]) -> float:
    with receiver(config, database) as inbound:
        client = smtplib.LMTP(inbound.host, inbound.port)
        start = time.perf_counter()
        for address, raw in pairs:
            refused = client.sendmail("", [address], raw)
            assert refused == {}, refused
        elapsed = time.perf_counter() - start
        client.quit()
        assert inbound.handler.handled == len(pairs)
    return elapsed


def main() -> None:
    """Run both ways ``--rounds`` times and print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pairs = messages(args.messages)
    folder = Path(tempfile.mkdtemp(prefix="bench-inbound-"))
    timings: dict[str, list[float]] = {"direct": [], "lmtp": []}
    try:
        for round_ in range(args.rounds):
            ways = [("direct", direct), ("lmtp", over_lmtp)]
            # Alternate which goes first, so neither always meets a colder cache or a busier disk.
            for name, run in ways if round_ % 2 == 0 else ways[::-1]:
                config, database = fresh(folder / name, round_)
                try:
                    timings[name].append(run(config, database, pairs))
                finally:
                    database.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"{args.messages} hard-bounce DSNs, {args.rounds} rounds, SQLite, medians:")
    for name, seconds in medians.items():
        print(
            f"  {name:<7} {seconds:7.3f} s  {args.messages / seconds:8.0f} msg/s  "
            f"{seconds / args.messages * 1000:6.2f} ms/msg"
        )
    print(f"  lmtp / direct: {medians['lmtp'] / medians['direct']:.2f}x")


if __name__ == "__main__":
    main()
