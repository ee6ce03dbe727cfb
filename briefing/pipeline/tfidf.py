"""TF-IDF matrices on numpy and scipy, equal to scikit-learn's ``TfidfVectorizer``.

Reproduces ``fit_transform`` of the two vectorisers the similarity index uses:

- :func:`word_tfidf`: ``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
  stop_words="english")``: lowercase, tokens of two or more word characters,
  English stop words dropped before unigrams and bigrams are formed;
- :func:`char_wb_tfidf`: ``TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5),
  sublinear_tf=True)``: lowercase, 3 to 5 character n-grams inside each
  whitespace-separated word padded with a space on either side.

Both with scikit-learn's defaults: smoothed idf (``ln((1 + n) / (1 + df)) + 1``),
sublinear term frequency (``1 + ln tf``), every row scaled to unit L2 norm,
float64, every term kept (min_df=1, max_df=1.0) and the columns in sorted term
order; a :class:`ValueError` when no document yields a term. The vocabulary,
its order and the stored entries are the same as scikit-learn's; a weight may
differ in its last bit, since a row's norm is summed in another order.

It exists because importing scikit-learn takes more than a second, the largest
fixed cost of a dispatch, which needs nothing else from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from itertools import chain, pairwise
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse

__all__ = [
    "ENGLISH_STOP_WORDS",
    "Tfidf",
    "char_wb_ngrams",
    "char_wb_tfidf",
    "tfidf",
    "word_ngrams",
    "word_tfidf",
]

# The Glasgow Information Retrieval Group's list, as scikit-learn ships it (BSD-3-Clause).
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above across after afterwards again against all almost alone along already also
    although always am among amongst amoungst amount an and another any anyhow anyone anything
    anyway anywhere are around as at back be became because become becomes becoming been
    before beforehand behind being below beside besides between beyond bill both bottom but by
    call can cannot cant co con could couldnt cry de describe detail do done down due during
    each eg eight either eleven else elsewhere empty enough etc even ever every everyone
    everything everywhere except few fifteen fifty fill find fire first five for former
    formerly forty found four from front full further get give go had has hasnt have he hence
    her here hereafter hereby herein hereupon hers herself him himself his how however hundred
    i ie if in inc indeed interest into is it its itself keep last latter latterly least less
    ltd made many may me meanwhile might mill mine more moreover most mostly move much must my
    myself name namely neither never nevertheless next nine no nobody none noone nor not
    nothing now nowhere of off often on once one only onto or other others otherwise our ours
    ourselves out over own part per perhaps please put rather re same see seem seemed seeming
    seems serious several she should show side since sincere six sixty so some somehow someone
    something sometime sometimes somewhere still such system take ten than that the their them
    themselves then thence there thereafter thereby therefore therein thereupon these they
    thick thin third this those though three through throughout thru thus to together too top
    toward towards twelve twenty two un under until up upon us very via was we well were what
    whatever when whence whenever where whereafter whereas whereby wherein whereupon wherever
    whether which while whither who whoever whole whom whose why will with within without
    would yet you your yours yourself yourselves
    """.split()  # noqa: SIM905 - 318 words read better as text than as a list
)

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WHITE_SPACES = re.compile(r"\s\s+")
_CHAR_SIZES = (3, 4, 5)


class Tfidf(NamedTuple):
    """Hold a TF-IDF matrix (a ``scipy.sparse.csr_matrix``, a row per text) and its terms."""

    matrix: Any
    vocabulary: tuple[str, ...]


def word_ngrams(text: str) -> list[str]:
    """Return the unigrams, then the bigrams, of ``text`` without English stop words."""
    tokens = [token for token in _TOKEN.findall(text.lower()) if token not in ENGLISH_STOP_WORDS]
    return tokens + list(map(" ".join, pairwise(tokens)))


def _words(text: str) -> list[str]:
    """Return the lowercased words of ``text``, as the char_wb analyser splits it."""
    # Runs of whitespace become one space first, as scikit-learn does; split()
    # would find the same words anyway, since both treat str.isspace() as space.
    return _WHITE_SPACES.sub(" ", text.lower()).split()


@lru_cache(maxsize=256)
def _gram_slices(size: int) -> tuple[slice, ...]:
    """Return where the 3-5 character n-grams of a padded word of ``size`` characters are."""
    slices: list[slice] = []
    for n in _CHAR_SIZES:
        # size >= 3 (a padded character) and the loop stops at n == size, so every
        # n yields at least one n-gram.
        slices.extend(slice(start, start + n) for start in range(size - n + 1))
        # A padded word no longer than n is one n-gram, counted once, not again for larger n.
        if size <= n:
            break
    return tuple(slices)


def _word_grams(word: str) -> list[str]:
    """Return the 3-5 character n-grams of ``word`` padded with a space at each end."""
    padded = f" {word} "
    return list(map(padded.__getitem__, _gram_slices(len(padded))))


def char_wb_ngrams(text: str) -> list[str]:
    """Return the character n-grams of ``text``, word by word."""
    return [gram for word in _words(text) for gram in _word_grams(word)]


def _counts(items: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> Any:
    """Return how often each term of ``vocabulary`` occurs in each of ``items`` (CSR, int64).

    Every term in ``items`` must be in ``vocabulary``; the columns follow its order
    and each row's column indices are sorted.
    """
    columns = len(vocabulary)
    position = dict(zip(vocabulary, range(columns), strict=True))
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    flat = chain.from_iterable(items)
    cols = np.fromiter(map(position.__getitem__, flat), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(items), dtype=np.int64), lengths)
    # One key per (row, column) pair: sorted unique keys are CSR order.
    keys, counts = np.unique(rows * columns + cols, return_counts=True)
    indptr = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // columns, minlength=len(items)), out=indptr[1:])
    return sparse.csr_matrix(
        (counts.astype(np.int64), keys % columns, indptr), shape=(len(items), columns)
    )


def _weigh(counts: Any) -> Any:
    """Turn a count matrix (CSR, sorted indices) into sublinear, smoothed, L2-normalised TF-IDF."""
    n_docs, n_terms = counts.shape
    indices = counts.indices
    document_frequency = np.bincount(indices, minlength=n_terms).astype(np.float64)
    idf = np.log((n_docs + 1) / (document_frequency + 1.0)) + 1.0
    data = np.log(counts.data.astype(np.float64)) + 1.0
    data *= idf[indices]
    rows = np.repeat(np.arange(n_docs), np.diff(counts.indptr))
    # A row's squares are added in column order; scikit-learn adds them in the
    # order it first met the terms, so a norm may differ from its in the last bit.
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=n_docs))
    data /= norms[rows]  # every stored weight is at least 1, so no norm is zero
    return sparse.csr_matrix((data, indices, counts.indptr), shape=counts.shape)


def _empty_vocabulary() -> ValueError:
    """Return the error scikit-learn raises when no text yields a term."""
    return ValueError("empty vocabulary; perhaps the documents only contain stop words")


def word_tfidf(texts: Iterable[str]) -> Tfidf:
    """Return the word unigram and bigram TF-IDF of ``texts`` (see the module docstring)."""
    return tfidf(texts, word_ngrams)


def char_wb_tfidf(texts: Iterable[str]) -> Tfidf:
    """Return the character n-gram TF-IDF of ``texts`` (see the module docstring)."""
    words = [_words(text) for text in texts]
    # The n-grams of a text are those of its words: count words per text, then
    # n-grams per distinct word, and multiply, rather than slice every word again.
    distinct = list(dict.fromkeys(chain.from_iterable(words)))
    grams = [_word_grams(word) for word in distinct]
    vocabulary = tuple(sorted(set(chain.from_iterable(grams))))
    if not vocabulary:
        raise _empty_vocabulary()
    per_word = _counts(grams, vocabulary)
    counts = _counts(words, distinct) @ per_word
    counts.sort_indices()
    return Tfidf(_weigh(counts), vocabulary)


def tfidf(texts: Iterable[str], analyse: Callable[[str], list[str]]) -> Tfidf:
    """Return the TF-IDF of ``texts`` with the terms ``analyse`` finds in each."""
    terms = [analyse(text) for text in texts]
    vocabulary = tuple(sorted(set(chain.from_iterable(terms))))
    if not vocabulary:
        raise _empty_vocabulary()
    return Tfidf(_weigh(_counts(terms, vocabulary)), vocabulary)
