"""Apply an editor's overrides of one issue to a variant being cut: pure, data in, data out.

Overrides are read from the store by ``editions/variants.py`` and passed in
with the candidates, so preview, ``briefing edition show`` and dispatch cut
the same thing. Where each applies in ``cut_variant`` (the order matters):

1. **add** (:func:`with_additions`), before folding: an added article joins
   the candidates of its section when the variant carries that section,
   whatever its age;
2. **source** and **drop** (:func:`reshape_folding`), after folding: the
   chosen article of a same-story group becomes its lead, the former lead
   one of its "Also covered by" links; a dropped lead takes its whole story
   out, a dropped member only its own link;
3. **pin** and **add** (:func:`favour`), after selection: pinned and added
   articles are kept whatever the caps (other items make room), pinned ones
   first in their section in the order they were pinned, and both rank
   first, so the size limit drops them last;
4. **headline** and **summary** (:func:`reword`), when the digest is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from briefing.domain.models import SelectedArticle, Selection
from briefing.pipeline.relate import Folding


@dataclass(frozen=True)
class EditorialOverrides:
    """An issue's overrides as the pipeline uses them (article ids throughout)."""

    pinned: tuple[int, ...] = ()
    dropped: frozenset[int] = frozenset()
    headlines: Mapping[int, str] = field(default_factory=dict)
    summaries: Mapping[int, str] = field(default_factory=dict)
    sources: frozenset[int] = frozenset()
    added: tuple[SelectedArticle, ...] = ()

    @property
    def forced(self) -> tuple[int, ...]:
        """Return the articles kept whatever the caps: pinned, then added."""
        pinned = [i for i in self.pinned if i not in self.dropped]
        return (
            *pinned,
            *(a.id for a in self.added if a.id not in self.dropped and a.id not in pinned),
        )

    def __bool__(self) -> bool:
        """Tell whether there is anything to apply."""
        return bool(
            self.pinned
            or self.dropped
            or self.headlines
            or self.summaries
            or self.sources
            or self.added
        )


NO_OVERRIDES = EditorialOverrides()


def with_additions(
    candidates: Mapping[str, Sequence[SelectedArticle]],
    sections: Sequence[str],
    overrides: EditorialOverrides,
) -> dict[str, list[SelectedArticle]]:
    """Return the candidates with each added article in its section, if the variant has it."""
    found = {key: list(candidates.get(key, ())) for key in sections}
    for article in overrides.added:
        if article.section in found and all(a.id != article.id for a in found[article.section]):
            found[article.section].append(article)
    return found


def reshape_folding(folding: Folding, overrides: EditorialOverrides) -> Folding:
    """Put each chosen source at the head of its story, and take dropped articles out."""
    if not (overrides.sources or overrides.dropped):
        return folding
    renamed: dict[int, SelectedArticle] = {}  # former lead id -> the article now leading
    covered: dict[int, tuple[SelectedArticle, ...]] = {}
    for lead_id, members in folding.covered.items():
        chosen = next((m for m in members if m.id in overrides.sources), None)
        if chosen is None:
            covered[lead_id] = members
            continue
        lead = _lead_article(folding, lead_id)
        others = tuple(m for m in members if m.id != chosen.id)
        covered[chosen.id] = ((lead,) if lead is not None else ()) + others
        renamed[lead_id] = chosen
    gone = set(overrides.dropped)
    for lead_id in list(covered):
        if lead_id in gone:
            gone.update(m.id for m in covered.pop(lead_id))
        else:
            covered[lead_id] = tuple(m for m in covered[lead_id] if m.id not in gone)
    candidates = {
        key: [
            renamed[a.id].model_copy(update={"section": key}) if a.id in renamed else a
            for a in articles
        ]
        for key, articles in folding.candidates.items()
    }
    return Folding(
        candidates={
            key: [a for a in articles if a.id not in gone] for key, articles in candidates.items()
        },
        covered=covered,
    )


def _lead_article(folding: Folding, lead_id: int) -> SelectedArticle | None:
    for articles in folding.candidates.values():
        for article in articles:
            if article.id == lead_id:
                return article
    return None


def favour(
    selection: Selection,
    candidates: Mapping[str, Sequence[SelectedArticle]],
    overrides: EditorialOverrides,
    max_per_section: Mapping[str, int],
    cap: int,
) -> Selection:
    """Keep pinned and added articles whatever the caps, pinned first in their section."""
    forced = overrides.forced
    if not forced:
        return selection
    rank = {article_id: position for position, article_id in enumerate(forced)}
    picks = {key: [a for a in selection.articles if a.section == key] for key in selection.sections}
    taken = {a.id for a in selection.articles}
    for key in selection.sections:
        for article in candidates.get(key, ()):
            if article.id in rank and article.id not in taken:
                picks[key].append(article.model_copy(update={"section": key}))
                taken.add(article.id)
    ranking = [i for i in forced if i in taken] + [i for i in selection.ranking if i not in rank]
    dropped = selection.dropped
    # Make room: the lowest-ranked unforced items go, per section, then over the whole cap.
    for key in selection.sections:
        while len(picks[key]) > max_per_section.get(key, len(picks[key])):
            lowest = _lowest_unforced(ranking, picks[key], rank)
            if lowest is None:
                break
            picks[key] = [a for a in picks[key] if a.id != lowest]
            ranking.remove(lowest)
            dropped += 1
    while len(ranking) > cap:
        kept = [a for key in selection.sections for a in picks[key]]
        lowest = _lowest_unforced(ranking, kept, rank)
        if lowest is None:
            break
        for key in selection.sections:
            picks[key] = [a for a in picks[key] if a.id != lowest]
        ranking.remove(lowest)
        dropped += 1
    pinned = {article_id: position for position, article_id in enumerate(overrides.pinned)}
    ordered = tuple(
        a
        for key in selection.sections
        for a in sorted(
            picks[key],
            key=lambda a: (0, pinned[a.id]) if a.id in pinned else (1, 0),
        )
    )
    return selection.model_copy(
        update={"articles": ordered, "ranking": tuple(ranking), "dropped": dropped}
    )


def _lowest_unforced(
    ranking: Sequence[int], articles: Sequence[SelectedArticle], forced: Mapping[int, int]
) -> int | None:
    present = {a.id for a in articles}
    for article_id in reversed(ranking):
        if article_id in present and article_id not in forced:
            return article_id
    return None


def reword(
    article: SelectedArticle, summary: str, overrides: EditorialOverrides
) -> tuple[SelectedArticle, str]:
    """Return the article with the editor's headline, and the editor's summary, if any."""
    headline = overrides.headlines.get(article.id)
    if headline is not None:
        article = article.model_copy(update={"title": headline})
    return article, overrides.summaries.get(article.id, summary)
