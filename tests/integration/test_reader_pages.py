"""Reader pages on a real server: several briefings at once, self-service links, purge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from briefing.audience.lifecycle import purge
from briefing.cli import cli
from briefing.domain.tokens import Signer
from briefing.ops.scheduler import Service
from briefing.store.schema import AccountRequest, Confirmation, Subscriber, Subscription
from briefing.store.suppressions import suppressions_of
from tests.support.factories import KEY
from tests.support.readers import PRIVACY, link_in, mail_with, reader_site
from tests.support.web import (
    Clock,
    Site,
    form_token,
    links_in,
    message_to,
    messages_to,
    path_of,
    subscription_of,
    wait_for_drain,
)

SUBSCRIBE = "/b/subscribe"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with reader_site(tmp_path) as served:
        yield served


def sign_up(site: Site, email: str, *briefings: str, **fields: str) -> httpx.Response:
    page = site.client.get(SUBSCRIBE)
    data: dict[str, str | list[str]] = {
        "form_token": form_token(page.text),
        "email": email,
        "name": "",
        "briefings": list(briefings),
        "timezone": "Europe/London",
        "send_time": "",
        **fields,
    }
    return site.client.post(SUBSCRIBE, data=data)


def follow(site: Site, link: str) -> httpx.Response:
    """Open a mailed link's page, then press its one button (the GET changes nothing)."""
    page = site.client.get(site.url(link))
    assert page.status_code == 200, page.text
    return site.client.post(site.url(link), data={"form_token": form_token(page.text)})


def ask(site: Site, preferences: str, action: str, **fields: str) -> httpx.Response:
    """Press a self-service button on the preferences page, as a forwarded digest allows."""
    page = site.client.get(site.url(preferences))
    data = {"form_token": form_token(page.text), "action": action, **fields}
    return site.client.post(site.url(preferences), data=data)


def on_file(site: Site, email: str) -> bool:
    """Tell whether a subscriber with this address exists."""
    with site.database.transaction() as session:
        return session.scalar(select(Subscriber.id).where(Subscriber.email == email)) is not None


def count(site: Site, entity: type) -> int:
    with site.database.transaction() as session:
        return session.scalar(select(func.count()).select_from(entity)) or 0


def test_the_form_shows_each_briefing_with_its_time_and_the_privacy_notice(site: Site) -> None:
    page = site.client.get(SUBSCRIBE)
    assert 'type="checkbox" name="briefings" value="daily" checked' in page.text
    assert 'type="checkbox" name="briefings" value="weekly">' in page.text
    assert 'The Daily <span class="hint">· every day at 07:00' in page.text
    assert 'The Weekly <span class="hint">· every Friday at 18:00' in page.text
    assert f'<a href="{PRIVACY}">Privacy notice</a>' in page.text
    assert "<option>Asia/Kolkata</option>" in page.text
    assert "<option>Asia/Calcutta</option>" not in page.text
    chosen = site.client.get(SUBSCRIBE, params={"briefing": "weekly"})
    assert 'value="weekly" checked' in chosen.text and 'value="daily">' in chosen.text


def test_one_mail_confirms_several_briefings_at_the_readers_own_time(site: Site) -> None:
    response = sign_up(
        site, "kim@example.net", "daily", "weekly", timezone="Australia/Sydney", send_time=""
    )
    assert response.status_code == 200, response.text
    assert "Check your inbox" in response.text
    # 07:05 UTC on Thursday 26 November is 18:05 in Sydney: the next 07:00 there is Friday's.
    assert (
        "your first edition of The Daily arrives Friday 27 November at 07:00 (Australia/Sydney)"
        in response.text
    )
    assert (
        "your first edition of The Weekly arrives Friday 27 November at 18:00 (Australia/Sydney)"
        in response.text
    )
    raw = message_to(site.config, "kim@example.net")  # one mail for both
    assert "Confirm your subscription to The Daily and The Weekly" in raw.decode()
    daily = subscription_of(site.database, "kim@example.net", "daily")
    weekly = subscription_of(site.database, "kim@example.net", "weekly")
    assert (daily.status, daily.timezone, daily.send_time) == (
        "pending",
        "Australia/Sydney",
        "07:00",
    )
    assert (weekly.status, weekly.send_time, weekly.frequency) == ("pending", "18:00", "weekly:fri")

    done = follow(site, links_in(raw)["c"])
    assert "You are subscribed to The Daily and The Weekly" in done.text
    assert (
        "Your first edition of The Daily arrives Friday 27 November at 07:00 (Australia/Sydney)"
        in done.text
    )
    assert subscription_of(site.database, "kim@example.net", "daily").status == "active"
    assert subscription_of(site.database, "kim@example.net", "weekly").status == "active"


def test_a_chosen_send_time_applies_to_every_briefing_chosen(site: Site) -> None:
    response = sign_up(site, "lee@example.net", "daily", "weekly", send_time="06:15")
    assert response.status_code == 200
    assert subscription_of(site.database, "lee@example.net", "daily").send_time == "06:15"
    assert subscription_of(site.database, "lee@example.net", "weekly").send_time == "06:15"


def test_bad_choices_are_named_and_nothing_is_stored(site: Site) -> None:
    response = sign_up(site, "max@example.net", timezone="Asia/Calcutta", send_time="25:00")
    assert response.status_code == 400
    for text in (
        "Choose at least one of the briefings listed.",
        "Choose a timezone from the list.",
        "Give the send time as hours and minutes",
    ):
        assert text in response.text
    assert "<option>Asia/Calcutta</option>" not in response.text  # not offered back
    assert count(site, Confirmation) == 0


def test_a_filled_honeypot_looks_like_success_and_stores_nothing(site: Site) -> None:
    before = count(site, Subscriber)
    response = sign_up(site, "bot@example.net", "daily", website="https://spam.example")
    assert response.status_code == 200 and "Check your inbox" in response.text
    wait_for_drain(site.database)
    assert count(site, Subscriber) == before and count(site, Confirmation) == 0
    assert messages_to(site.config, "bot@example.net") == []


def test_the_limit_page_says_it_means_the_email_address(tmp_path: Path) -> None:
    with reader_site(tmp_path, signups_per_address=1) as site:
        assert sign_up(site, "ned@example.net", "daily").status_code == 200
        refused = sign_up(site, "ned@example.net", "weekly")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "too many requests for this email address" in refused.text


def test_a_forwarded_digest_cannot_download_delete_or_move_the_data(site: Site) -> None:
    preferences = links_in(message_to(site.config, "bob@example.com"))["p"]
    # Whoever holds the forward can only ask; every answer is a page, never the data.
    exported = ask(site, preferences, "export")
    assert exported.headers["content-type"].startswith("text/html")
    assert "b…@example.com" in exported.text and "bob@example.com" not in exported.text
    assert "world" not in exported.text and "sport" not in exported.text
    ask(site, preferences, "delete")
    ask(site, preferences, "move", new_email="eve@evil.example")
    wait_for_drain(site.database)
    assert subscription_of(site.database, "bob@example.com").status == "active"
    assert on_file(site, "bob@example.com") and not on_file(site, "eve@evil.example")
    assert messages_to(site.config, "eve@evil.example") == []  # the move is allowed by bob first
    for subject in ("Download your data", "Delete your data", "Allow a change of address"):
        mail_with(site.config, "bob@example.com", subject)  # each link went to bob alone
    # The preferences token is no self-service token, and a self-service token works once.
    token = path_of(preferences).rsplit("/", 1)[1]
    assert site.client.get(f"/b/a/{token}").status_code == 404
    assert site.client.post(f"/b/a/{token}", data={}).status_code in (403, 404)


def test_a_download_link_hands_over_everything_once(site: Site) -> None:
    preferences = links_in(message_to(site.config, "bob@example.com"))["p"]
    assert ask(site, preferences, "export").status_code == 200
    link = link_in(mail_with(site.config, "bob@example.com", "Download your data"), "a")
    assert site.client.get(site.url(link)).status_code == 200  # a scanner's GET uses nothing
    token = form_token(site.client.get(site.url(link)).text)
    download = site.client.post(site.url(link), data={"form_token": token})
    assert download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"].startswith("attachment;")
    data = json.loads(download.text)
    assert data["email"] == "bob@example.com" and data["name"] == "Bob"
    assert [s["briefing"] for s in data["subscriptions"]] == ["daily"]
    assert data["subscriptions"][0]["sections"] == ["world", "sport"]
    assert [d["status"] for d in data["deliveries"]] == ["sent"]
    for key in ("signups", "bounce_events", "suppressions", "history"):
        assert isinstance(data[key], list)
    again = site.client.post(site.url(link), data={"form_token": token})
    assert again.status_code == 410 and "application/json" not in again.headers["content-type"]
    page = site.client.get(site.url(link))
    assert page.status_code == 410 and "used or has expired" in page.text


def test_a_delete_link_erases_the_address(site: Site) -> None:
    preferences = links_in(message_to(site.config, "cy@example.com"))["p"]
    ask(site, preferences, "delete")
    link = link_in(mail_with(site.config, "cy@example.com", "Delete your data"), "a")
    done = follow(site, link)
    assert "Your data is deleted" in done.text
    with site.database.transaction() as session:
        assert (
            session.scalar(select(Subscriber).where(Subscriber.email == "cy@example.com")) is None
        )
        kept = suppressions_of(session, "cy@example.com")
        assert kept and all(row.email is None for row in kept)  # the hash only
    assert site.client.get(site.url(link)).status_code == 404


def test_a_change_of_address_is_allowed_confirmed_and_can_be_undone(site: Site) -> None:
    preferences = links_in(message_to(site.config, "ann@example.com"))["p"]
    asked = ask(site, preferences, "move", new_email="Ann.New@Example.NET")
    assert "a…@example.com" in asked.text
    allow = link_in(mail_with(site.config, "ann@example.com", "Allow a change of address"), "a")
    assert "Now confirm the new address" in follow(site, allow).text
    adopt = link_in(mail_with(site.config, "ann.new@example.net", "Confirm your new address"), "a")
    assert on_file(site, "ann@example.com")  # not moved until the new address confirms
    assert "Your address is changed" in follow(site, adopt).text
    assert subscription_of(site.database, "ann.new@example.net").status == "active"

    undo = link_in(mail_with(site.config, "ann@example.com", "Your address for"), "a")
    assert "Your address is back" in follow(site, undo).text
    assert subscription_of(site.database, "ann@example.com").status == "active"
    assert site.client.get(site.url(undo)).status_code == 410


def test_a_change_to_an_address_already_subscribed_is_refused(site: Site) -> None:
    preferences = links_in(message_to(site.config, "ann@example.com"))["p"]
    ask(site, preferences, "move", new_email="bob@example.com")
    allow = link_in(mail_with(site.config, "ann@example.com", "Allow a change of address"), "a")
    refused = follow(site, allow)
    assert refused.status_code == 409 and "already receives briefings" in refused.text
    assert on_file(site, "ann@example.com")


def test_sign_up_again_after_leaving_offers_the_one_step_confirmation(site: Site) -> None:
    links = links_in(message_to(site.config, "ann@example.com"))
    left = site.client.post(site.url(links["u"]), data={"List-Unsubscribe": "One-Click"})
    assert "Sign up again in one step" in left.text
    assert path_of(links["p"]) in left.text
    again = site.client.get(site.url(links["p"]))
    assert "Send me a confirmation link" in again.text


def test_purge_deletes_expired_sign_ups_with_what_was_typed(site: Site) -> None:
    sign_up(site, "old@example.net", "daily", "weekly", name="Typed Name")
    sign_up(site, "bob@example.com", "weekly", name="Bob Again")  # bob stays: he has The Daily
    wait_for_drain(site.database)
    assert purge(site.database, site.clock.now).confirmations == 0  # not expired yet
    later = site.clock.now + site.config.web.confirm_within + timedelta(minutes=1)
    purged = purge(site.database, later)
    assert (purged.confirmations, purged.subscriptions, purged.subscribers) == (3, 3, 1)
    with site.database.transaction() as session:
        emails = set(session.scalars(select(Subscriber.email)))
        assert "old@example.net" not in emails and "bob@example.com" in emails
        assert session.scalar(select(func.count()).select_from(Confirmation)) == 0
        names = set(session.scalars(select(Subscriber.name)))
        assert "Typed Name" not in names and "Bob Again" not in names
        briefings = set(session.scalars(select(Subscription.briefing)))
        assert briefings == {"daily"}
    assert subscription_of(site.database, "bob@example.com").status == "active"


def test_the_purge_command_for_installs_without_serve(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())
    preferences = links_in(message_to(site.config, "bob@example.com"))["p"]
    ask(site, preferences, "export")
    wait_for_drain(site.database)
    with site.database.transaction() as session:
        request = session.scalars(select(AccountRequest)).one()
        request.expires_at = site.clock.now - timedelta(minutes=1)
    config_file = str(site.config.base_dir / "config.yaml")
    result = CliRunner().invoke(cli, ["--config", config_file, "subscribers", "purge"])
    assert result.exit_code == 0, result.output
    assert "1 expired self-service link(s)" in result.output
    assert count(site, AccountRequest) == 0


def test_serve_purges_in_its_own_job(site: Site) -> None:
    sign_up(site, "late@example.net", "weekly", name="Late Reader")
    wait_for_drain(site.database)
    clock = Clock(site.clock.now + site.config.web.confirm_within + timedelta(seconds=1))
    service = Service(site.config, site.database, Signer([KEY]), clock=clock)
    jobs = {job.id: job for job in service.scheduler(clock.now).get_jobs()}
    assert jobs["purge"].trigger.interval == site.config.web.purge_interval
    assert on_file(site, "late@example.net")
    service.purge_signups()
    assert not on_file(site, "late@example.net")
