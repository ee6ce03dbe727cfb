"""Cut a variant: select, summarise, relate, render and compose a digest, then freeze it.

A variant is keyed by everything that decides its content — briefing,
sections, window (previous cut), cut time, locale and issue date — and is
shared by every subscription cut alike. Building it reads the store, then runs
the pure stages; storing it is one short transaction that tolerates another
process having stored the same key first.

The related-link archive (``load_archive``) does not depend on the sections:
every variant of one cut time shares it, and with it the similarity index,
when the caller passes the same ``archives`` cache to ``load_inputs`` (dispatch
does, once per run). The stages run fold -> select -> summarise and relate ->
render -> compose; see ``briefing.pipeline.relate`` for why folding comes first.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

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
from briefing.pipeline.relate import Archive, Folding, fold_candidates, related_links
from briefing.pipeline.render import new_placeholders, render_digest
from briefing.pipeline.select import drop_lowest, select_articles, window_start
from briefing.plugins import summarise
from briefing.store.queries import insert_ignore
from briefing.store.schema import Article, ArticleSection, Source, Variant, VariantItem

logger = logging.getLogger(__name__)

CANDIDATE_SLACK = 10

ArchiveKey = tuple[datetime, timedelta, int]
"""What decides an archive's content: cut time, how far back it reaches, its cap."""


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


def ordered_sections(
    config: Config, briefing: str, chosen: Sequence[str] | None
) -> tuple[str, ...]:
    """Return a subscription's sections in the briefing's order, then the config's."""
    defaults = config.briefings[briefing].sections
    wanted = set(chosen) if chosen else set(defaults)
    order = list(defaults) + [key for key in config.sections if key not in defaults]
    return tuple(key for key in order if key in wanted and key in config.sections)


def _source_names(config: Config) -> dict[str, str]:
    return {
        source.location: source.name
        for section in config.sections.values()
        for source in section.sources
        if source.name
    }


def _as_selected(
    article: Article, section: str, source_key: str | None, names: Mapping[str, str]
) -> SelectedArticle:
    return SelectedArticle(
        id=article.id,
        section=section,
        title=article.title,
        url=article.url,
        dek=article.dek,
        body_text=article.body_text,
        image_url=article.image_url,
        image_alt=article.image_alt,
        image_credit=article.image_credit,
        published_at=article.published_at,
        first_seen_at=article.first_seen_at,
        source=names.get(source_key) if source_key else None,
    )


def _articles_in(
    session: Session,
    config: Config,
    section: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[SelectedArticle]:
    rows = session.execute(
        select(Article, Source.key)
        .join(ArticleSection, ArticleSection.article_id == Article.id)
        .outerjoin(Source, Source.id == Article.source_id)
        .where(
            ArticleSection.section == section,
            Article.first_seen_at > start,
            Article.first_seen_at <= end,
        )
        .order_by(Article.first_seen_at.desc(), Article.id.desc())
        .limit(limit)
    ).all()
    names = _source_names(config)
    return [_as_selected(article, section, key, names) for article, key in rows]


def load_candidates(
    session: Session, config: Config, spec: VariantSpec
) -> dict[str, list[SelectedArticle]]:
    """Load each section's articles first seen inside its window."""
    briefing = config.briefings[spec.briefing]
    return {
        key: _articles_in(
            session,
            config,
            key,
            window_start(spec.since, spec.cut_at, config.sections[key].lookback),
            spec.cut_at,
            config.sections[key].max_items + briefing.max_items + CANDIDATE_SLACK,
        )
        for key in spec.sections
    }


def archive_key(config: Config, spec: VariantSpec) -> ArchiveKey:
    """Return what decides the archive of a variant of ``spec``.

    The archive reaches back over the briefing's related window or, when it is
    longer, any section's lookback, so that every candidate is in it.
    """
    briefing = config.briefings[spec.briefing]
    reach = max([briefing.related_window, *(s.lookback for s in config.sections.values())])
    return (spec.cut_at, reach, briefing.related_archive)


def load_archive(session: Session, config: Config, key: ArchiveKey) -> Archive:
    """Load the newest articles of every section first seen in the archive's reach."""
    cut_at, reach, limit = key
    rows = session.execute(
        select(Article, Source.key)
        .outerjoin(Source, Source.id == Article.source_id)
        .where(Article.first_seen_at > cut_at - reach, Article.first_seen_at <= cut_at)
        .order_by(Article.first_seen_at.desc(), Article.id.desc())
        .limit(limit)
    ).all()
    names = _source_names(config)
    order = {section: position for position, section in enumerate(config.sections)}
    articles = []
    for article, source_key in rows:
        # A link names one section: the article's first in the config's order.
        sections = sorted(
            (row.section for row in article.sections), key=lambda s: (order.get(s, len(order)), s)
        )
        section = sections[0] if sections else ""
        articles.append(_as_selected(article, section, source_key, names))
    return Archive(articles)


def summary_of(article: SelectedArticle, words: int) -> str:
    """Return the article's own dek, else an extractive summary within ``words``."""
    if article.dek:
        return article.dek
    return summarise(article.title, article.body_text, words)


def make_digest(
    config: Config,
    spec: VariantSpec,
    selection: Selection,
    folding: Folding,
    archive: Archive,
) -> Digest:
    """Summarise the selected articles and give them their related and also-covered links."""
    briefing = config.briefings[spec.briefing]
    by_id = {article.id: article for article in selection.articles}
    related = related_links(
        [by_id[article_id] for article_id in selection.ranking if article_id in by_id],
        archive,
        per_item=briefing.related_links,
        window=briefing.related_window,
        threshold=briefing.related_threshold,
        same_story=briefing.fold_threshold,
        exclude=folding.folded,
    )
    sections = tuple(
        DigestSection(
            key=key,
            title=config.sections[key].title,
            items=tuple(
                DigestItem(
                    article=article,
                    summary=summary_of(article, briefing.summary_words),
                    related=related.get(article.id, ()),
                    also_covered=folding.also_covered(article.id),
                )
                for article in selection.articles
                if article.section == key
            ),
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


@dataclass(frozen=True)
class VariantInputs:
    """What a variant is cut from: each section's candidates and the related-link archive."""

    candidates: Mapping[str, Sequence[SelectedArticle]]
    archive: Archive


def load_inputs(
    session: Session,
    config: Config,
    spec: VariantSpec,
    archives: MutableMapping[ArchiveKey, Archive] | None = None,
) -> VariantInputs:
    """Read from the store everything a variant of ``spec`` is cut from.

    ``archives`` caches archives by :func:`archive_key`: pass one mapping for
    every variant of a run so the archive is read and indexed once.
    """
    key = archive_key(config, spec)
    cache: MutableMapping[ArchiveKey, Archive] = {} if archives is None else archives
    if key not in cache:
        cache[key] = load_archive(session, config, key)
    return VariantInputs(candidates=load_candidates(session, config, spec), archive=cache[key])


def build_variant(
    config: Config,
    spec: VariantSpec,
    inputs: VariantInputs,
    placeholders: Mapping[str, str] | None = None,
) -> BuiltVariant:
    """Build a variant's content, dropping the lowest items until the HTML fits."""
    briefing = config.briefings[spec.briefing]
    archive = inputs.archive.covering(
        article for articles in inputs.candidates.values() for article in articles
    )
    folding = fold_candidates(
        inputs.candidates, spec.sections, archive.index, briefing.fold_threshold
    )
    selection = select_articles(
        spec.briefing,
        folding.candidates,
        spec.sections,
        {key: config.sections[key].max_items for key in spec.sections},
        briefing.max_items,
        spec.since,
        spec.cut_at,
    )
    placeholders = dict(placeholders or new_placeholders())
    templates = templates_folder(config)
    while True:
        digest = make_digest(config, spec, selection, folding, archive)
        rendered = render_digest(
            digest,
            key=spec.briefing,
            site=config.site,
            briefing=briefing,
            placeholders=placeholders,
            templates=templates,
        )
        composed = compose_variant(
            rendered,
            variant_key=spec.key,
            site=config.site,
            briefing=briefing,
            placeholders=placeholders,
        )
        if composed.html_size < HTML_LIMIT or not selection.articles:
            break
        logger.info(
            "briefing %s: HTML part %d bytes over %d; dropping the lowest item",
            spec.briefing,
            composed.html_size,
            HTML_LIMIT,
        )
        selection = drop_lowest(selection)
    return BuiltVariant(
        spec=spec,
        selection=selection,
        digest=digest,
        rendered=rendered,
        composed=composed,
        placeholders=placeholders,
        notes=rendered.notes + composed.notes,
    )


def store_variant(session: Session, built: BuiltVariant, now: datetime) -> int:
    """Store a built variant frozen; return its id (another process's if it won the race)."""
    spec = built.spec
    inserted = insert_ignore(
        session,
        Variant,
        {
            "key": spec.key,
            "briefing": spec.briefing,
            "sections": list(spec.sections),
            "locale": spec.locale,
            "issue_date": spec.issue_date,
            "since": spec.since,
            "cut_at": spec.cut_at,
            "created_at": now,
            "subject": built.rendered.subject,
            "item_count": built.rendered.item_count,
            "html_size": built.composed.html_size,
            "notes": list(built.notes),
            "html": built.rendered.html,
            "text": built.rendered.text,
            "message": built.composed.template.to_bytes(),
            "placeholders": dict(built.placeholders),
        },
    )
    variant_id = session.scalar(select(Variant.id).where(Variant.key == spec.key))
    assert variant_id is not None
    if inserted:
        for position, item in enumerate(built.digest.items):
            session.add(
                VariantItem(
                    variant_id=variant_id,
                    position=position,
                    section=item.article.section,
                    article_id=item.article.id,
                    summary=item.summary,
                    related=[link.model_dump(mode="json") for link in item.related],
                    also_covered=[link.model_dump(mode="json") for link in item.also_covered],
                )
            )
    return variant_id


def find_variant(session: Session, spec: VariantSpec) -> Variant | None:
    """Return the stored variant for a spec, if it was cut already."""
    return session.scalar(select(Variant).where(Variant.key == spec.key))


def templates_folder(config: Config) -> Path | None:
    """Return the config's own templates folder, if it has one."""
    folder = config.resolve("templates")
    return folder if folder.is_dir() else None
