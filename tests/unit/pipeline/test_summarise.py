"""Tests for sentence splitting and extractive summaries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from briefing.pipeline.summarise import count_words, split_sentences, summarise


def shared_data() -> Path:
    """Return the shared development data folder (may not exist)."""
    override = os.environ.get("BRIEFING_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[4] / "shared" / "data"


# An invented wire story, written for these tests, with the joins feeds produce.
GLUED_BODY = (
    "The harbour authority in Port Elwyn approved a $2.4 billion expansion with Norland "
    "Shipping on Tuesday.The plan adds four deep-water berths by 2027. Mr. Okafor, who "
    'chairs the authority, said traffic grew 3.5% last year."We cannot wait," he said.'
    '"The berths are full."Dockers in the U.S. and Europe are watching closely.'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Russia signed the deal with Moscow.The decision surprised analysts.",
            ["Russia signed the deal with Moscow.", "The decision surprised analysts."],
        ),
        (
            "Officials in the U.S. said so. Mr. Brown and Dr. Lee agreed.",
            ["Officials in the U.S. said so.", "Mr. Brown and Dr. Lee agreed."],
        ),
        (
            "The firm paid $1.1 billion, up 3.5% on 2.25 times the offer. Shares rose.",
            ["The firm paid $1.1 billion, up 3.5% on 2.25 times the offer.", "Shares rose."],
        ),
        (
            "J. K. Rowling wrote it. Her agent agreed.",
            ["J. K. Rowling wrote it.", "Her agent agreed."],
        ),
        (
            "Sales fell... Then they recovered. Prices held and... nobody noticed.",
            ["Sales fell...", "Then they recovered.", "Prices held and... nobody noticed."],
        ),
        (
            '"It is over," he said." The next match is in May.',
            ['"It is over," he said."', "The next match is in May."],
        ),
        (
            '"It is over," he said. "We go home." The team left.',
            ['"It is over," he said.', '"We go home."', "The team left."],
        ),
        (
            "Is it over? Yes! The fans left. Yahoo! said nothing.",
            ["Is it over?", "Yes!", "The fans left.", "Yahoo! said nothing."],
        ),
        (
            "First paragraph has no stop\n\nSecond one does.\nThird line here.",
            ["First paragraph has no stop", "Second one does.", "Third line here."],
        ),
        (
            'He quit on Monday."I am tired," he said."Nobody listens."The club agreed.',
            [
                "He quit on Monday.",
                '"I am tired," he said.',
                '"Nobody listens."',
                "The club agreed.",
            ],
        ),
        (
            "He moved to the U.S. The move was a surprise. Apple Inc. rose.",
            ["He moved to the U.S.", "The move was a surprise.", "Apple Inc. rose."],
        ),
        ("  \n\n ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_glued_fixture() -> None:
    assert split_sentences(GLUED_BODY) == [
        (
            "The harbour authority in Port Elwyn approved a $2.4 billion expansion with "
            "Norland Shipping on Tuesday."
        ),
        "The plan adds four deep-water berths by 2027.",
        "Mr. Okafor, who chairs the authority, said traffic grew 3.5% last year.",
        '"We cannot wait," he said.',
        '"The berths are full."',
        "Dockers in the U.S. and Europe are watching closely.",
    ]


def test_split_seed_article() -> None:
    seed = shared_data() / "seed" / "india-s400-world.txt"
    if not seed.exists():
        pytest.skip(f"shared development data not found at {seed}")
    body = seed.read_text(encoding="utf-8").split("\n", 1)[0]
    sentences = split_sentences(body)
    assert sentences[0].startswith("India has approved a $1.1 billion deal")
    assert sentences[0].endswith("reduce military ties with Moscow.")
    assert sentences[1].startswith("The decision underscores India's complex position")
    assert sentences[3].startswith("The new contract expands India's existing S-400")
    assert sentences[5] == "The timing is notable."
    assert not any(".The " in s or s.startswith(".") for s in sentences)


def test_count_words() -> None:
    assert count_words("  one two\nthree  ") == 3
    assert count_words("") == 0


PARAGRAPHS = (
    (
        "Norland Shipping will run the new berths at Port Elwyn from next spring, the "
        "harbour authority said on Tuesday."
    ),
    (
        "The authority approved the $2.4 billion expansion after a two-year review of "
        "shipping traffic and dock capacity."
    ),
    "Dockers welcomed the berths, which should bring about 900 jobs to the port.",
    "The weather was mild.",
    (
        "Norland Shipping said the expansion of Port Elwyn would let its largest ships "
        "dock without waiting for the tide."
    ),
    "Critics said the harbour authority had not studied the effect on fishing.",
    "A public meeting on the expansion is planned for March.",
)
LONG_BODY = "\n\n".join(PARAGRAPHS)


@pytest.mark.parametrize("budget", [5, 12, 20, 30, 45, 60, 200])
def test_budget_never_exceeded(budget: int) -> None:
    summary = summarise("Port Elwyn approves harbour expansion", LONG_BODY, words=budget)
    assert summary
    assert count_words(summary) <= budget


def test_summary_is_sentences_in_article_order() -> None:
    sentences = split_sentences(LONG_BODY)
    summary = summarise("Port Elwyn approves harbour expansion", LONG_BODY, words=45)
    picked = split_sentences(summary)
    assert len(picked) >= 2
    positions = [sentences.index(sentence) for sentence in picked]
    assert positions == sorted(positions)
    assert summary.endswith(".")


def test_summary_prefers_the_story_over_filler() -> None:
    summary = summarise("Port Elwyn approves harbour expansion", LONG_BODY, words=60)
    assert "Norland Shipping will run the new berths" in summary
    assert "The weather was mild." not in summary


def test_summary_drops_repeated_sentences() -> None:
    lead = "Norland Shipping will run the new berths at Port Elwyn from next spring."
    body = f"{lead}\n\n{lead}\n\nThe authority approved it on Tuesday after a long review."
    summary = summarise("Port Elwyn expansion", body, words=60)
    assert summary.count("Norland Shipping will run") == 1


def test_summary_is_deterministic() -> None:
    first = summarise("Port Elwyn approves harbour expansion", LONG_BODY, words=30)
    assert all(
        summarise("Port Elwyn approves harbour expansion", LONG_BODY, words=30) == first
        for _ in range(5)
    )


def test_long_first_sentence_is_cut_with_ellipsis() -> None:
    first = " ".join(f"word{i}," for i in range(80)) + " end."
    summary = summarise("Headline", f"{first} A short second sentence.", words=60)
    assert summary.endswith("\u2026")
    assert count_words(summary) == 60
    assert summary.startswith("word0, word1,")
    assert "word59\u2026" in summary
    assert "word60" not in summary


def test_empty_body() -> None:
    assert summarise("Headline", "") == ""
    assert summarise("Headline", " \n\n ") == ""


def test_short_article_is_returned_whole() -> None:
    body = "The mayor resigned on Friday. Her deputy, elected with the mayor in 2019, takes over."
    assert summarise("Mayor resigns", body) == body
