"""Plugin hooks: the built-ins and outside plugins register through the same pluggy hooks.

:func:`plugin_manager` builds the manager once per process: it registers the
built-in plugin modules named in :data:`BUILTINS` (imported only then, by
name, so this package stays below the layers it serves), then every plugin
of the entry-point group ``briefing``. The functions below call the hooks
and merge their answers; where two plugins name the same thing, the one
registered later wins, so an installed plugin can replace a built-in.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from functools import cache
from typing import Any

import pluggy

from briefing.errors import BriefingError
from briefing.plugins import hookspecs

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "PluginError",
    "extra_headers",
    "hookimpl",
    "plugin_manager",
    "plugin_transports",
    "reset_plugins",
    "source_readers",
    "summarise",
    "template_context",
    "template_filters",
]

ENTRY_POINT_GROUP = hookspecs.PROJECT
hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)

# Modules holding the built-in hook implementations, registered before any outside plugin.
BUILTINS = (
    "briefing.ingest.readers",
    "briefing.pipeline.defaults",
    "briefing.deliver.transports",
)

# Headers the core writes or a mail system adds; a plugin may not set them.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "Sender",
        "Reply-To",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Return-Path",
        "Received",
        "DKIM-Signature",
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
        "Authentication-Results",
        "Feedback-ID",
        "X-Briefing-Delivery",
    )
)
RESERVED_PREFIXES = ("content-", "list-", "resent-", "dkim-", "arc-")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # printable ASCII without ':' (RFC 5322 ftext)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # any control character but TAB


class PluginError(BriefingError):
    """A plugin answered a hook with something the core cannot use."""

    def __init__(self, plugin: str, hook: str, reason: str) -> None:
        super().__init__(
            f"plugin {plugin!r}, hook {hook}: {reason}",
            hint="fix or uninstall the plugin (pip uninstall), then run again",
        )
        self.plugin = plugin
        self.hook = hook
        self.reason = reason


@cache
def plugin_manager() -> pluggy.PluginManager:
    """Return the process's plugin manager: built-ins first, then the ``briefing`` entry points."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name in BUILTINS:
        manager.register(importlib.import_module(name), name=name)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


def reset_plugins() -> None:
    """Forget the cached manager; the next call builds it afresh (for tests)."""
    plugin_manager.cache_clear()


def _answers(hook: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
    """Call every implementation of ``hook``, lowest priority first, with the plugin's name.

    The order is the reverse of pluggy's calling order, so merging the answers
    with ``dict.update`` lets the later (higher-priority) plugin win.
    """
    caller = getattr(plugin_manager().hook, hook)
    for impl in caller.get_hookimpls():
        if impl.hookwrapper or impl.wrapper:
            continue  # wrappers wrap pluggy's own calls, not these
        answer = impl.function(**{name: kwargs[name] for name in impl.argnames})
        if answer is not None:
            yield impl.plugin_name, answer


def _merged(hook: str, **kwargs: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for plugin, answer in _answers(hook, **kwargs):
        if not isinstance(answer, Mapping):
            raise PluginError(plugin, hook, f"returned {type(answer).__name__}, not a mapping")
        for key in answer:
            if not isinstance(key, str) or not key:
                raise PluginError(plugin, hook, f"names must be non-empty strings, got {key!r}")
        merged.update(answer)
    return merged


def source_readers() -> dict[str, Any]:
    """Return every source reader by type name (see ``briefing_source_readers``)."""
    return _merged("briefing_source_readers")


def summarise(headline: str, body: str, words: int = 60) -> str:
    """Summarise an article within ``words`` words with the first summariser that answers."""
    hook = "briefing_summarise"
    summary = plugin_manager().hook.briefing_summarise(headline=headline, body=body, words=words)
    if summary is None:
        raise PluginError("(none)", hook, "no summariser returned a summary")
    if not isinstance(summary, str):
        answers = list(_answers(hook, headline=headline, body=body, words=words))
        owner = answers[-1][0] if answers else "(unknown)"
        raise PluginError(owner, hook, f"returned {type(summary).__name__}, not a string")
    return summary


def template_filters(reserved: Collection[str] = ()) -> dict[str, Callable[..., Any]]:
    """Return the plugins' extra Jinja filters (once per variant); ``reserved`` names are refused."""
    hook = "briefing_template_filters"
    filters = _merged(hook)
    for name, function in filters.items():
        if name in reserved:
            raise PluginError(_owner(hook, name), hook, f"filter {name!r} is built in")
        if not callable(function):
            raise PluginError(_owner(hook, name), hook, f"filter {name!r} is not callable")
    return filters


def template_context(
    briefing: Any, key: str, digest: Any, reserved: Collection[str] = ()
) -> dict[str, Any]:
    """Return the plugins' extra template context for one variant; ``reserved`` names are refused."""
    hook = "briefing_template_context"
    context = _merged(hook, briefing=briefing, key=key, digest=digest)
    for name in context:
        if name in reserved:
            owner = _owner(hook, name, briefing=briefing, key=key, digest=digest)
            raise PluginError(owner, hook, f"context name {name!r} is built in")
    return context


def extra_headers(briefing: Any, variant_key: str) -> dict[str, str]:
    """Return the plugins' extra headers for one variant, each checked.

    Raises :class:`PluginError` naming the plugin for a header the core owns,
    a malformed name, or a value that is not one line of text.
    """
    hook = "briefing_extra_headers"
    headers: dict[str, str] = {}
    for plugin, answer in _answers(hook, briefing=briefing, variant_key=variant_key):
        if not isinstance(answer, Mapping):
            raise PluginError(plugin, hook, f"returned {type(answer).__name__}, not a mapping")
        for name, value in answer.items():
            _check_header(plugin, name, value)
            for known in [known for known in headers if known.lower() == name.lower()]:
                del headers[known]
            headers[name] = value.strip()
    return headers


def _check_header(plugin: str, name: object, value: object) -> None:
    hook = "briefing_extra_headers"
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise PluginError(plugin, hook, f"{name!r} is not a valid header name")
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
        raise PluginError(
            plugin, hook, f"header {name} is set by briefing and cannot be overridden"
        )
    if not isinstance(value, str):
        raise PluginError(
            plugin, hook, f"header {name}: value must be a string, got {type(value).__name__}"
        )
    if _CONTROL.search(value):
        raise PluginError(
            plugin, hook, f"header {name}: value contains CR, LF or another control character"
        )
    if not value.strip():
        raise PluginError(plugin, hook, f"header {name}: value is empty")


def plugin_transports() -> dict[str, Callable[..., Any]]:
    """Return the transport factories plugins register, by transport name."""
    factories = _merged("briefing_transports")
    for name, factory in factories.items():
        if not callable(factory):
            raise PluginError(
                _owner("briefing_transports", name),
                "briefing_transports",
                f"transport {name!r}: factory is not callable",
            )
    return factories


def _owner(hook: str, name: str, **kwargs: Any) -> str:
    """Name the plugin whose answer to ``hook`` wins for ``name``."""
    owner = "(unknown)"
    for plugin, answer in _answers(hook, **kwargs):
        if isinstance(answer, Mapping) and name in answer:
            owner = plugin
    return owner
