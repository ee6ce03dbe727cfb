"""Check a digest for what an editor should fix before it goes out.

Pure functions over the digest: an image without alt text (the headline is
used instead), and a summary that only repeats its headline. The other
warnings of a preview come from the stages that cause them, as notes: an
empty section (``render``), items left out by the item cap or dropped to keep
the HTML part under Gmail's clip (``cut``), the HTML size (``compose``).
"""

from __future__ import annotations

import re
import unicodedata

from briefing.domain.models import Digest, DigestItem

# Letters and digits of any script; everything else (punctuation, quotes, dashes) separates words.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> tuple[str, ...]:
    """Return the words of a text, compared loosely: NFKC, case-folded, without punctuation."""
    return tuple(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def repeats_headline(headline: str, summary: str) -> bool:
    """Tell whether a summary only repeats its headline: it has no word the headline lacks.

    "Rates rise again." under "Rates Rise Again" repeats it; so does a cut-off
    "Rates rise"; an empty summary does not (it is simply absent).
    """
    said = words(summary)
    return bool(said) and set(said) <= set(words(headline))


def item_warnings(item: DigestItem) -> list[str]:
    """Return what an editor should know about one item of a digest."""
    article = item.article
    found = []
    if article.image_url and not (article.image_alt or "").strip():
        found.append(f"image of {article.title!r} has no alt text; the headline is used")
    if repeats_headline(article.title, item.summary):
        found.append(
            f"the summary of {article.title!r} only repeats its headline; "
            "give it a summary that says more"
        )
    return found


def digest_warnings(digest: Digest) -> tuple[str, ...]:
    """Return the item warnings of a whole digest, in reading order."""
    return tuple(warning for item in digest.items for warning in item_warnings(item))
