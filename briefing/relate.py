"""Find related links for each item of a digest from the stored archive.

This first method offers recent articles of the same section that are not in
the digest themselves, newest first, each link used once per digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from briefing.models import Link, SelectedArticle
from briefing.select import newest_first


def as_link(article: SelectedArticle) -> Link | None:
    """Return an article as a headline link, if it has a URL."""
    if not article.url:
        return None
    return Link(
        article_id=article.id,
        title=article.title,
        url=article.url,
        section=article.section,
        source=article.source,
        published_at=article.shown_at,
    )


def related_same_section(
    digest: Sequence[SelectedArticle],
    archive: Mapping[str, Sequence[SelectedArticle]],
    per_item: int,
) -> dict[int, tuple[Link, ...]]:
    """Give each digest article up to ``per_item`` recent same-section links."""
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
