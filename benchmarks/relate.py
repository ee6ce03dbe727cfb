"""Measure what related links and folding cost per variant, against the old same-section links.

Usage::

    python benchmarks/relate.py --data ../shared/data [--archive 1000] [--variants 20]

Builds an archive of real, long articles (the BBC set, in sections business,
entertainment, politics, sport and tech, and the AllSides stories as world,
three outlets per story), first seen over the three days before the cut. Each
variant takes a different set of sections; its candidates are its sections'
articles of the last 24 hours. Then times, in this one process:

- building the similarity index over the archive: once per dispatch run;
- per variant, fold + select + related links with the shared index (the
  project's method), and select + the old method (recent articles of the
  item's own section, newest first, each once);
- per variant, the whole ``build_variant`` (summaries, render, compose too),
  for scale.

Prints medians, the ratio new / old, and the cost per variant once the
index is shared by the run's variants.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import load_allsides, load_bbc

from briefing.config import BriefingConfig, Config
from briefing.domain.models import Link, SelectedArticle, Selection
from briefing.editions.variants import CANDIDATE_SLACK, VariantInputs, VariantSpec, build_variant
from briefing.pipeline.relate import Archive, as_link, fold_candidates, related_links
from briefing.pipeline.select import newest_first, select_articles
from tests.support.factories import NOW, config_dict, make_config

SECTIONS = ("world", "business", "politics", "tech", "sport", "entertainment")
WINDOW = timedelta(days=3)
LOOKBACK = timedelta(hours=24)


def elapsed_ms(function: Callable[[], object]) -> float:
    """Return the wall time of one call of ``function`` in milliseconds."""
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1000


def load_archive(data: Path, size: int) -> list[SelectedArticle]:
    """Return ``size`` real articles spread evenly over the window before the cut, newest first."""
    texts: list[tuple[str, str, str]] = [(a.section, a.headline, a.body) for a in load_bbc(data)]
    texts += [("world", s.doc.title, s.doc.body) for s in load_allsides(data)]
    random.Random(7).shuffle(texts)
    texts = texts[:size]
    step = WINDOW / max(len(texts), 1)
    articles = []
    for number, (section, title, body) in enumerate(texts, start=1):
        at = NOW - step * number
        articles.append(
            SelectedArticle(
                id=number,
                section=section,
                title=title,
                url=f"https://news.example.org/{number}",
                dek=None,
                body_text=body,
                image_url=None,
                image_alt=None,
                image_credit=None,
                published_at=at,
                first_seen_at=at,
            )
        )
    return articles


def old_related(
    digest: Sequence[SelectedArticle],
    archive: Mapping[str, Sequence[SelectedArticle]],
    per_item: int,
) -> dict[int, tuple[Link, ...]]:
    """Give each item recent same-section links (the method this project used before)."""
    used = {article.id for article in digest}
    related: dict[int, tuple[Link, ...]] = {}
    for article in digest:
        links: list[Link] = []
        for candidate in newest_first(archive.get(article.section, ())):
            if len(links) >= per_item:
                break
            link = as_link(candidate)
            if link is None or candidate.id in used:
                continue
            used.add(candidate.id)
            links.append(link)
        related[article.id] = tuple(links)
    return related


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--archive", type=int, default=1000, help="articles in the archive")
    parser.add_argument("--variants", type=int, default=20, help="variants cut in one run")
    parser.add_argument("--runs", type=int, default=5, help="runs to take medians over")
    args = parser.parse_args(argv)
    if not (args.data / "bbc" / "articles").is_dir():
        print(
            f"benchmarks/relate.py: no development data in {args.data} "
            "(expected bbc/ and allsides/ as in ../shared/data); nothing measured"
        )
        return 0

    archive_articles = load_archive(args.data, args.archive)
    data = config_dict(
        sections={key: {"title": key.title(), "max_items": 4} for key in SECTIONS},
        briefings={
            "daily": {
                "title": "The Daily",
                "list_id": "daily.example.org",
                "sections": list(SECTIONS),
                "max_items": 20,
            }
        },
    )
    config: Config = make_config(Path(tempfile.mkdtemp()), **data)
    briefing: BriefingConfig = config.briefings["daily"]
    section_sets = [s for n in (2, 3, 4, 5, 6) for s in combinations(SECTIONS, n)]
    chosen = random.Random(7).sample(section_sets, min(args.variants, len(section_sets)))

    recent = [a for a in archive_articles if a.first_seen_at > NOW - LOOKBACK]
    limit = 4 + briefing.max_items + CANDIDATE_SLACK
    candidates = {key: [a for a in recent if a.section == key][:limit] for key in SECTIONS}
    # The old method read the last three days per section, capped like load_archive was.
    per_section = {
        key: [a for a in archive_articles if a.section == key][: briefing.max_items * 2 + 10]
        for key in SECTIONS
    }

    def selection_of(
        sections: Sequence[str], pool: Mapping[str, Sequence[SelectedArticle]]
    ) -> Selection:
        return select_articles(
            "daily", pool, sections, dict.fromkeys(sections, 4), briefing.max_items, None, NOW
        )

    def new_method(archive: Archive, sections: Sequence[str]) -> dict[int, tuple[Link, ...]]:
        folding = fold_candidates(candidates, sections, archive.index, briefing.fold_threshold)
        selection = selection_of(sections, folding.candidates)
        by_id = {a.id: a for a in selection.articles}
        return related_links(
            [by_id[i] for i in selection.ranking],
            archive,
            per_item=briefing.related_links,
            window=briefing.related_window,
            threshold=briefing.related_threshold,
            same_story=briefing.fold_threshold,
            exclude=folding.folded,
        )

    def old_method(sections: Sequence[str]) -> object:
        selection = selection_of(sections, candidates)
        return old_related(selection.articles, per_section, briefing.related_links)

    # One "run" is what dispatch does: build the index once, then cut every
    # variant in turn with it (score rows computed for one variant serve the next).
    builds: list[float] = []
    new_runs: list[list[float]] = []
    old_runs: list[list[float]] = []
    for _ in range(args.runs):
        archive = Archive(archive_articles)
        builds.append(elapsed_ms(lambda archive=archive: archive.index))
        new_runs.append([elapsed_ms(lambda s=s, a=archive: new_method(a, s)) for s in chosen])
        old_runs.append([elapsed_ms(lambda s=s: old_method(s)) for s in chosen])
    specs = [VariantSpec("daily", tuple(s), None, NOW, "en_GB", date(2026, 11, 26)) for s in chosen]
    archive = Archive(archive_articles)
    archive.index  # noqa: B018 - built before the clock starts, as in a run
    whole = [
        elapsed_ms(
            lambda spec=spec: build_variant(config, spec, VariantInputs(candidates, archive))
        )
        for spec in specs
    ]
    folded = sum(
        len(fold_candidates(candidates, s, archive.index, briefing.fold_threshold).folded)
        for s in chosen
    )
    links = sum(len(v) for s in chosen for v in new_method(archive, s).values())

    n = len(chosen)
    build = statistics.median(builds)
    first = statistics.median(run[0] for run in new_runs)
    new = statistics.median(t for run in new_runs for t in run)
    old = statistics.median(t for run in old_runs for t in run)
    total = statistics.median(sum(run) for run in new_runs)
    print(
        f"archive: {len(archive_articles)} articles over {WINDOW.days} days; "
        f"{sum(len(c) for c in candidates.values())} candidates in the last 24 h; "
        f"{n} variants of 2-6 sections; medians of {args.runs} runs"
    )
    print(f"  folded {folded} candidate(s) and gave {links} related link(s) over the {n} variants")
    print(f"similarity index over the archive, once per run:     {build:8.2f} ms")
    print(
        f"per variant, fold + select + related links:          {new:8.2f} ms "
        f"(the run's first variant {first:.2f} ms; all {n} {total:.2f} ms)"
    )
    print(f"per variant, select + old same-section links:        {old:8.2f} ms")
    print(f"ratio new / old per variant:                         {new / old:8.1f}x")
    print(
        f"per variant, index shared by the run's {n} variants:  {(build + total) / n:8.2f} ms "
        f"(an index of its own per variant: {build + first:.2f} ms)"
    )
    print(
        f"per variant, whole build_variant (new method):       "
        f"{statistics.median(whole):8.2f} ms (summaries, render and compose included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
