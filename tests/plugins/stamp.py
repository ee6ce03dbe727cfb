"""A small outside plugin, written only against the hooks: it adds a source
reader, a summariser, a template filter and context name, an extra header and
a transport.

Installed as a package it would declare, in its ``pyproject.toml``::

    [project.entry-points.briefing]
    stamp = "tests.plugins.stamp"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from briefing.config import Config
from briefing.deliver.transports.base import Transport, TransportResult
from briefing.domain.models import ArticleDraft
from briefing.domain.states import DeliveryState
from briefing.ingest.readers import ReadContext, ReadResult, content_uid
from briefing.plugins import hookimpl

# How often each hook ran; tests read it to prove "once per variant".
CALLS: dict[str, int] = {}


def _count(hook: str) -> None:
    CALLS[hook] = CALLS.get(hook, 0) + 1


class StampReader:
    """Read ``.stamp`` files: one article a line, ``headline | HTML body``.

    It returns the HTML raw, as a quick reader might; ingest sanitises it.
    """

    kind = "stamp"
    suffixes: tuple[str, ...] = (".stamp",)

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        result = ReadResult()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            title, _, html = line.partition("|")
            if not title.strip():
                result.skipped.append(f"line {number}: no headline")
                continue
            result.drafts.append(
                ArticleDraft(
                    uid=content_uid(None, None, context.label, title.strip()),
                    title=title.strip(),
                    body_html=html.strip(),
                    sections=context.sections,
                )
            )
        return result


@hookimpl
def briefing_source_readers() -> Mapping[str, Any]:
    """Register the ``stamp`` reader for ``.stamp`` files."""
    _count("briefing_source_readers")
    return {StampReader.kind: StampReader()}


@hookimpl
def briefing_summarise(headline: str, words: int) -> str:
    """Summarise every article by its headline alone (this plugin wins over the built-in)."""
    _count("briefing_summarise")
    return " ".join(f"Stamp summary of {headline}.".split()[:words])


@hookimpl
def briefing_template_filters() -> Mapping[str, Callable[..., Any]]:
    """Add a ``shout`` filter."""
    _count("briefing_template_filters")
    return {"shout": lambda text: str(text).upper() + "!"}


@hookimpl
def briefing_template_context(key: str) -> Mapping[str, Any]:
    """Add a ``stamp_motto`` name."""
    _count("briefing_template_context")
    return {"stamp_motto": f"stamped for {key}"}


@hookimpl
def briefing_extra_headers(briefing: Any, variant_key: str) -> Mapping[str, str]:
    """Add one header naming the variant."""
    _count("briefing_extra_headers")
    return {"X-Stamp": f"{briefing.title} / {variant_key[:12]}"}


class DropTransport(Transport):
    """Write each message to ``var/stamp-drop/<n>-<recipient>.eml`` (a transport for tests)."""

    name = "stamp-drop"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sent: list[tuple[str, str]] = []

    def send(self, sender: str, recipient: str, message: bytes) -> TransportResult:
        number = len(list(self.folder.iterdir())) + 1
        (self.folder / f"{number:04d}-{recipient}.eml").write_bytes(message)
        self.sent.append((sender, recipient))
        return TransportResult(DeliveryState.SENT, code=250, reply="250 dropped")

    def close(self) -> None:
        """Nothing to release."""

    def describe(self) -> str:
        return f"drop folder {self.folder}"


def drop_transport(config: Config) -> DropTransport:
    """Make a :class:`DropTransport` in the project's ``var/stamp-drop``."""
    return DropTransport(config.resolve("var/stamp-drop"))


@hookimpl
def briefing_transports() -> Mapping[str, Callable[..., Any]]:
    """Offer the drop-folder transport as ``stamp-drop``."""
    _count("briefing_transports")
    return {"stamp-drop": drop_transport}
