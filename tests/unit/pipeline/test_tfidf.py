"""briefing.pipeline.tfidf gives what scikit-learn's TfidfVectorizer gives, term for term."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as SKLEARN_STOP_WORDS
from sklearn.feature_extraction.text import TfidfVectorizer

from briefing.pipeline.similarity import CHAR_BODY_CHARS, WORD_BODY_CHARS, Doc, _text
from briefing.pipeline.tfidf import (
    ENGLISH_STOP_WORDS,
    Tfidf,
    char_wb_ngrams,
    char_wb_tfidf,
    tfidf,
    word_ngrams,
    word_tfidf,
)
from tests.support.factories import NOW, REPO


def sklearn_words() -> TfidfVectorizer:
    """Return the word vectoriser the similarity index used to build."""
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english")


def sklearn_chars() -> TfidfVectorizer:
    """Return the character vectoriser the similarity index used to build."""
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)


# Each of ours beside the scikit-learn vectoriser it reproduces; the generic
# tfidf() with the char_wb analyser too, which takes the slow road to the same place.
CONFIGURATIONS: list[
    tuple[str, Callable[[Sequence[str]], Tfidf], Callable[[], TfidfVectorizer]]
] = [
    ("word", word_tfidf, sklearn_words),
    ("char_wb", char_wb_tfidf, sklearn_chars),
    ("char_wb by tfidf()", lambda texts: tfidf(texts, char_wb_ngrams), sklearn_chars),
]
ANALYSERS = [(word_ngrams, sklearn_words), (char_wb_ngrams, sklearn_chars)]


def sample_texts() -> list[str]:
    """Return the text of every sample article in the repository, front matter and all."""
    paths = sorted((REPO / "samples").glob("**/*.md"))
    assert len(paths) > 10
    return [path.read_text(encoding="utf-8") for path in paths]


def sample_docs() -> list[Doc]:
    """Return the sample articles as the similarity index sees them."""
    docs = []
    for number, text in enumerate(sample_texts()):
        head, _, body = text.partition("\n---\n")
        title = next(
            (line[6:].strip() for line in head.splitlines() if line.startswith("title:")), ""
        )
        docs.append(Doc(id=str(number), title=title, body=body, at=NOW))
    return docs


def assert_same(ours: Tfidf, vectorizer: TfidfVectorizer, texts: Sequence[str]) -> None:
    """Check ``ours`` against ``vectorizer.fit_transform(texts)``: terms, order and weights."""
    theirs = vectorizer.fit_transform(texts)
    assert ours.vocabulary == tuple(vectorizer.get_feature_names_out())
    matrix = ours.matrix
    assert matrix.format == "csr" and matrix.dtype == np.float64
    assert matrix.shape == theirs.shape == (len(texts), len(ours.vocabulary))
    assert ((matrix != 0) != (theirs != 0)).nnz == 0  # the same entries are stored
    assert np.abs((matrix - theirs).toarray()).max() <= 1e-12
    assert matrix.has_sorted_indices


EDGE_CASES: dict[str, list[str]] = {
    "one text": ["Port Elwyn approves harbour expansion"],
    "an empty text among others": ["", "Harbour vote", ""],
    "stop words beside words": ["The", "It is what it is.", "harbour of the port"],
    "words shorter than the n-grams": ["a", "I", "ab", "x y z", "a b c ab"],
    "unicode and accents": [
        "Café déjà vu in São Paulo, naïve cafe\u0301 e\u0301",
        "İstanbul ΟΔΟΣ Straße Ǆemal ﬁnance ÉCOLE",
        "東京 株式市場 😀 — \u201cquotes\u201d \u2018and\u2019 «guillemets»",
    ],
    "digits": ["$2.4bn for 2,400 berths in 1999", "COVID-19 5G 10x 3rd 42 007", "12 3 45"],
    "punctuation": [
        "Hello, world! (yes) -- 'quoted' \"double\" ...",
        "a.b.c d-e-f g/h i:j;k @user #tag http://example.org/x?y=1",
        "!!! ??? ...",
    ],
    "whitespace": [
        "  lead\n\n\ttabs\r\n  and   spaces\u00a0nbsp\u2003em\u2028line ",
        "one\ntwo\n\nthree\t\tfour\r\rfive",
        " x \x0b\x0c y \x1c z\x1d\x1e\x1f w ",
        "\n\n\n",
    ],
    "underscores": ["snake_case __dunder__ _ a_b", "___ _x x_ under_score_"],
    "long word": ["supercalifragilistic " * 3 + "x" * 300, "supercalifragilistic"],
    "repeats": ["harbour harbour harbour harbour", "harbour vote vote", "vote harbour vote"],
}


@pytest.mark.parametrize(("name", "ours", "theirs"), CONFIGURATIONS)
def test_sample_articles(name: str, ours: Callable[..., Tfidf], theirs: Any) -> None:
    texts = sample_texts()
    assert_same(ours(texts), theirs(), texts)


@pytest.mark.parametrize(("name", "ours", "theirs"), CONFIGURATIONS)
def test_sample_articles_as_the_index_reads_them(
    name: str, ours: Callable[..., Tfidf], theirs: Any
) -> None:
    cap = WORD_BODY_CHARS if name == "word" else CHAR_BODY_CHARS
    texts = [_text(doc, cap) for doc in sample_docs()]
    assert_same(ours(texts), theirs(), texts)


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize(("name", "ours", "theirs"), CONFIGURATIONS)
def test_edge_cases(case: str, name: str, ours: Callable[..., Tfidf], theirs: Any) -> None:
    texts = EDGE_CASES[case]
    assert_same(ours(texts), theirs(), texts)


def random_texts(seed: int, count: int) -> list[str]:
    """Return texts drawn from a small alphabet of letters, marks, digits, punctuation and spaces."""
    rng = random.Random(seed)
    pieces = [
        *"aabcdeeiost",
        "é",
        "É",
        "ß",
        "İ",
        "\u0301",
        "ñ",
        *"019",
        *"_-.,'!",
        *" \n\t",
        "  ",
        "\u00a0",
    ]
    pieces += ["the", "of", "harbour", "vote", "a"]
    return ["".join(rng.choices(pieces, k=rng.randrange(0, 60))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("name", "ours", "theirs"), CONFIGURATIONS)
def test_random_texts(seed: int, name: str, ours: Callable[..., Tfidf], theirs: Any) -> None:
    texts = random_texts(seed, 40)
    assert_same(ours(texts), theirs(), texts)


@pytest.mark.parametrize(
    "texts", [[], [""], ["", ""], ["The", "It is what it is."], ["a b c", "I"], ["!!", "- _ -"]]
)
def test_no_words_raise_value_error_as_sklearn_does(texts: list[str]) -> None:
    with pytest.raises(ValueError, match="empty vocabulary"):
        sklearn_words().fit_transform(texts)
    with pytest.raises(ValueError, match="empty vocabulary"):
        word_tfidf(texts)


@pytest.mark.parametrize("texts", [[], [""], ["", " \n\t "]])
def test_no_characters_raise_value_error_as_sklearn_does(texts: list[str]) -> None:
    with pytest.raises(ValueError, match="empty vocabulary"):
        sklearn_chars().fit_transform(texts)
    with pytest.raises(ValueError, match="empty vocabulary"):
        char_wb_tfidf(texts)


@pytest.mark.parametrize(
    "text", [*sample_texts()[:3], *(t for c in EDGE_CASES.values() for t in c)]
)
@pytest.mark.parametrize(("ours", "theirs"), ANALYSERS)
def test_terms_come_in_sklearns_order(
    text: str, ours: Callable[[str], list[str]], theirs: Any
) -> None:
    assert ours(text) == theirs().build_analyzer()(text)


def test_stop_words_are_sklearns() -> None:
    assert ENGLISH_STOP_WORDS == SKLEARN_STOP_WORDS
    assert len(ENGLISH_STOP_WORDS) == 318


def test_weights_by_hand() -> None:
    # Two texts, one term each shared: "harbour" in both, "vote" twice in the first.
    result = word_tfidf(["harbour vote vote", "harbour"])
    assert result.vocabulary == ("harbour", "harbour vote", "vote", "vote vote")
    idf_shared, idf_once = 1.0, np.log(3 / 2) + 1.0
    first = np.array([idf_shared, idf_once, (1 + np.log(2)) * idf_once, idf_once])
    assert result.matrix.toarray() == pytest.approx(
        np.array([first / np.linalg.norm(first), [1.0, 0.0, 0.0, 0.0]]), abs=1e-15
    )
