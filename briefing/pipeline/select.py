"""Choose the articles of a digest: newest first per section, capped, each once.

Candidates are the articles first seen in each section's window (the
subscriber's previous cut, or the section's lookback on a first edition, up to
this cut). Within a section the newest by publication time come first. An
article in two sections appears once, in the first of them. The briefing's
overall cap is shared out round-robin so every section keeps its top stories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from briefing.domain.models import SelectedArticle, Selection


def window_start(since: datetime | None, cut_at: datetime, lookback: timedelta) -> datetime:
    """Return where a section's window opens: the previous cut, but never past the lookback."""
    floor = cut_at - lookback
    return floor if since is None or since < floor else since


def newest_first(articles: Sequence[SelectedArticle]) -> list[SelectedArticle]:
    """Order articles newest first by the time shown to readers, ties by id."""
    return sorted(articles, key=lambda a: (a.shown_at, a.id), reverse=True)


def select_articles(
    briefing: str,
    candidates: Mapping[str, Sequence[SelectedArticle]],
    sections: Sequence[str],
    max_per_section: Mapping[str, int],
    cap: int,
    since: datetime | None,
    cut_at: datetime,
) -> Selection:
    """Pick the digest's articles from each section's candidates."""
    taken: set[int] = set()
    per_section: dict[str, list[SelectedArticle]] = {}
    for key in sections:
        picks: list[SelectedArticle] = []
        for article in newest_first(candidates.get(key, ())):
            if len(picks) >= max_per_section[key]:
                break
            if article.id in taken:
                continue
            taken.add(article.id)
            picks.append(article.model_copy(update={"section": key}))
        per_section[key] = picks
    ranked = [
        per_section[key][rank]
        for rank in range(max((len(p) for p in per_section.values()), default=0))
        for key in sections
        if rank < len(per_section[key])
    ]
    kept = {article.id for article in ranked[:cap]}
    ordered = tuple(a for key in sections for a in per_section[key] if a.id in kept)
    return Selection(
        briefing=briefing,
        sections=tuple(sections),
        since=since,
        cut_at=cut_at,
        articles=ordered,
        ranking=tuple(article.id for article in ranked[:cap]),
        dropped=max(0, len(ranked) - cap),
    )


def drop_lowest(selection: Selection) -> Selection:
    """Remove the least important article (last in the round-robin ranking)."""
    if not selection.ranking:
        return selection
    lowest = selection.ranking[-1]
    return selection.model_copy(
        update={
            "articles": tuple(a for a in selection.articles if a.id != lowest),
            "ranking": selection.ranking[:-1],
            "dropped": selection.dropped + 1,
        }
    )
