"""What a preview warns an editor about: pure checks over the digest."""

from __future__ import annotations

from datetime import date
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from briefing.domain.models import Digest, DigestItem, DigestSection
from briefing.domain.tokens import Purpose, Signer
from briefing.pipeline.checks import digest_warnings, item_warnings, repeats_headline, words
from briefing.pipeline.compose import MessageTemplate, compose_variant
from briefing.pipeline.render import new_placeholders, render_digest
from tests.support.factories import NOW, make_config, make_selected


@pytest.mark.parametrize(
    ("headline", "summary"),
    [
        ("Rates Rise Again", "Rates rise again."),
        ("Rates rise again", "  RATES — rise,   again!  "),
        ("Rates rise again", "Rates rise"),  # a cut-off headline says nothing more
        ("Café owners protest", "Cafe\u0301 owners protest"),  # NFKC: é written two ways
        ("\u201c\uff26\uff55\uff4c\uff4c\u201d width", '"Full" width'),  # full-width forms
        ("Storm hits coast; ferries stop", "Ferries stop; storm hits coast."),
    ],
)
def test_a_summary_that_only_repeats_its_headline_is_caught(headline: str, summary: str) -> None:
    assert repeats_headline(headline, summary)


@pytest.mark.parametrize(
    ("headline", "summary"),
    [
        ("Rates rise again", "Rates rise again as inflation stays high."),
        ("Rates rise again", "The central bank acts for the third time this year."),
        ("Rates rise again", ""),  # absent, not repeated
        ("Rates rise again", " … "),  # punctuation only: no words at all
        ("Rates rise", "Rates rise 2%"),  # a number is news
    ],
)
def test_a_summary_that_says_more_is_not_flagged(headline: str, summary: str) -> None:
    assert not repeats_headline(headline, summary)


def test_words_are_compared_loosely() -> None:
    assert words("Don't PANIC: it's “fine”") == ("don", "t", "panic", "it", "s", "fine")
    assert words("\uff21\uff22\uff23 \u216b") == ("abc", "xii")  # full-width ABC, Roman 12


def test_the_warnings_name_the_article() -> None:
    repeated = DigestItem(
        article=make_selected(1, title="Harbour reopens after storm"),
        summary="Harbour reopens after storm.",
    )
    no_alt = DigestItem(
        article=make_selected(
            2, title="Bank raises rates", image_url="https://img.example/2.jpg", image_alt=" "
        ),
        summary="Mortgage costs climb as the central bank acts.",
    )
    fine = DigestItem(
        article=make_selected(
            3, title="Orchestra tours", image_url="https://img.example/3.jpg", image_alt="Violins"
        ),
        summary="Violinists play village halls across the region.",
    )
    assert item_warnings(fine) == []
    digest = Digest(
        briefing="daily",
        title="The Daily",
        locale="en_GB",
        issue_date=date(2026, 11, 26),
        cut_at=NOW,
        sections=(DigestSection(key="world", title="World", items=(repeated, no_alt, fine)),),
    )
    assert digest_warnings(digest) == (
        (
            "the summary of 'Harbour reopens after storm' only repeats its headline; "
            "give it a summary that says more"
        ),
        "image of 'Bank raises rates' has no alt text; the headline is used",
    )


def test_a_test_subject_replaces_the_subject_header_and_nothing_else(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    briefing = config.briefings["daily"]
    placeholders = new_placeholders()
    # A long non-ASCII headline: the Subject is RFC 2047-encoded and folded over lines.
    title = "Ünïcödé headline that goes on " + "and on " * 12
    item = DigestItem(article=make_selected(1, title=title), summary="Something else entirely.")
    digest = Digest(
        briefing="daily",
        title="The Daily",
        locale="en_GB",
        issue_date=date(2026, 11, 26),
        cut_at=NOW,
        sections=(DigestSection(key="world", title="World", items=(item,)),),
    )
    rendered = render_digest(
        digest, key="daily", site=config.site, briefing=briefing, placeholders=placeholders
    )
    template = compose_variant(
        rendered, variant_key="k", site=config.site, briefing=briefing, placeholders=placeholders
    ).template
    assert b"\r\n " in template.head.split(b"Subject:")[1].split(b"\r\nList-Id")[0]  # folded
    tested = template.with_subject("[TEST] " + rendered.subject)
    signer = Signer([b"k"])
    tokens = {p.value: signer.inert(p) for p in Purpose}

    def parsed(raw: bytes) -> EmailMessage:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        return message

    def sent(chosen: MessageTemplate) -> EmailMessage:
        return parsed(
            chosen.personalise(
                recipient="ed@example.org",
                name=None,
                message_id="<m@example.org>",
                date=NOW,
                tokens=tokens,
                list_unsubscribe=("https://news.example.org/b/u/x",),
            )
        )

    before, after = sent(template), sent(tested)
    assert after["Subject"] == "[TEST] " + rendered.subject
    assert len(after.get_all("Subject") or []) == 1
    assert [k for k in after if k != "Subject"] == [k for k in before if k != "Subject"]
    assert tested.body == template.body and tested.slots == template.slots
