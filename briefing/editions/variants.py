"""Build a variant: read its inputs from the store, cut it, and freeze it in the store.

A variant is keyed by everything that decides its content — briefing,
sections, window (previous cut), cut time, locale and issue date — and is
shared by every subscription cut alike. Building it reads the store in one
short transaction, then runs the pure pipeline (:func:`cut_variant`);
freezing it is part of dispatch's transaction and tolerates another process
having stored the same key first.

The related-link archive (``load_archive``) does not depend on the sections:
every variant of one cut time shares it, and with it the similarity index,
when the caller passes the same ``archives`` cache to ``load_inputs`` (dispatch
does, once per run).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from datetime import date, datetime, timedelta

from briefing.config import Config
from briefing.domain.models import SelectedArticle
from briefing.domain.states import OverrideKind
from briefing.pipeline.cut import BuiltVariant, VariantInputs, VariantSpec, cut_variant
from briefing.pipeline.overrides import EditorialOverrides
from briefing.pipeline.relate import Archive
from briefing.pipeline.select import window_start
from briefing.store import Database, Session
from briefing.store.articles import recent_articles, section_window
from briefing.store.editions import NewVariant
from briefing.store.overrides import StoredOverride, added_articles, issue_overrides

__all__ = [
    "ArchiveKey",
    "BuiltVariant",
    "EditorialOverrides",
    "VariantInputs",
    "VariantSpec",
    "archive_key",
    "build_variant",
    "editorial_overrides",
    "frozen",
    "load_inputs",
    "ordered_sections",
]

CANDIDATE_SLACK = 10

ArchiveKey = tuple[datetime, timedelta, int]
"""What decides an archive's content: cut time, how far back it reaches, its cap."""


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


def archive_key(config: Config, spec: VariantSpec) -> ArchiveKey:
    """Return what decides the archive of a variant of ``spec``.

    The archive reaches back over the briefing's related window or, when it is
    longer, any section's lookback, so that every candidate is in it.
    """
    briefing = config.briefings[spec.briefing]
    reach = max([briefing.related_window, *(s.lookback for s in config.sections.values())])
    return (spec.cut_at, reach, briefing.related_archive)


def editorial_overrides(
    stored: Sequence[StoredOverride], added: Sequence[SelectedArticle]
) -> EditorialOverrides:
    """Turn an issue's stored overrides (oldest first) into what the pipeline applies.

    The latest headline or summary of an article wins; ``added`` are the
    articles of the ``add`` and ``pin`` overrides, read from the store (a
    pinned article joins its section's candidates even when it is older
    than the window).
    """
    kinds: dict[OverrideKind, list[StoredOverride]] = {kind: [] for kind in OverrideKind}
    for override in stored:
        if override.active:
            kinds[override.kind].append(override)
    pinned = dict.fromkeys(o.article_id for o in kinds[OverrideKind.PIN])
    return EditorialOverrides(
        pinned=tuple(pinned),
        dropped=frozenset(o.article_id for o in kinds[OverrideKind.DROP]),
        headlines={o.article_id: o.text or "" for o in kinds[OverrideKind.HEADLINE]},
        summaries={o.article_id: o.text or "" for o in kinds[OverrideKind.SUMMARY]},
        sources=frozenset(o.article_id for o in kinds[OverrideKind.SOURCE]),
        added=tuple(added),
    )


def _load_overrides(
    session: Session, config: Config, briefing: str, issue_date: date, names: Mapping[str, str]
) -> EditorialOverrides:
    stored = issue_overrides(session, briefing, issue_date)
    if not stored:
        return EditorialOverrides()
    # A pinned article outside the window is brought in, as an added one is.
    wanted = [o.article_id for o in stored if o.kind in (OverrideKind.ADD, OverrideKind.PIN)]
    order = {
        section: position
        for position, section in enumerate(
            ordered_sections(config, briefing, list(config.sections))
        )
    }
    return editorial_overrides(stored, added_articles(session, wanted, names, order))


def load_inputs(
    database: Database,
    config: Config,
    spec: VariantSpec,
    archives: MutableMapping[ArchiveKey, Archive] | None = None,
) -> VariantInputs:
    """Read from the store, in one transaction, everything a variant of ``spec`` is cut from.

    That includes the editor's overrides of the issue (briefing x issue date)
    as they stand now: a variant cut later sees later overrides, one cut
    earlier is frozen as it was.

    Each section's candidates are its articles first seen inside its window.
    The archive holds the newest articles of every section first seen within
    its reach; ``archives`` caches archives by :func:`archive_key`: pass one
    mapping for every variant of a run so the archive is read and indexed once.
    """
    briefing = config.briefings[spec.briefing]
    names = _source_names(config)
    key = archive_key(config, spec)
    cache: MutableMapping[ArchiveKey, Archive] = {} if archives is None else archives
    with database.transaction() as session:
        if key not in cache:
            cut_at, reach, limit = key
            order = {section: position for position, section in enumerate(config.sections)}
            cache[key] = Archive(
                recent_articles(session, cut_at - reach, cut_at, limit, names, order)
            )
        candidates = {
            section: section_window(
                session,
                section,
                window_start(spec.since, spec.cut_at, config.sections[section].lookback),
                spec.cut_at,
                config.sections[section].max_items + briefing.max_items + CANDIDATE_SLACK,
                names,
            )
            for section in spec.sections
        }
        overrides = _load_overrides(session, config, spec.briefing, spec.issue_date, names)
    return VariantInputs(candidates=candidates, archive=cache[key], overrides=overrides)


def build_variant(
    database: Database,
    config: Config,
    spec: VariantSpec,
    archives: MutableMapping[ArchiveKey, Archive] | None = None,
    placeholders: Mapping[str, str] | None = None,
    *,
    feedback_key: bytes | None = None,
) -> BuiltVariant:
    """Load a variant's inputs from the store and cut it (outside any transaction).

    ``feedback_key`` (the signer's) signs the Feedback-ID header.
    """
    inputs = load_inputs(database, config, spec, archives)
    return cut_variant(
        config,
        spec,
        inputs,
        placeholders=placeholders,
        templates=config.templates_folder(),
        feedback_key=feedback_key,
    )


def frozen(built: BuiltVariant) -> NewVariant:
    """Return what the store freezes of a built variant."""
    spec = built.spec
    return NewVariant(
        key=spec.key,
        briefing=spec.briefing,
        sections=spec.sections,
        locale=spec.locale,
        issue_date=spec.issue_date,
        since=spec.since,
        cut_at=spec.cut_at,
        subject=built.rendered.subject,
        item_count=built.rendered.item_count,
        html_size=built.composed.html_size,
        notes=built.notes,
        html=built.rendered.html,
        text=built.rendered.text,
        message=built.composed.template.to_bytes(),
        placeholders=built.placeholders,
        items=built.digest.items,
    )
