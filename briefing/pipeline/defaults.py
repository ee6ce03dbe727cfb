"""The built-in summariser, registered through the ``briefing_summarise`` hook like any plugin."""

from __future__ import annotations

from briefing.pipeline.summarise import summarise
from briefing.plugins import hookimpl


@hookimpl(trylast=True)
def briefing_summarise(headline: str, body: str, words: int) -> str:
    """Summarise with the extractive summariser; any other summariser that answers wins."""
    return summarise(headline, body, words)
