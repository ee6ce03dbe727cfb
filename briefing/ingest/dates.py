"""Read the publication dates feedparser could not: other languages, other layouts.

feedparser reads RFC 822 and ISO 8601 dates in English. Feeds in Portuguese,
Spanish, French, German, Italian or Dutch often write their month and weekday
names in that language ("Seg, 24 Set 2018 19:42:40 -0300"); others use
``2018-09-24 19:42``, ``24.09.2018 19:42`` or a Unix timestamp. This module
translates those and tries the usual layouts; what it still cannot read is
left to the caller, which falls back to the first-seen time and says so.
Ambiguous numeric dates (``03/04/2018``: March or April?) are never guessed.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Month names and abbreviations (accents removed, lower case) -> English abbreviation.
_MONTHS = {
    "jan": (
        "jan",
        "janeiro",
        "janvier",
        "januar",
        "januari",
        "enero",
        "ene",
        "gennaio",
        "gen",
        "janv",
        "jänner",
        "jaenner",
    ),
    "feb": (
        "feb",
        "fev",
        "fevereiro",
        "fevrier",
        "fevr",
        "februar",
        "februari",
        "febrero",
        "febbraio",
    ),
    "mar": ("mar", "marco", "mars", "marz", "maerz", "mrz", "maart", "mrt", "marzo"),
    "apr": ("apr", "abr", "abril", "avril", "avr", "april", "aprile"),
    "may": ("may", "maio", "mai", "mei", "mayo", "maggio", "mag"),
    "jun": ("jun", "junho", "juin", "juni", "junio", "giugno", "giu"),
    "jul": ("jul", "julho", "juillet", "juil", "juli", "julio", "luglio", "lug"),
    "aug": ("aug", "ago", "agosto", "aout", "august", "augustus"),
    "sep": ("sep", "sept", "set", "setembro", "septembre", "september", "septiembre", "settembre"),
    "oct": ("oct", "out", "outubro", "octobre", "oktober", "okt", "octubre", "ottobre", "ott"),
    "nov": ("nov", "novembro", "novembre", "november", "noviembre"),
    "dec": (
        "dec",
        "dez",
        "dezembro",
        "decembre",
        "dezember",
        "december",
        "diciembre",
        "dic",
        "dicembre",
    ),
}
MONTHS = {name: english for english, names in _MONTHS.items() for name in names}
ZONES = {
    "CET": "+0100",
    "CEST": "+0200",
    "MEZ": "+0100",
    "MESZ": "+0200",
    "WET": "+0000",
    "WEST": "+0100",
    "EET": "+0200",
    "EEST": "+0300",
    "BST": "+0100",
    "MSK": "+0300",
    "JST": "+0900",
    "KST": "+0900",
    "AEST": "+1000",
    "AEDT": "+1100",
    "NZST": "+1200",
    "BRT": "-0300",
    "ART": "-0300",
}
_WORD = re.compile(r"[^\W\d_]+")
_LAYOUTS = (
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M %z",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d %b %Y %H:%M:%S %z",
    "%d %b %Y %H:%M:%S",
    "%d %b %Y %H:%M %z",
    "%d %b %Y %H:%M",
    "%d %b %Y",
    "%b %d %Y %H:%M:%S %z",
    "%b %d %Y %H:%M:%S",
    "%b %d %Y",
)


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _english(text: str) -> str:
    """Replace month names with English abbreviations and drop every other word but zones."""
    out = []
    for token in re.split(r"(\s+|,)", text):
        word = _plain(token).strip(".")
        if _WORD.fullmatch(word or "-"):
            if word in MONTHS:
                out.append(MONTHS[word])
            elif word in ("gmt", "utc", "ut", "z"):
                out.append(word.upper())
            elif token.upper() in ZONES:
                out.append(ZONES[token.upper()])
            elif re.fullmatch(r"[a-z]{3,4}", word) and token.isupper():
                out.append(token)  # a zone abbreviation the email package knows, such as EST
            # weekday names and words such as "de" / "um" are dropped
            continue
        out.append(token)
    joined = re.sub(r"\b(\d{1,2})\.(?=\s)", r"\1", "".join(out).replace(",", " "))
    return " ".join(joined.split())


def parse_loose_date(value: str | None) -> datetime | None:
    """Read a date feedparser could not; None when it cannot be read without guessing."""
    if not value:
        return None
    text = value.strip()
    if re.fullmatch(r"\d{9,10}", text):  # a Unix timestamp, 1973 to 2286
        return datetime.fromtimestamp(int(text), UTC)
    english = _english(text)
    try:
        parsed = parsedate_to_datetime(english)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        candidate = re.sub(r"(\d)T(\d)", r"\1 \2", english)
        candidate = re.sub(r"(\d{2}:\d{2}(?::\d{2})?)\.\d+", r"\1", candidate)
        candidate = re.sub(r"\s*(?:UTC|GMT|UT|Z)$", " +0000", candidate)
        candidate = re.sub(r"(\d)\s*([+-]\d{2}):?(\d{2})$", r"\1 \2\3", candidate)
        for layout in _LAYOUTS:
            try:
                parsed = datetime.strptime(candidate, layout)
            except ValueError:
                continue
            break
    if parsed is None or not 1990 <= parsed.year <= 2200:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
