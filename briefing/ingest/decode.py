"""Turn the bytes a source sent into text a feed parser can read, and say what was fixed.

Real feeds arrive gzipped on disk, with byte order marks, in UTF-16 or UTF-32,
in a legacy charset that the XML declaration or the HTTP header names wrongly
(or not at all), with blank lines or stray output before ``<?xml``. Each step
here repairs one of those and records a warning naming it, so the publisher
can be told; a document nothing can repair raises :class:`SourceError` with
the reason.

Charset precedence: a byte order mark, then the UTF-16/32 byte pattern of
``<``, then valid UTF-8 (bytes that decode as UTF-8 and hold non-ASCII are
UTF-8 whatever a label says; so are bytes that are UTF-8 but for a few stray
invalid sequences, which become U+FFFD), then the HTTP charset, then the XML
declaration, then detection. ISO-8859-1 and US-ASCII labels are read as windows-1252, as
browsers do (the WHATWG Encoding Standard), so curly quotes survive.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from html.entities import html5
from html.parser import HTMLParser
from urllib.parse import urljoin

import charset_normalizer

from briefing.errors import SourceError

GZIP_MAGIC = b"\x1f\x8b"
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
WINDOWS_1252_ALIASES = {"iso8859-1", "latin-1", "ascii", "us-ascii", "iso-8859-1", "cp1252"}
_XML_DECLARATION = re.compile(r"""^<\?xml[^>]*?\?>""", re.IGNORECASE)
_DECLARED_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_ENCODING_ATTRIBUTE = re.compile(r"""(\sencoding\s*=\s*)(["'])[^"']*\2""", re.IGNORECASE)
_CHARSET_PARAMETER = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
MAX_JUNK_BEFORE_XML = 4096


@dataclass
class Decoded:
    """A document as text, the charset it was read in, and what had to be repaired."""

    text: str
    encoding: str
    warnings: list[str] = field(default_factory=list)


def charset_from_content_type(content_type: str | None) -> str | None:
    """Return the ``charset`` parameter of a Content-Type header, if any."""
    if not content_type:
        return None
    match = _CHARSET_PARAMETER.search(content_type)
    return match.group(1) if match else None


def gunzip(data: bytes, name: str, max_bytes: int | None = None) -> bytes:
    """Decompress gzip data (a ``.gz`` file, or a body compressed twice), within a size cap."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    limit = max_bytes or 0
    try:
        out = decompressor.decompress(data, limit + 1 if limit else 0)
    except zlib.error as exc:
        raise SourceError(name, f"gzip data is corrupt ({exc})") from exc
    if limit and len(out) > limit:
        raise SourceError(name, f"gzip data expands past the {limit:,}-byte limit")
    if not decompressor.eof:
        raise SourceError(name, "gzip data is truncated (the file ends mid-stream)")
    if decompressor.unused_data.startswith(GZIP_MAGIC):
        # A multi-member gzip file: let the gzip module read every member.
        try:
            out = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(name, f"gzip data is corrupt ({exc})") from exc
    return out


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return None
    return (
        "cp1252" if name in WINDOWS_1252_ALIASES or label.lower() in WINDOWS_1252_ALIASES else name
    )


def _is_utf8(name: str | None) -> bool:
    return bool(name) and codecs.lookup(name).name in ("utf-8", "utf-8-sig")  # type: ignore[arg-type]


def _sniff_utf16_32(data: bytes) -> str | None:
    """Recognise UTF-16/32 without a BOM by where the zero bytes of ASCII text fall."""
    head = data[:4]
    if len(head) < 4:
        return None
    zeros = (head[0] == 0, head[1] == 0, head[2] == 0, head[3] == 0)
    return {
        (False, True, True, True): "utf-32-le",
        (True, True, True, False): "utf-32-be",
        (False, True, False, True): "utf-16-le",
        (True, False, True, False): "utf-16-be",
    }.get(zeros)


def _looks_non_latin(text: str) -> bool:
    """Tell whether text read as windows-1252 is really another script's mojibake.

    In Western European text accented letters sit inside mostly-ASCII words
    ("Notícias"); Cyrillic, Greek or CJK bytes read as windows-1252 make whole
    words of accented letters ("Ïðèâåò").
    """
    accented = plain = 0
    for word in re.findall(r"[^\W\d_]+", text):
        if word.isascii():
            continue
        for char in word:
            if char.isascii():
                plain += 1
            else:
                accented += 1
    return accented > 8 and accented > 1.5 * plain


def _detect(data: bytes) -> tuple[str, str] | None:
    """Guess the charset of undeclared or mislabelled bytes: (codec, text)."""
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and not _looks_non_latin(western):
        return "cp1252", western
    best = charset_normalizer.from_bytes(data).best()
    if best is not None and best.encoding:
        return codecs.lookup(best.encoding).name, str(best)
    if western is not None:
        return "cp1252", western
    return None


MAX_INVALID_UTF8_SHARE = 0.01


def _mostly_utf8(data: bytes) -> tuple[str, int] | None:
    """Read bytes that are UTF-8 but for a few invalid sequences: (text, invalid count).

    They are when at least one valid multi-byte sequence is present and the
    invalid sequences are at most 1% of all non-ASCII ones (a stray byte
    pasted into a UTF-8 feed); text in a legacy charset has almost no valid
    multi-byte sequences, so it is left to detection.
    """
    text = data.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    valid = non_ascii - invalid
    if invalid <= 0 or valid < 1 or invalid > MAX_INVALID_UTF8_SHARE * non_ascii:
        return None
    return text, invalid


def decode_document(data: bytes, name: str, http_charset: str | None = None) -> Decoded:
    """Decode a feed document to text, following the precedence in the module docstring."""
    warnings: list[str] = []
    for bom, encoding in BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return Decoded(body.decode(encoding), encoding, warnings)
            except UnicodeDecodeError as exc:
                warnings.append(
                    f"byte order mark says {encoding} but byte {exc.start + len(bom)} is not; "
                    "bad bytes replaced"
                )
                return Decoded(body.decode(encoding, errors="replace"), encoding, warnings)
    sniffed = _sniff_utf16_32(data)
    if sniffed:
        try:
            return Decoded(data.decode(sniffed), sniffed, warnings)
        except UnicodeDecodeError:
            pass
    declared_match = _DECLARED_ENCODING.search(data[:1024])
    xml_label = declared_match.group(1).decode("ascii") if declared_match else None
    labels = [
        (label, where)
        for label, where in ((http_charset, "the HTTP header"), (xml_label, "the XML declaration"))
        if label
    ]
    for label, where in labels:
        if _codec(label) is None:
            warnings.append(f"{where} names an unknown charset {label!r}; ignored")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error: UnicodeDecodeError | None = exc
        mostly = _mostly_utf8(data)
        if mostly is not None:
            text, invalid = mostly
            warnings.append(
                f"the bytes are UTF-8 but for {invalid} invalid sequence(s) (the first at byte "
                f"{exc.start}); read as UTF-8, those replaced with U+FFFD"
            )
            return Decoded(text, "utf-8", warnings)
    else:
        utf8_error = None
        for label, where in labels:
            codec = _codec(label)
            if codec is None or _is_utf8(codec):
                continue
            if not text.isascii() or codec.startswith(("utf-16", "utf-32")):
                warnings.append(f"{where} says {label} but the bytes are UTF-8; read as UTF-8")
            break
        return Decoded(text, "utf-8", warnings)
    for label, where in labels:
        codec = _codec(label)
        if codec is None or _is_utf8(codec):
            continue
        try:
            return Decoded(data.decode(codec), codec, warnings)
        except UnicodeDecodeError:
            if codec == "cp1252":  # five bytes are unassigned in windows-1252; latin-1 has them
                return Decoded(data.decode("latin-1"), "latin-1", warnings)
            warnings.append(f"{where} says {label} but the bytes are not; charset detected instead")
    detected = _detect(data)
    assert utf8_error is not None
    said = next((f"{where} says {label}" for label, where in labels), "no charset is declared")
    if detected is None:
        warnings.append(
            f"{said} and the bytes are not UTF-8 (byte {utf8_error.start}); bad bytes replaced"
        )
        return Decoded(data.decode("utf-8", errors="replace"), "utf-8", warnings)
    codec, text = detected
    warnings.append(
        f"{said} but the bytes are not UTF-8 (byte {utf8_error.start}); read as {codec} (detected)"
    )
    return Decoded(text, codec, warnings)


def strip_leading_junk(text: str, warnings: list[str]) -> str:
    """Drop white space, a stray BOM or stray output before ``<?xml`` or the first tag."""
    stripped = text.lstrip("\ufeff \t\r\n\x00")
    if stripped.startswith("<"):
        removed = text[: len(text) - len(stripped)]
        if removed.strip("\ufeff") and stripped.startswith("<?xml"):
            warnings.append("blank line or white space before <?xml removed")
        return stripped
    start = stripped.find("<?xml", 0, MAX_JUNK_BEFORE_XML)
    if start < 0:
        start = stripped.find("<", 0, MAX_JUNK_BEFORE_XML)
    if start < 0:
        return stripped
    junk = one_line_excerpt(stripped[:start])
    warnings.append(f"{start} characters of text before the first tag removed ({junk!r})")
    return stripped[start:]


_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}


def replace_html_entities(text: str, warnings: list[str]) -> str:
    """Write HTML named entities (``&nbsp;``), which XML does not define, as characters.

    A strict XML parser stops at the first one; written as numeric references
    they mean the same and the document parses. A document with its own DTD
    subset may define entities itself and is left alone.
    """
    if "&" not in text or re.search(r"<!DOCTYPE[^>]*\[", text[:10_000]):
        return text
    replaced: dict[str, int] = {}

    def numeric(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _XML_ENTITIES:
            return match.group(0)
        value = html5.get(name + ";")
        if value is None:
            return match.group(0)
        replaced[name] = replaced.get(name, 0) + 1
        return "".join(f"&#{ord(char)};" for char in value)

    # CDATA sections hold text, where "&nbsp;" is not an entity: leave them be.
    parts = re.split(r"(<!\[CDATA\[.*?\]\]>)", text, flags=re.DOTALL)
    fixed = "".join(
        part if part.startswith("<![CDATA[") else _ENTITY.sub(numeric, part) for part in parts
    )
    if replaced:
        names = ", ".join(
            f"&{name};" for name in sorted(replaced, key=replaced.__getitem__, reverse=True)[:3]
        )
        warnings.append(
            f"{sum(replaced.values())} HTML entities that XML does not define ({names}) read "
            "as characters"
        )
    return fixed


def one_line_excerpt(text: str, limit: int = 60) -> str:
    """Return the start of ``text`` on one line, for messages."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def xml_as_utf8(text: str) -> bytes:
    """Encode a decoded XML document as UTF-8 with a declaration that says so."""
    match = _XML_DECLARATION.match(text)
    if match:
        declaration = match.group(0)
        if _ENCODING_ATTRIBUTE.search(declaration):
            fixed = _ENCODING_ATTRIBUTE.sub(r"\1\2utf-8\2", declaration, count=1)
        else:
            fixed = declaration[:-2].rstrip() + ' encoding="utf-8"?>'
        text = fixed + text[match.end() :]
    return unicodedata.normalize("NFC", text).encode("utf-8", errors="surrogatepass")


class _PageSummary(HTMLParser):
    """Collect what names an HTML page: its title, first link and advertised feeds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.first_link: str | None = None
        self.feeds: list[str] = []
        self.refresh: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key.lower(): value or "" for key, value in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "a" and self.first_link is None and values.get("href"):
            self.first_link = values["href"]
        elif tag == "link" and "alternate" in values.get("rel", "").lower():
            if any(kind in values.get("type", "") for kind in ("rss", "atom", "feed+json")):
                self.feeds.append(values.get("href", ""))
        elif tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            target = re.search(r"url\s*=\s*['\"]?([^'\";]+)", values.get("content", ""), re.I)
            self.refresh = target.group(1).strip() if target else None

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


_HTML_START = re.compile(
    r"^(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*"
    r"<(!doctype\s+html|html|head|body|title|div|p|img|a|span|table|h[1-6]|br)\b",
    re.IGNORECASE | re.DOTALL,
)
_ROOT = re.compile(
    r"^(?:<\?[^>]*\?>\s*|<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*<([A-Za-z_][\w:.-]*)", re.DOTALL
)


def _resolved(link: str, base_url: str | None) -> str:
    if not base_url:
        return link
    try:
        return urljoin(base_url, link)
    except ValueError:
        return link


def describe_non_feed(text: str, base_url: str | None = None) -> str | None:
    """Say what a document that is not a feed looks like (an HTML page, other XML), if we can.

    Links the page names (a feed it advertises, where it redirects) are
    resolved against ``base_url``, where the page came from.
    """
    head = text[:200_000]
    html_start = _HTML_START.match(head)
    if html_start:
        page = _PageSummary()
        # html.parser is lenient; should it still give up, only detail is lost.
        with contextlib.suppress(Exception):
            page.feed(head)
        parts = ["an HTML page, not a feed"]
        if page.title.strip():
            parts.append(f"titled {one_line_excerpt(page.title)!r}")
        if page.feeds:
            parts.append(f"it links to a feed at {_resolved(page.feeds[0], base_url)}")
        elif page.refresh:
            parts.append(f"it redirects to {_resolved(page.refresh, base_url)}")
        elif "moved" in page.title.lower() and page.first_link:
            parts.append(f"it points to {_resolved(page.first_link, base_url)}")
        if len(parts) == 1 and not re.match(r"!doctype|html", html_start.group(1), re.IGNORECASE):
            parts[0] = f"an HTML fragment (it starts with <{html_start.group(1)}>), not a feed"
        return "; ".join(parts)
    root = _ROOT.match(head)
    if root and root.group(1).lower().split(":")[-1] not in ("rss", "feed", "rdf", "channel"):
        return f"XML with root element <{root.group(1)}>, not RSS, Atom or RDF"
    if not head.lstrip().startswith("<"):
        return f"not XML or JSON (starts {one_line_excerpt(head, 40)!r})"
    return None
