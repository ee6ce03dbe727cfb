"""Per-recipient personalisation: personal links, tokens, List-Unsubscribe."""

from __future__ import annotations

from pathlib import Path

from briefing.domain.tokens import ROUTES, Purpose, Signer
from briefing.pipeline.personalise import (
    PERSONAL_PURPOSES,
    inert_tokens,
    list_unsubscribe,
    personal_link,
    personal_tokens,
)
from tests.support.factories import KEY, config_dict, make_config

SIGNER = Signer([KEY])


def test_every_purpose_has_one_route_letter() -> None:
    assert set(ROUTES) == set(Purpose)
    assert len(set(ROUTES.values())) == len(ROUTES)
    assert Purpose.CONFIRM.route == "c"
    assert personal_link("https://x.org/b", Purpose.VIEW, "TOKEN") == "https://x.org/b/e/TOKEN"


def test_personal_tokens_act_on_the_subscription_and_the_edition() -> None:
    tokens = personal_tokens(SIGNER, 7, 42)
    assert list(tokens) == [purpose.value for purpose in PERSONAL_PURPOSES]
    assert SIGNER.verify(tokens["u"], Purpose.UNSUBSCRIBE) == 7
    assert SIGNER.verify(tokens["p"], Purpose.PREFERENCES) == 7
    assert SIGNER.verify(tokens["e"], Purpose.VIEW) == 42
    assert inert_tokens(SIGNER) == {p.value: SIGNER.inert(p) for p in PERSONAL_PURPOSES}


def test_list_unsubscribe_gives_the_one_click_url_then_the_mailto(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert list_unsubscribe(config, "TOK") == (
        "https://news.example.org/b/u/TOK",
        "mailto:unsubscribe@news.example.org?subject=unsubscribe%20TOK",
    )
    site = dict(config_dict()["site"])
    del site["unsubscribe_mailto"]
    bare = make_config(tmp_path / "bare", site=site)
    assert list_unsubscribe(bare, "TOK") == ("https://news.example.org/b/u/TOK",)
