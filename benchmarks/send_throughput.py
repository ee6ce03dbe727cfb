"""Measure ``briefing send`` over SMTP against Postfix's smtp-source into the same smtp-sink.

Builds a project whose digests are realistic (~70 KB messages, a handful of
variants), subscribes 20,000 readers, dispatches one edition, then, in this
one run and into one Postfix ``smtp-sink``:

- delivers the edition through the engine (the SMTP pool, the ledger, crash-safe
  group commits), without DKIM;
- blasts the same number of same-size messages with Postfix's ``smtp-source``
  (C, 8 sessions): the wire's speed on this machine, the baseline;
- a bare one-connection ``smtplib`` loop, for reference;
- delivers again with DKIM signing (rsa-sha256, 2048-bit key), reported apart.

Each is run ``--rounds`` times (the ledger reset in between) and medians are
printed with the ratio send / smtp-source, the CPU time and the peak RSS.

smtp-sink and smtp-source come from Debian's ``postfix`` package, fetched
without installing the mail server: ``apt-get download postfix`` and
``dpkg -x`` into ``benchmarks/.cache/postfix`` (gitignored), run with
``LD_LIBRARY_PATH`` pointing at its ``usr/lib/postfix``.

Run: ``make bench-send`` (or ``.venv/bin/python benchmarks/send_throughput.py``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfix import fetch_postfix, postfix_env, smtp_sink  # noqa: E402
from sqlalchemy import delete, update  # noqa: E402

from briefing.audience.imports import import_subscribers  # noqa: E402
from briefing.config import DkimConfig, load_config  # noqa: E402
from briefing.deliver import DeliveryReport, DkimSigner, deliver, make_transport  # noqa: E402
from briefing.domain.tokens import Signer  # noqa: E402
from briefing.editions.dispatch import dispatch  # noqa: E402
from briefing.ingest import ingest  # noqa: E402
from briefing.store import Database, open_database  # noqa: E402
from briefing.store.schema import Delivery, DeliveryAttempt  # noqa: E402

AT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
SECTIONS = ("world", "business", "politics", "technology", "sport")
# A handful of variants: subscribers pick one of these section sets.
SECTION_SETS = (
    ("world", "business", "politics", "technology"),
    ("world", "politics", "sport", "business"),
    ("business", "technology", "world", "sport"),
    ("sport", "world", "technology", "politics"),
    ("politics", "business", "sport", "technology"),
)
SENTENCE = (
    "The minister said on {day} that the plan, worth {n}.{m} billion, would be reviewed by a "
    "committee of {n} experts before the summer, a move critics called overdue."
)


def write_project(folder: Path, port: int, pool: int, items: int) -> Path:
    """Write config.yaml and Markdown articles for a digest of ``items`` items (~70 KB)."""
    for section in SECTIONS:
        for n in range(12):
            body = " ".join(SENTENCE.format(day=d, n=n + d, m=d) for d in range(20))
            (folder / "content" / section).mkdir(parents=True, exist_ok=True)
            (folder / "content" / section / f"{n}.md").write_text(
                "---\n"
                f'title: "{section.title()} headline number {n}: a story that runs to a long '
                'line as real ones do"\n'
                f"url: https://news.example.org/{section}/{n}/a-long-slug-for-the-story\n"
                f"published: {(AT - timedelta(hours=n + 1)).isoformat()}\n"
                f"image: https://img.example.org/{section}/{n}/photo-1200x675.jpg\n"
                f"image_alt: A photograph for {section} story {n}\n"
                'image_credit: "Photo: Agency / Photographer Name"\n'
                "---\n" + body + "\n",
                encoding="utf-8",
            )
    sections = "\n".join(
        f"  {s}:\n    title: {s.title()}\n    sources: [content/{s}/*.md]\n    max_items: 8\n"
        f"    lookback: 7d"
        for s in SECTIONS
    )
    (folder / "config.yaml").write_text(
        f"""\
site:
  name: The Benchmark Gazette
  base_url: https://news.example.org/briefing
  from_address: briefing@news.example.org
  postal_address: 1 Example Street, Exampletown
  unsubscribe_mailto: unsubscribe@news.example.org
sections:
{sections}
briefings:
  daily:
    title: The Daily Briefing
    list_id: daily.news.example.org
    sections: [world, business, politics, technology]
    send_time: "07:00"
    timezone: UTC
    max_items: {items}
    related_links: 2
    summary_words: 60
    # The generated stories share one sentence template; folding would merge them
    # into a single item and shrink the digest far below a real one.
    fold_threshold: 1.0
    deadline: 1w
delivery:
  transport: smtp
  batch_size: 500
  smtp:
    host: 127.0.0.1
    port: {port}
    security: none
    pool_size: {pool}
    messages_per_connection: 1000
""",
        encoding="utf-8",
    )
    return folder / "config.yaml"


def subscribe(folder: Path, count: int) -> Path:
    """Write a subscriber list of ``count`` readers spread over the section sets."""
    path = folder / "subscribers.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,briefing,sections,timezone,send_time,frequency\n")
        for n in range(count):
            sections = ";".join(SECTION_SETS[n % len(SECTION_SETS)])
            out.write(f"reader{n}@example.com,Reader {n},daily,{sections},UTC,07:00,daily\n")
    return path


def reset_ledger(database: Database) -> None:
    """Put every delivery back to pending, as if never sent."""
    with database.transaction() as session:
        session.execute(delete(DeliveryAttempt))
        session.execute(
            update(Delivery).values(
                status="pending",
                attempts=0,
                owner=None,
                lease_until=None,
                sent_at=None,
                last_code=None,
                last_reply=None,
                next_attempt_at=None,
            )
        )


@dataclass
class Measured:
    """One timed run."""

    seconds: float
    cpu: float
    messages: int

    @property
    def rate(self) -> float:
        """Return messages per second."""
        return self.messages / self.seconds


def timed(function: Callable[[], int]) -> Measured:
    """Time ``function`` (which returns how many messages it moved): wall and CPU of this process."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    messages = function()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(seconds, cpu, messages)


def run_send(config_path: Path, database: Database, signer: Signer, dkim: DkimSigner | None) -> int:
    """Deliver the whole ledger through the SMTP pool; return how many were sent."""
    config = load_config(config_path)
    transport = make_transport(config)
    try:
        report: DeliveryReport = deliver(
            config, database, signer, transport, clock=lambda: AT, dkim=dkim
        )
    finally:
        transport.close()
    if report.stopped or report.sent != report.handled:
        raise SystemExit(f"the send did not complete: {report}")
    return report.sent


def run_smtp_source(root: Path, port: int, count: int, size: int, sessions: int) -> int:
    """Blast ``count`` messages of ``size`` bytes with smtp-source; return ``count``."""
    subprocess.run(
        [
            str(root / "usr" / "sbin" / "smtp-source"),
            "-s",
            str(sessions),
            "-m",
            str(count),
            "-l",
            str(size),
            "-f",
            "briefing@news.example.org",
            "-t",
            "reader@example.com",
            f"127.0.0.1:{port}",
        ],
        env=postfix_env(root),
        check=True,
    )
    return count


def run_smtplib(port: int, count: int, message: bytes) -> int:
    """Send ``count`` copies over one connection with smtplib's sendmail, one by one."""
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for n in range(count):
            smtp.sendmail("briefing@news.example.org", [f"reader{n}@example.com"], message)
    return count


def sample_message(database: Database) -> bytes:
    """Return one composed variant message, the size the benchmark blasts."""
    from briefing.store.schema import Variant

    with database.transaction() as session:
        variant = session.query(Variant).first()
        assert variant is not None
        return variant.message


def dkim_key(folder: Path) -> Path:
    """Write a 2048-bit RSA private key for DKIM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def median(values: list[float]) -> float:
    """Return the median."""
    return statistics.median(values)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument(
        "--pool", type=int, default=8, help="SMTP connections (and smtp-source sessions)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--items", type=int, default=14, help="items per digest (14: ~72 KB messages)"
    )
    parser.add_argument(
        "--dkim-subscribers", type=int, default=5_000, help="messages in each DKIM-signed round"
    )
    args = parser.parse_args()

    root = fetch_postfix()
    folder = Path(tempfile.mkdtemp(prefix="bench-send-"))
    os.environ.setdefault("BRIEFING_SECRET_KEY", "benchmark-key-not-secret")
    signer = Signer([os.environ["BRIEFING_SECRET_KEY"].encode()])
    try:
        with smtp_sink(root) as port:
            config_path = write_project(folder, port, args.pool, args.items)
            config = load_config(config_path)
            database = open_database(config.database)
            started = time.perf_counter()
            ingest(config, database, AT - timedelta(minutes=30))
            import_subscribers(
                config, database, subscribe(folder, args.subscribers), AT - timedelta(minutes=10)
            )
            dispatched = dispatch(config, database, signer, AT)
            setup = time.perf_counter() - started
            message = sample_message(database)
            size = len(message)
            print(
                f"setup: {args.subscribers:,} subscribers, {dispatched.variants} variants, "
                f"messages ~{size / 1000:.1f} KB, ingest+import+dispatch {setup:.1f} s"
            )
            print(
                f"pool: {args.pool} connections; smtp-source: {args.pool} sessions; "
                f"{args.rounds} rounds, medians below"
            )

            sends, sources, bare = [], [], []
            for round_number in range(1, args.rounds + 1):
                reset_ledger(database)
                source = timed(
                    lambda: run_smtp_source(root, port, args.subscribers, size, args.pool)
                )
                send = timed(lambda: run_send(config_path, database, signer, None))
                loop = timed(lambda: run_smtplib(port, max(args.subscribers // 10, 100), message))
                sources.append(source)
                sends.append(send)
                bare.append(loop)
                print(
                    f"  round {round_number}: send {send.rate:,.0f}/s, smtp-source "
                    f"{source.rate:,.0f}/s, ratio {send.rate / source.rate:.2f}; "
                    f"bare smtplib {loop.rate:,.0f}/s"
                )

            os.environ["BRIEFING_DKIM_KEY_FILE"] = str(dkim_key(folder))
            signed = []
            delivery = config.delivery.model_copy(update={"dkim": DkimConfig(selector="bench")})
            dkim = DkimSigner.from_config(config.model_copy(update={"delivery": delivery}))
            for _ in range(args.rounds):
                reset_ledger(database)
                with database.transaction() as session:
                    # Sign a subset: the rate, not the total, is the figure.
                    session.execute(
                        update(Delivery)
                        .where(Delivery.id > args.dkim_subscribers)
                        .values(status="skipped")
                    )
                signed.append(timed(lambda: run_send(config_path, database, signer, dkim)))

            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            send_rate = median([m.rate for m in sends])
            source_rate = median([m.rate for m in sources])
            cpu_per_message = median([m.cpu / m.messages * 1e6 for m in sends])
            print()
            print(
                f"briefing send (pool, ledger, no DKIM): {send_rate:8,.0f} messages/s "
                f"(median wall {median([m.seconds for m in sends]):.2f} s for {args.subscribers:,})"
            )
            print(
                f"smtp-source ({args.pool} sessions):         {source_rate:8,.0f} messages/s "
                f"(median wall {median([m.seconds for m in sources]):.2f} s)"
            )
            print(f"ratio send / smtp-source:              {send_rate / source_rate:8.2f}")
            print(
                f"bare smtplib loop, one connection:     {median([m.rate for m in bare]):8,.0f} messages/s"
            )
            print(
                f"send CPU time (this process):          {median([m.cpu for m in sends]):8.2f} s "
                f"({cpu_per_message:.0f} us per message)"
            )
            print(
                f"DKIM-signed send (rsa-sha256 2048):    {median([m.rate for m in signed]):8,.0f} messages/s "
                f"(median of {args.rounds} x {args.dkim_subscribers:,})"
            )
            print(f"peak RSS of this process:              {peak_mb:8.0f} MB")
            database.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
