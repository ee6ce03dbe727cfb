"""Content commands: ``ingest``, ``articles``, ``summarize`` and ``preview``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from briefing.cli.app import App, parse_at, pass_app
from briefing.config import Config
from briefing.editions.preview import preview
from briefing.errors import BriefingError
from briefing.ingest import SourceReport, ingest, plan_sources
from briefing.pipeline.summarise import count_words, summarise
from briefing.store.articles import latest_articles


@click.command("ingest")
@pass_app
def ingest_command(app: App) -> None:
    """Read every configured source into the store; exit 1 if any failed.

    One line per source as it finishes (URLs are fetched several at once); on a
    terminal a progress bar counts the sources done.
    """
    config = app.config
    planned = plan_sources(config)
    width = max((len(p.label) for p in planned), default=10)
    console = Console(stderr=True, highlight=False)
    with ingest_progress(console, len(planned)) as done:

        def show(report: SourceReport) -> None:
            click.echo("\n".join(report_lines(report, width, config)))
            done()

        reports = ingest(config, app.database, datetime.now(UTC), on_report=show)
    failed = [r.label for r in reports if r.failed]
    flagged = [r.label for r in reports if r.flagged]
    if flagged:
        click.echo(
            f"{len(flagged)} source(s) flagged as failing run after run: {', '.join(flagged)}",
            err=True,
        )
    if failed:
        click.echo(f"{len(failed)} of {len(reports)} sources had failures", err=True)
        sys.exit(1)


def report_lines(report: SourceReport, width: int, config: Config) -> list[str]:
    """Describe one source's outcome: a status line, then its failures and warnings."""
    if report.not_modified:
        counts = "not modified since the last run (HTTP 304)"
    else:
        counts = f"{report.new} new, {report.updated} updated, {report.unchanged} unchanged"
    lines = [f"{report.status:<9} {report.label:<{width}}  {counts}"]
    lines.extend(f"          failed: {failure}" for failure in report.failures)
    if report.flagged:
        lines.append(
            f"          FLAGGED: failing {report.consecutive_failures} runs in a row "
            f"(ingest.flag_after_failures is {config.ingest.flag_after_failures}); "
            "see `briefing sources`"
        )
    lines.extend(f"          skipped {skipped}" for skipped in report.skipped)
    lines.extend(f"          warning: {warning}" for warning in report.warnings)
    return lines


@contextmanager
def ingest_progress(console: Console, total: int) -> Iterator[Callable[[], None]]:
    """Yield a callback counting one source done: a transient bar on a terminal, else nothing."""
    if not console.is_terminal or not total:
        yield lambda: None
        return
    bar = Progress(
        TextColumn("[bold]ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("ingest", total=total)
    with bar:
        yield lambda: bar.advance(task)


@click.command("articles")
@click.option("--section", help="Only this section.")
@click.option("--limit", default=50, show_default=True, help="Most articles to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@pass_app
def articles_command(app: App, section: str | None, limit: int, as_json: bool) -> None:
    """List stored articles, newest first seen first."""
    if section and section not in app.config.sections:
        raise BriefingError(
            f"unknown section {section!r}", hint=f"known: {', '.join(app.config.sections)}"
        )
    with app.database.transaction() as session:
        rows = latest_articles(session, limit, section)
    for article in rows:
        sections = list(article.sections)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": article.id,
                        "title": article.title,
                        "url": article.url,
                        "sections": sections,
                        "dek": article.dek,
                        "published_at": article.published_at.isoformat()
                        if article.published_at
                        else None,
                        "first_seen_at": article.first_seen_at.isoformat(),
                        "words": count_words(article.body_text),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            published = f"{article.published_at:%Y-%m-%d %H:%M}" if article.published_at else "-"
            click.echo(
                f"{article.id:>5}  {published:<16}  {','.join(sections):<14}  {article.title}"
            )


def read_article_file(path: Path) -> tuple[str, str]:
    """Read a text file whose first line is the headline and the rest the body."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    headline, _, body = text.lstrip("\ufeff").partition("\n")
    return headline.strip(), body.strip()


@click.command("summarize")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--words", default=60, show_default=True, help="Word budget.")
def summarize_command(file: Path, words: int) -> None:
    """Print the summary of a text file: headline on line 1, then the body."""
    headline, body = read_article_file(file)
    click.echo(summarise(headline, body, words))


@click.command("preview")
@click.option("--subscriber", help="Preview the edition this subscriber would get.")
@click.option("--sections", help="Or preview these sections, comma-separated.")
@click.option("--briefing", "briefing_key", help="Briefing key (default: the first).")
@click.option("--at", "at_text", help="Cut time, ISO 8601 (default: now; naive means UTC).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the .html, .txt and .eml [default: var/preview beside config.yaml].",
)
@pass_app
def preview_command(
    app: App,
    subscriber: str | None,
    sections: str | None,
    briefing_key: str | None,
    at_text: str | None,
    out: Path | None,
) -> None:
    """Write an edition's HTML, text and .eml with inert links, and print warnings."""
    if bool(subscriber) == bool(sections):
        raise click.UsageError("give exactly one of --subscriber EMAIL or --sections a,b")
    config = app.config
    briefing = briefing_key or next(iter(config.briefings))
    config.briefing(briefing)
    result = preview(
        config,
        app.database,
        app.signer,
        briefing=briefing,
        at=parse_at(at_text),
        out=out.resolve() if out else config.resolve("var/preview"),
        subscriber=subscriber,
        sections=[s.strip() for s in sections.split(",") if s.strip()] if sections else None,
    )
    click.echo(f"subject: {result.subject}")
    click.echo(f"items:   {result.item_count}")
    click.echo(f"html:    {result.html}  ({result.html_size:,} bytes encoded)")
    click.echo(f"text:    {result.text}")
    click.echo(f"eml:     {result.eml}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}")


COMMANDS = [ingest_command, articles_command, summarize_command, preview_command]
