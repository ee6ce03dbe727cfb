"""Find related articles and fold coverage of the same story together.

Pure functions over a sequence of :class:`Doc`; nothing here reads a database
or the clock. Two articles are compared by the mean of two cosines: word TF-IDF
(sublinear term frequency, English stop words dropped, unigrams and bigrams)
and character n-gram TF-IDF (3-5 characters inside word boundaries, which
matches names and inflections the word model misses). Both read the headline
twice and the body once. The mean is damped by the time between the two
articles, halving every :data:`HALF_LIFE_DAYS` days, because coverage of one
event appears within a day or two.

``SimilarityIndex`` answers "what else in the archive is like this article"
(related links); ``fold`` groups articles that cover the same event by
average-linkage clustering.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

# scipy is imported where it is used (by briefing.pipeline.tfidf for the sparse
# matrices, by average_linkage for the clustering): the two take about half a
# second to load, and every command imports this module, most of them without
# comparing text. scikit-learn is not used at all: it took over a second more.

__all__ = ["FOLD_THRESHOLD", "Doc", "SimilarityIndex", "average_linkage", "build_index", "fold"]

# Share of the word model in the blend; the character model has the rest.
WORD_WEIGHT = 0.5
HEADLINE_REPEAT = 2
# Only the top of a body is read: it names the story's event, and the cap keeps
# an index of a thousand long articles quick to build. The character model,
# the slower of the two, reads less.
WORD_BODY_CHARS = 1000
CHAR_BODY_CHARS = 500
# Similarity halves for every this many days between two articles.
HALF_LIFE_DAYS = 2.0
# Groups whose mean similarity reaches this cover the same story.
FOLD_THRESHOLD = 0.1
# Articles further apart than this are never folded together.
FOLD_WINDOW = timedelta(days=3)

_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Doc:
    """Hold one article as the similarity functions see it."""

    id: str
    title: str
    body: str
    at: datetime


def _text(doc: Doc, body_chars: int) -> str:
    """Return the text to vectorise: the headline repeated, then the top of the body."""
    return "\n".join([doc.title] * HEADLINE_REPEAT + [doc.body[:body_chars]])


def _models(docs: Sequence[Doc]) -> tuple[Any, Any]:
    """Return the L2-normalised word and character TF-IDF matrices of ``docs``.

    A matrix is None when its vocabulary would be empty (texts of nothing but
    stop words, or no text at all).
    """
    from briefing.pipeline.tfidf import char_wb_tfidf, word_tfidf

    matrices: list[Any] = []
    for vectorise, body_chars in ((word_tfidf, WORD_BODY_CHARS), (char_wb_tfidf, CHAR_BODY_CHARS)):
        try:
            matrices.append(vectorise([_text(doc, body_chars) for doc in docs]).matrix)
        except ValueError:  # empty vocabulary
            matrices.append(None)
    return matrices[0], matrices[1]


class SimilarityIndex:
    """Answer similarity questions about a fixed set of articles."""

    def __init__(self, docs: Sequence[Doc]) -> None:
        """Vectorise ``docs``; ids must be unique."""
        self.docs: tuple[Doc, ...] = tuple(docs)
        self._position: dict[str, int] = {}
        for index, doc in enumerate(self.docs):
            if doc.id in self._position:
                raise ValueError(f"duplicate document id {doc.id!r}")
            self._position[doc.id] = index
        self._times = np.array([doc.at.timestamp() for doc in self.docs], dtype=np.float64)
        # Score rows already computed, by position: the variants of one dispatch
        # run fold and relate overlapping sets of the same recent articles.
        self._rows: dict[int, NDArray[np.float64]] = {}
        # Each model with its row-major transpose, made once so that every
        # neighbours() call is one sparse product per model.
        self._models: list[tuple[float, Any, Any]] = []
        if self.docs:
            words, chars = _models(self.docs)
            for weight, matrix in ((WORD_WEIGHT, words), (1.0 - WORD_WEIGHT, chars)):
                if matrix is not None:
                    self._models.append((weight, matrix, matrix.T.tocsr()))

    def __len__(self) -> int:
        """Return how many articles the index holds."""
        return len(self.docs)

    def __contains__(self, doc_id: object) -> bool:
        """Tell whether the index holds an article with this id."""
        return doc_id in self._position

    def _scores(self, rows: slice | int | list[int]) -> NDArray[np.float64]:
        """Return the similarity of the given articles to every article in the index."""
        times = np.atleast_1d(self._times[rows])
        cosine = np.zeros((len(times), len(self.docs)))
        total = sum(weight for weight, _, _ in self._models)
        for weight, matrix, transposed in self._models:
            # With one model missing, the other carries the whole weight.
            cosine += (weight / total) * (matrix[rows] @ transposed).toarray()
        days = np.abs(times[:, None] - self._times[None, :]) / _SECONDS_PER_DAY
        return np.asarray(cosine * 0.5 ** (days / HALF_LIFE_DAYS), dtype=np.float64)

    def _cached_rows(self, positions: list[int]) -> NDArray[np.float64]:
        """Return the score rows of ``positions``, computing each row once per index."""
        missing = [position for position in dict.fromkeys(positions) if position not in self._rows]
        if missing:
            for position, row in zip(missing, self._scores(missing), strict=True):
                self._rows[position] = row
        if not positions:
            return np.zeros((0, len(self.docs)))
        return np.stack([self._rows[position] for position in positions])

    def similarity(self, a_id: str, b_id: str) -> float:
        """Return how similar two articles are, from 0 (unrelated) to 1."""
        a, b = self._position[a_id], self._position[b_id]
        return float(self._scores(a)[0, b])

    def neighbours(
        self,
        doc_id: str,
        k: int,
        window: timedelta,
        threshold: float,
        exclude: Collection[str] = (),
        scores: NDArray[np.float64] | None = None,
    ) -> list[tuple[str, float]]:
        """Return up to ``k`` (id, score) pairs of the articles most like ``doc_id``.

        Only other articles whose time is within ``window`` of the target's and
        whose score is at least ``threshold`` count; ids in ``exclude`` are
        skipped. Best first; equal scores keep index order. ``scores`` is the
        target's row of :meth:`scores`, when the caller has it already.
        """
        target = self._position[doc_id]
        if scores is None:
            scores = self._cached_rows([target])[0]
        close = np.abs(self._times - self._times[target]) <= window.total_seconds()
        skipped = {self._position[i] for i in exclude if i in self._position}
        skipped.add(target)
        candidates = [
            index
            for index in np.flatnonzero(close & (scores >= threshold)).tolist()
            if index not in skipped
        ]
        candidates.sort(key=lambda index: (-scores[index], index))
        return [(self.docs[index].id, float(scores[index])) for index in candidates[:k]]

    def scores(self, ids: Sequence[str]) -> NDArray[np.float64]:
        """Return the similarity of each article in ``ids`` (rows) to every indexed one."""
        if not ids:
            return np.zeros((0, len(self.docs)))
        return self._cached_rows([self._position[doc_id] for doc_id in ids])

    def matrix(self) -> NDArray[np.float64]:
        """Return the full pairwise similarity matrix, in index order."""
        if not self.docs:
            return np.zeros((0, 0))
        return self._scores(slice(None))

    def groups(self, ids: Sequence[str], threshold: float | None = None) -> list[list[str]]:
        """Group the articles ``ids`` (all in the index) by the story they cover.

        Average-linkage clustering on this index's scores: two groups merge
        while the mean similarity between their members exceeds ``threshold``
        (default :data:`FOLD_THRESHOLD`); articles further apart than
        :data:`FOLD_WINDOW` count as unrelated. Each group keeps the order of
        ``ids`` and groups come in the order of their first member, so every
        article is in exactly one group.
        """
        if len(ids) < 2:
            return [[doc_id] for doc_id in ids]
        limit = FOLD_THRESHOLD if threshold is None else threshold
        rows = [self._position[doc_id] for doc_id in ids]
        scores = self._cached_rows(rows)[:, rows]
        times = self._times[rows]
        close = np.abs(times[:, None] - times[None, :]) <= FOLD_WINDOW.total_seconds()
        similarity = np.where(close, np.minimum(scores, scores.T), 0.0)
        distance = np.clip(1.0 - similarity, 0.0, None)
        np.fill_diagonal(distance, 0.0)
        groups = average_linkage(distance, 1.0 - limit)
        return [[ids[position] for position in group] for group in groups]


def average_linkage(distance: NDArray[np.float64], cut: float) -> list[list[int]]:
    """Group the items of a square, symmetric ``distance`` matrix by average linkage.

    Two groups merge while the mean distance between their members is below
    ``cut``, strictly: the groups scikit-learn's ``AgglomerativeClustering``
    (average linkage, precomputed distances) finds with ``distance_threshold=cut``.
    Returns positions: groups in the order of their first member, each ascending.
    """
    if len(distance) < 2:
        return [[position] for position in range(len(distance))]
    # scipy.cluster.hierarchy takes about 0.2 s to load (it brings in scipy.spatial).
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    tree = linkage(squareform(distance, checks=False), method="average")
    # fcluster keeps the merges at distances up to t inclusive; the float just
    # below the cut leaves out merges at exactly the cut, as scikit-learn does.
    labels = fcluster(tree, t=np.nextafter(cut, -np.inf), criterion="distance")
    found: dict[int, list[int]] = {}
    for position, label in enumerate(labels.tolist()):
        found.setdefault(label, []).append(position)
    return list(found.values())


def build_index(docs: Sequence[Doc]) -> SimilarityIndex:
    """Build a :class:`SimilarityIndex` over ``docs``."""
    return SimilarityIndex(docs)


def fold(docs: Sequence[Doc], threshold: float | None = None) -> list[list[str]]:
    """Group articles that cover the same story (see :meth:`SimilarityIndex.groups`)."""
    if len(docs) < 2:
        return [[doc.id] for doc in docs]
    return SimilarityIndex(docs).groups([doc.id for doc in docs], threshold)
