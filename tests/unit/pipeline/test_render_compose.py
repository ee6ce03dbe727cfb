"""Render and compose: escaping, every-message rules, exact personalisation, size."""

from __future__ import annotations

import html
import random
import re
import string
from datetime import UTC, date, datetime, timedelta, timezone
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import format_datetime

from briefing.config import Config
from briefing.domain.models import Digest, DigestItem, DigestSection, Link
from briefing.domain.tokens import TOKEN_LENGTH, Purpose, Signer
from briefing.pipeline.compose import (
    HTML_LIMIT,
    MessageTemplate,
    compose_variant,
    date_header,
    feedback_id,
    feedback_id_valid,
    feedback_key,
    to_header,
)
from briefing.pipeline.cut import VariantInputs, VariantSpec, cut_variant
from briefing.pipeline.relate import Archive
from briefing.pipeline.render import new_placeholders, render_digest
from tests.support.factories import NOW, make_config, make_selected
from tests.support.message_checks import check_message, html_tags


def digest_of(*items: DigestItem, locale: str = "en_GB") -> Digest:
    return Digest(
        briefing="daily",
        title="The Daily",
        locale=locale,
        issue_date=date(2026, 11, 26),
        cut_at=NOW,
        sections=(DigestSection(key="world", title="World", items=items),),
    )


def personalised(config: Config, digest: Digest, tokens: dict[str, str] | None = None) -> bytes:
    placeholders = new_placeholders()
    briefing = config.briefings["daily"]
    rendered = render_digest(
        digest, key="daily", site=config.site, briefing=briefing, placeholders=placeholders
    )
    composed = compose_variant(
        rendered, variant_key="k", site=config.site, briefing=briefing, placeholders=placeholders
    )
    signer = Signer([b"k"])
    tokens = tokens or {p.value: signer.sign(p, 7) for p in Purpose}
    return composed.template.personalise(
        recipient="ann@example.com",
        name="Ann Example",
        message_id="<m@news.example.org>",
        date=NOW,
        tokens=tokens,
        list_unsubscribe=(f"{config.site.base_url}/u/{tokens['u']}",),
    )


def test_outside_text_is_escaped(tmp_path) -> None:
    config = make_config(tmp_path)
    evil = make_selected(
        1,
        title='<script>alert(1)</script> & "quotes"',
        url="https://x.example/a?b=1&c=<2>",
        image_url="https://img.example/x.jpg",
        image_alt='" onerror="alert(1)',
        image_credit="<b>credit</b>",
    )
    item = DigestItem(
        article=evil,
        summary="<img src=x onerror=alert(2)>",
        related=(Link(title="<i>rel</i>", url="https://r.example/"),),
    )
    _, text, html = check_message(personalised(config, digest_of(item)), config.site.base_url)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;" in html
    tags = html_tags(html)  # check_message already refused any on* attribute or <script>
    assert ("img", '" onerror="alert(1)') in [(t, a.get("alt")) for t, a in tags]
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert '<script>alert(1)</script> & "quotes"' in text  # plain text shows it as text


def test_every_message_rule_holds_for_a_full_digest(tmp_path) -> None:
    config = make_config(tmp_path)
    items = tuple(
        DigestItem(
            article=make_selected(
                i,
                image_url=f"https://img.example/{i}.jpg",
                image_alt=f"Picture {i}" if i % 2 else None,
            ),
            summary=f"Summary {i} ünïcödé — “quoted”.",
            related=(Link(title=f"Related {i}", url=f"https://r.example/{i}"),),
        )
        for i in range(1, 8)
    )
    message, text, html = check_message(
        personalised(config, digest_of(*items)), config.site.base_url
    )
    assert message["Subject"] == "The Daily: Story 1"
    assert message["To"] == "Ann Example <ann@example.com>"
    assert message["List-Id"] == "The Daily <daily.news.example.org>"
    assert 'lang="en-GB"' in html
    assert "Summary 3 ünïcödé — “quoted”." in text
    assert "1 Test Street, Testville" in text and "1 Test Street, Testville" in html
    assert "fonts.googleapis" not in html


def test_personalising_equals_encoding_the_personal_text() -> None:
    """Swapping tokens into the encoded template gives the bytes a fresh encoding would."""
    import tempfile
    from pathlib import Path

    from tests.support.factories import config_dict

    config = make_config(
        Path(tempfile.mkdtemp()), **{k: v for k, v in config_dict().items() if k == "site"}
    )
    briefing = config.briefings["daily"]
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "-_"
    for shift in range(0, 80, 3):
        item = DigestItem(article=make_selected(1, title="x" * shift), summary="y " * shift)
        digest = digest_of(item)
        tokens = {p: "".join(rng.choice(alphabet) for _ in range(TOKEN_LENGTH)) for p in "upe"}
        placeholders = new_placeholders()
        kwargs = {"key": "daily", "site": config.site, "briefing": briefing}
        template = compose_variant(
            render_digest(digest, placeholders=placeholders, **kwargs),
            variant_key="k",
            site=config.site,
            briefing=briefing,
            placeholders=placeholders,
        ).template
        direct = compose_variant(
            render_digest(digest, placeholders=tokens, **kwargs),
            variant_key="k",
            site=config.site,
            briefing=briefing,
            placeholders=tokens,
        ).template
        assert template.slots >= 6  # three links in each part
        assert template.personalise_body(tokens) == direct.body
        assert template.head == direct.head


def test_to_header_encodes_names_and_blocks_header_injection() -> None:
    assert to_header("a@example.com", None) == b"To: a@example.com\r\n"
    assert to_header("a@example.com", "Ann Lee") == b"To: Ann Lee <a@example.com>\r\n"
    assert to_header("a@example.com", "O'Neill, Sam") == b'To: "O\'Neill, Sam" <a@example.com>\r\n'
    encoded = to_header("a@example.com", "Zoë\r\nBcc: victim@example.com")
    assert encoded.count(b"\r\n") == 1 and b"Bcc:" not in encoded.replace(b"Bcc=3A", b"")
    assert encoded.startswith(b"To: =?utf-8?")


def test_to_header_writes_every_name_as_the_email_package_does_at_every_length() -> None:
    # Names are written once and reused with each address; this must equal the email
    # package's own folding, up to and past the line length where it folds.
    names = [
        "García, Raj",
        "Sam O'Neill",
        "José Müller",
        "Lee, Hana",
        "J. Smith",
        'Ann "the reader" Lee',
        "Ann <Lee>",
        "(comment) name",
        "=?utf-8?q?x?=",
        "\\back",
        "中文 名字",
        "é" * 40,
        "=?utf-8?q?Ann?= Lee",
        "Ann  Lee,  Jr.",
        'a\\"b',
        "x. " * 24 + "x",
        "O'Brien-Smith, Mary-Jane (work)",
        "Björk Guðmundsdóttir-Longname Extraordinaire The Third of Her Name",
    ]
    for name in names:
        for local in range(1, 70, 3):
            address = "r" * local + "@example.org"
            expected = SMTP.header_factory(
                "To", str(Address(display_name=name, addr_spec=address))
            ).fold(policy=SMTP)
            assert to_header(address, name) == expected.encode("ascii"), (name, address)
            assert to_header(address, name) == expected.encode("ascii"), "cached the same"


def test_subject_cannot_inject_headers(tmp_path) -> None:
    config = make_config(tmp_path)
    item = DigestItem(
        article=make_selected(1, title="Breaking\r\nBcc: victim@example.com"), summary="s"
    )
    message, _, _ = check_message(personalised(config, digest_of(item)), config.site.base_url)
    assert message["Bcc"] is None
    assert message["Subject"] == "The Daily: Breaking Bcc: victim@example.com"


def test_html_part_stays_under_the_clip_size_by_dropping_lowest_items(tmp_path) -> None:
    config = make_config(
        tmp_path,
        briefings={
            "daily": {
                "title": "Big",
                "list_id": "big.example.org",
                "sections": ["world"],
                "max_items": 100,
                # The hundred items are alike on purpose: this is about size, not folding.
                "fold_threshold": 1.0,
            }
        },
    )
    long_body = " ".join(
        f"Sentence number {n} says something new about the story." for n in range(30)
    )
    candidates = {
        "world": [
            make_selected(
                i,
                title=f"Headline {i} " + "word " * 20,
                body_text=long_body,
                image_url=f"https://img.example/{i}.jpg",
                image_credit="Photo: agency " * 5,
            )
            for i in range(1, 101)
        ]
    }
    spec = VariantSpec("daily", ("world",), None, NOW, "en_GB", date(2026, 11, 26))
    big = config.model_copy(
        update={
            "sections": {"world": config.sections["world"].model_copy(update={"max_items": 100})}
        }
    )
    built = cut_variant(big, spec, VariantInputs(candidates=candidates, archive=Archive(())))
    assert built.composed.html_size < HTML_LIMIT
    assert 10 < len(built.selection.articles) < 100
    assert built.selection.dropped == 100 - len(built.selection.articles)
    assert any("left out" in note for note in built.notes)
    # The note names the first five headlines dropped for size, and counts the rest.
    [shed] = [note for note in built.notes if note.startswith("dropped to keep the HTML part")]
    kept = {article.id for article in built.selection.articles}
    named = [int(n) for n in re.findall(r"'Headline (\d+) ", shed)]
    assert len(named) == 5 and not kept & set(named)
    assert shed.startswith(f"dropped to keep the HTML part under {HTML_LIMIT:,} bytes: ")
    assert shed.endswith(f" and {100 - len(kept) - 5} more")


def test_relative_age_uses_the_locale(tmp_path) -> None:
    config = make_config(tmp_path)
    article = make_selected(1, published_at=NOW - timedelta(hours=8))
    old = make_selected(2, published_at=NOW - timedelta(days=30))
    rendered = render_digest(
        digest_of(
            DigestItem(article=article, summary="s"),
            DigestItem(article=old, summary="s"),
            locale="de_DE",
        ),
        key="daily",
        site=config.site,
        briefing=config.briefings["daily"],
        placeholders=new_placeholders(),
    )
    assert "vor 8 Stunden" in rendered.text
    assert "27.10.2026" in rendered.text
    assert 'lang="de-DE"' in rendered.html


def test_message_template_round_trips_through_storage(tmp_path) -> None:
    config = make_config(tmp_path)
    placeholders = new_placeholders()
    rendered = render_digest(
        digest_of(DigestItem(article=make_selected(1), summary="s")),
        key="daily",
        site=config.site,
        briefing=config.briefings["daily"],
        placeholders=placeholders,
    )
    template = compose_variant(
        rendered,
        variant_key="k",
        site=config.site,
        briefing=config.briefings["daily"],
        placeholders=placeholders,
    ).template
    again = MessageTemplate.from_bytes(template.to_bytes(), placeholders)
    tokens = {"u": "U" * 32, "p": "P" * 32, "e": "E" * 32}
    assert again.personalise_body(tokens) == template.personalise_body(tokens)
    assert datetime.now(UTC)  # keep the import honest


def test_feedback_id_names_briefing_date_and_sender_and_is_signed() -> None:
    key = feedback_key(b"secret")
    value = feedback_id("daily", date(2026, 11, 26), "News@News.Example.org", key)
    briefing, day, mac, sender = value.split(":")
    assert (briefing, day, sender) == ("daily", "20261126", "news.example.org")
    assert len(mac) == 12 and feedback_id_valid(value, key)
    assert not feedback_id_valid(value, feedback_key(b"another secret"))
    assert not feedback_id_valid(value.replace("daily", "weekly"), key)
    assert not feedback_id_valid("daily:20261126:news.example.org", key)


def test_the_preheader_is_hidden_without_tiny_or_invisible_font(tmp_path) -> None:
    config = make_config(tmp_path)
    rendered = render_digest(
        digest_of(DigestItem(article=make_selected(1), summary="s")),
        key="daily",
        site=config.site,
        briefing=config.briefings["daily"],
        placeholders=new_placeholders(),
    )
    hidden = re.search(r'<div style="(display:none;[^"]*)">([^<]+)</div>', rendered.html)
    assert hidden is not None and html.unescape(hidden.group(2)).strip() == rendered.preheader
    style = hidden.group(1)
    assert "font-size" not in style and "color" not in style and "opacity" not in style


def test_the_date_header_is_format_datetime_s_for_every_time_and_zone() -> None:
    # Messages of one second share a line; equal instants in other zones must not.
    base = datetime(2026, 11, 26, 6, 59, 58, tzinfo=UTC)
    zones = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]
    for step in range(0, 4_000_000, 250_000):  # microseconds, across second boundaries
        moment = base + timedelta(microseconds=step)
        for zone in zones:
            local = moment.astimezone(zone)
            assert date_header(local) == f"Date: {format_datetime(local)}\r\n".encode()
    naive = datetime(2026, 11, 26, 7, 0, 0, 500)
    assert date_header(naive) == f"Date: {format_datetime(naive)}\r\n".encode()


def test_a_site_template_edited_between_variants_is_rendered_as_edited(tmp_path) -> None:
    # Compiled templates are kept for the next variant; an edited file must not be served stale.
    config = make_config(tmp_path)
    folder = tmp_path / "site-templates"
    folder.mkdir()
    template = folder / "daily.txt.j2"
    digest = digest_of(DigestItem(article=make_selected(1), summary="s"))

    def text() -> str:
        return render_digest(
            digest,
            key="daily",
            site=config.site,
            briefing=config.briefings["daily"],
            placeholders=new_placeholders(),
            templates=folder,
        ).text

    template.write_text("first {{ title }}\n", encoding="utf-8")
    assert text() == text() == "first The Daily\n"
    template.write_text("second edition of {{ title }}\n", encoding="utf-8")
    assert text() == "second edition of The Daily\n"
