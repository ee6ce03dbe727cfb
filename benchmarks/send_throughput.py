"""Measure ``briefing send`` over SMTP against Postfix's ``smtp-source -d`` into the same smtp-sink.

Builds a project whose digests are realistic (~70 KB messages, a handful of
variants), subscribes 20,000 readers, dispatches one edition, then, in this
one run and into one Postfix ``smtp-sink``, each round (the ledger reset in
between):

- ``smtp-source -s 8 -d``: the same number of same-size messages over 8
  sessions that each carry many messages (``-d``), as the engine's pool does:
  the wire's speed on this machine, the baseline like for like;
- the engine in this process (``deliver``: the SMTP pool, the ledger,
  crash-safe group commits), unsigned and DKIM-signed (rsa-sha256, 2048 bits);
- the whole command a user runs, ``briefing send`` in a child process
  (start-up, configuration, the dispatch that finds nothing new, delivery),
  unsigned and DKIM-signed.

Medians over ``--rounds`` are printed with ratios against smtp-source and
signed against unsigned, CPU time per message and peak RSS (this process for
the in-process runs, the child for the command).

smtp-sink and smtp-source come from Debian's ``postfix`` package, fetched
without installing the mail server: ``apt-get download postfix`` and
``dpkg -x`` into ``benchmarks/.cache/postfix`` (gitignored), run with
``LD_LIBRARY_PATH`` pointing at its ``usr/lib/postfix``.

Run: ``make bench-send`` (or ``.venv/bin/python benchmarks/send_throughput.py``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import postfix  # noqa: E402
from postfix import fetch_postfix, smtp_sink  # noqa: E402
from sqlalchemy import delete, func, select, update  # noqa: E402

from briefing.audience.imports import import_subscribers  # noqa: E402
from briefing.config import load_config  # noqa: E402
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
    """One timed run: wall time, CPU time and peak RSS of the process that did the work."""

    seconds: float
    cpu: float
    messages: int
    peak_rss: float | None = None  # MB, of a child process

    @property
    def rate(self) -> float:
        """Return messages per second."""
        return self.messages / self.seconds

    @property
    def cpu_per_message(self) -> float:
        """Return microseconds of CPU per message."""
        return self.cpu / self.messages * 1e6


def timed(function: Callable[[], int]) -> Measured:
    """Time ``function`` (which returns how many messages it moved): wall and CPU of this process."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    messages = function()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(seconds, cpu, messages)


def sent_count(database: Database) -> int:
    """Count the deliveries the ledger holds as sent."""
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).where(Delivery.status == "sent")) or 0)


def run_send(config_path: Path, database: Database, signer: Signer, dkim: DkimSigner | None) -> int:
    """Deliver the whole ledger in this process through the SMTP pool; return how many were sent."""
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


def run_command(config_path: Path, database: Database, expected: int) -> Measured:
    """Run ``briefing send`` as a user would, in a child process; measure it whole."""
    command = [
        str(Path(sys.executable).parent / "briefing"),
        "--config",
        str(config_path),
        "send",
        "--at",
        AT.isoformat(),
    ]
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        # The code beside this script, as for the in-process runs.
        path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        child = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": path}
        )
        peak = 0.0
        while True:
            # The child's own high-water mark: ru_maxrss would count this process's memory
            # at the fork, which Linux carries across exec.
            peak = max(peak, vm_hwm(child.pid))
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            output.seek(0)
            raise SystemExit(f"briefing send exited {child.returncode}:\n{output.read().decode()}")
    sent = sent_count(database)
    if sent != expected:
        raise SystemExit(f"briefing send sent {sent} of {expected}")
    return Measured(seconds, usage.ru_utime + usage.ru_stime, sent, peak)


def vm_hwm(pid: int) -> float:
    """Return a live process's peak resident memory (VmHWM) in MB, 0 when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_smtp_source(root: Path, port: int, count: int, size: int, sessions: int) -> int:
    """Send ``count`` messages of ``size`` bytes with ``smtp-source -d``; return ``count``.

    ``-d`` keeps each session open for many messages, as the engine's pool
    does; without it every message pays a new connection and greeting.
    """
    postfix.run_smtp_source(root, port, count, size, sessions, reuse=True)
    return count


def sample_message(database: Database) -> bytes:
    """Return one composed variant message, the size smtp-source sends."""
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


def signed_config(config_path: Path) -> Path:
    """Write a copy of the config that signs with DKIM (same database: the same folder)."""
    path = config_path.with_name("config-dkim.yaml")
    path.write_text(
        config_path.read_text(encoding="utf-8") + "  dkim:\n    selector: bench\n",
        encoding="utf-8",
    )
    return path


@contextmanager
def profiled(title: str, top: int) -> Iterator[None]:
    """Profile every thread started in the block (the engine's workers) and print the top."""
    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def run(thread: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)  # CPU of this thread, not waits
        profiles.append(profile)
        profile.enable()
        try:
            original(thread)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign,assignment]
    main_profile = cProfile.Profile(time.thread_time)
    main_profile.enable()
    try:
        yield
    finally:
        main_profile.disable()
        threading.Thread.run = original  # type: ignore[method-assign]
        text = io.StringIO()
        stats = pstats.Stats(main_profile, stream=text)
        for profile in profiles:
            stats.add(profile)
        stats.sort_stats("tottime").print_stats(top)
        print(f"\nprofile of {title}, all threads, by own CPU time:")
        print(text.getvalue())


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
        "--no-command", action="store_true", help="skip the `briefing send` child-process runs"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after the rounds, profile one unsigned and one signed delivery; print the top N",
    )
    args = parser.parse_args()

    root = fetch_postfix()
    folder = Path(tempfile.mkdtemp(prefix="bench-send-"))
    os.environ.setdefault("BRIEFING_SECRET_KEY", "benchmark-key-not-secret")
    signer = Signer([os.environ["BRIEFING_SECRET_KEY"].encode()])
    count = args.subscribers
    try:
        with smtp_sink(root) as port:
            config_path = write_project(folder, port, args.pool, args.items)
            config = load_config(config_path)
            database = open_database(config.database)
            started = time.perf_counter()
            ingest(config, database, AT - timedelta(minutes=30))
            import_subscribers(
                config, database, subscribe(folder, count), AT - timedelta(minutes=10)
            )
            dispatched = dispatch(config, database, signer, AT)
            setup = time.perf_counter() - started
            size = len(sample_message(database))
            print(
                f"setup: {count:,} subscribers, {dispatched.variants} variants, "
                f"messages ~{size / 1000:.1f} KB, ingest+import+dispatch {setup:.1f} s"
            )
            print(
                f"pool: {args.pool} connections; smtp-source -d: {args.pool} sessions; "
                f"{args.rounds} rounds of {count:,} messages each, medians below"
            )
            os.environ["BRIEFING_DKIM_KEY_FILE"] = str(dkim_key(folder))
            signed_path = signed_config(config_path)
            dkim = DkimSigner.from_config(load_config(signed_path))
            assert dkim is not None

            runs: dict[str, list[Measured]] = {}

            def record(name: str, measured: Measured) -> Measured:
                runs.setdefault(name, []).append(measured)
                return measured

            for round_number in range(1, args.rounds + 1):
                reset_ledger(database)
                source = record(
                    "source",
                    timed(lambda: run_smtp_source(root, port, count, size, args.pool)),
                )
                reset_ledger(database)
                send = record("send", timed(lambda: run_send(config_path, database, signer, None)))
                reset_ledger(database)
                signed = record(
                    "signed", timed(lambda: run_send(signed_path, database, signer, dkim))
                )
                line = (
                    f"  round {round_number}: smtp-source -d {source.rate:,.0f}/s; "
                    f"deliver {send.rate:,.0f}/s ({send.rate / source.rate:.2f}x), "
                    f"signed {signed.rate:,.0f}/s ({signed.rate / send.rate:.2f}x unsigned)"
                )
                if not args.no_command:
                    reset_ledger(database)
                    command = record("command", run_command(config_path, database, count))
                    reset_ledger(database)
                    command_signed = record(
                        "command-signed", run_command(signed_path, database, count)
                    )
                    line += (
                        f"; briefing send {command.rate:,.0f}/s ({command.rate / source.rate:.2f}x)"
                        f", signed {command_signed.rate:,.0f}/s"
                    )
                print(line, flush=True)

            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            source_rate = median([m.rate for m in runs["source"]])
            unsigned_rate: dict[str, float] = {
                name: median([m.rate for m in runs[name]])
                for name in ("send", "command")
                if name in runs
            }
            print()
            print(
                f"{'run':<44} {'msg/s':>7} {'wall s':>7} {'x source':>9} {'x unsigned':>11} "
                f"{'CPU us/msg':>11} {'peak RSS MB':>12}"
            )
            rows = (
                ("source", f"smtp-source -d, {args.pool} sessions (C)", None),
                ("send", "deliver in-process, unsigned", None),
                ("signed", "deliver in-process, DKIM rsa-sha256 2048", "send"),
                ("command", "`briefing send` command, unsigned", None),
                ("command-signed", "`briefing send` command, DKIM", "command"),
            )
            for name, title, unsigned in rows:
                if name not in runs:
                    continue
                measured = runs[name]
                rate = median([m.rate for m in measured])
                against = f"{rate / unsigned_rate[unsigned]:.2f}" if unsigned else ""
                cpu = (
                    ""
                    if name == "source"
                    else f"{median([m.cpu_per_message for m in measured]):.0f}"
                )
                if name in ("send", "signed"):
                    rss = f"{peak_mb:.0f}*"
                elif name.startswith("command"):
                    rss = f"{max(m.peak_rss or 0 for m in measured):.0f}"
                else:
                    rss = ""
                print(
                    f"{title:<44} {rate:7,.0f} {median([m.seconds for m in measured]):7.2f} "
                    f"{rate / source_rate:9.2f} {against:>11} {cpu:>11} {rss:>12}"
                )
            print(
                "* this benchmark process, setup (ingest, import, dispatch) included; "
                "CPU of in-process runs is this whole process (engine, SQLite, workers)"
            )

            if args.profile:
                reset_ledger(database)
                with profiled("an unsigned in-process delivery", args.profile):
                    run_send(config_path, database, signer, None)
                reset_ledger(database)
                with profiled("a DKIM-signed in-process delivery", args.profile):
                    run_send(signed_path, database, signer, dkim)
            database.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
