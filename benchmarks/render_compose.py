"""Measure the cost of a variant (render + compose) against personalising one message.

Builds a realistic digest (20 items with images and related links), then
times, in this one process:

- rendering it (Jinja2 + mjml-python) and composing the encoded message once;
- personalising the composed template for one recipient (the per-subscriber cost);
- the baseline: building the same message per recipient with Python's email package.

Prints medians over repeated runs and the ratio baseline / personalise.
Run: ``make bench`` or ``.venv/bin/python benchmarks/render_compose.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from briefing.domain.models import Digest, DigestItem, DigestSection, Link
from briefing.domain.tokens import Purpose, Signer
from briefing.pipeline.compose import compose_variant, fill_links
from briefing.pipeline.render import new_placeholders, render_digest
from briefing.pipeline.summarise import summarise
from tests.support.factories import NOW, make_config, make_selected

BODY = " ".join(
    f"Sentence {n} of the story adds a fact, a number like {n}.5% and a quote from an official."
    for n in range(25)
)


def median_ms(function: Callable[[], object], repeat: int) -> float:
    """Return the median wall time of ``function`` in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    """Print the figures."""
    config = make_config(Path(tempfile.mkdtemp()))
    briefing = config.briefings["daily"]
    items = tuple(
        DigestItem(
            article=make_selected(
                i,
                title=f"Headline number {i} about a story of the day",
                image_url=f"https://img.example.org/{i}.jpg",
                image_alt=f"Photo {i}",
                image_credit="Photo: Agency",
            ),
            summary=summarise(f"Headline {i}", BODY, 60),
            related=tuple(
                Link(title=f"Related story {i}-{r}", url=f"https://news.example.org/r/{i}/{r}")
                for r in range(2)
            ),
        )
        for i in range(1, 21)
    )
    digest = Digest(
        briefing="daily",
        title="The Daily",
        locale="en_GB",
        issue_date=date(2026, 11, 26),
        cut_at=NOW,
        sections=(DigestSection(key="world", title="World", items=items),),
    )
    placeholders = new_placeholders()
    signer = Signer([b"bench"])
    tokens = {p.value: signer.sign(p, 12345) for p in Purpose}

    def cut() -> object:
        rendered = render_digest(
            digest, key="daily", site=config.site, briefing=briefing, placeholders=placeholders
        )
        return compose_variant(
            rendered,
            variant_key="bench",
            site=config.site,
            briefing=briefing,
            placeholders=placeholders,
        )

    composed = cut()
    rendered = render_digest(
        digest, key="daily", site=config.site, briefing=briefing, placeholders=placeholders
    )
    template = composed.template  # type: ignore[attr-defined]

    def personalise() -> bytes:
        return template.personalise(
            recipient="reader@example.com",
            name="Zoë Reader",
            message_id="<x@news.example.org>",
            date=NOW,
            tokens=tokens,
            list_unsubscribe=("https://news.example.org/b/u/" + tokens["u"],),
        )

    def email_package() -> bytes:
        message = EmailMessage(policy=SMTP)
        message["From"] = "The Daily <briefing@news.example.org>"
        message["To"] = "Zoë Reader <reader@example.com>"
        message["Subject"] = rendered.subject
        message["Date"] = "Thu, 26 Nov 2026 06:00:00 +0000"
        message["Message-ID"] = "<x@news.example.org>"
        message["List-Unsubscribe"] = "<https://news.example.org/b/u/" + tokens["u"] + ">"
        message.set_content(fill_links(rendered.text, placeholders, tokens), cte="quoted-printable")
        message.add_alternative(
            fill_links(rendered.html, placeholders, tokens), subtype="html", cte="quoted-printable"
        )
        return message.as_bytes()

    cut_ms = median_ms(cut, 30)
    personal_ms = median_ms(personalise, 2000)
    baseline_ms = median_ms(email_package, 200)
    html_kb = composed.html_size / 1000  # type: ignore[attr-defined]
    print(
        f"digest: 20 items, HTML part {html_kb:.1f} KB encoded, message {len(personalise()) / 1000:.1f} KB"
    )
    print(f"render + compose once per variant:       {cut_ms:8.3f} ms (median of 30)")
    print(f"personalise per recipient:               {personal_ms:8.3f} ms (median of 2000)")
    print(f"baseline, email package per recipient:   {baseline_ms:8.3f} ms (median of 200)")
    print(f"ratio baseline / personalise:            {baseline_ms / personal_ms:8.1f}x")


if __name__ == "__main__":
    main()
