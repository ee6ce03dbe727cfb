"""Split news text into sentences and pick an extractive summary within a word budget.

Everything here is a pure function of its arguments: no I/O, no model weights, no
state kept between calls, and the same input always gives the same output.

``split_sentences`` is a rule-based splitter written for news copy as it
arrives from feeds: sentences glued together without a space ("Moscow.The"),
abbreviations ("Mr.", "U.S."), initials ("J. K. Rowling"), money and decimals
("$1.1 billion", "3.5%"), ellipses, quotes that end a sentence and paragraphs
on their own lines.

``summarise`` turns each sentence's centrality among the article's sentences
(TextRank's edge weights summed, and a TF-IDF cosine with the rest of the
article), its overlap with the headline and its position into a chance of
belonging in a summary, drops sentences that repeat a better one, and keeps the
set with the largest total of chance times length that fits the budget (a small
knapsack), printed in article order. The weights are a handful of global
numbers tuned with ``benchmarks/quality.py``.

A summary is read under its headline without the article, so the knapsack
also respects how sentences lean on each other: the summary never opens on a
sentence that points back (a pronoun, a demonstrative, a connective, "The
company" with nothing in the headline for it to stand for), and a later
sentence that opens with a connective comes only after the sentence before it
in the article. A first sentence that carries the news on its own (it stands
alone and shares a word with the headline) is preferred over its score.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from enum import Enum

import numpy as np

__all__ = ["count_words", "split_sentences", "summarise"]

ELLIPSIS = "\u2026"
LEDE_MIN_WORDS = 8


def _wordset(text: str) -> frozenset[str]:
    """Return the whitespace-separated words of ``text`` as a set."""
    return frozenset(text.split())


# Abbreviations after which a full stop never ends a sentence: titles and
# words that are always followed by a name or a number.
_NEVER_FINAL = _wordset(
    """
    mr mrs ms messrs mme mlle dr prof st sr jr gen col lt sgt capt cmdr cdr adm maj
    gov sen rep rev hon pres supt det insp mt ft no nos vol vols fig figs pp op art
    ch sec vs v approx est dept univ assn bros jan feb mar apr jun jul aug sep sept
    oct nov dec e.g i.e cf viz al ca
    """
)

# Abbreviations that may end a sentence ("... said Apple Inc. The firm ...").
_MAYBE_FINAL = _wordset("inc ltd co corp plc llc etc bn m")

# Words that usually open a sentence; after an ambiguous full stop ("U.S.",
# "Inc.", an initial) a following word from this list means a new sentence.
_OPENERS = _wordset(
    """
    a an the he she it they we i you his her its their our my this that these those
    there here but and or so yet in on at for with as if when while after before
    since although though however meanwhile also both many most some one two what
    who why how where mr mrs ms dr officials analysts according
    """
)

_OPEN_QUOTES = "\"'\u201c\u2018\u00ab("
_CLOSERS = "\"'\u201d\u2019\u00bb)]"
_TERMINATOR = re.compile(r"(?:\.{2,}|\u2026|[.!?]+)([\"'\u201d\u2019\u00bb)\]]*)")
_ACRONYM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)?")


def count_words(text: str) -> int:
    """Count whitespace-separated tokens in ``text``."""
    return len(text.split())


def split_sentences(text: str) -> list[str]:
    """Split English news text into stripped, non-empty sentences in order."""
    sentences: list[str] = []
    for paragraph in _paragraphs(text):
        sentences.extend(_split_paragraph(paragraph))
    return sentences


def _paragraphs(text: str) -> list[str]:
    """Split text into paragraphs: a blank line always, a line break mostly.

    A single line break ends a paragraph unless the next line starts with a
    lower-case letter, which is how hard-wrapped copy continues a sentence.
    """
    paragraphs: list[str] = []
    for block in _PARAGRAPH_BREAK.split(text):
        current = ""
        for line in block.split("\n"):
            line = line.strip()
            if not line:
                continue
            if current and line[0].islower():
                current += " " + line
            else:
                if current:
                    paragraphs.append(current)
                current = line
        if current:
            paragraphs.append(current)
    return paragraphs


def _split_paragraph(paragraph: str) -> list[str]:
    """Split one paragraph (no line breaks) into sentences."""
    cuts: list[int] = []
    start = 0
    for match in _TERMINATOR.finditer(paragraph):
        cut = _boundary(paragraph, start, match)
        if cut is not None:
            cuts.append(cut)
            start = cut
    pieces: list[str] = []
    previous = 0
    for cut in [*cuts, len(paragraph)]:
        piece = paragraph[previous:cut].strip()
        previous = cut
        if not piece:
            continue
        if pieces and not any(ch.isalnum() for ch in piece):
            # A stray run of punctuation belongs to the sentence before it.
            pieces[-1] += piece
        else:
            pieces.append(piece)
    return pieces


def _boundary(paragraph: str, start: int, match: re.Match[str]) -> int | None:
    """Return where a sentence ends if this terminator ends one, else None.

    ``start`` is where the current sentence began; it is used to tell whether a
    straight double quote glued after the terminator closes this sentence or
    opens the next one.
    """
    terminator_end = match.start(1)
    terminator = paragraph[match.start() : terminator_end]
    closers = match.group(1)
    end = match.end()
    rest = paragraph[end:]
    if not rest.strip():
        return None  # the paragraph's end is a boundary anyway
    glued = not rest[0].isspace()
    # '..."The' : an even count of quotes before means this one opens the next.
    if glued and closers.startswith('"') and paragraph.count('"', start, match.start()) % 2 == 0:
        end = terminator_end
        closers = ""
        rest = paragraph[end:]
    following = rest.lstrip()
    first = following[0]
    next_word = _leading_word(following)

    if glued:
        if first in _OPEN_QUOTES:
            if len(following) < 2 or not following[1].isupper():
                return None
        elif first.isdigit():
            # "the band.1Xtra's" : a word, not a number, before the full stop.
            if not (terminator == "." and paragraph[match.start() - 1].islower()):
                return None
        elif not first.isupper():
            return None
    elif first.islower():
        # "iPod sales rose" starts a sentence in lower case; "approx. five" does not.
        camel = len(next_word) > 1 and any(ch.isupper() for ch in next_word[1:])
        if not camel:
            return None
    elif not (first.isupper() or first.isdigit() or first in _OPEN_QUOTES):
        return None

    if terminator[0] in "!?":
        return end
    if terminator != ".":
        return end if not first.isdigit() else None  # an ellipsis
    if closers:
        return end  # 'he said." The next' : the quote closes the sentence
    return end if _full_stop_ends(paragraph[start : match.start()], next_word, glued) else None


def _leading_word(text: str) -> str:
    """Return the first word of ``text`` after any opening quotes."""
    found = _WORD.search(text[:40])
    return found.group(0) if found else ""


def _full_stop_ends(before: str, next_word: str, glued: bool) -> bool:
    """Decide whether a full stop ends the sentence, given the text before it."""
    tokens = before.split()
    if not tokens:
        return False
    token = tokens[-1].lstrip(_OPEN_QUOTES)
    if glued:
        # In "Moscow.The" the token is everything since the last space; a full
        # stop inside it ("J.K.Rowling", "U.S.The") marks an initial or acronym.
        token = token.rsplit(".", 1)[-1] if "." in token and not _ACRONYM.match(token) else token
    key = token.lower().rstrip(".")
    opener = next_word.lower() in _OPENERS or (next_word[:1].isdigit() and not glued)
    if key in _NEVER_FINAL:
        return False
    if _ACRONYM.match(token) or (len(token) == 1 and token.isalpha()):
        return next_word.lower() in _OPENERS
    if key in _MAYBE_FINAL:
        return opener
    return bool(token) and token[-1] not in "-/"


# --------------------------------------------------------------------------
# Scoring

_STOPWORDS = _wordset(
    """
    a about above after again against all also am an and any are as at be because
    been before being below between both but by can could did do does doing down
    during each few for from further had has have having he her here hers herself
    him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own said
    same says she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves mr mrs ms one two new year years told say also
    """
)


@dataclass(frozen=True)
class Weights:
    """Hold the global weights of the sentence score; tuned on the benchmark.

    A sentence's score is a logistic function of a weighted sum of its
    features; the summary keeps the set of sentences with the largest total
    of score times length that fits the budget. ROUGE on the BBC set sits on
    a broad plateau around these values (each moved alone by a third changes
    ROUGE-2 by under 0.01), so they are rounded, not fitted to the last digit.
    """

    # Weight of TextRank degree (0-1, the article's most central sentence 1).
    centrality: float = 5.6
    # Weight of the TF-IDF cosine with the rest of the article.
    cosine: float = 3.7
    # Weight of the share of headline words in the sentence.
    headline: float = 0.5
    # Weight of 1 / sqrt(1 + index): a mild preference for the top of the story.
    position: float = 0.5
    bias: float = -3.6
    # Share of content words above which a sentence repeats a better one.
    redundancy: float = 0.7
    # Sentences scored below this never fill leftover words (the first may).
    floor: float = 0.05
    # Added to the first sentence's logit when it carries the news on its own.
    lede: float = 0.5


DEFAULT_WEIGHTS = Weights()


def _stem(word: str) -> str:
    """Strip common English inflections so "sales" and "sale" meet."""
    for suffix in ("'s", "\u2019s"):
        word = word.removesuffix(suffix)
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _terms(text: str) -> list[str]:
    """Return the content-word stems of ``text``."""
    return [
        _stem(word)
        for word in (w.lower() for w in _WORD.findall(text))
        if word not in _STOPWORDS and not (len(word) == 1 and word.isalpha())
    ]


def _score_sentences(headline: str, sentences: list[str], weights: Weights) -> list[float]:
    """Return each sentence's chance of belonging in a summary, from 0 to 1.

    Features: centrality as TextRank's edge weight summed over the other
    sentences (shared content words over the sum of the log lengths), scaled
    so the article's most central sentence has 1; the cosine between the
    sentence and the rest of the article (TF-IDF over the article's
    sentences); the share of headline words it contains; and its position.
    """
    bags = [Counter(_terms(sentence)) for sentence in sentences]
    vocabulary: dict[str, int] = {}
    for bag in bags:
        for term in bag:
            vocabulary.setdefault(term, len(vocabulary))
    counts = np.zeros((len(sentences), max(len(vocabulary), 1)))
    for row, bag in enumerate(bags):
        for term, count in bag.items():
            counts[row, vocabulary[term]] = count

    # TextRank edge weights, without a sentence's edge to itself.
    sizes = counts.sum(axis=1)
    logs = np.log(np.maximum(sizes, 1.0))
    norm = logs[:, None] + logs[None, :]
    shared = counts @ counts.T
    edges = np.divide(shared, norm, out=shared.copy(), where=norm > 0)
    np.fill_diagonal(edges, 0.0)
    degree = edges.sum(axis=1)
    centrality = degree / degree.max() if degree.max() > 0 else degree

    # Cosine with the rest of the article: a sentence's own words must not
    # make it look central.
    present = (counts > 0).astype(float)
    idf = np.log((1.0 + len(sentences)) / (1.0 + present.sum(axis=0))) + 1.0
    rest = counts.sum(axis=0)[None, :] - counts
    mine = np.log1p(counts) * idf
    others = np.log1p(rest) * idf
    dot = (mine * others).sum(axis=1)
    lengths = np.linalg.norm(mine, axis=1) * np.linalg.norm(others, axis=1)
    cosine = np.divide(dot, lengths, out=np.zeros_like(dot), where=lengths > 0)

    headline_terms = set(_terms(headline))
    overlap = np.array(
        [
            len(headline_terms & bag.keys()) / len(headline_terms) if headline_terms else 0.0
            for bag in bags
        ]
    )
    position = 1.0 / np.sqrt(1.0 + np.arange(len(sentences)))

    logit = (
        weights.centrality * centrality
        + weights.cosine * cosine
        + weights.headline * overlap
        + weights.position * position
        + weights.bias
    )
    return [float(value) for value in 1.0 / (1.0 + np.exp(-logit))]


# --------------------------------------------------------------------------
# Sentences that lean on an earlier one
#
# A summary is read under its headline, without the article: its first
# sentence must not point back to a sentence the reader never saw, and a
# later one must not open with a connective whose sentence was left out.
# A sentence leans back when its first word (after any opening quote, with
# "'s", "'re", "'ve", "'d" or "'ll" taken off) is
#
# - a pronoun or demonstrative in _BACK_REFERENCES ("Its profits ...", "This
#   is ...", "They said ..."),
# - a connective in _CONNECTIVES, or its first words a phrase in
#   _CONNECTIVE_PHRASES ("However, ...", "In addition, ..."); "So far" and
#   a hyphenated first word ("Then-president") are not connectives,
# - or it opens with "The" and a stand-in noun from _STAND_INS ("The company
#   ...", "The firm's ...") while the headline names nothing the noun could
#   stand for: neither the noun itself nor a name, a capitalised headline
#   word that the article also writes capitalised inside a sentence.

_BACK_REFERENCES = _wordset(
    """
    he him his she her hers it its they them their theirs this these those that
    such others
    """
)

_CONNECTIVES = _wordset(
    """
    however but and also meanwhile instead still yet therefore moreover furthermore
    nevertheless nonetheless thus hence besides likewise similarly otherwise
    consequently then so or nor plus additionally accordingly
    """
)

_CONNECTIVE_PHRASES = tuple(
    phrase.split()
    for phrase in (
        "in addition",
        "as a result",
        "on the other hand",
        "even so",
        "even then",
        "at the same time",
        "by contrast",
        "in contrast",
        "in turn",
        "in the meantime",
        "in other words",
        "on top of that",
        "apart from that",
        "after that",
        "despite this",
        "despite that",
        "because of this",
        "for its part",
        "for his part",
        "for her part",
        "for their part",
    )
)

_STAND_INS = _wordset(
    """
    company firm group club side team bank airline carrier retailer giant maker
    operator business organisation organization agency body union party
    star singer actor actress band player pair duo trio couple man woman
    film movie show album book game series report study survey bill plan deal
    move decision case latter two
    """
)

_CONTRACTIONS = ("'s", "'re", "'ve", "'d", "'ll")


class Leaning(Enum):
    """How a sentence depends on the one before it."""

    REFERENCE = "reference"  # a pronoun, demonstrative or stand-in noun
    CONNECTIVE = "connective"  # a discourse connective


def _opening_words(sentence: str, count: int) -> list[str]:
    """Return the first ``count`` words of a sentence, lower-cased, without quotes or contractions."""
    words: list[str] = []
    for token in sentence.split()[:count]:
        word = token.strip(_OPEN_QUOTES + _CLOSERS + ",;:.!?").lower().replace("\u2019", "'")
        for ending in _CONTRACTIONS:
            if word.endswith(ending):
                word = word[: -len(ending)]
                break
        words.append(word)
    return words


def _named_in(headline: str, sentences: list[str]) -> frozenset[str]:
    """Return the headline's names: capitalised words the article capitalises mid-sentence."""
    inside: set[str] = set()
    for sentence in sentences:
        for word in _WORD.findall(sentence)[1:]:
            if word[0].isupper():
                inside.add(_stem(word.lower()))
    return frozenset(
        _stem(word.lower())
        for word in _WORD.findall(headline)
        if word[0].isupper() and _stem(word.lower()) in inside
    )


def _leans_back(sentence: str, headline: str, names: frozenset[str]) -> Leaning | None:
    """Tell whether a sentence depends on an earlier one, and how (None: it stands alone)."""
    words = _opening_words(sentence, 4)
    if not words:
        return None
    first = words[0]
    if "-" in first or (first == "so" and words[1:2] == ["far"]):
        return None
    if first in _CONNECTIVES or any(words[: len(p)] == p for p in _CONNECTIVE_PHRASES):
        return Leaning.CONNECTIVE
    if first in _BACK_REFERENCES:
        return Leaning.REFERENCE
    raw = sentence.split()
    if first == "the" and len(words) > 1 and words[1] in _STAND_INS and raw[1][:1].islower():
        headline_words = {_stem(word.lower()) for word in _WORD.findall(headline)}
        if not names and _stem(words[1]) not in headline_words:
            return Leaning.REFERENCE
    return None


def _carries_the_news(lede: str, headline: str, names: frozenset[str]) -> bool:
    """Tell whether the article's first sentence carries the news on its own.

    It does when it stands alone (no back reference, no connective, not a
    quotation) and names the story: it shares a content word with the
    headline, or names something the headline names.
    """
    if lede[:1] in _OPEN_QUOTES or _leans_back(lede, headline, names) is not None:
        return False
    if count_words(lede) < LEDE_MIN_WORDS:
        return False
    return bool(set(_terms(headline)) & set(_terms(lede)))


def _raise(chance: float, logit: float) -> float:
    """Return ``chance`` with ``logit`` added to its log-odds."""
    chance = min(max(chance, 1e-9), 1.0 - 1e-9)
    return 1.0 / (1.0 + math.exp(-(math.log(chance / (1.0 - chance)) + logit)))


def _truncate(sentence: str, words: int) -> str:
    """Cut a sentence to ``words`` words and mark the cut with an ellipsis."""
    kept = sentence.split()[:words]
    last = kept[-1].rstrip(",;:-\u2013\u2014")
    kept[-1] = (last or kept[-1]) + ELLIPSIS
    return " ".join(kept)


def summarise(headline: str, body: str, words: int = 60) -> str:
    """Return an extractive summary of ``body`` of at most ``words`` words.

    The summary is made of whole sentences in article order and ends on a
    sentence boundary, except when the article's first sentence alone is longer
    than the budget: then it is cut at a word boundary and ends with "…".
    """
    return _summarise(headline, body, words, DEFAULT_WEIGHTS)


def _summarise(headline: str, body: str, words: int, weights: Weights) -> str:
    """Summarise with explicit weights (the benchmark tunes them through here)."""
    if words <= 0:
        return ""
    sentences: list[str] = []
    seen: set[str] = set()
    for sentence in split_sentences(body):
        if sentence not in seen:  # feeds repeat a standfirst as the first paragraph
            seen.add(sentence)
            sentences.append(sentence)
    if not sentences:
        return ""
    lengths = [count_words(sentence) for sentence in sentences]
    if lengths[0] > words:
        return _truncate(sentences[0], words)

    scores = _score_sentences(headline, sentences, weights)
    # Filler that shares nothing with the story stays out even when it fits.
    candidates = {
        index
        for index in _drop_redundant(sentences, scores, weights.redundancy)
        if scores[index] >= weights.floor or index == 0
    }
    names = _named_in(headline, sentences)
    leans = [_leans_back(sentence, headline, names) for sentence in sentences]
    if _carries_the_news(sentences[0], headline, names):
        scores[0] = _raise(scores[0], weights.lede)
    values = [scores[i] * lengths[i] if i in candidates else None for i in range(len(sentences))]
    chosen = _best_fit(values, lengths, leans, words)
    if not chosen:  # every sentence leans back: an opening mid-thought beats none
        chosen = _best_fit(values, lengths, [None] * len(sentences), words)
    return " ".join(sentences[i] for i in chosen)


def _drop_redundant(sentences: list[str], scores: list[float], limit: float) -> list[int]:
    """Return the indexes of sentences that do not repeat a better-scored one.

    A sentence is redundant when more than ``limit`` of its content words (or
    of the other's, whichever has fewer) appear in a sentence scored higher.
    """
    bags = [set(_terms(sentence)) for sentence in sentences]
    kept: list[int] = []
    for index in sorted(range(len(sentences)), key=lambda i: (-scores[i], i)):
        if all(_overlap(bags[index], bags[other]) <= limit for other in kept):
            kept.append(index)
    return sorted(kept)


# The sentences picked so far, newest first, as a chain shared between states.
_Picks = tuple[int, "_Picks"] | None
_States = dict[tuple[int, bool, bool], tuple[float, _Picks]]


def _offer(states: _States, key: tuple[int, bool, bool], entry: tuple[float, _Picks]) -> None:
    """Keep ``entry`` for ``key`` unless an earlier one is at least as good."""
    current = states.get(key)
    if current is None or entry[0] > current[0] + 1e-12:
        states[key] = entry


def _best_fit(
    values: list[float | None],
    lengths: list[int],
    leans: list[Leaning | None],
    budget: int,
) -> list[int]:
    """Return the indexes, ascending, of the sentences with the largest total value that fit.

    A 0/1 knapsack over word counts, walked in article order so that it can
    respect how sentences lean on each other: ``values[i]`` is None for a
    sentence that may not be picked; the summary's first sentence must not
    lean back at all, and a later one that opens with a connective must
    follow the sentence before it in the article. On equal totals the
    earlier solution wins, which keeps the result deterministic.
    """
    # A state is (words used, previous sentence picked, anything picked yet),
    # mapped to the best (total value, picked indexes) reaching it.
    states: _States = {(0, False, False): (0.0, None)}
    for index, (value, length, lean) in enumerate(zip(values, lengths, leans, strict=True)):
        following: _States = {}
        for (used, previous, started), (total, picked) in states.items():
            _offer(following, (used, False, started), (total, picked))
            if value is None or length == 0 or used + length > budget:
                continue
            if not started and lean is not None:
                continue  # the summary would open mid-thought
            if started and lean is Leaning.CONNECTIVE and not previous:
                continue  # "However, ..." after nothing to contrast with
            _offer(following, (used + length, True, True), (total + value, (index, picked)))
        states = following or states
    picks = max(states.values(), key=lambda entry: entry[0])[1]
    chosen: list[int] = []
    while picks is not None:
        chosen.append(picks[0])
        picks = picks[1]
    return chosen[::-1]


def _overlap(a: set[str], b: set[str]) -> float:
    """Return the share of the smaller term set found in the other one."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))
