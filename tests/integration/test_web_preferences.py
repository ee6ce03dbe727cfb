"""Preferences from the link in a real message: saved, applied to the next edition, kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from briefing.audience.imports import import_subscribers
from briefing.config import Config
from briefing.domain.addresses import ALL_BRIEFINGS
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database
from briefing.store.schema import Edition, Subscriber, Variant, VariantItem
from briefing.store.suppressions import suppression_for
from tests.support.factories import KEY, NOW, markdown_article
from tests.support.web import (
    AT,
    Site,
    form_token,
    links_in,
    message_to,
    outbox,
    send_editions,
    serve_site,
    subscription_of,
    wait_for_drain,
)


@pytest.fixture
def site(project: Config, database: Database, signer: Signer) -> Iterator[Site]:
    send_editions(project, database, signer)
    with serve_site(project, database, [KEY]) as served:
        yield served


def preferences_url(site: Site, email: str) -> str:
    return site.url(links_in(message_to(site.config, email))["p"])


def save(site: Site, url: str, **fields: object) -> tuple[int, str]:
    page = site.client.get(url)
    data = {"form_token": form_token(page.text), "action": "save", **fields}
    response = site.client.post(url, data=data, headers={"Origin": site.origin})
    return response.status_code, response.text


def test_page_shows_current_choices_and_changes_nothing(site: Site) -> None:
    url = preferences_url(site, "bob@example.com")
    page = site.client.get(url)
    assert page.status_code == 200
    assert '<html lang="en">' in page.text and "<h1>The Daily: your settings</h1>" in page.text
    assert 'value="world" checked' in page.text and 'value="sport" checked' in page.text
    assert 'value="business">' in page.text
    assert 'value="07:00"' in page.text and "<option selected>Europe/London</option>" in page.text
    assert '<label for="timezone">' in page.text and 'id="timezone"' in page.text
    assert subscription_of(site.database, "bob@example.com").preferences_set_at is None


def test_saved_preferences_shape_the_next_edition_and_survive_an_import(
    site: Site, signer: Signer
) -> None:
    url = preferences_url(site, "ann@example.com")
    status, text = save(
        site,
        url,
        sections=["sport", "business"],
        send_time="06:15",
        timezone="Europe/Paris",
        frequency="weekly",
        weekday="fri",
    )
    assert status == 200 and "Saved. Your next edition follows these settings." in text
    ann = subscription_of(site.database, "ann@example.com")
    assert (ann.sections, ann.send_time, ann.timezone, ann.frequency) == (
        ["business", "sport"],
        "06:15",
        "Europe/Paris",
        "weekly:fri",
    )
    assert ann.preferences_set_at == site.clock.now and ann.status == "active"

    # The next edition: new articles arrive, and Friday 27 November 06:15 in Paris passes.
    for section, name in (("world", "later-w.md"), ("sport", "later-s.md")):
        markdown_article(
            site.config.base_dir / "content" / section,
            name,
            title=f"Later {section} story",
            url=f"https://news.example.org/{section}/later",
        )
    ingest(site.config, site.database, NOW + timedelta(hours=12))
    friday = AT + timedelta(days=1)
    dispatch(site.config, site.database, signer, friday)
    with site.database.transaction() as session:
        variant = session.scalar(
            select(Variant)
            .join(Edition, Edition.variant_id == Variant.id)
            .where(Edition.subscriber_id == ann.subscriber_id, Edition.issue_date == friday.date())
        )
        assert variant is not None and variant.sections == ["business", "sport"]
        sections = {
            item.section
            for item in session.scalars(
                select(VariantItem).where(VariantItem.variant_id == variant.id)
            )
        }
        assert sections == {"sport"}  # the only new article in her sections

    report = import_subscribers(
        site.config, site.database, site.config.base_dir / "subs.csv", friday
    )
    assert any("ann@example.com set their own preferences" in line for line in report.kept)
    assert subscription_of(site.database, "ann@example.com").sections == ["business", "sport"]


def test_bad_values_are_named_and_nothing_is_saved(site: Site) -> None:
    url = preferences_url(site, "bob@example.com")
    status, text = save(
        site,
        url,
        sections=["weather"],
        send_time="25:00",
        timezone="Mars/Olympus",
        frequency="fortnightly",
    )
    assert status == 400
    for words in (
        "Choose at least one of the sections",
        "hours and minutes",
        "Choose a timezone",
        "one day a week",
    ):
        assert words in text
    assert 'aria-invalid="true"' in text and 'role="alert"' in text
    bob = subscription_of(site.database, "bob@example.com")
    assert bob.preferences_set_at is None and bob.send_time == "07:00"


def test_cross_site_and_tokenless_posts_are_refused(site: Site) -> None:
    url = preferences_url(site, "bob@example.com")
    token = form_token(site.client.get(url).text)
    fields = {
        "action": "leave-all",
        "sections": "world",
        "send_time": "09:00",
        "timezone": "UTC",
        "frequency": "daily",
    }
    attempts = [
        ({"form_token": token, **fields}, {"Origin": "https://evil.example"}),
        ({"form_token": token, **fields}, {"Origin": "null"}),
        ({"form_token": token, **fields}, {"Sec-Fetch-Site": "cross-site"}),
        ({"form_token": token, **fields}, {"Referer": "https://evil.example/page"}),
        (fields, {"Origin": site.origin}),
        ({"form_token": token[:-1] + "0", **fields}, {}),
    ]
    for data, headers in attempts:
        response = site.client.post(url, data=data, headers=headers)
        assert response.status_code == 403, headers
        assert "Nothing was changed" in response.text
    other = preferences_url(site, "cy@example.com")  # a token issued for another form
    response = site.client.post(other, data={"form_token": token, **fields})
    assert response.status_code == 403
    assert subscription_of(site.database, "bob@example.com").status == "active"
    assert subscription_of(site.database, "cy@example.com").status == "active"


def test_leaving_one_briefing_or_everything(site: Site) -> None:
    url = preferences_url(site, "bob@example.com")
    token = form_token(site.client.get(url).text)
    left = site.client.post(url, data={"form_token": token, "action": "leave"})
    assert left.status_code == 200 and "unsubscribed from The Daily" in left.text
    assert subscription_of(site.database, "bob@example.com").status_source == "web:preferences"

    url = preferences_url(site, "cy@example.com")
    token = form_token(site.client.get(url).text)
    gone = site.client.post(url, data={"form_token": token, "action": "leave-all"})
    assert gone.status_code == 200 and "everything Test Gazette sends" in gone.text
    with site.database.transaction() as session:
        hit = suppression_for(session, "cy@example.com", "any-other-briefing")
        assert hit is not None and hit.briefing == ALL_BRIEFINGS
        assert session.scalar(select(Subscriber).where(Subscriber.email == "cy@example.com"))
    page = site.client.get(url)
    assert "You are not receiving The Daily (unsubscribed on" in page.text
    assert "Save preferences" not in page.text

    back = site.client.post(
        url, data={"form_token": form_token(page.text), "action": "resubscribe"}
    )
    assert back.status_code == 200 and "Check your inbox" in back.text
    wait_for_drain(site.database)
    confirmation = [raw for raw in outbox(site.config) if b"Subject: Confirm" in raw]
    assert len(confirmation) == 1 and "c" in links_in(confirmation[0])
    assert subscription_of(site.database, "cy@example.com").status == "unsubscribed"
