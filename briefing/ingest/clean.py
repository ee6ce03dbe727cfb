"""Clean what sources send: sanitise HTML, extract plain text, canonicalise URLs.

Everything from a feed or file is untrusted. HTML bodies go through nh3 (an
allow-list sanitiser: no script, no event handlers, no javascript: URLs);
text meant for one line (titles, credits) loses control characters and runs
of white space; only http(s) URLs survive as links or images.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import nh3

from briefing.domain.text import one_line

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "cite",
    "code",
    "em",
    "figcaption",
    "figure",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}}
TRACKING_PARAMETERS = re.compile(
    r"^(utm_[a-z_]+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|igshid|_hsenc|_hsmi|"
    r"yclid|ocid|cmpid|cmp|ito|xtor|at_medium|at_campaign|ns_[a-z_]+|smid|smtyp|_ga|_gl|"
    r"mkt_tok|wt\.mc_id|wt\.mc_ev|sr_share|ref_src|oly_anon_id|oly_enc_id|vero_id|s_cid)$",
    re.IGNORECASE,
)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "tr",
    "table",
    "ul",
    "ol",
    "figure",
    "figcaption",
    "section",
    "article",
    "header",
    "footer",
    "hr",
}


MAX_HTML_DEPTH = 64
MAX_HTML_ELEMENTS = 20_000
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr"}
)
_SELF_NESTING = frozenset(("p", "li", "dt", "dd", "tr", "td", "th", "option"))
_TAG_SPLIT = re.compile(r"(<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*>)")


def bound_html(
    fragment: str, max_depth: int = MAX_HTML_DEPTH, max_elements: int = MAX_HTML_ELEMENTS
) -> tuple[str, str | None]:
    """Flatten HTML nested deeper than ``max_depth`` or with more than ``max_elements`` tags.

    The sanitiser's time grows with the square of the nesting depth; tags past
    either bound are dropped (their text is kept) in one linear pass before it
    runs. Returns the fragment and, when anything was dropped, what for a warning.
    """
    if fragment.count("<") <= max_depth:
        return fragment, None
    # text, whole tag, "/" or "", name, text, whole tag, ...: the loop below touches
    # only the tags, and the kept pieces are joined at C speed.
    pieces = _TAG_SPLIT.split(fragment)
    stack: list[str] = []
    dropped_open: dict[str, int] = {}
    elements = dropped = 0
    deepest = False
    for index in range(1, len(pieces), 4):
        name = pieces[index + 2].lower()
        if pieces[index + 1]:  # a closing tag
            if dropped_open.get(name):
                dropped_open[name] -= 1
                pieces[index] = ""
                dropped += 1
            elif name in stack:
                while stack.pop() != name:
                    pass
            continue
        elements += 1
        void = name in _VOID_TAGS or pieces[index].endswith("/>")
        if stack and stack[-1] == name and name in _SELF_NESTING:
            stack.pop()  # an unclosed <p> or <li> is closed by the next one
        if elements > max_elements or (not void and len(stack) >= max_depth):
            deepest = deepest or elements <= max_elements
            pieces[index] = ""
            dropped += 1
            if not void:
                dropped_open[name] = dropped_open.get(name, 0) + 1
        elif not void:
            stack.append(name)
    if not dropped:
        return fragment, None
    del pieces[2::4], pieces[2::3]  # the "/" and name groups, leaving text and tags
    why = (
        f"HTML nested more than {max_depth} levels deep"
        if deepest
        else f"HTML with more than {max_elements:,} elements"
    )
    return "".join(pieces), f"{why}: {dropped:,} tags dropped, their text kept"


# An href or src inside a tag nh3 wrote (never text that merely looks like one: nh3
# writes "<" in text as "&lt;", and every attribute value in double quotes).
_LINK_ATTRIBUTE = re.compile(r'(<(?:a|img)(?:\s+[\w:-]+="[^"]*")*?\s+(?:href|src)=)"([^"]*)"')


def sanitise_html(
    fragment: str, base_url: str | None = None, *, notes: list[str] | None = None
) -> str:
    """Return ``fragment`` with only safe tags, attributes and http(s) URLs left.

    HTML too deep or too large for the sanitiser is flattened first
    (:func:`bound_html`); what was dropped is added to ``notes`` when given.
    """
    fragment, note = bound_html(fragment)
    if note and notes is not None:
        notes.append(note)
    cleaned = nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    if base_url:
        cleaned = _LINK_ATTRIBUTE.sub(
            lambda m: f'{m.group(1)}"{html.escape(_resolve(m.group(2), base_url))}"',
            cleaned,
        )
    return cleaned


def _resolve(attribute: str, base_url: str) -> str:
    """Resolve an href or src against the base; an empty one points at the base itself.

    The attribute holds HTML: ``&amp;`` is ``&`` in the URL (escaped again by the caller).
    """
    url = html.unescape(attribute).strip()
    return absolute_url(url or base_url, base_url) or ""


class _TextExtractor(HTMLParser):
    """Collect the text of an HTML fragment, one paragraph per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """Return the plain text of an HTML fragment, paragraphs separated by newlines."""
    extractor = _TextExtractor()
    extractor.feed(fragment)
    extractor.close()
    lines = [one_line(line) for line in "".join(extractor.parts).split("\n")]
    return "\n".join(line for line in lines if line)


def plain_paragraphs(text: str) -> str:
    """Normalise plain text: clean lines, blank lines collapsed to one newline."""
    lines = [one_line(line) for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(line for line in lines if line)


def absolute_url(url: str | None, base: str | None = None) -> str | None:
    """Return ``url`` made absolute against ``base`` if it is http(s), else None."""
    if not url:
        return None
    url = one_line(url)
    if base:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """Return the canonical form of an article URL for deduplication.

    Lower-cases scheme and host, drops default ports, the fragment and
    tracking parameters (utm_*, fbclid, ...), and an empty query.
    """
    absolute = absolute_url(url, base)
    if absolute is None:
        return None
    try:
        parts = urlsplit(absolute)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    netloc = (
        host
        if port is None or (scheme, port) in (("http", 80), ("https", 443))
        else (f"{host}:{port}")
    )
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not TRACKING_PARAMETERS.match(k)
        ]
    )
    return urlunsplit((scheme, netloc, _normalise_path(parts.path) or "/", query, ""))


def _normalise_path(path: str) -> str:
    """Percent-encode what must be (spaces, non-ASCII), in one case, unreserved ones decoded.

    ``/a%7eb`` and ``/a~b`` are one URL (RFC 3986, section 6.2.2); ``%2F`` stays
    encoded because it is not the same as ``/``.
    """

    def escape(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    return _PERCENT.sub(escape, quote(path, safe="/%:@!$&'()*+,;=-._~"))
