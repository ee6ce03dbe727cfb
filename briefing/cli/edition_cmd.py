"""Editorial commands: ``approve``, ``editions``, ``edition show|pin|drop|...|undo|test-send``.

They call the services the desk calls (``editions/approval.py``,
``editions/overrides.py``, ``editions/issue.py``); ``--as NAME`` is recorded
as who acted (default: user@host).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from briefing.audience.confirmations import composers
from briefing.cli.app import App, parse_at, pass_app
from briefing.deliver import DkimSigner
from briefing.deliver.transactional import drain_transactional
from briefing.domain.states import DeliveryState, OverrideKind
from briefing.editions.approval import approve, default_issue_date, issue_statuses
from briefing.editions.issue import IssueView, issue_view
from briefing.editions.overrides import OverrideResult, override, overrides_of, undo
from briefing.editions.testsend import queued_tests, send_test
from briefing.errors import BriefingError
from briefing.ops.controls import operator


def _date(app: App, briefing: str, text: str | None, at_text: str | None = None) -> date:
    app.config.briefing(briefing)
    if text:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise BriefingError(
                f"--date {text!r} is not a date", hint="e.g. --date 2026-12-07"
            ) from None
    return default_issue_date(app.config, app.database, briefing, parse_at(at_text))


def _who(name: str | None) -> str:
    return name or operator()


date_option = click.option(
    "--date",
    "date_text",
    help="Issue date (YYYY-MM-DD); default: the oldest held issue, else the next one.",
)
as_option = click.option("--as", "who", help="Name recorded as who acted (default: user@host).")


@click.command("approve")
@click.argument("briefing")
@date_option
@as_option
@click.option("--at", "at_text", help="Act as if it were this time (ISO 8601; naive is UTC).")
@pass_app
def approve_command(
    app: App, briefing: str, date_text: str | None, who: str | None, at_text: str | None
) -> None:
    """Approve an issue: dispatch sends what is due at its next run; overrides freeze."""
    issue_date = _date(app, briefing, date_text, at_text)
    result = approve(
        app.config, app.database, briefing, issue_date, who=_who(who), now=parse_at(at_text)
    )
    if not result.new:
        click.echo(f"already {result.status.describe()}")
        return
    click.echo(result.status.describe())
    click.echo(
        "the next dispatch (`briefing send`, or `briefing serve` within a minute) sends what "
        "is due; editions past the deadline are recorded as expired"
    )


@click.command("editions")
@click.option("--briefing", "briefing_key", help="Only this briefing.")
@click.option("--at", "at_text", help="As if it were this time (ISO 8601; naive is UTC).")
@pass_app
def editions_command(app: App, briefing_key: str | None, at_text: str | None) -> None:
    """List the issues of briefings that need approval: held, approved, coming."""
    if briefing_key:
        app.config.briefing(briefing_key)
    statuses = issue_statuses(app.config, app.database, parse_at(at_text), briefing=briefing_key)
    if not statuses:
        click.echo("no briefing needs approval (briefings.<key>.approval is none everywhere)")
        return
    for status in statuses:
        click.echo(status.describe())


@click.group("edition")
def edition_group() -> None:
    """Show and shape one issue of a briefing (per issue date)."""


@edition_group.command("show")
@click.argument("briefing")
@date_option
@click.option("--at", "at_text", help="Cut as if it were this time (ISO 8601; naive is UTC).")
@click.option("--undone", is_flag=True, help="List undone overrides too.")
@pass_app
def show_command(
    app: App, briefing: str, date_text: str | None, at_text: str | None, undone: bool
) -> None:
    """Show each variant's items if cut now (overrides marked) and the variants already cut."""
    issue_date = _date(app, briefing, date_text, at_text)
    view = issue_view(app.config, app.database, briefing, issue_date, parse_at(at_text))
    click.echo("\n".join(view_lines(view)))
    if undone:
        for o in overrides_of(app.config, app.database, briefing, issue_date, include_undone=True):
            if not o.active:
                click.echo(
                    f"  undone #{o.id} {o.kind} {o.article_title!r} (by {o.created_by}; "
                    f"undone by {o.undone_by} at {o.undone_at:%Y-%m-%d %H:%M} UTC)"
                )


def view_lines(view: IssueView) -> list[str]:
    """Describe an issue for the terminal."""
    lines = [f"{view.briefing} {view.issue_date.isoformat()}"]
    if view.approval is not None:
        lines.append(
            f"approved by {view.approval.approved_by} at "
            f"{view.approval.approved_at:%Y-%m-%d %H:%M} UTC (overrides frozen)"
        )
    elif view.approval_required:
        lines.append("needs approval: nothing is dispatched until `briefing approve`")
    lines.append(f"overrides ({len(view.overrides)}):")
    for o in view.overrides:
        text = f": {o.text!r}" if o.text else ""
        lines.append(
            f"  #{o.id} {o.kind} {o.article_title!r} <{o.article_url or o.article_id}>{text} "
            f"(by {o.created_by} at {o.created_at:%Y-%m-%d %H:%M} UTC)"
        )
    for variant in view.upcoming:
        lines.append(
            f"if cut now: sections {', '.join(variant.sections)} "
            f"({variant.subscriptions:,} subscription(s)), {len(variant.items)} item(s), "
            f"HTML {variant.html_size:,} bytes"
        )
        lines.append(f"  subject: {variant.subject}")
        section = None
        for item in variant.items:
            if item.section != section:
                section = item.section
                lines.append(f"  [{section}]")
            marks = f"  <- {'; '.join(item.marks)}" if item.marks else ""
            also = f" (+{item.also_covered} also covering)" if item.also_covered else ""
            lines.append(f"    {item.title}{also} <{item.url or item.article_id}>{marks}")
        lines.extend(f"  note: {note}" for note in variant.notes)
    if view.cut:
        lines.append("already cut (frozen; overrides saved later do not change them):")
        for cut in view.cut:
            lines.append(
                f"  variant {cut.id}: sections {', '.join(cut.sections)}, cut "
                f"{cut.cut_at:%Y-%m-%d %H:%M} UTC, {cut.item_count} item(s): "
                f"{cut.editions:,} edition(s), {cut.sent:,} sent, {cut.waiting:,} waiting"
            )
    else:
        lines.append("no variant of this issue is cut yet")
    return lines


@edition_group.command("test-send")
@click.argument("briefing")
@click.option(
    "--to",
    "recipients",
    multiple=True,
    required=True,
    help="Address to mail the test to; repeat for several.",
)
@click.option("--subscriber", help="The edition this subscriber gets.")
@click.option("--sections", help="Or these sections, comma-separated (default: every section).")
@date_option
@as_option
@click.option(
    "--now", "drain_now", is_flag=True, help="Send it at once rather than leave it queued."
)
@pass_app
def test_send_command(
    app: App,
    briefing: str,
    recipients: tuple[str, ...],
    subscriber: str | None,
    sections: str | None,
    date_text: str | None,
    who: str | None,
    drain_now: bool,
) -> None:
    """Mail an issue as a test ([TEST] subject, inert links) through the ledger."""
    if subscriber and sections:
        raise click.UsageError("give --subscriber EMAIL or --sections a,b, not both")
    issue_date = _date(app, briefing, date_text)
    result = send_test(
        app.config,
        app.database,
        app.signer,
        briefing=briefing,
        recipients=list(recipients),
        requested_by=_who(who),
        now=datetime.now(UTC),
        subscriber=subscriber,
        sections=[s.strip() for s in sections.split(",") if s.strip()] if sections else None,
        issue_date=issue_date,
    )
    click.echo(f"{result.briefing} {result.issue_date.isoformat()} {result.shown_as}")
    click.echo(f"subject: {result.subject}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    for address, delivery_id in zip(result.recipients, result.delivery_ids, strict=True):
        click.echo(f"queued test {delivery_id} to {address}")
    if not drain_now:
        click.echo("`briefing serve`, `send`, `deliver` or a running `briefing web` sends it")
        return
    counts = drain_transactional(
        app.config,
        app.database,
        composers(app.config, app.signer),
        dkim=DkimSigner.from_config(app.config),
        signer=app.signer,
    )
    sent = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    click.echo(f"sent now: {sent or 'nothing was due'}")
    states = {test.delivery_id: test for test in queued_tests(app.database, result.delivery_ids)}
    for delivery_id in result.delivery_ids:
        test = states.get(delivery_id)
        if test is not None and test.status is not DeliveryState.SENT:
            raise BriefingError(
                f"test {delivery_id} to {test.recipient} is {test.status}: {test.reply or ''}",
                hint="`briefing delivery` shows the ledger; a deferred test is retried",
            )


def _echo(result: OverrideResult) -> None:
    click.echo(result.describe())


def _override_command(kind: OverrideKind, help_text: str, *, with_text: bool) -> click.Command:
    @click.command(kind.value, help=help_text)
    @click.argument("briefing")
    @click.argument("article")
    @date_option
    @as_option
    @click.option("--at", "at_text", help="As if it were this time (ISO 8601; naive is UTC).")
    @pass_app
    def command(
        app: App,
        briefing: str,
        article: str,
        date_text: str | None,
        who: str | None,
        at_text: str | None,
        text: str | None = None,
    ) -> None:
        issue_date = _date(app, briefing, date_text, at_text)
        _echo(
            override(
                app.config,
                app.database,
                briefing,
                issue_date,
                kind,
                article,
                who=_who(who),
                now=parse_at(at_text),
                text=text,
            )
        )

    if with_text:
        command = click.argument("text")(command)
    return command


OVERRIDES: list[tuple[OverrideKind, str, bool]] = [
    (OverrideKind.PIN, "Pin ARTICLE (URL or id) to the top of its section in this issue.", False),
    (OverrideKind.DROP, "Drop ARTICLE (URL or id) from this issue, with coverage under it.", False),
    (OverrideKind.HEADLINE, "Replace ARTICLE's headline with TEXT in this issue.", True),
    (OverrideKind.SUMMARY, "Replace ARTICLE's summary with TEXT in this issue.", True),
    (
        OverrideKind.SOURCE,
        "Show ARTICLE for its story; other sources go under 'Also covered by'.",
        False,
    ),
    (OverrideKind.ADD, "Add stored ARTICLE (URL or id) to its section in this issue.", False),
]
for _kind, _help, _text in OVERRIDES:
    edition_group.add_command(_override_command(_kind, _help, with_text=_text))


@edition_group.command("undo")
@click.argument("briefing")
@click.argument("override_id", type=int)
@as_option
@click.option("--at", "at_text", help="As if it were this time (ISO 8601; naive is UTC).")
@pass_app
def undo_command(
    app: App, briefing: str, override_id: int, who: str | None, at_text: str | None
) -> None:
    """Undo override OVERRIDE_ID (see `edition show`) of BRIEFING."""
    _echo(
        undo(app.config, app.database, briefing, override_id, who=_who(who), now=parse_at(at_text))
    )


COMMANDS = [approve_command, editions_command, edition_group]
