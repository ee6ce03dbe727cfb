"""``briefing subscribers``: import, add, remove, list, show, export and purge subscribers."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from briefing.audience.bounces import events_of
from briefing.audience.confirmations import queue_confirmation
from briefing.audience.imports import (
    import_subscribers,
    parse_row,
    removed_from,
    removed_note,
)
from briefing.audience.lifecycle import (
    Preferences,
    SignupOutcome,
    erase,
    operator_suppress,
    operator_unsubscribe,
    operator_unsuppress,
    purge,
    start_signup,
)
from briefing.audience.roster import describe_subscriber, export_csv, list_subscriptions
from briefing.cli.app import App, pass_app
from briefing.cli.progress import import_progress
from briefing.domain.addresses import AddressError, mailbox_key
from briefing.domain.states import SubscriptionState
from briefing.errors import BriefingError, SubscriberRowError
from briefing.ops.controls import operator


@click.group("subscribers")
def subscribers_group() -> None:
    """Manage subscribers and their subscriptions."""


@subscribers_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_app
def import_command(app: App, file: Path) -> None:
    """Import a CSV of subscribers; bad rows are reported, good rows land (exit 1 if any bad).

    Rows land a chunk at a time, each in a short transaction, so a send or the
    web can use the database meanwhile; run it again after a crash and the rows
    that landed are counted unchanged.
    """
    started = time.perf_counter()
    with import_progress(Console(stderr=True, highlight=False)) as progress:
        report = import_subscribers(
            app.config, app.database, file, datetime.now(UTC), progress=progress
        )
    elapsed = time.perf_counter() - started
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    for line in report.refused:
        click.echo(f"refused {line}")
    for line in report.kept:
        click.echo(f"kept    {line}")
    click.echo(
        f"{file}: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.kept)} kept their own preferences, "
        f"{len(report.refused)} refused, {len(report.errors)} bad row(s) ({elapsed:.1f} s)"
    )
    if report.errors:
        sys.exit(1)


def _address(text: str) -> str:
    try:
        return mailbox_key(text)
    except AddressError as exc:
        raise BriefingError(f"{text!r} is not an email address: {exc}") from None


@subscribers_group.command("add")
@click.argument("email")
@click.option("--name", help="Their name, applied once they confirm.")
@click.option(
    "--briefing",
    "briefing_key",
    help="Briefing key (default: the only one, else the first in config.yaml).",
)
@click.option("--sections", help="Sections, comma-separated (default: the briefing's).")
@click.option("--timezone", help="IANA timezone, e.g. Europe/London.")
@click.option("--send-time", help="Local send time, HH:MM.")
@click.option("--frequency", help="daily, weekdays or weekly:<day>.")
@pass_app
def add_command(
    app: App,
    email: str,
    name: str | None,
    briefing_key: str | None,
    sections: str | None,
    timezone: str | None,
    send_time: str | None,
    frequency: str | None,
) -> None:
    """Sign an address up: it gets a confirmation link and is pending until it follows it.

    The confirmation mail is queued on the ledger; a running `briefing web` or
    `briefing serve` sends it within seconds, otherwise the next `briefing send`.
    """
    config = app.config
    raw = {
        "email": email,
        "name": name,
        # Like the sign-up form: the first briefing of config.yaml unless one is named.
        "briefing": briefing_key or next(iter(config.briefings)),
        "sections": (sections or "").replace(",", ";"),
        "timezone": timezone,
        "send_time": send_time,
        "frequency": frequency,
    }
    try:
        row = parse_row(config, "briefing subscribers add", 0, raw)
    except SubscriberRowError as exc:
        raise BriefingError(exc.reason) from None
    defaults = Preferences.defaults(config, row.briefing)
    preferences = Preferences(
        sections=row.sections,
        timezone=row.timezone or defaults.timezone,
        send_time=row.send_time or defaults.send_time,
        frequency=row.frequency or defaults.frequency,
    )
    now = datetime.now(UTC)
    with app.database.transaction() as session:
        if removed_from(session, row.email, row.briefing):
            raise BriefingError(
                f"refused: {removed_note(row.email)}",
                hint="they can sign up on the web page themselves; the confirmed sign-up is "
                "their new consent",
            )
        signup = start_signup(
            session,
            config,
            email=row.email,
            briefing=row.briefing,
            source="cli:add",
            now=now,
            name=row.name,
            preferences=preferences,
        )
        if signup.kind == SignupOutcome.CONFIRMATION:
            queue_confirmation(session, config, signup, now)
    if signup.kind == SignupOutcome.ALREADY_ACTIVE:
        click.echo(f"{row.email} already receives {row.briefing}; nothing sent")
        return
    assert signup.expires_at is not None
    click.echo(
        f"confirmation queued for {row.email} for {row.briefing}; pending until they follow it "
        f"(the link expires {signup.expires_at:%Y-%m-%d %H:%M} UTC)"
    )
    click.echo(
        "it goes out within seconds while `briefing web` or `briefing serve` runs, "
        "else with the next `briefing send`"
    )
    if signup.suppressed:
        click.echo(
            f"note: {row.email} is suppressed ({signup.suppressed}) and stays so "
            "unless they confirm"
        )


@subscribers_group.command("remove")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def remove_command(app: App, email: str, yes: bool) -> None:
    """Delete a subscriber's personal data; keep their address's hash on the suppression list.

    The rows go, outbox messages and previews naming them are deleted, and on
    SQLite the write-ahead log is written back and truncated so no copy of the
    address or name stays in the database files.
    """
    address = _address(email)
    if not yes:
        click.confirm(f"Delete {address} and every subscription of theirs?", abort=True)
    removal = erase(app.config, app.database, address, source="cli:remove", now=datetime.now(UTC))
    click.echo(
        f"removed {removal.email}: {removal.subscriptions} subscription(s) deleted; "
        f"{removal.suppressions} suppression entr{'y' if removal.suppressions == 1 else 'ies'} "
        "kept (address hash only), so it is never mailed or imported again"
    )
    if removal.files:
        click.echo(
            f"deleted {len(removal.files)} outbox message(s) and preview file(s) naming them"
        )
    checkpoint = removal.checkpoint
    if checkpoint is None:
        click.echo(
            "PostgreSQL keeps deleted row versions until VACUUM: run `VACUUM` on the database "
            "(see docs/operations.md) to clear them from disk"
        )
    elif not checkpoint.done:
        click.echo(
            f"warning: the database's write-ahead log still holds old copies: {checkpoint.busy}; "
            f"tried {checkpoint.attempts} times. Stop the other `briefing` processes (serve, "
            "web) for a moment: the last one to close the database writes the log back and "
            "deletes it",
            err=True,
        )


@subscribers_group.command("purge")
@pass_app
def purge_command(app: App) -> None:
    """Delete sign-ups left unconfirmed past web.confirm_within, and expired self-service links.

    The names typed into those sign-ups go with them, and so do pending
    subscriptions with no live sign-up left and addresses with nothing left.
    `briefing serve` does this every web.purge_interval; run this from cron
    where only `briefing web` and `briefing send` run.
    """
    purged = purge(app.database, datetime.now(UTC))
    click.echo(
        f"purged {purged.confirmations} expired sign-up(s), {purged.subscriptions} pending "
        f"subscription(s), {purged.subscribers} address(es) with nothing left and "
        f"{purged.requests} expired self-service link(s)"
    )


BY_HELP = "Who is acting, recorded with the change (default: your login name@host)."


@subscribers_group.command("unsubscribe")
@click.argument("email")
@click.option("--briefing", "briefing_key", help="Only this briefing (default: every one).")
@click.option("--reason", "why", help="Why, recorded in the subscription's history.")
@click.option("--by", help=BY_HELP)
@pass_app
def unsubscribe_command(
    app: App, email: str, briefing_key: str | None, why: str | None, by: str | None
) -> None:
    """End an address's subscription (one briefing, or all) as if they had unsubscribed."""
    address = _address(email)
    if briefing_key:
        app.config.briefing(briefing_key)
    with app.database.transaction() as session:
        done = operator_unsubscribe(
            session,
            address,
            briefing=briefing_key,
            by=by or operator(),
            why=why,
            now=datetime.now(UTC),
        )
    if done.ended:
        click.echo(
            f"unsubscribed {address} from {', '.join(done.ended)}; the address is "
            "suppressed there until they sign up again and confirm"
        )
    if done.already:
        click.echo(f"{address} had already left {', '.join(done.already)}; nothing changed there")


@subscribers_group.command("suppress")
@click.argument("email")
@click.option("--reason", "why", help="Why, recorded on the suppression entry.")
@click.option("--by", help=BY_HELP)
@pass_app
def suppress_command(app: App, email: str, why: str | None, by: str | None) -> None:
    """Stop all mail to an address, subscriber or not; subscriptions keep their status."""
    address = _address(email)
    with app.database.transaction() as session:
        done = operator_suppress(
            session, address, by=by or operator(), why=why, now=datetime.now(UTC)
        )
    if done.added:
        click.echo(
            f"suppressed {address} for every briefing ({done.source}); nothing is sent to it "
            "until `briefing subscribers unsuppress`"
        )
    else:
        click.echo(
            f"{address} was already suppressed for every briefing: {done.reason} since "
            f"{done.since:%Y-%m-%d %H:%M} ({done.source}); nothing changed"
        )


@subscribers_group.command("unsuppress")
@click.argument("email")
@click.option("--reason", "why", help="Why, recorded in the subscriptions' history.")
@click.option("--by", help=BY_HELP)
@pass_app
def unsuppress_command(app: App, email: str, why: str | None, by: str | None) -> None:
    """Take an address off the suppression list (not a removed one); subscriptions stay as they are."""
    address = _address(email)
    with app.database.transaction() as session:
        done = operator_unsuppress(
            session, address, by=by or operator(), why=why, now=datetime.now(UTC)
        )
    for briefing, reason in done.lifted:
        click.echo(f"lifted {address}: {briefing} ({reason})")
    for briefing, reason in done.kept:
        click.echo(
            f"kept {address}: {briefing} ({reason}): a removed address comes back only by "
            "signing up again",
            err=True,
        )
    if not done.lifted and not done.kept:
        click.echo(f"{address} is not suppressed; nothing changed")
    elif done.lifted:
        click.echo(
            "subscriptions keep their status: an unsubscribed one needs a fresh confirmed "
            "sign-up before anything is sent"
        )
    if done.kept and not done.lifted:
        sys.exit(1)


def _show_list(records: list[dict[str, Any]], as_json: bool) -> None:
    for record in records:
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            sections = ",".join(record["sections"] or ["(briefing default)"])
            click.echo(
                f"{record['email']:<32} {record['briefing']:<10} {record['status']:<12} "
                f"{record['send_time']} {record['timezone']:<20} {record['frequency']:<10} "
                f"{sections}"
            )


@subscribers_group.command("list")
@click.option("--briefing", "briefing_key", help="Only this briefing.")
@click.option(
    "--status",
    type=click.Choice([state.value for state in SubscriptionState]),
    help="Only this status.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@pass_app
def list_command(app: App, briefing_key: str | None, status: str | None, as_json: bool) -> None:
    """List subscriptions: address, briefing, status, send time, timezone, frequency, sections."""
    if briefing_key:
        app.config.briefing(briefing_key)
    with app.database.transaction() as session:
        records = list_subscriptions(
            session,
            briefing=briefing_key,
            status=SubscriptionState(status) if status else None,
        )
    _show_list(records, as_json)
    if not as_json:
        click.echo(f"{len(records)} subscription(s)", err=True)


@subscribers_group.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def show_command(app: App, email: str, as_json: bool) -> None:
    """Show everything stored about one address: subscriptions, consent, history, suppression."""
    address = _address(email)
    with app.database.transaction() as session:
        record = describe_subscriber(session, address)
        if record is not None:
            record["bounces"] = events_of(session, address)
    if record is None:
        raise BriefingError(
            f"nothing is stored about {address}",
            hint="`briefing subscribers list` shows who is subscribed",
        )
    if as_json:
        click.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    click.echo(f"{record['email']}" + (f" ({record['name']})" if record.get("name") else ""))
    for sub in record["subscriptions"]:
        click.echo(
            f"  {sub['briefing']}: {sub['status']} since {sub['status_changed_at']} "
            f"({sub['status_source']})"
        )
        click.echo(
            f"    sections {','.join(sub['sections'] or ['(briefing default)'])}; "
            f"{sub['send_time']} {sub['timezone']}; {sub['frequency']}"
        )
        click.echo(
            f"    consent: {sub['consent_source']} at {sub['consent_at']}; "
            f"own preferences: {sub['preferences_set_at'] or 'never set'}; "
            f"editions: {sub['editions']}"
        )
        for event in sub["events"]:
            click.echo(
                f"    {event['at']}  {event['from'] or '-'} -> {event['to']}  ({event['source']})"
            )
    for row in record["suppressions"]:
        click.echo(
            f"  suppressed for {row['briefing']}: {row['reason']} since {row['since']} "
            f"({row['source']})"
        )
    for event in record["bounces"]:
        click.echo(
            f"  {event['at']}  {event['kind']} {event['status'] or ''} "
            f"({event['matched_by'] or 'unmatched'}): {event['action']}"
        )


@subscribers_group.command("export")
@click.option("--briefing", "briefing_key", help="Only this briefing.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@pass_app
def export_command(app: App, briefing_key: str | None, output: Path | None) -> None:
    """Write the active subscriptions as CSV in the import's columns (re-importable)."""
    if briefing_key:
        app.config.briefing(briefing_key)
    with app.database.transaction() as session:
        text = export_csv(session, briefing=briefing_key)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BriefingError(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"{output}: {text.count(chr(10)) - 1} subscription(s)")


COMMANDS = [subscribers_group]
