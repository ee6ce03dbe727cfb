"""Ingest every configured source into the store, one report line per source.

Sources come from the sections of ``config.yaml``; a location configured under
two sections is read once and its articles join both. A location is a path or
glob of files, or an http(s) feed URL fetched by :mod:`briefing.ingest.fetch`
(conditionally: an unchanged feed costs a 304 and reports ``unchanged``). A
source or document that fails is reported with the reason and never stops the
others; nothing, not even an unexpected error, ends a run with a traceback.
No transaction is open while a file is read or a URL fetched: the validators
are read in one short transaction, each document's articles (and, for a URL,
its new ETag / Last-Modified) stored in another.

Readers come from the ``briefing_source_readers`` plugin hook (the built-ins
register there too) and return raw entries: whichever reader ran, the core
here refuses a file over ``ingest.max_bytes`` before reading it and sanitises
every entry's HTML before storing it.

Each run updates the source's health row: last check, last success, last
error, consecutive failures and items seen. A source failing
``ingest.flag_after_failures`` runs in a row is flagged in the report.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from briefing.config import Config, SourceConfig
from briefing.domain.states import IngestOutcome
from briefing.errors import SourceError
from briefing.ingest.fetch import Fetcher, Validators, default_user_agent
from briefing.ingest.readers import FEED, ReadContext, ReadResult, check_size, reader_for
from briefing.ingest.workers import Fetched, ReadLimits, read_document
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
    config: Config,
    database: Database,
    planned: PlannedSource,
    now: datetime,
    fetcher: Fetcher | None = None,
) -> SourceReport:
    """Read (or fetch) one source's documents and store their articles."""
    report = SourceReport(label=planned.label)
    if planned.kind == "http":
        if fetcher is None:
            with Fetcher(config.ingest, default_user_agent(config)) as own:
                _ingest_url(config, database, planned, report, now, own)
        else:
            _ingest_url(config, database, planned, report, now, fetcher)
    else:
        _ingest_files(config, database, planned, report, now)
    _record_health(config, database, planned, report, now)
    return report


def _ingest_files(
    config: Config, database: Database, planned: PlannedSource, report: SourceReport, now: datetime
) -> None:
    location = planned.config.location
    documents = _documents(config, location)
    if not documents:
        report.failures.append(f"{location}: no file matches")
    context = _context(config, planned)
    limits = ReadLimits.from_config(config.ingest)
    readers = source_readers()
    for path in documents:
        report.documents += 1
        name = _display(config, path)
        try:
            if not path.exists():
                raise SourceError(name, "file not found")
            check_size(path, context.max_bytes)
            result = read_document(reader_for(path, readers), path, context, limits)
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


def _ingest_url(
    config: Config,
    database: Database,
    planned: PlannedSource,
    report: SourceReport,
    now: datetime,
    fetcher: Fetcher,
) -> None:
    url = planned.config.location
    with database.transaction() as session:
        row = source_row(session, url, planned.kind)
        known = Validators(etag=row.etag, last_modified=row.last_modified)
    # No transaction is open from here until the articles are stored.
    report.documents += 1
    try:
        fetched = fetcher.fetch(url, known)
        report.warnings.extend(f"{url}: {warning}" for warning in fetched.warnings)
        if fetched.not_modified:
            report.not_modified = True
            _refresh_validators(database, planned, fetched.validators)
            return
        result = read_document(
            source_readers()[FEED.kind],
            Fetched(fetched.content, url, charset=fetched.charset, base_url=fetched.url),
            _context(config, planned),
            ReadLimits.from_config(config.ingest),
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
        source.items_seen += report.new
        report.consecutive_failures = source.consecutive_failures
    report.flagged = report.consecutive_failures >= config.ingest.flag_after_failures


def ingest(
    config: Config, database: Database, now: datetime, *, fetcher: Fetcher | None = None
) -> list[SourceReport]:
    """Ingest every configured source; a failing one never stops the others.

    HTTP sources share one :class:`Fetcher` (made here unless one is given).
    """
    planned_sources = plan_sources(config)
    own = None
    if fetcher is None and any(p.kind == "http" for p in planned_sources):
        fetcher = own = Fetcher(config.ingest, default_user_agent(config))
    reports = []
    try:
        for planned in planned_sources:
            try:
                reports.append(ingest_source(config, database, planned, now, fetcher))
            except Exception as exc:  # one source must never stop the run
                logger.error(
                    "source %s: unexpected error: %s",
                    planned.label,
                    _brief(exc),
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
                report = SourceReport(label=planned.label)
                report.failures.append(f"unexpected error: {_brief(exc)}")
                reports.append(report)
    finally:
        if own is not None:
            own.close()
    return reports
