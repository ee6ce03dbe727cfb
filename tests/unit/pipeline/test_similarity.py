"""Tests for related-article similarity and same-story folding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from briefing.pipeline.similarity import FOLD_THRESHOLD, Doc, SimilarityIndex, build_index, fold

NOON = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=3)


def make_doc(doc_id: str, title: str, body: str, hours: float = 0.0) -> Doc:
    """Return a Doc dated ``hours`` after a fixed noon."""
    return Doc(id=doc_id, title=title, body=body, at=NOON + timedelta(hours=hours))


# Invented stories written for these tests: two outlets cover one harbour vote,
# a third article is about something else.
HARBOUR_A = make_doc(
    "harbour-a",
    "Port Elwyn harbour expansion approved",
    "The Port Elwyn harbour authority approved a $2.4 billion expansion on Tuesday, "
    "adding four deep-water berths run by Norland Shipping. Dockers welcomed the vote.",
)
HARBOUR_B = make_doc(
    "harbour-b",
    "Norland Shipping wins Port Elwyn berths as expansion gets green light",
    "Norland Shipping will operate four new deep-water berths after the Port Elwyn "
    "harbour authority voted for the $2.4 billion expansion, officials said.",
    hours=5,
)
STORM = make_doc(
    "storm",
    "Snowstorm closes Valdoria mountain passes",
    "Heavy snow closed three mountain passes in Valdoria overnight, stranding lorries "
    "and cutting power to villages, the regional weather office said.",
    hours=1,
)
HARBOUR_LATER = make_doc(
    "harbour-later",
    "Port Elwyn harbour expansion approved",
    "The Port Elwyn harbour authority approved a $2.4 billion expansion, adding four "
    "deep-water berths run by Norland Shipping. Dockers welcomed the vote.",
    hours=24 * 10,
)


def test_same_story_scores_above_other_story() -> None:
    index = SimilarityIndex([HARBOUR_A, HARBOUR_B, STORM])
    same = index.similarity("harbour-a", "harbour-b")
    other = index.similarity("harbour-a", "storm")
    assert 0.0 <= other < same <= 1.0
    assert same == pytest.approx(index.similarity("harbour-b", "harbour-a"))


def test_neighbours_best_first_within_window() -> None:
    index = build_index([HARBOUR_A, STORM, HARBOUR_B, HARBOUR_LATER])
    found = index.neighbours("harbour-a", k=5, window=WINDOW, threshold=0.0)
    assert [doc_id for doc_id, _ in found] == ["harbour-b", "storm"]
    assert found[0][1] > found[1][1]


def test_window_excludes_old_coverage_of_the_same_story() -> None:
    index = SimilarityIndex([HARBOUR_A, HARBOUR_B, HARBOUR_LATER])
    near = index.neighbours("harbour-a", k=5, window=WINDOW, threshold=0.0)
    assert "harbour-later" not in [doc_id for doc_id, _ in near]
    wide = index.neighbours("harbour-a", k=5, window=timedelta(days=30), threshold=0.0)
    assert "harbour-later" in [doc_id for doc_id, _ in wide]


def test_threshold_drops_weak_matches() -> None:
    index = SimilarityIndex([HARBOUR_A, HARBOUR_B, STORM])
    cut = (index.similarity("harbour-a", "harbour-b") + index.similarity("harbour-a", "storm")) / 2
    found = index.neighbours("harbour-a", k=5, window=WINDOW, threshold=cut)
    assert [doc_id for doc_id, _ in found] == ["harbour-b"]
    assert index.neighbours("harbour-a", k=5, window=WINDOW, threshold=1.01) == []


def test_k_and_exclude() -> None:
    index = SimilarityIndex([HARBOUR_A, HARBOUR_B, STORM])
    assert [i for i, _ in index.neighbours("harbour-a", k=1, window=WINDOW, threshold=0.0)] == [
        "harbour-b"
    ]
    found = index.neighbours(
        "harbour-a", k=5, window=WINDOW, threshold=0.0, exclude={"harbour-b", "unknown"}
    )
    assert [doc_id for doc_id, _ in found] == ["storm"]


def test_equal_scores_keep_input_order() -> None:
    twin_one = make_doc("twin-1", STORM.title, STORM.body, hours=2)
    twin_two = make_doc("twin-2", STORM.title, STORM.body, hours=2)
    index = SimilarityIndex([HARBOUR_A, twin_two, twin_one, STORM])
    found = index.neighbours("harbour-a", k=3, window=WINDOW, threshold=0.0)
    scores = dict(found)
    assert scores["twin-1"] == scores["twin-2"]
    ids = [doc_id for doc_id, _ in found]
    assert ids.index("twin-2") < ids.index("twin-1")


def test_neighbours_are_deterministic() -> None:
    docs = [HARBOUR_A, HARBOUR_B, STORM, HARBOUR_LATER]
    first = SimilarityIndex(docs).neighbours("harbour-b", k=3, window=WINDOW, threshold=0.0)
    again = SimilarityIndex(docs).neighbours("harbour-b", k=3, window=WINDOW, threshold=0.0)
    assert first == again


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="harbour-a"):
        SimilarityIndex([HARBOUR_A, HARBOUR_A])


def test_fold_groups_the_same_story() -> None:
    assert fold([HARBOUR_A, STORM, HARBOUR_B]) == [["harbour-a", "harbour-b"], ["storm"]]
    assert fold([STORM, HARBOUR_B, HARBOUR_A]) == [["storm"], ["harbour-b", "harbour-a"]]


def test_fold_keeps_stories_far_apart_in_time_separate() -> None:
    groups = fold([HARBOUR_A, HARBOUR_LATER, STORM])
    assert groups == [["harbour-a"], ["harbour-later"], ["storm"]]


def test_fold_threshold() -> None:
    docs = [HARBOUR_A, HARBOUR_B, STORM]
    assert fold(docs, threshold=0.99) == [["harbour-a"], ["harbour-b"], ["storm"]]
    assert fold(docs, threshold=None) == fold(docs, threshold=FOLD_THRESHOLD)


def test_fold_puts_every_doc_in_exactly_one_group() -> None:
    docs = [HARBOUR_A, HARBOUR_B, STORM, HARBOUR_LATER]
    groups = fold(docs)
    flat = [doc_id for group in groups for doc_id in group]
    assert sorted(flat) == sorted(doc.id for doc in docs)
    assert len(flat) == len(set(flat))
    assert fold(docs) == groups


def test_fold_small_inputs() -> None:
    assert fold([]) == []
    assert fold([STORM]) == [["storm"]]


def test_articles_without_words_do_not_break_the_index() -> None:
    blank = make_doc("blank", "", "")
    stop_words = make_doc("stop", "The", "It is what it is.", hours=1)
    index = SimilarityIndex([blank, stop_words])
    assert index.similarity("blank", "stop") == 0.0
    assert index.neighbours("blank", k=2, window=WINDOW, threshold=0.0) == [("stop", 0.0)]
    assert fold([blank, stop_words]) == [["blank"], ["stop"]]
    assert fold([make_doc("a", "", ""), make_doc("b", "", "")]) == [["a"], ["b"]]


def test_groups_of_a_subset_use_the_whole_index() -> None:
    index = SimilarityIndex([STORM, HARBOUR_A, HARBOUR_LATER, HARBOUR_B])
    assert index.groups(["harbour-b", "storm", "harbour-a"]) == [
        ["harbour-b", "harbour-a"],
        ["storm"],
    ]
    assert index.groups(["storm"]) == [["storm"]]
    assert "harbour-a" in index and "elsewhere" not in index


def test_scores_match_the_matrix_however_often_they_are_asked_for() -> None:
    docs = [HARBOUR_A, HARBOUR_B, STORM, HARBOUR_LATER]
    fresh = SimilarityIndex(docs).matrix()
    index = SimilarityIndex(docs)
    assert index.scores(["storm"]) == pytest.approx(fresh[[2]])
    twice = index.scores(["harbour-b", "storm", "harbour-b"])
    assert twice == pytest.approx(fresh[[1, 2, 1]])
    assert index.scores([]).shape == (0, 4)
