"""Measure summary, related-link and folding quality on the development data.

Usage::

    python benchmarks/quality.py --data ../shared/data --out /tmp/quality.jsonl \
        [--limit-per-section N] [--split-seed 7]

``DIR`` has the layout of ``../shared/data``: ``bbc/articles/<section>/NNN.txt``
with ``bbc/summaries/<section>/NNN.txt``, and ``allsides/stories.jsonl``.

Writes one JSON line per BBC article (``task`` "summary", the project's
60-word summary) and two per AllSides article (``task`` "related": its two most
similar other articles dated within three days; ``task`` "fold": the cluster
the folding step put it in), then prints ROUGE-1/2/L F1 for the project, the
lead-60-words baseline and sumy's LexRank, TextRank and LSA (every output cut
to 60 words), per-section ROUGE-2, how the summaries read on their own (the
share opening on a dangling word, see ``dangling_opening``; the share holding
the article's first sentence; the count over the budget) for the project, lead
and LexRank, related precision@2 and recall@2 against
plain TF-IDF, folding pairwise precision/recall/F1, and milliseconds per
summary. With ``--split-seed`` the figures are also given for a random half of
the articles and for the other half. Each summary line of the output also says
whether it opens on a dangling word (``dangling``) and holds the lede (``lede``).

Last, the settings the email uses by default (``BriefingConfig``'s
``fold_threshold``, ``related_threshold`` and ``related_links``): folding
precision/recall/F1 at the email's threshold, and the related links
``briefing.pipeline.relate.related_links`` gives each BBC article from the rest of the
set (other stories only), with the share of links in the article's own section.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from rouge_score import rouge_scorer
from sklearn.feature_extraction.text import TfidfVectorizer

from briefing.config import BriefingConfig
from briefing.domain.models import SelectedArticle
from briefing.pipeline.relate import Archive, related_links
from briefing.pipeline.similarity import Doc, SimilarityIndex, fold
from briefing.pipeline.summarise import ELLIPSIS, count_words, split_sentences, summarise

BUDGET = 60
RELATED_K = 2
RELATED_WINDOW = timedelta(days=3)
SYSTEMS = ("project", "lead", "lexrank", "textrank", "lsa")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Article:
    """Hold one BBC article with its reference summary."""

    id: str
    section: str
    headline: str
    body: str
    reference: str


@dataclass(frozen=True)
class Story:
    """Hold one AllSides article and the story it belongs to."""

    doc: Doc
    story: str


def read_text(path: Path) -> str:
    """Read a file as UTF-8, falling back to Latin-1 for older BBC files."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def load_bbc(data: Path, limit_per_section: int | None = None) -> list[Article]:
    """Load BBC articles and their reference summaries, sorted by section and file."""
    articles: list[Article] = []
    root = data / "bbc" / "articles"
    for section_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(section_dir.glob("*.txt"))
        if limit_per_section is not None:
            files = files[:limit_per_section]
        for path in files:
            headline, _, body = read_text(path).strip().partition("\n")
            reference = read_text(data / "bbc" / "summaries" / section_dir.name / path.name)
            articles.append(
                Article(
                    id=f"{section_dir.name}/{path.stem}",
                    section=section_dir.name,
                    headline=headline.strip(),
                    body=body.strip(),
                    reference=reference.strip(),
                )
            )
    return articles


def load_allsides(data: Path) -> list[Story]:
    """Load AllSides articles as docs dated by their story, in file order."""
    stories: list[Story] = []
    with (data / "allsides" / "stories.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            at = datetime.fromisoformat(record["date"])
            for side in ("left", "center", "right"):
                article = record.get("news", {}).get(side)
                if not article:
                    continue
                doc = Doc(
                    id=f"{record['id']}/{side}",
                    title=article.get("newsTitle") or "",
                    body="\n\n".join(article.get("newBody") or []),
                    at=at,
                )
                stories.append(Story(doc=doc, story=str(record["id"])))
    return stories


# --------------------------------------------------------------------------
# Summaries


def cut(text: str, words: int = BUDGET) -> str:
    """Keep the first ``words`` whitespace-separated words of ``text``."""
    return " ".join(text.split()[:words])


class SentenceTokenizer:
    """Give sumy our sentence splitter and a plain word regex, so nothing downloads."""

    language = "english"

    def to_sentences(self, paragraph: str) -> tuple[str, ...]:
        """Split a paragraph into sentences."""
        return tuple(split_sentences(paragraph))

    def to_words(self, sentence: str) -> tuple[str, ...]:
        """Split a sentence into words."""
        return tuple(_WORD.findall(sentence))


def sumy_systems() -> dict[str, Callable[[str], str]]:
    """Return LexRank, TextRank and LSA from sumy, each filling the word budget."""
    from sumy.nlp.stemmers import Stemmer
    from sumy.parsers.plaintext import PlaintextParser
    from sumy.summarizers.lex_rank import LexRankSummarizer
    from sumy.summarizers.lsa import LsaSummarizer
    from sumy.summarizers.text_rank import TextRankSummarizer
    from sumy.utils import get_stop_words

    tokenizer = SentenceTokenizer()
    stemmer = Stemmer("english")
    stop_words = get_stop_words("english")

    def until_budget(infos: list[Any]) -> list[Any]:
        # sumy hands this the sentences best first; keep them until the budget is full.
        kept: list[Any] = []
        total = 0
        for info in infos:
            if total >= BUDGET:
                break
            kept.append(info)
            total += count_words(str(info.sentence))
        return kept

    def wrap(summarizer_class: Any) -> Callable[[str], str]:
        summarizer = summarizer_class(stemmer)
        summarizer.stop_words = stop_words

        def run(body: str) -> str:
            document = PlaintextParser.from_string(body, tokenizer).document
            chosen = summarizer(document, until_budget)
            return cut(" ".join(str(sentence) for sentence in chosen))

        return run

    return {
        "lexrank": wrap(LexRankSummarizer),
        "textrank": wrap(TextRankSummarizer),
        "lsa": wrap(LsaSummarizer),
    }


@dataclass
class SummaryRun:
    """Hold every system's summary of every article, and the project's timings."""

    outputs: dict[str, dict[str, str]]
    milliseconds: list[float]


def run_summaries(articles: Sequence[Article]) -> SummaryRun:
    """Summarise every article with the project and each baseline."""
    baselines = sumy_systems()
    outputs: dict[str, dict[str, str]] = {name: {} for name in SYSTEMS}
    milliseconds: list[float] = []
    for article in articles:
        started = time.perf_counter()
        outputs["project"][article.id] = summarise(article.headline, article.body, BUDGET)
        milliseconds.append((time.perf_counter() - started) * 1000.0)
        outputs["lead"][article.id] = cut(article.body)
        for name, system in baselines.items():
            outputs[name][article.id] = system(article.body)
    return SummaryRun(outputs=outputs, milliseconds=milliseconds)


def rouge_table(
    articles: Sequence[Article], outputs: dict[str, dict[str, str]]
) -> dict[str, dict[str, dict[str, float]]]:
    """Return ROUGE F1 by system, metric and article id."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, summaries in outputs.items():
        metrics: dict[str, dict[str, float]] = {"rouge1": {}, "rouge2": {}, "rougeL": {}}
        for article in articles:
            scores = scorer.score(article.reference, cut(summaries[article.id]))
            for metric, by_article in metrics.items():
                by_article[article.id] = scores[metric].fmeasure
        table[name] = metrics
    return table


# How a summary reads on its own. A summary opens on a dangling word when its
# first word, after any opening quote and with "'s", "'re", "'ve", "'d" or
# "'ll" taken off, lower-cased, is in DANGLING_WORDS (pronouns,
# demonstratives and discourse connectives that point back to a sentence the
# reader never saw), when its first words are a phrase in DANGLING_PHRASES,
# or when it opens with "The" and a lower-case noun from STAND_IN_NOUNS
# ("The company", "The firm's") while the headline holds neither that noun nor
# a capitalised word after its first. "So far" and hyphenated first words
# ("Then-president") are not counted. A summary contains the lede when the
# article's first sentence is in it whole (or, longer than the budget, is
# the start of the summary cut with an ellipsis).


def _words(text: str) -> frozenset[str]:
    """Return the whitespace-separated words of ``text`` as a set."""
    return frozenset(text.split())


DANGLING_WORDS = _words(
    """
    he him his she her hers it its they them their theirs this these those that
    such others however but and also meanwhile instead still yet therefore
    moreover furthermore nevertheless nonetheless thus hence besides likewise
    similarly otherwise consequently then so or nor plus additionally accordingly
    """
)
DANGLING_PHRASES = (
    "in addition",
    "as a result",
    "on the other hand",
    "even so",
    "at the same time",
    "by contrast",
    "in contrast",
    "in turn",
    "in the meantime",
    "in other words",
)
STAND_IN_NOUNS = _words(
    """
    company firm group club side team bank airline carrier retailer giant maker
    star singer actor actress band player pair duo couple film show album deal
    plan move decision report latter
    """
)
_QUOTES = "\"'\u201c\u2018\u00ab("
_ENDINGS = ("'s", "'re", "'ve", "'d", "'ll")


def _plain_word(token: str) -> str:
    """Lower-case a token without quotes, punctuation or a contraction ending."""
    word = token.strip(_QUOTES + "\"'\u201d\u2019\u00bb),;:.!?").lower().replace("\u2019", "'")
    for ending in _ENDINGS:
        if word.endswith(ending):
            return word[: -len(ending)]
    return word


def dangling_opening(headline: str, summary: str) -> bool:
    """Tell whether a summary's first word points back to a sentence it does not hold."""
    tokens = summary.split()[:4]
    if not tokens:
        return False
    words = [_plain_word(token) for token in tokens]
    if "-" in words[0] or words[:2] == ["so", "far"]:
        return False
    opening = " ".join(words) + " "
    if words[0] in DANGLING_WORDS or opening.startswith(tuple(f"{p} " for p in DANGLING_PHRASES)):
        return True
    if words[0] != "the" or len(tokens) < 2 or not tokens[1][:1].islower():
        return False
    named = any(word[:1].isupper() for word in headline.split()[1:])
    return words[1] in STAND_IN_NOUNS and not named and words[1] not in headline.lower().split()


def contains_lede(body: str, summary: str) -> bool:
    """Tell whether the summary holds the article's first sentence."""
    sentences = split_sentences(body)
    if not sentences:
        return False
    lede = sentences[0]
    if lede in summary:
        return True
    return summary.endswith(ELLIPSIS) and lede.startswith(summary[: -len(ELLIPSIS)])


# --------------------------------------------------------------------------
# Related links and folding


def plain_tfidf_neighbours(stories: Sequence[Story]) -> dict[str, list[str]]:
    """Return each article's two nearest neighbours by the plain TF-IDF baseline."""
    texts = [f"{s.doc.title}\n{s.doc.body}" for s in stories]
    matrix = TfidfVectorizer(ngram_range=(1, 2)).fit_transform(texts)
    scores = (matrix @ matrix.T).toarray()
    return _top_k(stories, scores)


def _top_k(stories: Sequence[Story], scores: np.ndarray[Any, Any]) -> dict[str, list[str]]:
    """Pick the k best other articles within the window from a score matrix."""
    times = np.array([s.doc.at.timestamp() for s in stories])
    limit = RELATED_WINDOW.total_seconds()
    result: dict[str, list[str]] = {}
    for i, story in enumerate(stories):
        candidates = [
            j for j in range(len(stories)) if j != i and abs(times[j] - times[i]) <= limit
        ]
        candidates.sort(key=lambda j: (-scores[i, j], j))
        result[story.doc.id] = [stories[j].doc.id for j in candidates[:RELATED_K]]
    return result


def project_neighbours(stories: Sequence[Story]) -> dict[str, list[str]]:
    """Return each article's two nearest neighbours by the project's index."""
    index = SimilarityIndex([s.doc for s in stories])
    return {
        s.doc.id: [
            other
            for other, _ in index.neighbours(
                s.doc.id, k=RELATED_K, window=RELATED_WINDOW, threshold=float("-inf")
            )
        ]
        for s in stories
    }


def related_scores(
    stories: Sequence[Story], related: dict[str, list[str]], ids: Iterable[str]
) -> tuple[float, float]:
    """Return mean precision@k and recall@k over the articles in ``ids``."""
    story_of = {s.doc.id: s.story for s in stories}
    members: dict[str, int] = {}
    for s in stories:
        members[s.story] = members.get(s.story, 0) + 1
    precision: list[float] = []
    recall: list[float] = []
    for doc_id in ids:
        hits = sum(story_of[other] == story_of[doc_id] for other in related[doc_id])
        relevant = members[story_of[doc_id]] - 1
        precision.append(hits / RELATED_K)
        recall.append(hits / relevant if relevant else 1.0)
    return statistics.fmean(precision), statistics.fmean(recall)


def pairwise_scores(
    gold: dict[str, str], predicted: dict[str, str], ids: Sequence[str]
) -> tuple[float, float, float]:
    """Return pairwise precision, recall and F1 of a clustering over ``ids``."""
    true_positive = predicted_pairs = gold_pairs = 0
    for a, b in combinations(ids, 2):
        same_gold = gold[a] == gold[b]
        same_predicted = predicted[a] == predicted[b]
        gold_pairs += same_gold
        predicted_pairs += same_predicted
        true_positive += same_gold and same_predicted
    precision = true_positive / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive / gold_pairs if gold_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def email_default(name: str) -> Any:
    """Return the default of a briefing setting, as the email uses it."""
    return BriefingConfig.model_fields[name].default


def email_related(
    articles: Sequence[Article], threshold: float, same_story: float, per_item: int
) -> tuple[float, float, float]:
    """Relate each BBC article to the rest as the email would; return links per article,
    share of articles with a link, and share of links in the article's own section."""
    at = datetime(2005, 1, 1, tzinfo=UTC)
    stored = [
        SelectedArticle(
            id=number,
            section=a.section,
            title=a.headline,
            url=f"https://bbc.example/{a.id}",
            dek=None,
            body_text=a.body,
            image_url=None,
            image_alt=None,
            image_credit=None,
            published_at=at,
            first_seen_at=at,
        )
        for number, a in enumerate(articles)
    ]
    archive = Archive(stored)
    found = [
        related_links(
            [article],
            archive,
            per_item=per_item,
            window=RELATED_WINDOW,
            threshold=threshold,
            same_story=same_story,
        )[article.id]
        for article in stored
    ]
    links = [
        (article, link) for article, group in zip(stored, found, strict=True) for link in group
    ]
    same = [archive.by_id[link.article_id or 0].section == a.section for a, link in links]
    return len(links) / len(stored), mean(bool(g) for g in found), mean(same)


# --------------------------------------------------------------------------
# Report


def mean(values: Iterable[float]) -> float:
    """Return the arithmetic mean (0 for no values)."""
    values = list(values)
    return statistics.fmean(values) if values else 0.0


def print_summary_table(
    articles: Sequence[Article],
    table: dict[str, dict[str, dict[str, float]]],
    title: str,
    outputs: dict[str, dict[str, str]],
) -> None:
    """Print ROUGE F1 per system and ROUGE-2 per section for a subset of articles."""
    ids = [a.id for a in articles]
    print(f"\n{title}: {len(ids)} BBC articles, {BUDGET}-word summaries, ROUGE F1 (stemmed)")
    print(f"  {'system':<10} {'R-1':>7} {'R-2':>7} {'R-L':>7}")
    for name in SYSTEMS:
        metrics = table[name]
        line = " ".join(f"{mean(metrics[m][i] for i in ids):7.4f}" for m in metrics)
        print(f"  {name:<10} {line}")
    best = max(mean(table[name]["rouge2"][i] for i in ids) for name in ("lead", "lexrank"))
    margin = mean(table["project"]["rouge2"][i] for i in ids) - best
    verdict = "yes" if margin >= 0.03 else "NO"
    print(f"  project R-2 minus best of lead/LexRank: {margin:+.4f} (target >= +0.03: {verdict})")
    print(f"  ROUGE-2 by section   {'project':>8} {'lead':>8} {'lexrank':>8}  above both")
    for section in sorted({a.section for a in articles}):
        in_section = [a.id for a in articles if a.section == section]
        figures = {
            name: mean(table[name]["rouge2"][i] for i in in_section)
            for name in ("project", "lead", "lexrank")
        }
        above = "yes" if figures["project"] > max(figures["lead"], figures["lexrank"]) else "NO"
        print(
            f"  {section:<20} {figures['project']:8.4f} {figures['lead']:8.4f}"
            f" {figures['lexrank']:8.4f}  {above} (n={len(in_section)})"
        )
    print(f"  reading on its own   {'dangling':>8} {'lede':>8} {'over':>8}")
    for name in ("project", "lead", "lexrank"):
        summaries = outputs[name]
        dangling = mean(dangling_opening(a.headline, summaries[a.id]) for a in articles)
        lede = mean(contains_lede(a.body, summaries[a.id]) for a in articles)
        over = sum(count_words(summaries[a.id]) > BUDGET for a in articles)
        print(f"  {name:<20} {dangling:8.3f} {lede:8.3f} {over:8d}")
    dangling = mean(dangling_opening(a.headline, outputs["project"][a.id]) for a in articles)
    over = sum(count_words(outputs["project"][a.id]) > BUDGET for a in articles)
    print(
        f"  project dangling openings {dangling:.1%} (target <= 1%:"
        f" {'yes' if dangling <= 0.01 else 'NO'}); over the budget {over} (target 0:"
        f" {'yes' if over == 0 else 'NO'})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder laid out like shared/data")
    parser.add_argument("--out", type=Path, required=True, help="JSON Lines file to write")
    parser.add_argument(
        "--limit-per-section", type=int, default=None, help="use the first N articles per section"
    )
    parser.add_argument(
        "--split-seed", type=int, default=7, help="seed of the random half used for stability"
    )
    args = parser.parse_args(argv)

    articles = load_bbc(args.data, args.limit_per_section)
    stories = load_allsides(args.data)

    run = run_summaries(articles)
    neighbours = project_neighbours(stories)
    baseline = plain_tfidf_neighbours(stories)
    started = time.perf_counter()
    groups = fold([s.doc for s in stories])
    fold_seconds = time.perf_counter() - started
    cluster = {doc_id: group[0] for group in groups for doc_id in group}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for article in articles:
            summary = run.outputs["project"][article.id]
            record = {
                "task": "summary",
                "id": article.id,
                "summary": summary,
                "dangling": dangling_opening(article.headline, summary),
                "lede": contains_lede(article.body, summary),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        for s in stories:
            out.write(
                json.dumps({"task": "related", "id": s.doc.id, "related": neighbours[s.doc.id]})
                + "\n"
            )
        for s in stories:
            out.write(
                json.dumps({"task": "fold", "id": s.doc.id, "cluster": cluster[s.doc.id]}) + "\n"
            )

    table = rouge_table(articles, run.outputs)
    rng = random.Random(args.split_seed)
    half = set(rng.sample([a.id for a in articles], len(articles) // 2))
    print_summary_table(articles, table, "All", run.outputs)
    print_summary_table(
        [a for a in articles if a.id in half],
        table,
        f"Random half (seed {args.split_seed})",
        run.outputs,
    )
    print_summary_table([a for a in articles if a.id not in half], table, "Other half", run.outputs)

    ms = run.milliseconds
    print(
        f"\nProject summariser: median {statistics.median(ms):.2f} ms, mean {mean(ms):.2f} ms,"
        f" max {max(ms):.2f} ms per article"
    )

    gold = {s.doc.id: s.story for s in stories}
    ids = [s.doc.id for s in stories]
    story_ids = sorted({s.story for s in stories})
    story_half = set(random.Random(args.split_seed).sample(story_ids, len(story_ids) // 2))
    subsets = [
        ("all", ids),
        ("half", [i for i in ids if gold[i] in story_half]),
        ("other half", [i for i in ids if gold[i] not in story_half]),
    ]
    print(
        f"\nAllSides: {len(stories)} articles in {len(story_ids)} stories;"
        f" related = top {RELATED_K} within {RELATED_WINDOW.days} days"
    )
    print(
        f"  {'subset':<11} {'project P@2':>11} {'R@2':>6} {'plain TF-IDF P@2':>17} {'R@2':>6}"
        "   fold P / R / F1"
    )
    for label, subset in subsets:
        p, r = related_scores(stories, neighbours, subset)
        bp, br = related_scores(stories, baseline, subset)
        fp, fr, ff = pairwise_scores(gold, cluster, subset)
        print(
            f"  {label:<11} {p:11.4f} {r:6.4f} {bp:17.4f} {br:6.4f}"
            f"   {fp:.4f} / {fr:.4f} / {ff:.4f}"
        )
    print("  (halves split by story; folding is run once over the whole file)")
    p, _ = related_scores(stories, neighbours, ids)
    _, _, ff = pairwise_scores(gold, cluster, ids)
    print(
        f"  related P@2 target >= 0.92: {'yes' if p >= 0.92 else 'NO'};"
        f" fold F1 target >= 0.85: {'yes' if ff >= 0.85 else 'NO'}"
    )
    print(
        f"  fold of {len(stories)} articles took {fold_seconds * 1000:.0f} ms; {len(groups)} groups"
    )

    fold_at = email_default("fold_threshold")
    related_at = email_default("related_threshold")
    per_item = email_default("related_links")
    print(
        f"\nEmail defaults: fold_threshold {fold_at}, related_threshold {related_at},"
        f" related_links {per_item}"
    )
    email_groups = fold([s.doc for s in stories], fold_at)
    email_cluster = {doc_id: group[0] for group in email_groups for doc_id in group}
    fp, fr, ff = pairwise_scores(gold, email_cluster, ids)
    print(
        f"  AllSides folding at {fold_at}: P / R / F1 {fp:.4f} / {fr:.4f} / {ff:.4f};"
        f" {len(email_groups)} groups"
    )
    print("  BBC related links (other stories only)   links/article  with a link  same section")
    for threshold in sorted({0.05, related_at, 0.11}):
        per, covered, same = email_related(articles, threshold, fold_at, per_item)
        mark = "  <- default" if threshold == related_at else ""
        print(
            f"    related_threshold {threshold:<5}            {per:13.2f} {covered:12.3f}"
            f" {same:13.3f}{mark}"
        )
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
