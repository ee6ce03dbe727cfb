"""Show a delivery run to ops: a live bar on a terminal, log lines otherwise, a table at the end."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from briefing.deliver.report import DeliveryReport
from briefing.domain.states import DeliveryState

logger = logging.getLogger("briefing.send")
LOG_EVERY = 5.0  # seconds between plain progress lines
FAILURES_SHOWN = 20


def _counts(report: DeliveryReport) -> str:
    return (
        f"sent {report.sent}  deferred {report.deferred}  "
        f"failed {report.failed + report.bounced}  {report.rate:,.0f}/s"
    )


@contextmanager
def live_progress(console: Console, total: int) -> Iterator[Callable[[DeliveryReport], None]]:
    """Yield a progress callback: a rich bar on a terminal, a line every few seconds otherwise."""
    if console.is_terminal:
        bar = Progress(
            TextColumn("[bold]sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        task = bar.add_task("send", total=total or None, counts="")

        def show(report: DeliveryReport) -> None:
            bar.update(task, completed=report.handled, counts=_counts(report))

        with bar:
            yield show
        return
    last = [time.monotonic()]

    def log_line(report: DeliveryReport) -> None:
        if time.monotonic() - last[0] >= LOG_EVERY:
            last[0] = time.monotonic()
            console.print(
                f"sending: {report.handled}/{total} handled, {_counts(report)}", highlight=False
            )

    yield log_line


def report_table(report: DeliveryReport) -> Table:
    """Build the end-of-run table: every outcome with its count, then the rate."""
    title = "delivery report"
    if report.redirected_to:
        title += f" (redirected to {report.redirected_to}; ledger untouched)"
    table = Table(title=title, title_justify="left")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_column("meaning")
    D = DeliveryState
    meanings = {
        D.SENT: "taken by the relay (2xx after the final dot)",
        D.DEFERRED: "temporary failure; a later run retries before the deadline",
        D.FAILED: "refused for good (5xx)",
        D.BOUNCED: "address does not exist (5.1.x); now suppressed",
        D.SUPPRESSED: "on the suppression list; not sent",
        D.CANCELLED: "cancelled, unsubscribed or removed; not sent",
        D.EXPIRED: "past the briefing's deadline; not sent",
    }
    for state, meaning in meanings.items():
        count = report.counts[state]
        if count or state in (D.SENT, D.DEFERRED, D.FAILED):
            table.add_row(state.value, f"{count:,}", meaning)
    if report.released:
        table.add_row(
            "left pending", f"{report.released:,}", "handed back unsent when the run stopped"
        )
    table.add_row("retries", f"{report.retries:,}", "extra tries within this run")
    table.add_row("time", f"{report.elapsed:.1f} s", f"{report.rate:,.0f} messages/s")
    return table


def failures_table(report: DeliveryReport) -> Table | None:
    """List who was not delivered to and the relay's reply (the first few)."""
    if not report.failures:
        return None
    table = Table(title="not delivered", title_justify="left")
    table.add_column("recipient")
    table.add_column("status")
    table.add_column("reply")
    for failure in report.failures[:FAILURES_SHOWN]:
        table.add_row(failure.recipient, failure.status, failure.reply)
    if len(report.failures) > FAILURES_SHOWN:
        table.add_row(
            f"... {len(report.failures) - FAILURES_SHOWN} more",
            "",
            "see `briefing deliveries --failed`",
        )
    return table


@contextmanager
def import_progress(console: Console) -> Iterator[Callable[[int, int], None]]:
    """Yield a callback for (rows done, rows in all): a bar on a terminal, else nothing."""
    if not console.is_terminal:
        yield lambda done, total: None
        return
    bar = Progress(
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("import", total=None)

    def show(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield show
