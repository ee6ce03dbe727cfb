"""Cut a variant's content from its candidates: the pipeline as one pure function.

``cut_variant`` runs fold -> select -> summarise and relate -> render ->
compose on values already read from the store, and drops the lowest item
until the HTML part fits under Gmail's clipping limit. An editor's overrides
of the issue come in with the candidates (``VariantInputs.overrides``) and
apply between the stages (:mod:`briefing.pipeline.overrides` says where). It reads no database
and writes nothing; see :mod:`briefing.pipeline.relate` for why folding comes
before selection.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from briefing import plugins
from briefing.config import Config
from briefing.domain.models import (
    Digest,
    DigestItem,
    DigestSection,
    RenderedDigest,
    SelectedArticle,
    Selection,
)
from briefing.pipeline.compose import HTML_LIMIT, ComposedVariant, compose_variant
from briefing.pipeline.overrides import (
    NO_OVERRIDES,
    EditorialOverrides,
    favour,
    reshape_folding,
    reword,
    with_additions,
)
from briefing.pipeline.relate import Archive, Folding, fold_candidates, related_links
from briefing.pipeline.render import new_placeholders, render_digest
from briefing.pipeline.select import drop_lowest, select_articles

logger = logging.getLogger(__name__)

Summariser = Callable[[SelectedArticle, int], str]
"""Summarise one article within a word budget."""


@dataclass(frozen=True)
class VariantSpec:
    """Everything that decides a variant's content."""

    briefing: str
    sections: tuple[str, ...]
    since: datetime | None
    cut_at: datetime
    locale: str
    issue_date: date

    @property
    def key(self) -> str:
        """Return the variant's identity as a hex digest."""
        payload = json.dumps(
            [
                self.briefing,
                list(self.sections),
                self.since.isoformat() if self.since else None,
                self.cut_at.isoformat(),
                self.locale,
                self.issue_date.isoformat(),
            ]
        )
        return hashlib.sha256(payload.encode()).hexdigest()


SHED_NAMED = 5  # headlines named in the note about items dropped for size


@dataclass(frozen=True)
class VariantInputs:
    """What a variant is cut from: candidates, the related-link archive, the editor's overrides."""

    candidates: Mapping[str, Sequence[SelectedArticle]]
    archive: Archive
    overrides: EditorialOverrides = NO_OVERRIDES


@dataclass(frozen=True)
class BuiltVariant:
    """A variant's content at every stage, before it is stored."""

    spec: VariantSpec
    selection: Selection
    digest: Digest
    rendered: RenderedDigest
    composed: ComposedVariant
    placeholders: Mapping[str, str]
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """Tell whether the digest has no items."""
        return not self.selection.articles


def summary_of(article: SelectedArticle, words: int) -> str:
    """Return the article's own dek, else the summariser's (a plugin's, or the built-in) in ``words``."""
    if article.dek:
        return article.dek
    return plugins.summarise(article.title, article.body_text, words)


def make_digest(
    config: Config,
    spec: VariantSpec,
    selection: Selection,
    folding: Folding,
    archive: Archive,
    summariser: Summariser = summary_of,
    overrides: EditorialOverrides = NO_OVERRIDES,
) -> Digest:
    """Summarise the selected articles and give them their related and also-covered links.

    The editor's headlines and summaries replace the article's own; dropped
    articles are never linked.
    """
    briefing = config.briefings[spec.briefing]
    by_id = {article.id: article for article in selection.articles}
    related = related_links(
        [by_id[article_id] for article_id in selection.ranking if article_id in by_id],
        archive,
        per_item=briefing.related_links,
        window=briefing.related_window,
        threshold=briefing.related_threshold,
        same_story=briefing.fold_threshold,
        exclude=folding.folded | overrides.dropped,
    )

    def item(article: SelectedArticle) -> DigestItem:
        if article.id in overrides.summaries:
            summary = overrides.summaries[article.id]
        else:
            summary = summariser(article, briefing.summary_words)
        shown, summary = reword(article, summary, overrides)
        return DigestItem(
            article=shown,
            summary=summary,
            related=related.get(article.id, ()),
            also_covered=folding.also_covered(article.id),
        )

    sections = tuple(
        DigestSection(
            key=key,
            title=config.sections[key].title,
            items=tuple(item(article) for article in selection.articles if article.section == key),
        )
        for key in spec.sections
    )
    notes: tuple[str, ...] = ()
    if selection.dropped:
        notes = (f"{selection.dropped} article(s) left out by the item cap or the size limit",)
    return Digest(
        briefing=spec.briefing,
        title=briefing.title,
        locale=spec.locale,
        issue_date=spec.issue_date,
        cut_at=spec.cut_at,
        sections=sections,
        notes=notes,
    )


def _fold(config: Config, spec: VariantSpec, inputs: VariantInputs) -> tuple[Archive, Folding]:
    """Narrow the archive to what covers the candidates, and fold same-story candidates.

    Added articles join the candidates first (they must be in the archive to be
    folded and related); chosen sources and drops reshape the folding after.
    """
    candidates = with_additions(inputs.candidates, spec.sections, inputs.overrides)
    archive = inputs.archive.covering(
        article for articles in candidates.values() for article in articles
    )
    threshold = config.briefings[spec.briefing].fold_threshold
    folding = fold_candidates(candidates, spec.sections, archive.index, threshold)
    return archive, reshape_folding(folding, inputs.overrides)


def _select(
    config: Config, spec: VariantSpec, folding: Folding, overrides: EditorialOverrides
) -> Selection:
    caps = {key: config.sections[key].max_items for key in spec.sections}
    cap = config.briefings[spec.briefing].max_items
    selection = select_articles(
        spec.briefing, folding.candidates, spec.sections, caps, cap, spec.since, spec.cut_at
    )
    return favour(selection, folding.candidates, overrides, caps, cap)


def cut_variant(
    config: Config,
    spec: VariantSpec,
    inputs: VariantInputs,
    *,
    placeholders: Mapping[str, str] | None = None,
    templates: Path | None = None,
    summariser: Summariser = summary_of,
    feedback_key: bytes | None = None,
) -> BuiltVariant:
    """Cut a variant's content, dropping the lowest items until the HTML part fits.

    ``feedback_key`` signs the Feedback-ID header (none without it).
    """
    briefing = config.briefings[spec.briefing]
    links = dict(placeholders or new_placeholders())
    archive, folding = _fold(config, spec, inputs)
    selection = _select(config, spec, folding, inputs.overrides)
    shed: list[str] = []  # headlines dropped to fit the HTML part under Gmail's clip
    while True:
        digest = make_digest(
            config, spec, selection, folding, archive, summariser, inputs.overrides
        )
        rendered = render_digest(
            digest,
            key=spec.briefing,
            site=config.site,
            briefing=briefing,
            placeholders=links,
            templates=templates,
        )
        composed = compose_variant(
            rendered,
            variant_key=spec.key,
            site=config.site,
            briefing=briefing,
            placeholders=links,
            feedback=(spec.briefing, spec.issue_date),
            signing_key=feedback_key,
        )
        if composed.html_size < HTML_LIMIT or not selection.articles:
            break
        logger.info(
            "briefing %s: HTML part %d bytes over %d; dropping the lowest item",
            spec.briefing,
            composed.html_size,
            HTML_LIMIT,
        )
        lowest = selection.ranking[-1] if selection.ranking else None
        shed.extend(a.title for a in selection.articles if a.id == lowest)
        selection = drop_lowest(selection)
    notes = rendered.notes + composed.notes
    if shed:
        dropped = ", ".join(repr(title) for title in shed[:SHED_NAMED])
        if len(shed) > SHED_NAMED:
            dropped += f" and {len(shed) - SHED_NAMED} more"
        notes += (f"dropped to keep the HTML part under {HTML_LIMIT:,} bytes: {dropped}",)
    return BuiltVariant(spec, selection, digest, rendered, composed, links, notes)
