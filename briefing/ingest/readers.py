"""Read articles from files: Markdown with YAML front matter, and RSS/Atom/JSON feeds.

Readers register by source type through the ``briefing_source_readers``
plugin hook, as an outside plugin's would (see :func:`briefing_source_readers`
at the end); each names the file extensions it reads (Pelican's ``Readers``
idea), and anything unknown goes to the ``feed`` reader, which sniffs the
format and also reads every http(s) source. A reader turns one document into
:class:`ArticleDraft` values and names every entry it had to skip; it raises
:class:`SourceError` only when the whole document is unreadable.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
import sys
import time as time_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from html import escape as html_escape
from html import unescape as html_unescape
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import feedparser
import frontmatter
import yaml
from markdown_it import MarkdownIt

from briefing import plugins
from briefing.domain.models import ArticleDraft
from briefing.domain.text import one_line
from briefing.errors import ArticleError, SourceError
from briefing.ingest.clean import (
    absolute_url,
    bound_html,
    canonical_url,
    html_to_text,
    plain_paragraphs,
    sanitise_html,
)
from briefing.ingest.dates import parse_loose_date
from briefing.ingest.decode import (
    GZIP_MAGIC,
    decode_document,
    describe_non_feed,
    gunzip,
    one_line_excerpt,
    replace_html_entities,
    strip_leading_junk,
    xml_as_utf8,
)
from briefing.plugins import hookimpl

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_ENTRIES = 500
MAX_TITLE_HTML = 5_000  # characters of a feed entry's title read (HTML included)
FRONT_MATTER_KEYS = {
    "title": "headline (required)",
    "section": "section key; overrides the source's section",
    "published": "publication time, ISO 8601 with an offset (UTC if none)",
    "url": "canonical link to the article",
    "guid": "stable id, when there is no URL",
    "dek": "standfirst shown instead of a generated summary",
    "image": "http(s) URL of the lead image",
    "image_alt": "alt text of the image (the headline is used, with a preview warning, if absent)",
    "image_credit": "credit line of the image",
    "tags": "list of tags",
    "author": "byline",
}


@dataclass(frozen=True)
class ReadContext:
    """What a reader needs to know about the source it reads for."""

    label: str
    sections: tuple[str, ...]
    known_sections: frozenset[str]
    categories: Mapping[str, str] = field(default_factory=dict)
    max_bytes: int = DEFAULT_MAX_BYTES
    max_entries: int = DEFAULT_MAX_ENTRIES

    def sections_for(self, categories: tuple[str, ...]) -> tuple[str, ...]:
        """Return the source's sections plus those its category map assigns."""
        sections = list(self.sections)
        for category in categories:
            mapped = self.categories.get(category)
            if mapped and mapped not in sections:
                sections.append(mapped)
        return tuple(sections)


@dataclass
class ReadResult:
    """The drafts read from one document and the entries skipped, with reasons."""

    drafts: list[ArticleDraft] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Reader(Protocol):
    """Turn one document into article drafts."""

    kind: str  # the source type name it registers under
    suffixes: tuple[str, ...]  # file extensions it reads, lower case with the dot

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        """Read ``path`` for the source described by ``context``."""
        ...


class DocumentReader(Reader, Protocol):
    """A reader that also reads a document given as bytes (one fetched from a URL)."""

    def parse(
        self,
        data: bytes,
        name: str,
        context: ReadContext,
        *,
        charset: str | None = None,
        base_url: str | None = None,
    ) -> ReadResult:
        """Read ``data``, named ``name`` in messages, as fetched from ``base_url``."""
        ...


def parse_time(value: Any) -> datetime | None:
    """Read a publication time from YAML or a feed; naive times are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                raise ValueError(f"unreadable date {value!r}") from None
    else:
        raise ValueError(f"unreadable date {value!r}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def content_uid(url: str | None, guid: str | None, label: str, title: str) -> str:
    """Return an article's dedupe key: its canonical URL, else its GUID, else a hash."""
    if url:
        return f"url:{url}"
    if guid:
        return f"guid:{guid}"
    digest = hashlib.sha256(f"{label}\n{title}".encode()).hexdigest()[:32]
    return f"hash:{digest}"


class MarkdownReader:
    """Read an editor-written article: YAML front matter, then a Markdown body."""

    kind = "markdown"
    suffixes: tuple[str, ...] = (".md", ".markdown")
    _markdown = MarkdownIt("commonmark")

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        """Read one Markdown file into one draft."""
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(
                str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc
        except OSError as exc:
            raise SourceError(str(path), f"cannot read: {exc.strerror or exc}") from exc
        try:
            post = frontmatter.loads(text)
        except yaml.YAMLError as exc:
            raise SourceError(str(path), f"front matter is not valid YAML: {exc}") from exc
        meta = dict(post.metadata)
        unknown = sorted(set(meta) - set(FRONT_MATTER_KEYS))
        if unknown:
            raise SourceError(
                str(path),
                f"unknown front-matter key {unknown[0]!r} (known: {', '.join(FRONT_MATTER_KEYS)})",
            )
        title = one_line(str(meta.get("title") or ""))
        if not title:
            raise SourceError(str(path), "front matter has no title")
        sections = context.sections
        if meta.get("section"):
            section = str(meta["section"])
            if section not in context.known_sections:
                raise SourceError(
                    str(path),
                    f"section {section!r} is not configured "
                    f"(known: {', '.join(sorted(context.known_sections))})",
                )
            sections = (section,)
        try:
            published = parse_time(meta.get("published"))
        except ValueError as exc:
            raise SourceError(str(path), f"published: {exc}") from exc
        url = canonical_url(str(meta["url"])) if meta.get("url") else None
        if meta.get("url") and url is None:
            raise SourceError(str(path), f"url: expected an http(s) URL, got {meta['url']!r}")
        image = absolute_url(str(meta["image"])) if meta.get("image") else None
        tags = meta.get("tags") or []
        if not isinstance(tags, list):
            tags = [tags]
        body_html = sanitise_html(self._markdown.render(post.content), base_url=url)
        guid = str(meta["guid"]) if meta.get("guid") else None
        draft = ArticleDraft(
            uid=content_uid(url, guid, f"markdown:{path.name}", title),
            url=url,
            guid=guid,
            title=title,
            dek=one_line(str(meta["dek"])) if meta.get("dek") else None,
            body_html=body_html,
            body_text=html_to_text(body_html),
            author=one_line(str(meta["author"])) if meta.get("author") else None,
            image_url=image,
            image_alt=one_line(str(meta["image_alt"])) if image and meta.get("image_alt") else None,
            image_credit=one_line(str(meta["image_credit"])) if meta.get("image_credit") else None,
            tags=tuple(one_line(str(tag)) for tag in tags if tag),
            published_at=published,
            sections=sections,
        )
        return ReadResult(drafts=[draft])


def _struct_time(value: time_module.struct_time | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None


_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg", ".bmp")
_AUDIO_EXTENSIONS = (".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wav", ".flac")
_VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".ogv", ".avi", ".mkv", ".swf", ".flv")


def media_kind(url: str, medium: str | None = None, mime: str | None = None) -> str | None:
    """Say what a media URL holds: ``image``, ``audio``, ``video`` or None (unknown).

    The medium attribute (Media RSS) decides first, then the MIME type, then
    the file extension; Flash counts as video.
    """
    medium = (medium or "").strip().lower()
    if medium in ("image", "audio", "video"):
        return medium
    mime = (mime or "").strip().lower()
    if mime.startswith(("image/", "audio/", "video/")):
        return mime.split("/", 1)[0]
    if "flash" in mime:
        return "video"
    path = urlsplit(url).path.lower()
    for kind, extensions in (
        ("image", _IMAGE_EXTENSIONS),
        ("audio", _AUDIO_EXTENSIONS),
        ("video", _VIDEO_EXTENSIONS),
    ):
        if path.endswith(extensions):
            return kind
    return None


def _entry_media(entry: Any, base: str | None) -> tuple[str | None, list[tuple[str, str]]]:
    """Return an entry's lead image and its audio/video as (kind, URL) pairs.

    Only an image becomes the image: one said to be an image by medium, type
    or extension, or a thumbnail or ``<image>`` that is not said to be anything
    else. Audio and video are kept for a "listen" or "watch" link.
    """
    image: str | None = None
    media: list[tuple[str, str]] = []

    def consider(url: str | None, medium: Any, mime: Any, default: str | None) -> None:
        nonlocal image
        if not url:
            return
        kind = media_kind(url, str(medium or ""), str(mime or "")) or default
        if kind == "image":
            image = image or url
        elif kind in ("audio", "video") and all(url != seen for _, seen in media):
            media.append((kind, url))

    for item in entry.get("media_content", []):
        consider(absolute_url(item.get("url"), base), item.get("medium"), item.get("type"), None)
    for item in entry.get("media_thumbnail", []):
        consider(absolute_url(item.get("url"), base), None, None, "image")
    for link in entry.get("links", []):
        if link.get("rel") == "enclosure":
            consider(absolute_url(link.get("href"), base), None, link.get("type"), None)
    value = entry.get("image")
    if isinstance(value, Mapping):
        value = value.get("href") or value.get("url")
    if isinstance(value, str):
        consider(absolute_url(value, base), None, None, "image")
    return image, media


def _media_links(body_html: str, media: list[tuple[str, str]]) -> str:
    """Add a "Listen" or "Watch" link to each audio or video the body does not link yet."""
    extra = "".join(
        f'<p><a href="{html_escape(url)}">{"Listen" if kind == "audio" else "Watch"}</a></p>'
        for kind, url in media
        if html_escape(url) not in body_html
    )
    return body_html + extra


def check_size(path: Path, max_bytes: int) -> None:
    """Refuse a file over the size limit before anything reads it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise SourceError(str(path), f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")


def _read_file(path: Path, context: ReadContext) -> bytes:
    """Read a feed file whole, refusing one over the size limit before reading it."""
    check_size(path, context.max_bytes)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(str(path), f"cannot read: {exc.strerror or exc}") from exc


def _unwrap(data: bytes, name: str, context: ReadContext) -> bytes:
    """Gunzip a gzipped document (a ``.gz`` file, or a body compressed twice)."""
    if data.startswith(GZIP_MAGIC):
        data = gunzip(data, name, context.max_bytes)
        if not data.strip():
            raise SourceError(name, "empty document (an empty gzip file)")
    elif not data.strip():
        raise SourceError(name, "empty document")
    return data


_EXPAT_HINTS = {
    "no element found": "the document ends before its root element is closed (truncated?)",
    "undefined entity": "an undefined entity",
    "unclosed token": "the document ends inside a tag (truncated?)",
    "junk after document element": "text after the root element",
}


def _entity_at(document: str, line: int, column: int) -> str | None:
    """Return the ``&name;`` reference at a (1-based line, 0-based column) position."""
    lines = document.split("\n", line)
    if len(lines) < line:
        return None
    match = re.compile(r"&([A-Za-z_][\w.-]*);").match(lines[line - 1], column)
    return match.group(0) if match else None


def describe_bozo(exception: object, document: str | None = None) -> str:
    """Say in words why feedparser's strict XML parser gave up on a document.

    With the ``document`` at hand, an undefined entity is named.
    """
    text = str(exception)
    match = re.match(r"^<unknown>:(\d+):(\d+): (.*)$", text)
    if not match:
        return text or exception.__class__.__name__
    line, column, message = match.groups()
    hint = _EXPAT_HINTS.get(message, message)
    if message == "undefined entity" and document is not None:
        entity = _entity_at(document, int(line), int(column))
        if entity:
            hint = f"an undefined entity {entity}"
    return f"{hint} at line {line}, column {column}"


_LINK_TAG = re.compile(r"<(?:atom:)?link\b([^>]*)>", re.IGNORECASE)
_RSS_LINK = re.compile(r"<link>\s*(https?://[^<\s]+)\s*</link>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_FIRST_ENTRY = re.compile(r"<(?:\w+:)?(?:item|entry)\b", re.IGNORECASE)


def feed_base(text: str) -> str | None:
    """Find the absolute URL a feed file calls its own (``rel="self"``), else its site link.

    Used as the base of relative links in a feed read from a file, where no
    URL it came from is known. Only the feed's head (before its first entry)
    is looked at.
    """
    first = _FIRST_ENTRY.search(text, 0, 200_000)
    head = text[: first.start() if first else 200_000]
    alternate = None
    for match in _LINK_TAG.finditer(head):
        values = {key.lower(): one or two for key, one, two in _ATTRIBUTE.findall(match.group(1))}
        href = absolute_url(html_unescape(values.get("href", "")))
        rel = values.get("rel", "alternate").strip().lower()
        if href and rel == "self":
            return href
        if href and rel == "alternate" and alternate is None:
            alternate = href
    if alternate is None:
        rss = _RSS_LINK.search(head)
        alternate = absolute_url(html_unescape(rss.group(1))) if rss else None
    return alternate


def _date_warning(unreadable: list[tuple[int, str]], noun: str) -> str:
    examples = ", ".join(f"{noun} {index}: {raw!r}" for index, raw in unreadable[:3])
    more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
    return (
        f"{len(unreadable)} {noun}(s) with a date that could not be read ({examples}{more}); "
        "their first-seen time is used instead"
    )


@dataclass(frozen=True)
class _Identities:
    """Links and GUIDs that several different entries of one document share.

    Some feeds give every item the site's home page as its link, or reuse one
    GUID (an enclosure URL) for two episodes. Such a value names no single
    entry, so it is not used to tell entries apart: the other one is, or the
    title when both are shared.
    """

    links: frozenset[str]
    guids: frozenset[str]

    @classmethod
    def of(cls, entries: list[tuple[str | None, str | None, str]]) -> _Identities:
        """Find the shared values among (canonical link, GUID, title) triples."""
        by_link: dict[str, set[tuple[str | None, str]]] = {}
        by_guid: dict[str, set[tuple[str | None, str]]] = {}
        for link, guid, title in entries:
            if link:
                by_link.setdefault(link, set()).add((guid, title))
            if guid:
                by_guid.setdefault(guid, set()).add((link, title))
        return cls(
            links=frozenset(k for k, seen in by_link.items() if len(seen) > 1),
            guids=frozenset(k for k, seen in by_guid.items() if len(seen) > 1),
        )

    def warnings(self, counts: dict[str, int]) -> list[str]:
        """Describe the shared values (a few of each) for the report."""
        notes = [
            f"{counts.get(link, 0)} entries share the link {link}; they are told apart by GUID "
            "or title"
            for link in sorted(self.links)[:3]
        ]
        notes += [
            f"GUID {guid!r} is shared by different entries; they are told apart by link or title"
            for guid in sorted(self.guids)[:3]
        ]
        return notes


_ITEM_BASE = re.compile(r"<(?:\w+:)?(?:item|entry)\b[^>]*\bxml:base\s*=", re.IGNORECASE)
_NO_BASE = "http://no-base.invalid/"


def _drop_placeholder_base(parsed: Any) -> None:
    """Take the placeholder base back out of every URL feedparser resolved against it."""

    def strip(value: Any) -> Any:
        return value.replace(_NO_BASE, "") if isinstance(value, str) else value

    for entry in parsed.entries:
        for key in ("link", "id", "summary"):
            if key in entry:
                entry[key] = strip(entry[key])
        for part in entry.get("content") or []:
            part["value"] = strip(part.get("value"))
        for link in entry.get("links") or []:
            link["href"] = strip(link.get("href"))
    if "link" in parsed.feed:
        parsed.feed["link"] = strip(parsed.feed["link"])


DEEP_DOCUMENT = 250  # tags open at once in a document's markup before it is flattened


def _html_base(detail: Any, fallback: str | None) -> str | None:
    """Return the base URL relative links in one content element resolve against.

    That is the ``xml:base`` in scope or the document's own URL, as feedparser
    records it for the element (its own resolver, which walks the HTML tag by
    tag in Python, is not run), else ``fallback``: the entry's or the feed's link.
    """
    base = detail.get("base") if isinstance(detail, Mapping) else None
    if isinstance(base, str) and base.startswith(_NO_BASE):
        base = base[len(_NO_BASE) :]  # what is left is a relative xml:base, if anything
    if not isinstance(base, str) or not base:
        return fallback
    return absolute_url(base, fallback) or fallback


def _brief(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


def _newest(
    entries: list[tuple[int, Any]],
    limit: int,
    published: Any,
    noun: str,
    result: ReadResult,
) -> list[tuple[int, Any]]:
    """Keep the ``limit`` newest of numbered entries (undated ones count as oldest), in order."""
    if len(entries) <= limit:
        return entries
    oldest = datetime.min.replace(tzinfo=UTC)

    def when(numbered: tuple[int, Any]) -> datetime:
        try:
            value = published(numbered[1])
        except (TypeError, ValueError, AttributeError, OverflowError):  # sorts as undated
            value = None
        return value if isinstance(value, datetime) else oldest

    ranked = sorted(entries, key=when, reverse=True)[:limit]
    kept = sorted(ranked, key=lambda numbered: numbered[0])
    result.warnings.append(
        f"the document has {len(entries):,} {noun}; the newest {limit:,} read (ingest.max_entries)"
    )
    return kept


class FeedReader:
    """Read an RSS, Atom or RDF feed through feedparser, repairing what real feeds break.

    Bytes are gunzipped, decoded (see :mod:`briefing.ingest.decode`), stripped of
    anything before the first tag and handed to feedparser as UTF-8. A document
    that is not well-formed still gives every entry feedparser's lenient parser
    can read, with a warning; only a document with no entries and no feed
    structure fails, named for what it is (an HTML page, other XML, ...).
    """

    kind = "feed"
    suffixes: tuple[str, ...] = ()  # every file no other reader claims

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        """Read every entry of one feed file."""
        return self.parse(_read_file(path, context), str(path), context)

    def parse(
        self,
        data: bytes,
        name: str,
        context: ReadContext,
        *,
        charset: str | None = None,
        base_url: str | None = None,
    ) -> ReadResult:
        """Read every entry of a feed document given as bytes.

        ``charset`` is what an HTTP header declared; ``base_url`` is where the
        document came from, against which relative links resolve.
        """
        data = _unwrap(data, name, context)
        decoded = decode_document(data, name, charset)
        if decoded.text.lstrip("\ufeff \t\r\n").startswith(("{", "[")):
            result = JSON_FEED.parse_text(
                decoded.text.lstrip("\ufeff"), name, context, base_url=base_url
            )
            result.warnings[:0] = decoded.warnings
            return result
        text = strip_leading_junk(decoded.text, decoded.warnings)
        if not text.strip():
            raise SourceError(name, "empty document (only white space)")
        # The document is UTF-8 now; the base URL is where it came from (for relative links).
        headers = {"content-type": "application/xml; charset=utf-8"}
        if base_url:
            headers["content-location"] = base_url
        elif _ITEM_BASE.search(text):
            # feedparser carries an item's xml:base on to the next items when the document
            # has no base of its own; a placeholder base ends it, and is taken out after.
            headers["content-location"] = _NO_BASE
        if text.count("<") > DEEP_DOCUMENT:
            text, note = bound_html(text, max_depth=DEEP_DOCUMENT, max_elements=sys.maxsize)
            if note:
                decoded.warnings.append(f"before parsing: {note}")
        parsed = self._feedparser(text, headers)
        parsed_text = text
        if parsed.get("bozo") and "undefined entity" in str(parsed.get("bozo_exception")):
            fixed = replace_html_entities(text, decoded.warnings)
            if fixed != text:
                parsed = self._feedparser(fixed, headers)
                parsed_text = fixed
        result = ReadResult(warnings=list(decoded.warnings))
        bozo = describe_bozo(parsed.get("bozo_exception"), parsed_text)
        if not parsed.entries:
            if parsed.get("version"):
                if parsed.get("bozo"):
                    raise SourceError(name, f"not well-formed XML ({bozo}) and no entries read")
                result.warnings.append("the feed has no entries")
                return result
            what = describe_non_feed(text, base_url)
            if what:
                raise SourceError(name, what)
            if parsed.get("bozo"):
                raise SourceError(name, f"not a readable feed: {bozo}")
            raise SourceError(name, "not a feed (no RSS, Atom, RDF or JSON Feed structure)")
        if parsed.get("bozo"):
            result.warnings.append(
                f"not well-formed XML ({bozo}); "
                f"{len(parsed.entries)} entries read with the lenient parser"
            )
        if headers.get("content-location") == _NO_BASE:
            _drop_placeholder_base(parsed)
        feed_link: str | None
        if base_url:
            feed_link = absolute_url(parsed.feed.get("link"), base_url) or base_url
        else:  # a file has no URL: the feed's own self (or site) link stands in
            feed_link = feed_base(text)
        entries = _newest(
            list(enumerate(parsed.entries, start=1)),
            context.max_entries,
            lambda entry: _struct_time(
                dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
            ),
            "entries",
            result,
        )
        keys = [
            (
                canonical_url(e.get("link"), feed_link),
                one_line(e.get("id")) or None,
                one_line(e.get("title")),
            )
            for _, e in entries
        ]
        shared = _Identities.of(keys)
        link_counts: dict[str, int] = {}
        for link, _guid, _title in keys:
            if link in shared.links:
                link_counts[link] = link_counts.get(link, 0) + 1
        result.warnings.extend(shared.warnings(link_counts))
        unreadable: list[tuple[int, str]] = []
        for index, entry in entries:
            notes: list[str] = []
            try:
                draft, raw_date = self._draft(entry, feed_link, context, shared, notes)
            except ArticleError as exc:
                result.skipped.append(f"entry {index}: {exc.reason}")
                continue
            except Exception as exc:  # a bug of ours, or feedparser's, costs one entry
                result.skipped.append(f"entry {index}: unexpected error: {_brief(exc)}")
                logger.error(
                    "%s: %s: unexpected error: %s",
                    name,
                    f"entry {index}",
                    _brief(exc),
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
                continue
            result.warnings.extend(f"entry {index} ({draft.title}): {note}" for note in notes)
            result.drafts.append(draft)
            if raw_date is not None:
                unreadable.append((index, raw_date))
        if unreadable:
            result.warnings.append(_date_warning(unreadable, "entry"))
        return result

    @staticmethod
    def _feedparser(text: str, headers: dict[str, str]) -> Any:
        # Neither feedparser's sanitiser nor its link resolver: both walk the HTML tag by
        # tag in Python (more than half of its time on HTML-rich feeds, and quadratic in
        # the nesting depth); nh3 sanitises and the sanitiser resolves links against the
        # base feedparser records (see _html_base).
        return feedparser.parse(
            xml_as_utf8(text),
            sanitize_html=False,
            resolve_relative_uris=False,
            response_headers=headers,
        )

    def _draft(
        self,
        entry: Any,
        feed_link: str | None,
        context: ReadContext,
        shared: _Identities,
        notes: list[str],
    ) -> tuple[ArticleDraft, str | None]:
        """Build one draft; also return the raw date text when it could not be read."""
        url = canonical_url(entry.get("link"), feed_link)
        guid = one_line(entry.get("id")) or None
        if guid in shared.guids:
            guid = None
        identity_url = None if url in shared.links else url
        contents = entry.get("content") or []
        content_html = "".join(part.get("value", "") for part in contents)
        summary_html = entry.get("summary", "") or ""
        # feedparser writes an XHTML <br/> as <br></br>, and HTML reads </br> as a second <br>.
        body_source = (content_html or summary_html).replace("<br></br>", "<br>")
        detail = contents[0] if content_html else entry.get("summary_detail")
        image, media = _entry_media(entry, url or feed_link)
        body_html = sanitise_html(
            body_source, base_url=_html_base(detail, url or feed_link), notes=notes
        )
        body_text = html_to_text(body_html)
        if media:  # a link to the audio or video, not part of the story's text
            body_html = _media_links(body_html, media)
        title_html = entry.get("title", "") or ""
        if len(title_html) > MAX_TITLE_HTML:  # a headline, not a story: reading it all costs
            notes.append(f"title of {len(title_html):,} characters cut to {MAX_TITLE_HTML:,}")
            title_html = title_html[:MAX_TITLE_HTML]
            if title_html.rfind("<") > title_html.rfind(">"):  # not half a tag
                title_html = title_html[: title_html.rfind("<")]
        title = one_line(html_to_text(title_html))
        if not title:
            title = " ".join(body_text.split()[:12])
        if not title and url:
            title = url  # an item with only a link, as feedparser keeps it
        if not title:
            raise ArticleError(context.label, f"no title and no text ({guid or url or 'no id'})")
        dek = None
        if content_html and summary_html:
            dek = plain_paragraphs(html_to_text(sanitise_html(summary_html))) or None
        # dict.get: feedparser's own get() maps updated to published with a warning.
        published = _struct_time(
            dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
        )
        unreadable = None
        if published is None:
            raw = one_line(dict.get(entry, "published") or dict.get(entry, "updated") or "")
            published = parse_loose_date(raw)
            if published is None and raw:
                unreadable = raw
        tags = tuple(
            one_line(tag.get("term") or tag.get("label") or "") for tag in entry.get("tags", [])
        )
        sections = context.sections_for(tags)
        draft = ArticleDraft(
            uid=content_uid(identity_url, guid, context.label, title),
            url=url,
            guid=guid,
            title=title,
            dek=dek,
            body_html=body_html,
            body_text=body_text,
            author=one_line(entry.get("author")) or None,
            image_url=image,
            image_alt=None,
            image_credit=None,
            tags=tuple(tag for tag in tags if tag),
            published_at=published,
            sections=sections,
        )
        return draft, unreadable


_JSON_FEED_VERSIONS = ("1", "1.0", "1.1")


class JsonFeedReader:
    """Read a JSON Feed (jsonfeed.org, versions 1 and 1.1).

    feedparser 6.0 reads RSS, Atom and RDF but not JSON Feed, so its items are
    mapped here onto the same drafts. A feed whose ``version`` is a bare
    ``1.0`` / ``1.1`` instead of the jsonfeed.org URL is read, with a warning.
    """

    kind = "jsonfeed"
    suffixes: tuple[str, ...] = (".json",)

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        """Read every item of one JSON Feed file."""
        return self.parse(_read_file(path, context), str(path), context)

    def parse(
        self,
        data: bytes,
        name: str,
        context: ReadContext,
        *,
        charset: str | None = None,
        base_url: str | None = None,
    ) -> ReadResult:
        """Read every item of a JSON Feed document given as bytes."""
        data = _unwrap(data, name, context)
        decoded = decode_document(data, name, charset)
        text = decoded.text.lstrip("\ufeff \t\r\n")
        if not text.startswith(("{", "[")):
            if text.startswith("<"):
                return FEED.parse(data, name, context, charset=charset, base_url=base_url)
            raise SourceError(name, f"not JSON (starts {one_line_excerpt(text, 40)!r})")
        result = self.parse_text(text, name, context, base_url=base_url)
        result.warnings[:0] = decoded.warnings
        return result

    def parse_text(
        self, text: str, name: str, context: ReadContext, *, base_url: str | None = None
    ) -> ReadResult:
        """Read every item of a decoded JSON Feed document."""
        result = ReadResult()
        document = _load_json(text, name, result)
        if not isinstance(document, dict):
            raise SourceError(name, "JSON, but not a JSON Feed (not an object)")
        version = str(document.get("version", ""))
        items = document.get("items")
        if "jsonfeed.org" not in version:
            if version not in _JSON_FEED_VERSIONS or not isinstance(items, list):
                raise SourceError(name, "JSON, but not a JSON Feed (no jsonfeed.org version)")
            result.warnings.append(
                f"version {version!r} is not a jsonfeed.org URL; read as JSON Feed {version}"
            )
        if not isinstance(items, list):
            raise SourceError(name, "JSON Feed without an items list")
        home = next(
            (
                absolute_url(value, base_url)
                for value in (document.get("home_page_url"), document.get("feed_url"))
                if isinstance(value, str) and absolute_url(value, base_url)
            ),
            base_url,
        )
        unreadable: list[tuple[int, str]] = []
        numbered = _newest(
            list(enumerate(items, start=1)),
            context.max_entries,
            _json_item_date,
            "items",
            result,
        )
        for index, item in numbered:
            notes: list[str] = []
            try:
                if not isinstance(item, dict):
                    raise ArticleError(context.label, "item is not an object")
                draft, raw_date = self._draft(item, home, context, notes)
            except ArticleError as exc:
                result.skipped.append(f"item {index}: {exc.reason}")
                continue
            except Exception as exc:  # a bug of ours costs one item, never the document
                result.skipped.append(f"item {index}: unexpected error: {_brief(exc)}")
                logger.error(
                    "%s: %s: unexpected error: %s",
                    name,
                    f"item {index}",
                    _brief(exc),
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
                continue
            result.warnings.extend(f"item {index} ({draft.title}): {note}" for note in notes)
            result.drafts.append(draft)
            if raw_date is not None:
                unreadable.append((index, raw_date))
        if unreadable:
            result.warnings.append(_date_warning(unreadable, "item"))
        if not items:
            result.warnings.append("the feed has no items")
        return result

    def _draft(
        self, item: dict[str, Any], home: str | None, context: ReadContext, notes: list[str]
    ) -> tuple[ArticleDraft, str | None]:
        def text(key: str) -> str:
            return _json_text(item, key, context)

        url = canonical_url(text("url") or text("external_url"), home)
        guid = one_line(text("id")) or None
        body_html = sanitise_html(
            text("content_html"), base_url=url or home, notes=notes
        ) or sanitise_html("<p>" + html_escape(text("content_text")) + "</p>", notes=notes)
        body_text = html_to_text(body_html)
        title = one_line(text("title")) or " ".join(body_text.split()[:12]) or (url or "")
        if not title:
            raise ArticleError(context.label, f"no title and no text ({guid or url or 'no id'})")
        raw = one_line(text("date_published") or text("date_modified"))
        try:
            published = parse_time(raw) if raw else None
        except ValueError:
            published = parse_loose_date(raw)
        unreadable = raw if raw and published is None else None
        raw_tags = item.get("tags") or []
        if not isinstance(raw_tags, list) or not all(
            isinstance(tag, str | int | float) for tag in raw_tags
        ):
            raise ArticleError(
                context.label, f"tags: expected a list of strings, got {_json_type(raw_tags)}"
            )
        tags = tuple(one_line(str(tag)) for tag in raw_tags if tag)
        sections = context.sections_for(tags)
        authors = item.get("authors")
        if authors is not None and not isinstance(authors, list):
            raise ArticleError(
                context.label, f"authors: expected a list of objects, got {_json_type(authors)}"
            )
        author = item.get("author") or (authors or [{}])[0]
        if not isinstance(author, dict):
            raise ArticleError(
                context.label, f"author: expected an object, got {_json_type(author)}"
            )
        author_name = author.get("name")
        if author_name is not None and not isinstance(author_name, str):
            raise ArticleError(
                context.label, f"author name: expected a string, got {_json_type(author_name)}"
            )
        summary = text("summary")
        media, image = [], None
        for key in ("image", "banner_image"):
            link = absolute_url(text(key), url or home)
            if link and media_kind(link) in (None, "image"):
                image = image or link
        for attachment in item.get("attachments") or []:
            if isinstance(attachment, dict) and isinstance(attachment.get("url"), str):
                link = absolute_url(attachment["url"], url or home)
                kind = media_kind(link or "", None, str(attachment.get("mime_type") or ""))
                if link and kind in ("audio", "video"):
                    media.append((kind, link))
        if media:
            body_html = _media_links(body_html, media)
        draft = ArticleDraft(
            uid=content_uid(url, guid, context.label, title),
            url=url,
            guid=guid,
            title=title,
            dek=one_line(summary) if summary else None,
            body_html=body_html,
            body_text=body_text,
            author=one_line(author_name) if author_name else None,
            image_url=image,
            tags=tags,
            published_at=published,
            sections=sections,
        )
        return draft, unreadable


_JSON_TYPES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true or false",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _json_text(item: dict[str, Any], key: str, context: ReadContext) -> str:
    """Return a JSON Feed item's text field ("" when absent); a number is read as text."""
    value = item.get(key)
    if value is None or value is False:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ArticleError(context.label, f"{key}: expected a string, got {_json_type(value)}")


def _json_item_date(item: Any) -> datetime | None:
    if not isinstance(item, dict):
        return None
    raw = item.get("date_published") or item.get("date_modified")
    if not isinstance(raw, str):
        return None
    try:
        return parse_time(raw)
    except ValueError:
        return None


MAX_JSON_DEPTH = 200
MAX_JSON_DIGITS = 1000
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _bounded_int(digits: str) -> int | str:
    """Read a JSON integer; one too long to be a number anyone meant stays text."""
    return int(digits) if len(digits) <= MAX_JSON_DIGITS else digits


def _flatten_json(text: str, max_depth: int) -> tuple[str, int]:
    """Replace every array or object nested deeper than ``max_depth`` with ``null``."""
    parts: list[str] = []
    depth = 0
    position = 0
    cut_start = -1
    cuts = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group(0)
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
            if depth == max_depth + 1:
                cut_start = match.start()
        else:
            if depth == max_depth + 1 and cut_start >= 0:
                parts.append(text[position:cut_start])
                parts.append("null")
                position = match.end()
                cut_start = -1
                cuts += 1
            depth -= 1
    if cut_start >= 0:  # unbalanced: the parser will say where
        return text, 0
    parts.append(text[position:])
    return "".join(parts), cuts


def _load_json(text: str, name: str, result: ReadResult) -> Any:
    """Parse a JSON document, bounding its nesting depth and its numbers' length."""
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise SourceError(name, f"not valid JSON: {exc}") from exc
    except RecursionError:
        pass
    flattened, cuts = _flatten_json(text, MAX_JSON_DEPTH)
    try:
        document = json.loads(flattened, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise SourceError(name, f"not valid JSON: {exc}") from exc
    except RecursionError:
        raise SourceError(name, "JSON nested too deeply to read") from None
    result.warnings.append(
        f"{cuts} value(s) nested more than {MAX_JSON_DEPTH} levels deep read as null"
    )
    return document


MARKDOWN = MarkdownReader()
FEED = FeedReader()
JSON_FEED = JsonFeedReader()


@hookimpl
def briefing_source_readers() -> dict[str, Reader]:
    """Register the built-in readers by source type, as any plugin would."""
    return {reader.kind: reader for reader in (FEED, JSON_FEED, MARKDOWN)}


def reader_for(path: Path, readers: Mapping[str, Reader] | None = None) -> Reader:
    """Pick the reader for a file by its extension; feeds are sniffed by content.

    ``readers`` is the registry by source type (every plugin's, when not given);
    when two readers claim an extension, the one registered later wins.
    """
    registry: Mapping[str, Reader] = plugins.source_readers() if readers is None else readers
    suffix = path.suffix.lower()
    for reader in reversed(list(registry.values())):
        if suffix in reader.suffixes:
            return reader
    return registry[FEED.kind]
