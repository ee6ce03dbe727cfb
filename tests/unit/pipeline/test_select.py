"""Selection: windows, newest first, one appearance per digest, fair cap."""

from __future__ import annotations

from datetime import timedelta

from briefing.pipeline.select import drop_lowest, select_articles, window_start
from tests.support.factories import NOW, make_selected


def test_window_is_previous_cut_bounded_by_lookback() -> None:
    assert window_start(None, NOW, timedelta(hours=24)) == NOW - timedelta(hours=24)
    assert window_start(NOW - timedelta(hours=3), NOW, timedelta(hours=24)) == NOW - timedelta(
        hours=3
    )
    assert window_start(NOW - timedelta(days=9), NOW, timedelta(hours=24)) == NOW - timedelta(
        hours=24
    )


def test_newest_first_per_section_and_once_per_digest() -> None:
    shared = make_selected(5, "world")
    candidates = {
        "world": [make_selected(3), make_selected(1), shared, make_selected(9)],
        "business": [make_selected(5, "business"), make_selected(2, "business")],
    }
    selection = select_articles(
        "daily", candidates, ["world", "business"], {"world": 3, "business": 3}, 20, None, NOW
    )
    assert [(a.section, a.id) for a in selection.articles] == [
        ("world", 1),
        ("world", 3),
        ("world", 5),
        ("business", 2),
    ]
    assert selection.dropped == 0


def test_backdated_article_sorts_by_publication_not_first_seen() -> None:
    late = make_selected(1, published_at=NOW - timedelta(days=2))
    fresh = make_selected(2, published_at=NOW - timedelta(minutes=5))
    selection = select_articles(
        "daily", {"world": [late, fresh]}, ["world"], {"world": 5}, 5, None, NOW
    )
    assert [a.id for a in selection.articles] == [2, 1]


def test_cap_is_shared_round_robin() -> None:
    candidates = {
        "world": [make_selected(i) for i in range(1, 6)],
        "sport": [make_selected(i, "sport") for i in range(11, 13)],
    }
    selection = select_articles(
        "daily", candidates, ["world", "sport"], {"world": 5, "sport": 5}, 4, None, NOW
    )
    assert [a.id for a in selection.articles] == [1, 2, 11, 12]
    assert selection.ranking == (1, 11, 2, 12)
    assert selection.dropped == 3
    smaller = drop_lowest(selection)
    assert [a.id for a in smaller.articles] == [1, 2, 11] and smaller.dropped == 4
