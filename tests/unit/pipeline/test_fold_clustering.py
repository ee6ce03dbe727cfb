"""Folding clusters as scikit-learn's AgglomerativeClustering did, without loading scikit-learn."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise

import feedparser
import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.cluster import AgglomerativeClustering

from briefing.pipeline.similarity import (
    FOLD_THRESHOLD,
    FOLD_WINDOW,
    Doc,
    SimilarityIndex,
    average_linkage,
)
from tests.support.factories import REPO


def sklearn_labels(distance: NDArray[np.float64], cut: float) -> list[list[int]]:
    """Return scikit-learn's average-linkage groups of ``distance`` cut at ``cut``, first member first."""
    labels = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=cut
    ).fit_predict(distance)
    found: dict[int, list[int]] = {}
    for position, label in enumerate(labels.tolist()):
        found.setdefault(label, []).append(position)
    return list(found.values())


def merge_distances(distance: NDArray[np.float64]) -> list[float]:
    """Return the distances at which scikit-learn's full tree of ``distance`` merges."""
    model = AgglomerativeClustering(
        n_clusters=None,
        metric="precomputed",
        linkage="average",
        distance_threshold=0.0,
        compute_distances=True,
    ).fit(distance)
    return sorted(set(model.distances_.tolist()))


def random_distances(seed: int, size: int, levels: int | None) -> NDArray[np.float64]:
    """Return a symmetric matrix of distances in [0, 1] with a zero diagonal.

    With ``levels``, the distances take only that many values, so merges tie.
    """
    rng = np.random.default_rng(seed)
    values = rng.random((size, size))
    if levels is not None:
        values = np.floor(values * levels) / levels
    upper = np.triu(values, 1)
    return upper + upper.T


@pytest.mark.parametrize("levels", [None, 2, 4, 8])
@pytest.mark.parametrize("seed", range(6))
def test_random_distances_at_fixed_and_merge_cuts(seed: int, levels: int | None) -> None:
    distance = random_distances(seed, size=5 + 4 * seed, levels=levels)
    observed = merge_distances(distance)
    # Cuts exactly at each merge distance, between them, and around the ends.
    between = [(a + b) / 2 for a, b in pairwise(observed)]
    cuts = [0.0, 0.1, 0.5, 0.9, 1.0, 1.5, *observed, *between]
    for cut in cuts:
        assert average_linkage(distance, cut) == sklearn_labels(distance, cut), cut
    assert len({len(average_linkage(distance, cut)) for cut in observed}) > 1


def test_a_merge_exactly_at_the_cut_is_left_out() -> None:
    distance = np.array([[0.0, 0.5, 1.0], [0.5, 0.0, 1.0], [1.0, 1.0, 0.0]])
    assert average_linkage(distance, 0.5) == [[0], [1], [2]] == sklearn_labels(distance, 0.5)
    above = np.nextafter(0.5, 1.0)
    assert average_linkage(distance, above) == [[0, 1], [2]] == sklearn_labels(distance, above)
    assert average_linkage(distance, 1.0) == [[0, 1], [2]] == sklearn_labels(distance, 1.0)


def test_small_matrices() -> None:
    assert average_linkage(np.zeros((0, 0)), 0.5) == []
    assert average_linkage(np.zeros((1, 1)), 0.5) == [[0]]
    assert (
        average_linkage(np.zeros((2, 2)), 0.5) == [[0, 1]] == sklearn_labels(np.zeros((2, 2)), 0.5)
    )


def sample_docs() -> list[Doc]:
    """Return the repository's sample articles and feed items, dated as published.

    The feeds cover some of the articles' stories in other words, so some groups
    have several members.
    """
    docs = []
    for path in sorted((REPO / "samples").glob("*/*.md")):
        head, _, body = path.read_text(encoding="utf-8").partition("\n---\n")
        fields = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)
        at = datetime.fromisoformat(fields["published"])
        docs.append(Doc(id=path.stem, title=fields["title"], body=body, at=at))
    for path in sorted((REPO / "samples" / "feeds").glob("*.xml")):
        for number, entry in enumerate(feedparser.parse(str(path)).entries):
            body = entry.content[0].value if entry.get("content") else entry.summary
            at = datetime(*entry.published_parsed[:6], tzinfo=UTC)
            docs.append(Doc(id=f"{path.stem}-{number}", title=entry.title, body=body, at=at))
    assert len(docs) > 20
    return docs


def fold_distance(index: SimilarityIndex, ids: Sequence[str]) -> NDArray[np.float64]:
    """Return the distances SimilarityIndex.groups clusters ``ids`` by, from the index's scores."""
    position = {doc.id: number for number, doc in enumerate(index.docs)}
    scores = index.scores(ids)[:, [position[i] for i in ids]]
    times = np.array([index.docs[position[i]].at.timestamp() for i in ids])
    close = np.abs(times[:, None] - times[None, :]) <= FOLD_WINDOW.total_seconds()
    distance = np.clip(1.0 - np.where(close, np.minimum(scores, scores.T), 0.0), 0.0, None)
    np.fill_diagonal(distance, 0.0)
    return distance


def sklearn_groups(index: SimilarityIndex, ids: Sequence[str], limit: float) -> list[list[str]]:
    """Return the groups SimilarityIndex.groups made when it called scikit-learn."""
    groups = sklearn_labels(fold_distance(index, ids), 1.0 - limit)
    return [[ids[position] for position in group] for group in groups]


def test_sample_articles_group_as_with_sklearn() -> None:
    docs = sample_docs()
    index = SimilarityIndex(docs)
    ids = [doc.id for doc in docs]
    orders = [ids, ids[::-1], ids[::2], ids[5:] + ids[:5]]
    # Limits where the samples' groups change: 1 - d for each merge distance d
    # for which 1 - (1 - d) == d, so that the cut falls exactly on the merge.
    exact = [1.0 - d for d in merge_distances(fold_distance(index, ids)) if 1.0 - (1.0 - d) == d]
    assert len(exact) > 3
    limits = [FOLD_THRESHOLD, -0.5, 0.0, 0.02, 0.05, 0.2, 0.5, 0.99, 1.0, *exact]
    counts = set()
    for order in orders:
        for limit in limits:
            groups = index.groups(order, limit)
            assert groups == sklearn_groups(index, order, limit), (order, limit)
            counts.add(len(groups))
    assert len(counts) > 3, "the limits should give several different groupings"


def test_dispatch_path_does_not_load_sklearn() -> None:
    # A fresh interpreter: this test process has loaded scikit-learn itself.
    code = """
import sys
from datetime import UTC, datetime

import briefing.cli
import briefing.pipeline.similarity as s

at = datetime(2024, 3, 5, 12, tzinfo=UTC)
texts = ["Port Elwyn harbour expansion approved", "Port Elwyn harbour expansion gets approval",
         "Snowstorm closes Valdoria mountain passes"]
index = s.build_index([s.Doc(id=str(i), title=t, body=t, at=at) for i, t in enumerate(texts)])
assert index.groups(["0", "1", "2"]) == [["0", "1"], ["2"]], index.groups(["0", "1", "2"])
assert index.neighbours("0", k=1, window=s.FOLD_WINDOW, threshold=0.0)[0][0] == "1"
assert "scipy.cluster.hierarchy" in sys.modules
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "sklearn")
assert not loaded, loaded[:3]
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
