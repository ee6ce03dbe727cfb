"""Measure ``briefing`` at scale: import, dispatch, delivery and ``send --now`` by N and backend.

For each backend (SQLite, and a throwaway database on the local PostgreSQL)
and each N (10,000 and 100,000 subscriptions; 1,000,000 with ``--big``), in
one run and into one Postfix ``smtp-sink`` (8 connections by default):

- ``briefing ingest`` of the demo's samples (setup, not a phase), then the
  phase ``briefing subscribers import`` of a generated CSV of N rows (several
  briefings and locales, timezones, section sets, send times, frequencies);
  the imported database is kept as a template and every later phase starts
  from a fresh copy of it;
- dispatch alone, ``briefing send --now --no-deliver``, and delivery alone,
  ``briefing deliver --exit-when-idle``, when this checkout's command has those
  options (else the rows say ``n/a``);
- the whole command a user runs, ``briefing send --now``, end to end;
- Postfix's ``smtp-source -s 8 -d`` (C, connections reused, as the engine's
  pool does) with the same message count (``--source-cap`` at most) and the
  ledger's message size: the wire's speed on this machine, the baseline of
  the ratio;
- on PostgreSQL, delivery by 1, 2 and 4 ``briefing deliver`` workers at once
  (when the command exists), each delivering in one process; the other phases
  deliver in as many processes as the checkout's ``delivery.processes``
  default chooses, or ``--processes``.

Every phase is a ``briefing`` subprocess: its wall time, its CPU time and
its peak RSS (``os.wait4``'s rusage of that process). After every phase that
delivers, the sink's own counter (``smtp-sink -c``) is compared with the
ledger: lost = rows not ``sent`` plus rows ``sent`` the sink never took;
surplus = messages the sink took beyond the rows ``sent`` (duplicates). With
``--repeat`` the table gives the median wall and CPU times and the largest
peak RSS.

Run: ``make bench-scale`` (or ``.venv/bin/python benchmarks/scale.py --n 10000 --db sqlite``).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfix import fetch_postfix, run_smtp_source, sink_count, smtp_sink  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from briefing.config import DeliveryConfig  # noqa: E402
from briefing.domain.states import DeliveryState  # noqa: E402
from briefing.store import open_database  # noqa: E402
from briefing.store.schema import Delivery, Edition, Variant  # noqa: E402

DEFAULT_NS = (10_000, 100_000)
BIG_N = 1_000_000
WORKERS = (1, 2, 4)  # `briefing deliver` processes at once, on PostgreSQL
# Whether this checkout's commands deliver in several processes (delivery.processes).
HAS_PROCESSES = "processes" in DeliveryConfig.model_fields
PHASES = ("split", "send", "source", "workers", "crash")
DEFAULT_PHASES = ("split", "send", "source", "workers")
CRASH_LEASE = 30  # delivery.lease of the kill -9 phase, seconds
UNRECORDED_PER_CONNECTION = 2  # delivery.unrecorded_per_connection's default
POSTGRES_ADMIN = os.environ.get(
    "BRIEFING_BENCH_POSTGRES",
    os.environ.get("BRIEFING_TEST_POSTGRES", "postgresql+psycopg://postgres@localhost/postgres"),
)

# Each briefing with its locale and the section sets its readers pick ("" = the briefing's own).
BRIEFINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "daily": (
        "en_GB",
        (
            "",
            "world;politics;business",
            "world;business;technology",
            "sport;world",
            "world;politics",
            "technology;business;world;sport",
        ),
    ),
    "markets": ("en_US", ("", "business", "technology;business")),
    "morgen": ("de_DE", ("", "world;sport", "business;world")),
}
BRIEFING_WEIGHTS = (70, 20, 10)
TIMEZONES = (
    ("Europe/London", 25),
    ("Europe/Berlin", 15),
    ("America/New_York", 15),
    ("America/Los_Angeles", 8),
    ("America/Sao_Paulo", 5),
    ("Asia/Kolkata", 8),
    ("Asia/Tokyo", 5),
    ("Australia/Sydney", 7),
    ("Africa/Lagos", 4),
    ("UTC", 8),
)
SEND_TIMES = ("06:00", "06:30", "07:00", "07:15", "08:30")
FREQUENCIES = (("daily", 60), ("weekdays", 25), ("weekly:mon", 10), ("weekly:sat", 5))
DOMAINS = (
    "example.com",
    "example.org",
    "Mail.Example.net",
    "example.co.uk",
    "example.de",
    "example.in",
    "example.com.au",
    "example.fr",
    "example.jp",
    "example.com.br",
)
FIRST_NAMES = ("Ana", "Raj", "Mia", "Lukas", "Jordan", "Sam", "Zoë", "Chidi", "Hana", "José")
LAST_NAMES = ("Silva", "Patel", "Chen", "Müller", "Lee", "O'Neill", "Okafor", "Sato", "García")


def write_subscribers(path: Path, count: int, seed: int = 14) -> Path:
    """Write an import CSV of ``count`` subscriptions, as a newsroom's list would look.

    About one row in ten is a second briefing for the previous row's address
    (one subscriber, two subscriptions); some addresses are in mixed case and
    some names need quoting. Every row is valid, so ``count`` editions are due.
    """
    rng = random.Random(seed)
    names = list(BRIEFINGS)
    zones, zone_weights = [z for z, _ in TIMEZONES], [w for _, w in TIMEZONES]
    frequencies, frequency_weights = [f for f, _ in FREQUENCIES], [w for _, w in FREQUENCIES]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ("email", "name", "briefing", "sections", "timezone", "send_time", "frequency")
        )
        previous: tuple[str, str, str] | None = None
        for n in range(count):
            if previous is not None and n % 10 == 9:
                email, name, last = previous
                briefing = names[(names.index(last) + 1) % len(names)]
                previous = None
            else:
                local = f"Reader.{n}" if n % 17 == 0 else f"reader{n}"
                email = f"{local}@{DOMAINS[n % len(DOMAINS)]}"
                first, last_name = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                name = f"{last_name}, {first}" if n % 23 == 0 else f"{first} {last_name}"
                briefing = rng.choices(names, BRIEFING_WEIGHTS)[0]
                previous = (email, name, briefing)
            _, section_sets = BRIEFINGS[briefing]
            writer.writerow(
                (
                    email,
                    name,
                    briefing,
                    rng.choice(section_sets),
                    rng.choices(zones, zone_weights)[0],
                    rng.choice(SEND_TIMES),
                    rng.choices(frequencies, frequency_weights)[0],
                )
            )
    return path


def write_config(
    path: Path,
    database_url: str,
    port: int,
    pool: int,
    lease: int | None = None,
    processes: str | None = None,
) -> Path:
    """Write a config.yaml whose sections read the demo's samples and which sends to ``port``.

    ``lease`` sets ``delivery.lease`` (seconds; the default, 120, when None);
    ``processes`` sets ``delivery.processes`` (this checkout's default when None).
    """
    samples = ROOT / "samples"
    lease_line = f"\n  lease: {lease}" if lease is not None else ""
    if processes is not None:
        lease_line += f"\n  processes: {processes}"
    path.write_text(
        f"""\
site:
  name: The Scale Gazette
  base_url: https://news.example.org/briefing
  from_address: briefing@news.example.org
  from_name: The Scale Gazette
  postal_address: 1 Example Street, London EC1A 1AA, United Kingdom
  unsubscribe_mailto: unsubscribe@news.example.org
sections:
  world:
    title: World
    sources:
      - {samples}/world/*.md
      - location: {samples}/feeds/meridian.xml
        name: The Meridian Post
        categories:
          Business: business
    max_items: 5
    lookback: 7d
  politics:
    title: Politics
    sources: [{samples}/politics/*.md]
    max_items: 4
    lookback: 7d
  business:
    title: Business
    sources:
      - {samples}/business/*.md
      - location: {samples}/feeds/wire.xml
        name: Example Wire
        categories:
          Technology: technology
    max_items: 4
    lookback: 7d
  technology:
    title: Technology
    sources: [{samples}/technology/*.md]
    max_items: 4
    lookback: 7d
  sport:
    title: Sport
    sources: [{samples}/sport/*.md]
    max_items: 3
    lookback: 7d
briefings:
  daily:
    title: The Morning Briefing
    list_id: daily.news.example.org
    locale: {BRIEFINGS["daily"][0]}
    sections: [world, politics, business, technology, sport]
    send_time: "07:00"
    timezone: Europe/London
    max_items: 15
    deadline: 1w
  markets:
    title: Markets at the Open
    list_id: markets.news.example.org
    locale: {BRIEFINGS["markets"][0]}
    sections: [business, technology]
    send_time: "08:30"
    timezone: America/New_York
    frequency: weekdays
    max_items: 8
    deadline: 1w
  morgen:
    title: Der Morgen
    list_id: morgen.news.example.org
    locale: {BRIEFINGS["morgen"][0]}
    sections: [world, business, sport]
    send_time: "06:30"
    timezone: Europe/Berlin
    max_items: 10
    deadline: 1w
database_url: {database_url}
delivery:
  transport: smtp
  batch_size: 500{lease_line}
  smtp:
    host: 127.0.0.1
    port: {port}
    security: none
    pool_size: {pool}
    messages_per_connection: 1000
""",
        encoding="utf-8",
    )
    return path


# -- databases ---------------------------------------------------------------------------------


class Backend(Protocol):
    """Where the run's databases live: a base per N, and fresh copies of it per phase."""

    name: str

    def create(self, label: str) -> str:
        """Return the URL of a new, empty database."""

    def copy(self, source: str, label: str) -> str:
        """Return the URL of a new database holding what ``source`` holds."""

    def drop_all(self) -> None:
        """Remove every database this backend made."""


class SqliteBackend:
    """SQLite files in the run's folder; a copy is a file copy."""

    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "sqlite"
        self.folder.mkdir()

    def create(self, label: str) -> str:
        """Return the URL of a new file."""
        return f"sqlite:///{self.folder / f'{label}.db'}"

    def copy(self, source: str, label: str) -> str:
        """Copy the file (and its write-ahead log, if a process left one)."""
        original = Path(source.removeprefix("sqlite:///"))
        target = self.folder / f"{label}.db"
        shutil.copyfile(original, target)
        wal = original.with_name(original.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, target.with_name(target.name + "-wal"))
        return f"sqlite:///{target}"

    def drop_all(self) -> None:
        """Nothing to do: the run's folder goes."""


class PostgresBackend:
    """Throwaway databases on a PostgreSQL server; a copy is CREATE DATABASE ... TEMPLATE."""

    name = "postgres"

    def __init__(self, admin_url: str) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.base = admin_url.rsplit("/", 1)[0]
        self.prefix = f"briefing_scale_{uuid.uuid4().hex[:8]}"
        self.made: list[str] = []
        with self.admin.connect() as connection:
            connection.execute(text("SELECT 1"))

    def _create(self, label: str, template: str | None) -> str:
        name = f"{self.prefix}_{label}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.made.append(name)
        return f"{self.base}/{name}"

    def create(self, label: str) -> str:
        """Create an empty database."""
        return self._create(label, None)

    def copy(self, source: str, label: str) -> str:
        """Create a database from ``source`` as its template (no one may be connected to it)."""
        return self._create(label, source.rsplit("/", 1)[1])

    def drop_all(self) -> None:
        """Drop every database of this run."""
        with self.admin.connect() as connection:
            for name in self.made:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@dataclass
class Ledger:
    """What the ledger holds after a phase, and the average size of its messages."""

    states: Counter[str]
    message_bytes: int

    @property
    def total(self) -> int:
        """Return how many deliveries there are."""
        return sum(self.states.values())

    @property
    def sent(self) -> int:
        """Return how many deliveries are recorded sent."""
        return self.states[DeliveryState.SENT]


def read_ledger(url: str) -> Ledger:
    """Count the deliveries by state and average the size of their variants' messages."""
    database = open_database(url, upgrade=False)
    try:
        with database.transaction() as session:
            states = Counter(
                {
                    str(status): int(count)
                    for status, count in session.execute(
                        select(Delivery.status, func.count()).group_by(Delivery.status)
                    )
                }
            )
            size = session.execute(
                select(func.avg(func.length(Variant.message)))
                .select_from(Delivery)
                .join(Edition, Delivery.edition_id == Edition.id)
                .join(Variant, Edition.variant_id == Variant.id)
            ).scalar()
    finally:
        database.dispose()
    return Ledger(states, int(size or 0))


# -- running the command -----------------------------------------------------------------------


@dataclass
class Run:
    """One phase: wall time, peak RSS of its process (the largest of several), CPU time (all)."""

    seconds: float
    peak_mb: float
    count: int  # rows imported, editions dispatched or messages delivered
    cpu: float = 0.0  # user + system seconds of the briefing process(es); less load-bound than wall


def briefing_command() -> list[str]:
    """Return the ``briefing`` command of this environment."""
    beside = Path(sys.executable).with_name("briefing")
    found = str(beside) if beside.exists() else shutil.which("briefing")
    if found is None:
        raise SystemExit("no `briefing` command: install the project (make install)")
    return [found]


def briefing_env() -> dict[str, str]:
    """Return the environment of every ``briefing`` process: a signing key, no DKIM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    env["BRIEFING_SECRET_KEY"] = "benchmark-key-not-secret"
    return env


def has_option(arguments: Sequence[str], option: str) -> bool:
    """Return whether ``briefing ARGUMENTS --help`` exists and lists ``option``."""
    done = subprocess.run(
        [*briefing_command(), *arguments, "--help"], capture_output=True, text=True
    )
    return done.returncode == 0 and option in done.stdout


def run_briefing(
    config: Path,
    arguments: Sequence[str],
    log: Path,
    *,
    processes: int = 1,
) -> Run:
    """Run ``processes`` copies of ``briefing --config CONFIG ARGUMENTS`` at once; time them all.

    Output goes to ``log``; an unexpected exit code prints its tail and stops the run.
    """
    command = [*briefing_command(), "--config", str(config), *arguments]
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}  (x{processes})\n".encode())
        out.flush()
        started = time.perf_counter()
        children = [
            subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=briefing_env())
            for _ in range(processes)
        ]
        peak_kb, cpu, codes = 0, 0.0, []
        for child in children:
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            codes.append(child.returncode)
            peak_kb = max(peak_kb, usage.ru_maxrss)
            cpu += usage.ru_utime + usage.ru_stime
        seconds = time.perf_counter() - started
    if any(codes):
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise SystemExit(f"`{' '.join(arguments)}` exited {codes}:\n" + "\n".join(tail))
    return Run(seconds, peak_kb / 1024, 0, cpu)


# -- the measurements --------------------------------------------------------------------------


@dataclass
class Check:
    """The sink's count against the ledger after one delivering phase."""

    phase: str
    backend: str
    n: int
    expected: int
    sent: int
    received: int

    @property
    def lost(self) -> int:
        """Return rows not sent, plus rows recorded sent that the sink never took."""
        return (self.expected - self.sent) + max(0, self.sent - self.received)

    @property
    def surplus(self) -> int:
        """Return messages the sink took beyond the rows recorded sent (duplicates)."""
        return max(0, self.received - self.sent)


@dataclass
class Results:
    """Every run of every phase, by (phase, backend, N)."""

    runs: dict[tuple[str, str, int], list[Run]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    # The duplicates a kill -9 may cause, by (backend, N): connections x unrecorded per connection.
    bounds: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, phase: str, backend: str, n: int, run: Run) -> None:
        """Record one run."""
        self.runs.setdefault((phase, backend, n), []).append(run)


@dataclass
class Setup:
    """What one (backend, N) measurement needs."""

    backend: Backend
    n: int
    folder: Path
    port: int
    pool: int
    counter: Path
    csv: Path
    log: Path
    results: Results
    workers: Sequence[int] = WORKERS
    phases: Collection[str] = DEFAULT_PHASES
    processes: str | None = None  # delivery.processes of the split and send phases

    def config(
        self, url: str, label: str, lease: int | None = None, *, one_process: bool = False
    ) -> Path:
        """Write the config of one database.

        ``one_process``: each ``briefing`` command delivers in one process (the
        workers and crash phases count processes themselves).
        """
        processes = self.processes
        if one_process and HAS_PROCESSES:
            processes = "1"
        return write_config(
            self.folder / f"{label}.yaml", url, self.port, self.pool, lease, processes
        )

    def delivered(self, phase: str, url: str, before: int) -> tuple[Ledger, int]:
        """Compare the sink's count since ``before`` with the ledger; record the check."""
        time.sleep(0.3)  # the sink updates its counter as each message ends; let it settle
        received = sink_count(self.counter) - before
        ledger = read_ledger(url)
        self.results.checks.append(
            Check(phase, self.backend.name, self.n, self.n, ledger.sent, received)
        )
        return ledger, received


CRASH = "deliver x2 workers, one killed -9 midway"
DISPATCH = "dispatch: send --now --no-deliver"
DELIVER = "deliver --exit-when-idle"
SEND = "send --now (end to end)"
IMPORT = "subscribers import"
SOURCE = "smtp-source -s {pool} -d"


def measure_once(setup: Setup, repeat: int, features: dict[str, bool], source_cap: int) -> None:
    """Run every phase once for one backend and N."""
    backend, n, results = setup.backend, setup.n, setup.results
    tag = f"{backend.name}_{n}_{repeat}"

    def record(phase: str, run: Run, note: str = "") -> None:
        results.add(phase, backend.name, n, run)
        rss = f", CPU {run.cpu:.1f} s, peak RSS {run.peak_mb:.0f} MB" if run.peak_mb else ""
        print(
            f"  [{backend.name} {n:,} #{repeat}] {phase.format(pool=setup.pool)}: "
            f"{run.seconds:.1f} s{rss}, "
            f"{run.count:,} in all{note}",
            flush=True,
        )

    base = backend.create(f"base_{tag}")
    base_config = setup.config(base, f"base_{tag}")
    started = time.perf_counter()
    run_briefing(base_config, ["ingest"], setup.log)
    print(
        f"  [{backend.name} {n:,} #{repeat}] (setup) ingest: {time.perf_counter() - started:.1f} s"
    )
    imported = run_briefing(base_config, ["subscribers", "import", str(setup.csv)], setup.log)
    imported.count = n
    record(IMPORT, imported)

    message_bytes = 0  # the baseline's message size: the ledger's, once a phase has sent
    if "split" in setup.phases and features["dispatch"]:
        url = backend.copy(base, f"split_{tag}")
        config = setup.config(url, f"split_{tag}")
        dispatched = run_briefing(config, ["send", "--now", "--no-deliver"], setup.log)
        dispatched.count = read_ledger(url).total
        record(DISPATCH, dispatched)
        if features["deliver"]:
            before = sink_count(setup.counter)
            delivered = run_briefing(config, ["deliver", "--exit-when-idle"], setup.log)
            ledger, _ = setup.delivered(DELIVER, url, before)
            delivered.count = ledger.sent
            message_bytes = ledger.message_bytes
            record(DELIVER, delivered)

    if "send" in setup.phases:
        url = backend.copy(base, f"send_{tag}")
        config = setup.config(url, f"send_{tag}")
        before = sink_count(setup.counter)
        sent = run_briefing(config, ["send", "--now"], setup.log)
        ledger, _ = setup.delivered(SEND, url, before)
        sent.count = ledger.sent
        message_bytes = ledger.message_bytes
        record(SEND, sent, f", messages {ledger.message_bytes / 1000:.1f} KB")

    if "crash" in setup.phases and features["dispatch"] and features["deliver"]:
        crashed, ledger, note = crash_run(setup, base, tag)
        message_bytes = message_bytes or ledger.message_bytes
        record(CRASH, crashed, note)

    if "source" in setup.phases and message_bytes:
        count = min(n, source_cap)
        started = time.perf_counter()
        run_smtp_source(fetch_postfix(), setup.port, count, message_bytes, setup.pool)
        record(SOURCE, Run(time.perf_counter() - started, 0.0, count))

    if (
        "workers" in setup.phases
        and backend.name == "postgres"
        and features["dispatch"]
        and features["deliver"]
    ):
        for workers in setup.workers:
            url = backend.copy(base, f"w{workers}_{tag}")
            config = setup.config(url, f"w{workers}_{tag}", one_process=True)
            run_briefing(config, ["send", "--now", "--no-deliver"], setup.log)
            before = sink_count(setup.counter)
            run = run_briefing(
                config, ["deliver", "--exit-when-idle"], setup.log, processes=workers
            )
            phase = worker_phase(workers)
            ledger, _ = setup.delivered(phase, url, before)
            run.count = ledger.sent
            record(phase, run)


def crash_run(setup: Setup, base: str, tag: str) -> tuple[Run, Ledger, str]:
    """Deliver with two workers, ``kill -9`` one when half the messages reached the sink.

    The survivor takes the dead worker's claims over once their lease (``CRASH_LEASE``
    seconds here) lapses; if it ran out of work before that, a restarted worker
    (``deliver --exit-when-idle`` again, after the lease) finishes them, as a
    supervisor restarting the dead one would. The run's wall time counts from the
    two workers' start to the last message; its peak RSS is the largest of every
    worker (the killed one included), its CPU time their sum.
    """
    backend, n = setup.backend, setup.n
    url = backend.copy(base, f"crash_{tag}")
    config = setup.config(url, f"crash_{tag}", lease=CRASH_LEASE, one_process=True)
    run_briefing(config, ["send", "--now", "--no-deliver"], setup.log)
    command = [*briefing_command(), "--config", str(config), "deliver", "--exit-when-idle"]
    before = sink_count(setup.counter)
    with setup.log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}  (x2, one killed -9 midway)\n".encode())
        out.flush()
        started = time.perf_counter()
        victim, survivor = (
            subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=briefing_env())
            for _ in range(2)
        )
        while sink_count(setup.counter) - before < n // 2:
            if victim.poll() is not None or survivor.poll() is not None:
                raise SystemExit("a deliver worker ended before half the messages were sent")
            time.sleep(0.2)
        at_kill = sink_count(setup.counter) - before
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.perf_counter() - started
        peak_kb, cpu = 0, 0.0
        for child, killed in ((victim, True), (survivor, False)):
            _, status, usage = os.wait4(child.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code != (-signal.SIGKILL if killed else 0):
                raise SystemExit(f"a deliver worker exited {code}: see {setup.log}")
            peak_kb = max(peak_kb, usage.ru_maxrss)
            cpu += usage.ru_utime + usage.ru_stime
    restarts = 0
    ledger = read_ledger(url)
    while ledger.states[DeliveryState.SENDING] or ledger.states[DeliveryState.PENDING]:
        if restarts == 3:
            break  # the check below reports what is left
        time.sleep(CRASH_LEASE + 1)  # the dead worker's claims are claimable after their lease
        again = run_briefing(config, ["deliver", "--exit-when-idle"], setup.log)
        peak_kb = max(peak_kb, int(again.peak_mb * 1024))
        cpu += again.cpu
        restarts += 1
        ledger = read_ledger(url)
    seconds = time.perf_counter() - started
    if restarts:
        # The waits for the lease are not delivery time.
        seconds -= restarts * (CRASH_LEASE + 1)
    ledger, received = setup.delivered(CRASH, url, before)
    bound = setup.pool * UNRECORDED_PER_CONNECTION
    setup.results.bounds[(backend.name, n)] = bound
    note = (
        f"; killed after {killed_at:.0f} s at {at_kill:,} taken; "
        f"{restarts} restart(s); sink took {received:,}, ledger sent {ledger.sent:,}, "
        f"surplus {max(0, received - ledger.sent):,} (bound {bound})"
    )
    return Run(seconds, peak_kb / 1024, ledger.sent, cpu), ledger, note


def worker_phase(workers: int) -> str:
    """Return the phase name of delivery by ``workers`` processes."""
    return f"deliver x{workers} workers"


# -- the table ---------------------------------------------------------------------------------


def table(results: Results, pool: int, workers: Sequence[int] = WORKERS) -> str:
    """Return the table: phase x backend x N with wall s, CPU s, peak RSS MB, rate and ratio."""
    header = (
        "phase",
        "backend",
        "N",
        "wall s",
        "CPU s",
        "peak RSS MB",
        "per s",
        "ratio to smtp-source -d",
    )
    rows: list[tuple[str, ...]] = [header]
    order = {"sqlite": 0, "postgres": 1}
    keys = sorted(
        {(backend, n) for _, backend, n in results.runs}, key=lambda k: (k[1], order[k[0]])
    )
    phases = [IMPORT, DISPATCH, DELIVER, SEND, CRASH, SOURCE, *map(worker_phase, workers)]
    for backend, n in keys:
        source_runs = results.runs.get((SOURCE, backend, n), [])
        source_rate = (
            statistics.median(r.count / r.seconds for r in source_runs) if source_runs else 0
        )
        for phase in phases:
            label = phase.format(pool=pool)
            runs = results.runs.get((phase, backend, n))
            if phase == SOURCE and runs:
                count = runs[0].count
                label += f" ({count:,} msgs)" if count != n else ""
            if not runs:
                reason = results.unavailable.get(phase)
                if reason is None or (phase.startswith("deliver x") and backend != "postgres"):
                    continue
                rows.append((label, backend, f"{n:,}", *["n/a"] * 5))
                continue
            wall = statistics.median(r.seconds for r in runs)
            rate = statistics.median(r.count / r.seconds for r in runs)
            peak = max(r.peak_mb for r in runs)
            cpu = statistics.median(r.cpu for r in runs)
            unit = {IMPORT: "rows", DISPATCH: "editions"}.get(phase, "msgs")
            delivers = phase not in (IMPORT, DISPATCH, SOURCE)
            ratio = f"{rate / source_rate:.2f}" if delivers and source_rate else ""
            rows.append(
                (
                    label,
                    backend,
                    f"{n:,}",
                    f"{wall:,.1f}",
                    f"{cpu:,.1f}" if cpu else "-",
                    f"{peak:,.0f}" if peak else "-",
                    f"{rate:,.0f} {unit}",
                    ratio,
                )
            )
    notes = sorted({f"n/a: {reason}" for reason in results.unavailable.values()})
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < 3 and i != 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("| " + " | ".join("-" * width for width in widths) + " |")
    return "\n".join([*lines, "", *notes])


def checks_table(results: Results) -> str:
    """Return one line per delivering run: expected, ledger sent, sink took, lost, surplus."""
    lines = ["phase | backend | N | expected | ledger sent | sink took | lost | surplus"]
    for c in results.checks:
        lines.append(
            f"{c.phase} | {c.backend} | {c.n:,} | {c.expected:,} | {c.sent:,} | "
            f"{c.received:,} | {c.lost:,} | {c.surplus:,}"
        )
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


def parse_phases(value: str) -> list[str]:
    """Parse ``split,send`` into known phase names."""
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(PHASES))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}"
        )
    return chosen


def parse_ns(value: str) -> list[int]:
    """Parse ``10000,100000`` (``k`` and ``m`` suffixes allowed: ``10k,1m``)."""
    ns = []
    for part in value.split(","):
        part = part.strip().lower().replace("_", "")
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        ns.append(int(part.rstrip("km")) * scale)
    return ns


@contextmanager
def backends(choice: str, folder: Path, admin_url: str) -> Iterator[list[Backend]]:
    """Yield the chosen backends; PostgreSQL is left out, saying why, when no server answers."""
    made: list[Backend] = []
    if choice in ("sqlite", "both"):
        made.append(SqliteBackend(folder))
    if choice in ("postgres", "both"):
        try:
            made.append(PostgresBackend(admin_url))
        except Exception as exc:  # any failure to reach the server means: no PostgreSQL here
            message = f"PostgreSQL not reachable at {admin_url}: {exc.__class__.__name__}"
            if choice == "postgres":
                raise SystemExit(message) from exc
            print(f"{message}; measuring SQLite only", file=sys.stderr)
    try:
        yield made
    finally:
        for backend in made:
            backend.drop_all()


def main(argv: Sequence[str] | None = None) -> None:
    """Print the scale table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=parse_ns, default=list(DEFAULT_NS), help="subscriptions, e.g. 10k,100k"
    )
    parser.add_argument("--big", action="store_true", help=f"add N = {BIG_N:,}")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--repeat", type=int, help="runs of every phase (default 3 up to N = 10,000, else 1)"
    )
    parser.add_argument(
        "--pool", type=int, default=8, help="SMTP connections (and smtp-source sessions)"
    )
    parser.add_argument(
        "--source-cap", type=int, default=200_000, help="most messages smtp-source sends"
    )
    parser.add_argument(
        "--workers", type=parse_ns, default=list(WORKERS), help="deliver workers, e.g. 1,2,4"
    )
    parser.add_argument(
        "--phases",
        type=parse_phases,
        default=list(DEFAULT_PHASES),
        help=(
            "phases after the import, of: split (dispatch, then delivery), send (send --now), "
            "source (smtp-source), workers (1, 2, 4 deliver workers), crash (two workers, one "
            "killed -9 midway); default split,send,source,workers"
        ),
    )
    parser.add_argument(
        "--processes",
        help="delivery.processes of the split and send phases (default: the checkout's own); "
        "the workers and crash phases always run one process per command",
    )
    parser.add_argument("--postgres-url", default=POSTGRES_ADMIN, help="an admin URL")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and its logs")
    args = parser.parse_args(argv)
    ns = sorted(set(args.n + ([BIG_N] if args.big else [])))

    root = fetch_postfix()
    results = Results()
    features = {
        "dispatch": has_option(["send"], "--no-deliver"),
        "deliver": has_option(["deliver"], "--exit-when-idle"),
    }
    if not features["dispatch"]:
        results.unavailable[DISPATCH] = "no `send --no-deliver` in this checkout"
    if not features["deliver"]:
        reason = "no `briefing deliver --exit-when-idle` in this checkout"
        results.unavailable[DELIVER] = reason
        for workers in args.workers:
            results.unavailable[worker_phase(workers)] = reason
    elif not features["dispatch"]:
        for workers in args.workers:
            results.unavailable[worker_phase(workers)] = "needs `send --no-deliver`"

    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    counter = folder / "sink-counter.txt"
    log = folder / "briefing.log"
    print(f"work folder {folder}; every command's output in {log}", flush=True)
    try:
        with smtp_sink(root, counter) as port, backends(args.db, folder, args.postgres_url) as made:
            for n in ns:
                csv_path = write_subscribers(folder / f"subscribers-{n}.csv", n)
                repeats = args.repeat or (3 if n <= 10_000 else 1)
                for backend in made:
                    setup = Setup(
                        backend,
                        n,
                        folder,
                        port,
                        args.pool,
                        counter,
                        csv_path,
                        log,
                        results,
                        args.workers,
                        args.phases,
                        args.processes,
                    )
                    for repeat in range(1, repeats + 1):
                        measure_once(setup, repeat, features, args.source_cap)
        print()
        print(
            f"pool {args.pool} connections, smtp-source {args.pool} sessions with -d; "
            "wall: median of the runs; peak RSS: the largest of the briefing process(es)"
        )
        print(table(results, args.pool, args.workers))
        print()
        print("sink vs ledger (lost = not sent + sent but never taken; surplus = duplicates)")
        print(checks_table(results))
        if any(c.lost for c in results.checks):
            raise SystemExit("messages were lost: see the lines above")
        if any(c.surplus and not c.phase.startswith("deliver x") for c in results.checks):
            raise SystemExit("a single process sent messages twice: see the lines above")
        if any(
            c.phase == CRASH and c.surplus > results.bounds[(c.backend, c.n)]
            for c in results.checks
        ):
            raise SystemExit("the kill -9 doubled more messages than its bound: see above")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
