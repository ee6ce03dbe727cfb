"""Plugin hooks: built-ins register like outside plugins; an outside plugin changes a run."""

from __future__ import annotations

import email
from collections.abc import Iterator, Mapping
from datetime import date
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from briefing import plugins
from briefing.config import Config
from briefing.deliver.transports import make_transport, transport_factories
from briefing.domain.models import Digest, DigestItem, DigestSection
from briefing.domain.states import DeliveryState
from briefing.domain.tokens import Purpose, Signer
from briefing.errors import BriefingError
from briefing.ingest import ingest
from briefing.ingest.readers import FEED, JSON_FEED, MARKDOWN, reader_for
from briefing.pipeline.cut import VariantInputs, VariantSpec, cut_variant
from briefing.pipeline.relate import Archive
from briefing.pipeline.render import new_placeholders, render_digest
from briefing.pipeline.summarise import summarise as extractive
from briefing.plugins import PluginError, hookimpl
from briefing.store import open_database
from briefing.store.schema import Article
from tests.plugins import stamp
from tests.support.factories import NOW, make_config, make_selected

SPEC = VariantSpec("daily", ("world",), None, NOW, "en_GB", date(2026, 11, 26))
BODY = (
    "The council approved the new budget on Tuesday after a long debate. "
    "Spending on schools rises by four percent. "
    "Critics said the plan leaves roads without repairs for another year."
)


@pytest.fixture(autouse=True)
def fresh_manager() -> Iterator[None]:
    """Build the plugin manager afresh for each test and forget it afterwards."""
    plugins.reset_plugins()
    stamp.CALLS.clear()
    yield
    plugins.reset_plugins()


def register(plugin: object, name: str) -> None:
    plugins.plugin_manager().register(plugin, name=name)


def candidates() -> dict[str, list[Any]]:
    return {"world": [make_selected(i, title=f"Budget story {i}", body_text=BODY) for i in (1, 2)]}


def recipients_messages(built: Any, count: int) -> list[bytes]:
    signer = Signer([b"k"])
    messages = []
    for n in range(count):
        tokens = {p.value: signer.sign(p, n + 1) for p in Purpose}
        messages.append(
            built.composed.template.personalise(
                recipient=f"reader{n}@example.com",
                name=None,
                message_id=f"<m{n}@news.example.org>",
                date=NOW,
                tokens=tokens,
                list_unsubscribe=(f"https://news.example.org/u/{tokens['u']}",),
            )
        )
    return messages


def test_builtins_register_through_the_hooks() -> None:
    manager = plugins.plugin_manager()
    assert set(plugins.BUILTINS) <= {name for name, _ in manager.list_name_plugin()}
    readers = plugins.source_readers()
    assert readers == {"feed": FEED, "jsonfeed": JSON_FEED, "markdown": MARKDOWN}
    picked: dict[str, object] = {
        name: reader_for(Path(name)) for name in ("a.md", "a.JSON", "a.xml")
    }
    assert picked == {"a.md": MARKDOWN, "a.JSON": JSON_FEED, "a.xml": FEED}
    assert plugins.summarise("Budget", BODY, 20) == extractive("Budget", BODY, 20)
    assert set(plugins.plugin_transports()) == {"outbox", "smtp"}
    assert plugins.extra_headers(None, "k") == {}


def stamp_project(folder: Path, **overrides: Any) -> Config:
    """A project whose one section reads ``content/*.stamp`` files."""
    sections = {"world": {"title": "World", "sources": ["content/*.stamp"], "max_items": 3}}
    briefings = {
        "daily": {
            "title": "The Daily",
            "list_id": "daily.news.example.org",
            "sections": ["world"],
            "send_time": "07:00",
            "timezone": "Europe/London",
        }
    }
    (folder / "content").mkdir(parents=True)
    return make_config(folder, sections=sections, briefings=briefings, **overrides)


def test_a_plugin_reader_reads_its_files_and_ingest_sanitises_them(tmp_path: Path) -> None:
    config = stamp_project(tmp_path)
    (tmp_path / "content" / "notes.stamp").write_text(
        "Council votes | <p onclick='x()'>Budget <script>alert(1)</script>passed.</p>\n"
        " | no headline here\n"
    )
    register(stamp, "stamp")
    assert reader_for(Path("x.stamp")).kind == "stamp"
    database = open_database(config.database)
    try:
        [report] = ingest(config, database, NOW)
        assert (report.new, report.failures) == (1, [])
        assert report.skipped == ["content/notes.stamp: line 2: no headline"]
        with database.transaction() as session:
            [article] = session.scalars(select(Article)).all()
            assert article.title == "Council votes"
            assert article.body_html == "<p>Budget passed.</p>"
            assert article.body_text == "Budget passed."
    finally:
        database.dispose()


def test_ingest_refuses_an_oversized_file_before_a_plugin_reader_sees_it(tmp_path: Path) -> None:
    config = stamp_project(tmp_path, ingest={"max_bytes": 1000})
    (tmp_path / "content" / "big.stamp").write_text("Big story | " + "x" * 2000 + "\n")
    register(stamp, "stamp")
    database = open_database(config.database)
    try:
        [report] = ingest(config, database, NOW)
    finally:
        database.dispose()
    assert report.failures == ["content/big.stamp: file is 2,013 bytes, over the 1,000-byte limit"]
    assert report.new == 0


def test_plugin_summariser_replaces_the_builtin_for_a_run(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    inputs = VariantInputs(candidates=candidates(), archive=Archive(()))
    before = cut_variant(config, SPEC, inputs)
    assert all("Stamp summary" not in item.summary for item in before.digest.items)

    register(stamp, "stamp")
    built = cut_variant(config, SPEC, inputs)
    summaries = [item.summary for item in built.digest.items]
    assert summaries == [f"Stamp summary of {item.article.title}." for item in built.digest.items]
    assert "Stamp summary of Budget story 1." in built.rendered.text


def test_a_summariser_that_passes_leaves_it_to_the_next() -> None:
    class Shy:
        @hookimpl(tryfirst=True)
        def briefing_summarise(self) -> None:
            return None

    register(Shy(), "shy")
    assert plugins.summarise("Budget", BODY, 20) == extractive("Budget", BODY, 20)


def test_a_summariser_answering_with_something_else_is_named() -> None:
    class Sloppy:
        @hookimpl
        def briefing_summarise(self) -> int:
            return 42

    register(Sloppy(), "sloppy")
    with pytest.raises(
        PluginError, match=r"plugin 'sloppy', hook briefing_summarise: returned int"
    ):
        plugins.summarise("Budget", BODY, 20)


def test_extra_header_once_per_variant_identical_for_every_recipient(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    register(stamp, "stamp")
    built = cut_variant(config, SPEC, VariantInputs(candidates=candidates(), archive=Archive(())))
    calls = stamp.CALLS["briefing_extra_headers"]
    assert calls == 1  # one render pass, one call: none per recipient
    messages = recipients_messages(built, 3)
    assert stamp.CALLS["briefing_extra_headers"] == calls
    expected = f"X-Stamp: {config.briefings['daily'].title} / {SPEC.key[:12]}\r\n".encode()
    for raw in messages:
        assert raw.count(b"\r\nX-Stamp: ") == 1
        assert expected in raw
        parsed = email.message_from_bytes(raw, policy=SMTP)
        assert parsed.get_all("X-Stamp") == [expected[9:-2].decode()]
    # Past the personal headers (Date, To, Message-ID, List-Unsubscribe), the head is the
    # variant's, byte for byte, for every recipient.
    heads = {raw.split(b"\r\n\r\n", 1)[0].split(b"\r\nFrom: ", 1)[1] for raw in messages}
    assert len(heads) == 1
    assert built.composed.template.head in messages[0]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Subject": "Win"}, "header Subject is set by briefing"),
        (
            {"list-unsubscribe": "<mailto:x@example.com>"},
            "header list-unsubscribe is set by briefing",
        ),
        ({"DKIM-Signature": "v=1"}, "header DKIM-Signature is set by briefing"),
        ({"Message-ID": "<x@y>"}, "header Message-ID is set by briefing"),
        ({"X-Ok": "one\r\nBcc: victim@example.com"}, "contains CR, LF"),
        ({"X-Ok": "one\nline"}, "contains CR, LF"),
        ({"X Bad": "v"}, "not a valid header name"),
        ({"X-Bad:": "v"}, "not a valid header name"),
        ({"X-Num": 3}, "value must be a string"),
    ],
)
def test_bad_headers_are_refused_naming_the_plugin(
    tmp_path: Path, headers: Mapping[str, Any], reason: str
) -> None:
    class Rogue:
        @hookimpl
        def briefing_extra_headers(self) -> Mapping[str, Any]:
            return headers

    config = make_config(tmp_path)
    register(Rogue(), "rogue-headers")
    with pytest.raises(PluginError) as caught:
        cut_variant(config, SPEC, VariantInputs(candidates=candidates(), archive=Archive(())))
    message = str(caught.value)
    assert "plugin 'rogue-headers'" in message
    assert "briefing_extra_headers" in message
    assert reason in message


def test_template_filter_and_context_reach_the_templates(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    folder = tmp_path / "site-templates"
    folder.mkdir()
    (folder / "daily.txt.j2").write_text("{{ title | shout }} {{ stamp_motto }}\n")
    register(stamp, "stamp")
    digest = cut_variant(
        config, SPEC, VariantInputs(candidates=candidates(), archive=Archive(()))
    ).digest
    stamp.CALLS.clear()
    rendered = render_digest(
        digest,
        key="daily",
        site=config.site,
        briefing=config.briefings["daily"],
        placeholders=new_placeholders(),
        templates=folder,
    )
    assert rendered.text == f"{digest.title.upper()}! stamped for daily\n"
    assert stamp.CALLS == {"briefing_template_filters": 1, "briefing_template_context": 1}


def test_builtin_template_names_cannot_be_replaced(tmp_path: Path) -> None:
    class Clobber:
        @hookimpl
        def briefing_template_context(self) -> Mapping[str, Any]:
            return {"links": {}}

    config = make_config(tmp_path)
    register(Clobber(), "clobber")
    item = DigestItem(article=make_selected(1), summary="s")
    with pytest.raises(PluginError, match=r"plugin 'clobber'.*context name 'links' is built in"):
        render_digest(
            Digest(
                briefing="daily",
                title="The Daily",
                locale="en_GB",
                issue_date=date(2026, 11, 26),
                cut_at=NOW,
                sections=(DigestSection(key="world", title="World", items=(item,)),),
            ),
            key="daily",
            site=config.site,
            briefing=config.briefings["daily"],
            placeholders=new_placeholders(),
        )


def test_transport_hook_adds_the_plugin_transport_beside_the_builtins(tmp_path: Path) -> None:
    register(stamp, "stamp")
    factories = transport_factories()
    assert factories["stamp-drop"] is stamp.drop_transport
    assert {"outbox", "smtp"} <= set(factories)
    config = make_config(tmp_path, delivery={"transport": "stamp-drop"})
    transport = make_transport(config)
    assert isinstance(transport, stamp.DropTransport)
    result = transport.send("bounce@example.org", "ann@example.com", b"Subject: hi\r\n\r\nbody")
    assert result.outcome == DeliveryState.SENT
    [path] = (tmp_path / "var" / "stamp-drop").iterdir()
    assert path.read_bytes() == b"Subject: hi\r\n\r\nbody"


def test_an_unknown_transport_name_says_which_exist(tmp_path: Path) -> None:
    config = make_config(tmp_path, delivery={"transport": "pigeon"})
    with pytest.raises(BriefingError) as caught:
        make_transport(config)
    assert "'pigeon' is not a known transport" in caught.value.message
    assert "outbox, smtp" in (caught.value.hint or "")


def test_the_entry_point_group_loads_an_installed_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "briefing_stamp-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: briefing-stamp\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[briefing]\nstamp = tests.plugins.stamp\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset_plugins()
    manager = plugins.plugin_manager()
    assert manager.get_plugin("stamp") is stamp
    assert plugins.summarise("Budget", BODY, 20) == "Stamp summary of Budget."
    plugins.reset_plugins()
    monkeypatch.undo()
    assert plugins.plugin_manager().get_plugin("stamp") is None
