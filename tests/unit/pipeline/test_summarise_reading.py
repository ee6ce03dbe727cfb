"""Tests that summaries read on their own under a headline.

The articles are invented for these tests. Each check that a rule changes the
summary also shows the choice the scores alone would make, so a test cannot
pass only because the scores happened to avoid the case.
"""

from __future__ import annotations

import pytest

from briefing.pipeline.summarise import (
    DEFAULT_WEIGHTS,
    Leaning,
    Weights,
    _best_fit,
    _leans_back,
    _named_in,
    _score_sentences,
    _summarise,
    count_words,
    split_sentences,
    summarise,
)

RESULTS_HEADLINE = "Norland Shipping profits rise on Elwyn berths"
RESULTS = (
    "Shares in the harbour sector moved little on Tuesday.",
    "Norland Shipping, the largest operator at Port Elwyn, published its annual results.",
    (
        "Its profits rose 12% to $310 million as the new Elwyn berths let Norland Shipping "
        "ships dock without waiting."
    ),
    "The weather was mild.",
    "Norland Shipping said profits from the Elwyn berths would keep rising next year.",
    "However, analysts said Norland Shipping profits depend on Elwyn berths staying open.",
    "A public meeting is planned for March.",
)
RESULTS_BODY = "\n\n".join(RESULTS)

# The same story with the contrast placed after a sentence no summary keeps.
CONTRAST = (
    "Norland Shipping, the largest operator at Port Elwyn, published its annual results.",
    "Norland Shipping said profits from the Elwyn berths would keep rising next year.",
    "The weather was mild.",
    "However, analysts said Norland Shipping profits depend on Elwyn berths staying open.",
)
CONTRAST_BODY = "\n\n".join(CONTRAST)

EXPANSION_HEADLINE = "Port Elwyn approves harbour expansion"
EXPANSION_LEDE = (
    "Port Elwyn approved new berths for Norland Shipping on Tuesday in a harbour expansion "
    "plan worth millions."
)
EXPANSION_BODY = "\n\n".join(
    (
        EXPANSION_LEDE,
        "Norland Shipping will run the new berths and says its largest ships will dock there.",
        "Dockers welcomed the new berths, which should bring about 900 jobs to the port.",
        "Norland Shipping said the new berths would let its largest ships dock at any tide.",
        "Critics said the port had not studied the effect of the new berths on fishing.",
        "The berths will open next spring, Norland Shipping said.",
        "A public meeting on the berths is planned for March.",
    )
)


def scores_alone(headline: str, body: str, words: int) -> str:
    """Return the summary the scores would pick with no reading rules at all."""
    sentences = split_sentences(body)
    scores = _score_sentences(headline, sentences, DEFAULT_WEIGHTS)
    lengths = [count_words(sentence) for sentence in sentences]
    values: list[float | None] = [s * n for s, n in zip(scores, lengths, strict=True)]
    chosen = _best_fit(values, lengths, [None] * len(sentences), words)
    return " ".join(sentences[i] for i in chosen)


def test_pronoun_opening_is_avoided() -> None:
    assert scores_alone(RESULTS_HEADLINE, RESULTS_BODY, 20).startswith("Its profits")
    summary = summarise(RESULTS_HEADLINE, RESULTS_BODY, words=20)
    assert summary
    assert not summary.startswith("Its")
    assert count_words(summary) <= 20


def test_pronoun_sentence_comes_with_the_sentence_it_leans_on() -> None:
    summary = summarise(RESULTS_HEADLINE, RESULTS_BODY, words=60)
    assert f"{RESULTS[1]} {RESULTS[2]}" in summary
    assert summary.startswith(RESULTS[1])


def test_connective_needs_its_preceding_sentence() -> None:
    assert "However," in scores_alone(RESULTS_HEADLINE, CONTRAST_BODY, 40)
    summary = summarise(RESULTS_HEADLINE, CONTRAST_BODY, words=40)
    assert summary
    assert "However," not in summary
    assert "The weather was mild." not in summary


def test_connective_after_its_preceding_sentence_is_kept() -> None:
    summary = summarise(RESULTS_HEADLINE, RESULTS_BODY, words=25)
    assert summary == f"{RESULTS[4]} {RESULTS[5]}"


def test_lede_that_carries_the_news_is_preferred() -> None:
    without = _summarise(EXPANSION_HEADLINE, EXPANSION_BODY, 39, Weights(lede=0.0))
    assert EXPANSION_LEDE not in without
    summary = summarise(EXPANSION_HEADLINE, EXPANSION_BODY, words=39)
    assert summary.startswith(EXPANSION_LEDE)
    assert count_words(summary) <= 39


def test_article_that_only_leans_back_still_gets_a_summary() -> None:
    body = "It rained all week. They stayed indoors. But the roof held."
    assert summarise("Storm week", body, words=5) == "It rained all week."


@pytest.mark.parametrize("budget", range(4, 80, 3))
@pytest.mark.parametrize("body", [RESULTS_BODY, CONTRAST_BODY, EXPANSION_BODY])
def test_budget_kept_and_sentences_whole(body: str, budget: int) -> None:
    summary = summarise(RESULTS_HEADLINE, body, words=budget)
    assert count_words(summary) <= budget
    sentences = split_sentences(body)
    if count_words(sentences[0]) <= budget:
        assert summary
        assert all(sentence in sentences for sentence in split_sentences(summary))
    first = split_sentences(summary)[0] if summary else ""
    names = _named_in(RESULTS_HEADLINE, sentences)
    if first and any(_leans_back(s, RESULTS_HEADLINE, names) is None for s in sentences):
        assert _leans_back(first, RESULTS_HEADLINE, names) is None


@pytest.mark.parametrize(
    ("sentence", "headline", "expected"),
    [
        ("Its profits rose 12%.", "Profits rise", Leaning.REFERENCE),
        ("He said the deal was done.", "Deal done", Leaning.REFERENCE),
        ('"This is a great day," she said.', "Great day", Leaning.REFERENCE),
        ("It's a record.", "Record set", Leaning.REFERENCE),
        ("These figures are final.", "Figures out", Leaning.REFERENCE),
        ("However, analysts were wary.", "Shares rise", Leaning.CONNECTIVE),
        ("But the outlook was poor.", "Outlook poor", Leaning.CONNECTIVE),
        ("In addition, the firm cut jobs.", "Jobs cut", Leaning.CONNECTIVE),
        ("Meanwhile, rates held.", "Rates hold", Leaning.CONNECTIVE),
        ("The company cut 200 jobs.", "Jobs cut at plant", Leaning.REFERENCE),
        ("The firm's shares fell.", "Shares fall", Leaning.REFERENCE),
        ("The company cut 200 jobs.", "Company cuts jobs", None),
        ("So far, 200 jobs have gone.", "Jobs cut", None),
        ("Then-president Smith signed it.", "Law signed", None),
        ("The Bank of England held rates.", "Rates held", None),
        ("Norland Shipping cut 200 jobs.", "Jobs cut", None),
        ("There were 200 jobs lost.", "Jobs cut", None),
    ],
)
def test_leaning_rules(sentence: str, headline: str, expected: Leaning | None) -> None:
    assert _leans_back(sentence, headline, frozenset()) is expected


def test_stand_in_anchored_by_a_name_in_the_headline() -> None:
    sentences = ["Shares in Norland Shipping fell on Monday.", "The company cut 200 jobs."]
    names = _named_in("Norland cuts jobs", sentences)
    assert names == {"norland"}
    # Capitalised only where a sentence starts, a word is not taken for a name.
    assert not _named_in("Shares fall", sentences)
    assert _leans_back(sentences[1], "Norland cuts jobs", names) is None
