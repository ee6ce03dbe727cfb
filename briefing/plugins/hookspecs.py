"""Every extension point of briefing, one hook each.

A plugin is a module (or object) with functions named after these hooks and
decorated with :data:`briefing.plugins.hookimpl`; an implementation may take
any subset of a hook's arguments, by name. Plugins are found through the
entry-point group ``briefing``. The built-ins (the feed, JSON Feed and
Markdown readers, the extractive summariser) register through these same
hooks, so each is a worked example.

Template and header hooks run once per variant, never per recipient: the
message is encoded once and personalised by swapping tokens, so resends stay
byte-identical and DKIM signatures hold. Readers return raw entries; ingest
still applies the size limit and sanitises the HTML of every entry.

Types are written loosely here (``Any``, callables) so this module imports
nothing above the domain layer; the docstrings name the real types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

PROJECT = "briefing"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def briefing_source_readers() -> Mapping[str, Any]:
    """Return source readers by type name (:class:`briefing.ingest.readers.Reader` objects).

    A reader has a ``kind`` (its type name), the file ``suffixes`` it reads
    (``(".md",)``; an empty tuple for none) and ``read(path, context)``
    returning a ``ReadResult`` of raw drafts. A reader also offered for http(s)
    sources has ``parse(data, name, context, *, charset, base_url)``. The type
    ``feed`` reads every file no other reader claims, and every URL.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def briefing_summarise(headline: str, body: str, words: int) -> str | None:
    """Return a summary of an article's plain-text ``body`` within ``words`` words.

    The first implementation to return a string wins; return ``None`` to pass
    to the next one. The built-in extractive summariser runs last.
    """
    raise NotImplementedError


@hookspec
def briefing_template_filters() -> Mapping[str, Callable[..., Any]]:
    """Return extra Jinja filters for the email templates, by name.

    Called once per variant. The built-in filters (``age``, ``tagged``,
    ``wrap``) cannot be replaced.
    """
    raise NotImplementedError


@hookspec
def briefing_template_context(briefing: Any, key: str, digest: Any) -> Mapping[str, Any] | None:
    """Return extra names for the email templates' context, once per variant.

    ``briefing`` is the :class:`briefing.config.BriefingConfig` being cut,
    ``key`` its key and ``digest`` the variant's :class:`briefing.domain.models.Digest`.
    Built-in names (``site``, ``title``, ``sections``, ``links``, ...) cannot
    be replaced. Nothing here may depend on the recipient.
    """
    raise NotImplementedError


@hookspec
def briefing_extra_headers(briefing: Any, variant_key: str) -> Mapping[str, str] | None:
    """Return extra message headers for a variant, once per variant.

    ``briefing`` is the :class:`briefing.config.BriefingConfig` being cut and
    ``variant_key`` the variant's key (its briefing, sections, locale and cut).

    Values are one line of text. Headers the core writes (From, To, Subject,
    Date, Message-ID, MIME and ``Content-*``, ``List-*``, DKIM and the like)
    are refused, as is any name or value with CR, LF or other control
    characters.
    """
    raise NotImplementedError


@hookspec
def briefing_transports() -> Mapping[str, Callable[..., Any]]:
    """Return transport factories by transport name (as ``delivery.transport`` names them)."""
    raise NotImplementedError
