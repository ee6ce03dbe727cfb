"""Ingest every configured source into the store, one report line per source.

Sources come from the sections of ``config.yaml``; a location configured under
two sections is read once and its articles join both. A source that fails is
reported with the reason and never stops the others. Reading happens outside
any transaction; each document's articles are stored in one short one.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from briefing.config import Config, SourceConfig
from briefing.errors import SourceError
from briefing.ingest.readers import ReadContext, ReadResult, reader_for
from briefing.store import Database
from briefing.store.articles import source_row, upsert_article

logger = logging.getLogger(__name__)

Status = Literal["new", "updated", "unchanged", "failed"]


@dataclass(frozen=True)
class PlannedSource:
    """One distinct source location with every section it feeds."""

    config: SourceConfig
    sections: tuple[str, ...]

    @property
    def label(self) -> str:
        """Name the source in reports."""
        return self.config.label


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

    @property
    def status(self) -> Status:
        """Summarise the outcome in one word."""
        if self.failures and not (self.new or self.updated or self.unchanged):
            return "failed"
        if self.new:
            return "new"
        if self.updated:
            return "updated"
        if self.failures:
            return "failed"
        return "unchanged"

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


def ingest_source(
    config: Config, database: Database, planned: PlannedSource, now: datetime
) -> SourceReport:
    """Read one source's documents and store their articles."""
    report = SourceReport(label=planned.label)
    location = planned.config.location
    if location.startswith(("http://", "https://")):
        report.failures.append(f"{location}: fetching feeds over HTTP is not supported yet")
        _record_health(database, planned, report, now)
        return report
    documents = _documents(config, location)
    if not documents:
        report.failures.append(f"{location}: no file matches")
    context = ReadContext(
        label=planned.label,
        sections=planned.sections,
        known_sections=frozenset(config.sections),
        categories=planned.config.categories,
    )
    for path in documents:
        report.documents += 1
        name = _display(config, path)
        try:
            if not path.exists():
                raise SourceError(name, "file not found")
            result = reader_for(path).read(path, context)
        except SourceError as exc:
            reason = exc.reason if exc.source in (str(path), name) else str(exc)
            report.failures.append(f"{name}: {reason}")
            logger.warning("source %s: %s: %s", planned.label, name, reason)
            continue
        _store(database, planned, result, report, now)
        report.skipped.extend(f"{name}: {problem}" for problem in result.skipped)
        report.warnings.extend(f"{name}: {warning}" for warning in result.warnings)
    _record_health(database, planned, report, now)
    return report


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
) -> None:
    seen: set[str] = set()
    with database.transaction() as session:
        source = source_row(session, planned.config.location, _kind(planned))
        for draft in result.drafts:
            if draft.uid in seen:
                report.skipped.append(f"duplicate entry {draft.uid} in one document")
                continue
            seen.add(draft.uid)
            outcome = upsert_article(session, draft, source.id, now)
            session.flush()
            setattr(report, outcome, getattr(report, outcome) + 1)


def _kind(planned: PlannedSource) -> str:
    location = planned.config.location
    if location.startswith(("http://", "https://")):
        return "http"
    return "markdown" if location.lower().endswith((".md", ".markdown")) else "file"


def _record_health(
    database: Database, planned: PlannedSource, report: SourceReport, now: datetime
) -> None:
    with database.transaction() as session:
        source = source_row(session, planned.config.location, _kind(planned))
        source.last_checked_at = now
        if report.status != "failed":
            source.last_success_at = now
        if report.failed:
            source.last_error = "; ".join(report.failures)[:2000]
            source.consecutive_failures += 1
        else:
            source.last_error = None
            source.consecutive_failures = 0
        source.items_seen += report.new


def ingest(config: Config, database: Database, now: datetime) -> list[SourceReport]:
    """Ingest every configured source; a failing one never stops the others."""
    reports = []
    for planned in plan_sources(config):
        try:
            reports.append(ingest_source(config, database, planned, now))
        except Exception as exc:  # one source must never stop the run
            logger.exception("source %s: unexpected error", planned.label)
            report = SourceReport(label=planned.label)
            report.failures.append(f"unexpected error: {exc.__class__.__name__}: {exc}")
            reports.append(report)
    return reports
