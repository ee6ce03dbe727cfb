"""Ingest every configured source into the store, one report line per source.

Sources come from the sections of ``config.yaml``; a location configured under
two sections is read once and its articles join both. A location is a path or
glob of files, or an http(s) feed URL fetched by :mod:`briefing.ingest.fetch`
(conditionally: an unchanged feed costs a 304 and reports ``unchanged``). A
source or document that fails is reported with the reason and never stops the
others; nothing, not even an unexpected error, ends a run with a traceback.

URLs are fetched concurrently: ``ingest.concurrency`` at once, at most
``ingest.per_host`` requests to one host (a redirect target's host too), each
within its own hard ``total_timeout``, on an event loop in a thread of its own. The calling thread is the one writer:
it reads files, then parses and stores each fetched document as its fetch
finishes, so a run takes about as long as its slowest source and a hanging
feed delays nobody. ``on_report`` hears of each source as it is done.
No transaction is open while a file is read or a URL fetched: the validators
are read in one short transaction, each document's articles (and, for a URL,
its new ETag / Last-Modified) stored in another.

A document is read by one call, :func:`read_file` for a path or
:func:`read_document` for fetched bytes, so reading can be moved elsewhere
(another process, a time limit) without touching the orchestration.

Readers come from the ``briefing_source_readers`` plugin hook (the built-ins
register there too) and return raw entries: whichever reader ran, the core
here refuses a file over ``ingest.max_bytes`` before reading it and sanitises
every entry's HTML before storing it.

Each run updates the source's health row: last check, last success, last
error, consecutive failures and items seen. A source failing
``ingest.flag_after_failures`` runs in a row is flagged in the report.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import cast

from briefing.config import Config, SourceConfig
from briefing.domain.states import IngestOutcome
from briefing.errors import SourceError
from briefing.ingest import workers
from briefing.ingest.fetch import (
    Fetched,
    Fetcher,
    HostTurns,
    Validators,
    default_user_agent,
)
from briefing.ingest.readers import FEED, ReadContext, ReadResult, check_size, reader_for
from briefing.ingest.workers import ReadLimits
from briefing.plugins import source_readers
from briefing.store import Database
from briefing.store.articles import source_row, upsert_articles

logger = logging.getLogger(__name__)

Status = IngestOutcome


def is_url(location: str) -> bool:
    """Tell whether a source location is an http(s) URL rather than a path."""
    return location.lower().startswith(("http://", "https://"))


def source_kind(location: str) -> str:
    """Classify a location: ``http`` (a URL), ``markdown`` or ``file`` (feed files)."""
    if is_url(location):
        return "http"
    return "markdown" if location.lower().endswith((".md", ".markdown")) else "file"


@dataclass(frozen=True)
class PlannedSource:
    """One distinct source location with every section it feeds."""

    config: SourceConfig
    sections: tuple[str, ...]

    @property
    def label(self) -> str:
        """Name the source in reports."""
        return self.config.label

    @property
    def kind(self) -> str:
        """Return ``http``, ``markdown`` or ``file``."""
        return source_kind(self.config.location)


@dataclass
class SourceReport:
    """What ingesting one source did."""

    label: str
    documents: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    not_modified: bool = False  # the server answered 304: nothing changed since the last run
    consecutive_failures: int = 0  # after this run
    flagged: bool = False  # failing ingest.flag_after_failures runs in a row

    @property
    def status(self) -> Status:
        """Summarise the outcome in one word."""
        if self.failures and not (self.new or self.updated or self.unchanged):
            return IngestOutcome.FAILED
        if self.new:
            return IngestOutcome.NEW
        if self.updated:
            return IngestOutcome.UPDATED
        if self.failures:
            return IngestOutcome.FAILED
        return IngestOutcome.UNCHANGED

    @property
    def failed(self) -> bool:
        """Tell whether any document of this source could not be read."""
        return bool(self.failures)


def plan_sources(config: Config) -> list[PlannedSource]:
    """List the distinct source locations of the config with the sections each feeds."""
    planned: dict[str, tuple[SourceConfig, list[str]]] = {}
    for key, section in config.sections.items():
        for source in section.sources:
            entry = planned.setdefault(source.location, (source, []))
            if key not in entry[1]:
                entry[1].append(key)
    return [PlannedSource(source, tuple(keys)) for source, keys in planned.values()]


def _documents(config: Config, location: str) -> list[Path]:
    pattern = str(config.resolve(location))
    if glob.has_magic(pattern):
        return [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file()]
    return [Path(pattern)]


def _context(config: Config, planned: PlannedSource) -> ReadContext:
    return ReadContext(
        label=planned.label,
        sections=planned.sections,
        known_sections=frozenset(config.sections),
        categories=planned.config.categories,
        max_bytes=config.ingest.max_bytes,
    )


def _failure(name: str, exc: SourceError) -> str:
    if exc.source in (name, "") or not exc.source:
        return f"{name}: {exc.reason}"
    if is_url(exc.source):
        return f"{name}: {exc.reason} (at {exc.source})"
    return f"{name}: {exc.reason}"


def ingest_source(
    config: Config, database: Database, planned: PlannedSource, now: datetime
) -> SourceReport:
    """Read (or fetch) one source's documents and store their articles."""
    return ingest_sources(config, database, [planned], now)[0]


def read_file(path: Path, context: ReadContext, limits: ReadLimits) -> ReadResult:
    """Read one document from a file with the reader its name calls for, in a worker."""
    check_size(path, context.max_bytes)
    return workers.read_document(reader_for(path, source_readers()), path, context, limits)


def read_document(
    content: bytes,
    url: str,
    context: ReadContext,
    limits: ReadLimits,
    *,
    charset: str | None = None,
    base_url: str | None = None,
) -> ReadResult:
    """Read one fetched document with the feed reader, in a worker."""
    document = workers.Fetched(content, url, charset=charset, base_url=base_url or url)
    return workers.read_document(source_readers()[FEED.kind], document, context, limits)


def _ingest_files(
    config: Config,
    database: Database,
    planned: PlannedSource,
    report: SourceReport,
    *,
    now: datetime,
) -> None:
    location = planned.config.location
    documents = _documents(config, location)
    if not documents:
        report.failures.append(f"{location}: no file matches")
    context = _context(config, planned)
    limits = ReadLimits.from_config(config.ingest)
    for path in documents:
        report.documents += 1
        name = _display(config, path)
        try:
            if not path.exists():
                raise SourceError(name, "file not found")
            result = read_file(path, context, limits)
        except SourceError as exc:
            reason = exc.reason if exc.source in (str(path), name) else str(exc)
            report.failures.append(f"{name}: {reason}")
            logger.info("source %s: %s: %s", planned.label, name, reason)
            continue
        except Exception as exc:  # a reader bug must cost one document, never the run
            report.failures.append(f"{name}: unexpected error while reading: {_brief(exc)}")
            logger.error(
                "source %s: %s: unexpected error: %s",
                planned.label,
                name,
                _brief(exc),
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            continue
        _store(database, planned, result, report, now)
        _note(report, name, result)


def _ingest_fetched(
    config: Config,
    database: Database,
    planned: PlannedSource,
    report: SourceReport,
    *,
    now: datetime,
    outcome: Fetched | BaseException,
) -> None:
    """Store what one fetch brought (or report why it brought nothing)."""
    url = planned.config.location
    report.documents += 1
    try:
        if isinstance(outcome, BaseException):
            raise outcome
        fetched = outcome
        report.warnings.extend(f"{url}: {warning}" for warning in fetched.warnings)
        if fetched.not_modified:
            report.not_modified = True
            _refresh_validators(database, planned, fetched.validators)
            return
        result = read_document(
            fetched.content,
            url,
            _context(config, planned),
            ReadLimits.from_config(config.ingest),
            charset=fetched.charset,
            base_url=fetched.url,
        )
    except SourceError as exc:
        report.failures.append(_failure(url, exc))
        logger.info("source %s: %s", planned.label, report.failures[-1])
        return
    except Exception as exc:  # a fetch or reader bug must cost one source, never the run
        report.failures.append(f"{url}: unexpected error: {_brief(exc)}")
        logger.error(
            "source %s: unexpected error: %s",
            planned.label,
            _brief(exc),
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )
        return
    _store(database, planned, result, report, now, validators=fetched.validators)
    _note(report, url, result)


def _brief(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


def _note(report: SourceReport, name: str, result: ReadResult) -> None:
    report.skipped.extend(f"{name}: {problem}" for problem in result.skipped)
    report.warnings.extend(f"{name}: {warning}" for warning in result.warnings)


def _display(config: Config, path: Path) -> str:
    try:
        return str(path.relative_to(config.base_dir))
    except ValueError:
        return str(path)


def _store(
    database: Database,
    planned: PlannedSource,
    result: ReadResult,
    report: SourceReport,
    now: datetime,
    validators: Validators | None = None,
) -> None:
    seen: set[str] = set()
    # Markdown front matter may name any section; a feed's come from the config.
    owned = None
    if planned.kind != "markdown":
        owned = frozenset(planned.sections) | frozenset(planned.config.categories.values())
    with database.transaction() as session:
        source = source_row(session, planned.config.location, planned.kind)
        drafts = []
        for draft in result.drafts:
            if draft.uid in seen:
                report.skipped.append(f"duplicate entry {draft.uid} in one document")
                continue
            seen.add(draft.uid)
            drafts.append(draft)
        for outcome in upsert_articles(session, drafts, source.id, now, owned_sections=owned):
            setattr(report, outcome, getattr(report, outcome) + 1)
        if validators is not None:
            # Stored with the articles, so a 304 next time never hides what was not stored.
            source.etag = validators.etag
            source.last_modified = validators.last_modified


def _refresh_validators(database: Database, planned: PlannedSource, validators: Validators) -> None:
    """Store the validators a 304 carried; one without them keeps those we sent."""
    if not (validators.etag or validators.last_modified):
        return
    with database.transaction() as session:
        source = source_row(session, planned.config.location, planned.kind)
        source.etag = validators.etag or source.etag
        source.last_modified = validators.last_modified or source.last_modified


def _record_health(
    config: Config,
    database: Database,
    planned: PlannedSource,
    report: SourceReport,
    now: datetime,
) -> None:
    with database.transaction() as session:
        source = source_row(session, planned.config.location, planned.kind)
        source.kind = planned.kind
        source.last_checked_at = now
        if report.status != IngestOutcome.FAILED:
            source.last_success_at = now
        if report.failed:
            source.last_error = "; ".join(report.failures)[:2000]
            source.consecutive_failures += 1
        else:
            source.last_error = None
            source.consecutive_failures = 0
        if report.status != IngestOutcome.FAILED and not report.not_modified:
            # What its last successful read held, whoever stored the stories first.
            source.items_seen = report.new + report.updated + report.unchanged
        report.consecutive_failures = source.consecutive_failures
    report.flagged = report.consecutive_failures >= config.ingest.flag_after_failures


def ingest(
    config: Config,
    database: Database,
    now: datetime,
    *,
    on_report: Callable[[SourceReport], None] | None = None,
) -> list[SourceReport]:
    """Ingest every configured source; a failing one never stops the others.

    Reports come back in the order of the config; ``on_report`` is called with
    each as soon as its source is done (files first, then URLs as they finish).
    """
    return ingest_sources(config, database, plan_sources(config), now, on_report=on_report)


def ingest_sources(
    config: Config,
    database: Database,
    planned_sources: Sequence[PlannedSource],
    now: datetime,
    *,
    on_report: Callable[[SourceReport], None] | None = None,
) -> list[SourceReport]:
    """Ingest these sources: URLs fetched concurrently, everything stored from this thread."""
    reports: dict[int, SourceReport] = {}

    def finish(index: int, planned: PlannedSource, work: Callable[[SourceReport], None]) -> None:
        report = SourceReport(label=planned.label)
        try:
            work(report)
            _record_health(config, database, planned, report, now)
        except Exception as exc:  # one source must never stop the run
            logger.error(
                "source %s: unexpected error: %s",
                planned.label,
                _brief(exc),
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            report = SourceReport(label=planned.label)
            report.failures.append(f"unexpected error: {_brief(exc)}")
        reports[index] = report
        if on_report is not None:
            on_report(report)

    urls = [(index, p) for index, p in enumerate(planned_sources) if p.kind == "http"]
    jobs = _fetch_jobs(database, urls)
    with _FetchRun(config, jobs) as fetches:
        for index, planned in enumerate(planned_sources):
            if planned.kind != "http":
                finish(index, planned, partial(_ingest_files, config, database, planned, now=now))
        for job, outcome in fetches.results():
            finish(
                job.index,
                job.planned,
                partial(_ingest_fetched, config, database, job.planned, now=now, outcome=outcome),
            )
    return [reports[index] for index in sorted(reports)]


@dataclass(frozen=True)
class _FetchJob:
    index: int
    planned: PlannedSource
    validators: Validators

    @property
    def url(self) -> str:
        return self.planned.config.location


def _fetch_jobs(database: Database, urls: list[tuple[int, PlannedSource]]) -> list[_FetchJob]:
    """Read every URL's stored validators in one short transaction, before any fetch."""
    if not urls:
        return []
    jobs = []
    with database.transaction() as session:
        for index, planned in urls:
            row = source_row(session, planned.config.location, planned.kind)
            known = Validators(etag=row.etag, last_modified=row.last_modified)
            jobs.append(_FetchJob(index, planned, known))
    return jobs


_DONE = object()


class _FetchRun:
    """Fetch the jobs on an event loop in a thread of its own; hand results over as each ends.

    At most ``ingest.concurrency`` fetches run at once, at most ``ingest.per_host``
    requests to one host (the configured URL's, and each redirect target's). Each fetch is bounded by
    the fetcher's own total deadline, so the thread always ends.
    """

    def __init__(self, config: Config, jobs: list[_FetchJob]) -> None:
        self.config = config
        self.jobs = jobs
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = {job.index: job for job in jobs}

    def __enter__(self) -> _FetchRun:
        if self.jobs:
            self._thread = threading.Thread(target=self._run, name="ingest-fetch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._thread is not None:
            self._thread.join()

    def results(self) -> Iterator[tuple[_FetchJob, Fetched | BaseException]]:
        """Yield each job with its Fetched result or its error, in the order they finish."""
        if self._thread is None:
            return
        while True:
            item = self._queue.get()
            if item is _DONE:
                break
            job, outcome = cast(tuple[_FetchJob, Fetched | BaseException], item)
            self._pending.pop(job.index, None)
            yield job, outcome
        for job in list(self._pending.values()):  # only after a bug in the fetch thread
            yield job, RuntimeError("the fetch never finished")

    def _run(self) -> None:
        try:
            asyncio.run(self._fetch_all())
        except Exception as exc:  # reported per source by results()
            logger.error("ingest: fetching stopped: %s", _brief(exc), exc_info=True)
        finally:
            self._queue.put(_DONE)

    async def _fetch_all(self) -> None:
        settings = self.config.ingest
        slots = asyncio.Semaphore(settings.concurrency)
        hosts = HostTurns(settings.per_host)
        async with Fetcher(settings, default_user_agent(self.config)) as fetcher:

            async def one(job: _FetchJob) -> None:
                outcome: Fetched | BaseException
                turn = hosts.turn()
                try:
                    # The host's turn first: a source waiting for its host holds no slot.
                    # A redirect to another host waits for that host's turn in turn.
                    await turn.move(job.url)
                    async with slots:
                        outcome = await fetcher.fetch(job.url, job.validators, turn=turn)
                except Exception as exc:  # noqa: BLE001 - reported for this source only
                    outcome = exc
                finally:
                    turn.release()
                self._queue.put((job, outcome))

            await asyncio.gather(*(one(job) for job in self.jobs))
