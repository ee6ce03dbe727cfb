"""Fold same-story coverage together and find related links, by similarity over the archive.

The **archive** is every stored article first seen within a window before the
cut (all sections, newest first, capped); its :class:`SimilarityIndex` is
built once and shared by every variant cut from the same archive in a run.

Order of the steps in a variant (``briefing.pipeline.cut.cut_variant``):

1. **Fold** (:func:`fold_candidates`) runs on the candidates of all the
   variant's sections *before* selection. Candidates that cover the same story
   (similarity at least the briefing's ``fold_threshold``, average linkage)
   form a group, across sections; its **lead** is the newest by the time shown
   to readers (ties: the article stored first) and stays a candidate in its
   own sections, while the others leave every section. So a story covered
   five times takes one slot, and the per-section caps, the round-robin cap
   and the size cut then treat it as one item: the others go with their lead,
   as its "Also covered by" links, or not at all.
2. **Select** picks the digest's articles from the folded candidates.
3. **Relate** (:func:`related_links`) gives each item up to ``per_item``
   links to *other stories*: archive articles published within
   ``related_window`` of the item, at least ``related_threshold`` similar to
   it, best first; never an article of the digest, never one folded under a
   lead, never one as similar as ``fold_threshold`` to any item (that is
   the same story again), and each link at most once per digest. Items are
   served in order of importance (the selection's ranking), so the top
   stories get the best links.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import numpy as np

from briefing.domain.models import Link, SelectedArticle
from briefing.pipeline.similarity import Doc, SimilarityIndex


def source_label(article: SelectedArticle) -> str | None:
    """Name where an article came from: its source's name, else its URL's host."""
    if article.source:
        return article.source
    if article.url:
        host = urlsplit(article.url).hostname or ""
        return host.removeprefix("www.") or None
    return None


def as_link(article: SelectedArticle) -> Link | None:
    """Return an article as a headline link, if it has a URL."""
    if not article.url:
        return None
    return Link(
        article_id=article.id,
        title=article.title,
        url=article.url,
        section=article.section,
        source=source_label(article),
        published_at=article.shown_at,
    )


def as_doc(article: SelectedArticle) -> Doc:
    """Return an article as the similarity functions see it (dek, then body)."""
    body = "\n".join(part for part in (article.dek, article.body_text) if part)
    return Doc(id=str(article.id), title=article.title, body=body, at=article.shown_at)


class Archive:
    """Hold the stored articles related links come from, and their similarity index.

    The index is built on first use and kept: every variant given the same
    ``Archive`` object shares one index.
    """

    def __init__(self, articles: Iterable[SelectedArticle]) -> None:
        """Keep ``articles`` in the order given, each id once."""
        self.by_id: dict[int, SelectedArticle] = {}
        for article in articles:
            self.by_id.setdefault(article.id, article)
        self._index: SimilarityIndex | None = None

    def __len__(self) -> int:
        """Return how many articles the archive holds."""
        return len(self.by_id)

    @property
    def index(self) -> SimilarityIndex:
        """Return the similarity index over the archive, building it once."""
        if self._index is None:
            self._index = SimilarityIndex([as_doc(a) for a in self.by_id.values()])
        return self._index

    def covering(self, articles: Iterable[SelectedArticle]) -> Archive:
        """Return this archive if it holds every article given, else one that adds the others.

        A variant's candidates are normally in its archive already (the
        archive's window spans every section's lookback); the wider archive,
        with an index of its own, is for when the archive's cap left some out.
        """
        missing = {a.id: a for a in articles if a.id not in self.by_id}
        if not missing:
            return self
        return Archive([*self.by_id.values(), *(missing[key] for key in sorted(missing))])


@dataclass(frozen=True)
class Folding:
    """The candidates with same-story coverage folded under each story's lead."""

    candidates: Mapping[str, Sequence[SelectedArticle]]
    covered: Mapping[int, tuple[SelectedArticle, ...]] = field(default_factory=dict)

    @property
    def folded(self) -> frozenset[int]:
        """Return the ids of every article folded under a lead."""
        return frozenset(a.id for members in self.covered.values() for a in members)

    def also_covered(self, lead_id: int) -> tuple[Link, ...]:
        """Return the links to the other coverage of a lead's story, newest first."""
        links = (as_link(article) for article in self.covered.get(lead_id, ()))
        return tuple(link for link in links if link is not None)


def _newest_first_key(article: SelectedArticle) -> tuple[float, int]:
    return (-article.shown_at.timestamp(), article.id)


def fold_candidates(
    candidates: Mapping[str, Sequence[SelectedArticle]],
    sections: Sequence[str],
    index: SimilarityIndex,
    threshold: float,
) -> Folding:
    """Fold the candidates of ``sections`` that cover one story under its newest article."""
    unique: dict[int, SelectedArticle] = {}
    for key in sections:
        for article in candidates.get(key, ()):
            unique.setdefault(article.id, article)
    groups = index.groups([str(article_id) for article_id in unique], threshold)
    covered: dict[int, tuple[SelectedArticle, ...]] = {}
    for group in groups:
        if len(group) < 2:
            continue
        lead, *others = sorted((unique[int(i)] for i in group), key=_newest_first_key)
        covered[lead.id] = tuple(others)
    folded = {a.id for members in covered.values() for a in members}
    return Folding(
        candidates={
            key: [a for a in candidates.get(key, ()) if a.id not in folded] for key in sections
        },
        covered=covered,
    )


def related_links(
    items: Sequence[SelectedArticle],
    archive: Archive,
    *,
    per_item: int,
    window: timedelta,
    threshold: float,
    same_story: float,
    exclude: Collection[int] = (),
) -> dict[int, tuple[Link, ...]]:
    """Give each item, most important first, up to ``per_item`` links to other stories.

    ``items`` are the digest's articles in order of importance, all in the
    archive; ``exclude`` names articles that must not be linked (those folded
    under a lead). See the module docstring for the rules.
    """
    if per_item <= 0 or not items:
        return {article.id: () for article in items}
    index = archive.index
    item_ids = [str(article.id) for article in items]
    scores = index.scores(item_ids)
    # An article this similar to any item is the same story again, not another one.
    again = np.flatnonzero((scores >= same_story).any(axis=0)).tolist()
    unlinkable = {doc_id for doc_id, article in archive.by_id.items() if not article.url}
    used = {*unlinkable, *exclude, *(article.id for article in items)}
    used.update(int(index.docs[position].id) for position in again)
    related: dict[int, tuple[Link, ...]] = {}
    for article, doc_id, row in zip(items, item_ids, scores, strict=True):
        found = index.neighbours(
            doc_id,
            k=per_item,
            window=window,
            threshold=threshold,
            exclude={str(i) for i in used},
            scores=row,
        )
        links = []
        for other_id, _ in found:
            link = as_link(archive.by_id[int(other_id)])
            if link is not None:
                links.append(link)
                used.add(int(other_id))
        related[article.id] = tuple(links)
    return related
