"""The pipeline as one pure function: cut a variant from in-memory candidates."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from briefing.domain.models import SelectedArticle
from briefing.domain.tokens import Signer
from briefing.pipeline.compose import feedback_id_valid, feedback_key
from briefing.pipeline.cut import VariantInputs, VariantSpec, cut_variant, summary_of
from briefing.pipeline.relate import Archive
from briefing.pipeline.render import new_placeholders
from tests.support.factories import NOW, make_config, make_selected

TOPICS = {
    1: ("Harbour reopens after storm", "Cranes lift cargo again at the eastern docks."),
    2: ("Bank raises interest rates", "Mortgage costs climb as the central bank acts."),
    3: ("Orchestra tours the north", "Violinists play village halls across the region."),
}


def story(id: int, section: str = "world", **overrides: object) -> SelectedArticle:
    title, body = TOPICS[id]
    values: dict[str, object] = {"title": title, "body_text": body, **overrides}
    return make_selected(id, section, **values)


SPEC = VariantSpec("daily", ("world", "business"), None, NOW, "en_GB", date(2026, 11, 26))


def inputs(*articles: SelectedArticle) -> VariantInputs:
    candidates: dict[str, list[SelectedArticle]] = {"world": [], "business": []}
    for article in articles:
        candidates[article.section].append(article)
    return VariantInputs(candidates=candidates, archive=Archive(articles))


def test_cut_runs_every_stage_in_the_spec_s_section_order(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    world = story(1, "world", dek="The harbour reopens.")
    business = story(2, "business", first_seen_at=NOW - timedelta(minutes=10))
    placeholders = new_placeholders()
    built = cut_variant(config, SPEC, inputs(world, business), placeholders=placeholders)
    assert [section.key for section in built.digest.sections] == ["world", "business"]
    assert [item.article.id for item in built.digest.items] == [1, 2]
    # The article's own dek is its summary; without one the summariser writes it.
    assert built.digest.items[0].summary == "The harbour reopens."
    assert built.digest.items[1].summary == summary_of(business, 60)
    assert built.rendered.item_count == 2 and "Harbour reopens" in built.rendered.text
    assert built.composed.html_size > 0 and not built.empty
    assert dict(built.placeholders) == placeholders
    assert built.spec is SPEC


def test_the_summariser_is_one_replaceable_call(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    calls: list[tuple[int, int]] = []

    def shout(article: SelectedArticle, words: int) -> str:
        calls.append((article.id, words))
        return article.title.upper()

    built = cut_variant(config, SPEC, inputs(story(1), story(2, "business")), summariser=shout)
    assert [item.summary for item in built.digest.items] == [
        "HARBOUR REOPENS AFTER STORM",
        "BANK RAISES INTEREST RATES",
    ]
    words = config.briefings["daily"].summary_words
    assert sorted(calls) == [(1, words), (2, words)]


def test_no_candidates_cut_an_empty_variant(tmp_path: Path) -> None:
    built = cut_variant(make_config(tmp_path), SPEC, inputs())
    assert built.empty and built.digest.items == []
    assert built.selection.dropped == 0


def test_the_same_inputs_cut_the_same_digest(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    articles = (story(1), story(2, "business"), story(3))
    placeholders = new_placeholders()
    first = cut_variant(config, SPEC, inputs(*articles), placeholders=placeholders)
    second = cut_variant(config, SPEC, inputs(*articles), placeholders=placeholders)
    assert first.digest == second.digest
    assert first.rendered.html == second.rendered.html
    assert first.spec.key == second.spec.key


def test_the_feedback_id_is_signed_with_the_key_handed_in_never_one_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path)
    monkeypatch.setenv("BRIEFING_SECRET_KEY", "a key the pipeline must not read")
    unsigned = cut_variant(config, SPEC, inputs(story(1)))
    assert b"Feedback-ID" not in unsigned.composed.template.head

    key = Signer([b"the caller's key"]).feedback_key
    signed = cut_variant(config, SPEC, inputs(story(1)), feedback_key=key)
    found = re.search(rb"Feedback-ID: ([^\r]+)\r\n", signed.composed.template.head)
    assert found is not None
    assert feedback_id_valid(found.group(1).decode(), feedback_key(b"the caller's key"))
    assert not feedback_id_valid(found.group(1).decode(), feedback_key(b"a key the pipeline"))
