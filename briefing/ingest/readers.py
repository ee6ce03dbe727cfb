"""Read articles from files: Markdown with YAML front matter, and RSS/Atom/JSON feeds.

Readers are looked up by file extension in :data:`READERS` (Pelican's
``Readers`` idea); anything unknown goes to the feed reader, which sniffs the
format. A reader turns one document into :class:`ArticleDraft` values and
names every entry it had to skip; it raises :class:`SourceError` only when the
whole document is unreadable.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import time as time_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from html import escape as html_escape
from pathlib import Path
from typing import Any, Protocol

import feedparser
import frontmatter
import yaml
from markdown_it import MarkdownIt

from briefing.errors import ArticleError, SourceError
from briefing.ingest.clean import (
    absolute_url,
    canonical_url,
    html_to_text,
    one_line,
    plain_paragraphs,
    sanitise_html,
)
from briefing.models import ArticleDraft

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

    kind: str

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        """Read ``path`` for the source described by ``context``."""
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
    _markdown = MarkdownIt("commonmark")

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        """Read one Markdown file into one draft."""
        try:
            text = path.read_text(encoding="utf-8")
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
    return datetime.fromtimestamp(calendar.timegm(value), UTC)


def _entry_image(entry: Any) -> str | None:
    for media in entry.get("media_content", []) + entry.get("media_thumbnail", []):
        url = absolute_url(media.get("url"))
        if url and (media.get("medium") in (None, "image") or "image" in media.get("type", "")):
            return url
    for link in entry.get("links", []):
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            url = absolute_url(link.get("href"))
            if url:
                return url
    image = entry.get("image")
    if isinstance(image, Mapping):
        return absolute_url(image.get("href") or image.get("url"))
    return absolute_url(image) if isinstance(image, str) else None


class FeedReader:
    """Read an RSS, Atom, RDF or JSON feed through feedparser."""

    kind = "feed"

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        """Read every entry of one feed file."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(str(path), f"cannot read: {exc.strerror or exc}") from exc
        return self.parse(data, str(path), context)

    def parse(self, data: bytes, name: str, context: ReadContext) -> ReadResult:
        """Read every entry of a feed document given as bytes."""
        if not data.strip():
            raise SourceError(name, "empty document")
        if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            return JSON_FEED.parse(data, name, context)
        parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=True)
        result = ReadResult()
        if not parsed.entries:
            if parsed.get("bozo"):
                reason = parsed.get("bozo_exception")
                raise SourceError(name, f"not a readable feed: {reason}")
            if not parsed.get("version"):
                raise SourceError(name, "not a feed (no RSS, Atom or JSON Feed structure)")
            return result
        if parsed.get("bozo"):
            result.warnings.append(
                f"feed is not well-formed, read leniently: {parsed.bozo_exception}"
            )
        feed_link = parsed.feed.get("link")
        for index, entry in enumerate(parsed.entries, start=1):
            try:
                result.drafts.append(self._draft(entry, feed_link, context))
            except ArticleError as exc:
                result.skipped.append(f"entry {index}: {exc.reason}")
        return result

    def _draft(self, entry: Any, feed_link: str | None, context: ReadContext) -> ArticleDraft:
        url = canonical_url(entry.get("link"), feed_link)
        guid = one_line(entry.get("id")) or None
        contents = entry.get("content") or []
        content_html = "".join(part.get("value", "") for part in contents)
        summary_html = entry.get("summary", "") or ""
        body_source = content_html or summary_html
        body_html = sanitise_html(body_source, base_url=url or feed_link)
        body_text = html_to_text(body_html)
        title = one_line(html_to_text(entry.get("title", "") or ""))
        if not title:
            title = " ".join(body_text.split()[:12])
        if not title:
            raise ArticleError(context.label, f"no title and no text ({guid or url or 'no id'})")
        dek = None
        if content_html and summary_html:
            dek = plain_paragraphs(html_to_text(sanitise_html(summary_html))) or None
        published = _struct_time(entry.get("published_parsed") or entry.get("updated_parsed"))
        tags = tuple(
            one_line(tag.get("term") or tag.get("label") or "") for tag in entry.get("tags", [])
        )
        sections = context.sections_for(tags)
        image = _entry_image(entry)
        return ArticleDraft(
            uid=content_uid(url, guid, context.label, title),
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


class JsonFeedReader:
    """Read a JSON Feed (jsonfeed.org, versions 1 and 1.1).

    feedparser 6.0 reads RSS, Atom and RDF but not JSON Feed, so its items are
    mapped here onto the same drafts.
    """

    kind = "jsonfeed"

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        """Read every item of one JSON Feed file."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(str(path), f"cannot read: {exc.strerror or exc}") from exc
        return self.parse(data, str(path), context)

    def parse(self, data: bytes, name: str, context: ReadContext) -> ReadResult:
        """Read every item of a JSON Feed document given as bytes."""
        try:
            document = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(name, f"not valid JSON: {exc}") from exc
        if not isinstance(document, dict) or "jsonfeed.org" not in str(document.get("version", "")):
            raise SourceError(name, "JSON, but not a JSON Feed (no jsonfeed.org version)")
        items = document.get("items")
        if not isinstance(items, list):
            raise SourceError(name, "JSON Feed without an items list")
        home = (
            document.get("home_page_url")
            if isinstance(document.get("home_page_url"), str)
            else None
        )
        result = ReadResult()
        for index, item in enumerate(items, start=1):
            try:
                if not isinstance(item, dict):
                    raise ArticleError(context.label, "item is not an object")
                result.drafts.append(self._draft(item, home, context))
            except ArticleError as exc:
                result.skipped.append(f"item {index}: {exc.reason}")
        return result

    def _draft(self, item: dict[str, Any], home: str | None, context: ReadContext) -> ArticleDraft:
        url = canonical_url(str(item.get("url") or item.get("external_url") or ""), home)
        guid = one_line(str(item["id"])) if item.get("id") is not None else None
        body_html = sanitise_html(
            str(item.get("content_html") or ""), base_url=url or home
        ) or sanitise_html("<p>" + html_escape(str(item.get("content_text") or "")) + "</p>")
        body_text = html_to_text(body_html)
        title = one_line(str(item.get("title") or "")) or " ".join(body_text.split()[:12])
        if not title:
            raise ArticleError(context.label, f"no title and no text ({guid or url or 'no id'})")
        try:
            published = parse_time(item.get("date_published") or item.get("date_modified"))
        except ValueError:
            published = None
        tags = tuple(one_line(str(tag)) for tag in item.get("tags") or [] if tag)
        sections = context.sections_for(tags)
        author = item.get("author") or (item.get("authors") or [{}])[0]
        return ArticleDraft(
            uid=content_uid(url, guid, context.label, title),
            url=url,
            guid=guid,
            title=title,
            dek=one_line(str(item["summary"])) if item.get("summary") else None,
            body_html=body_html,
            body_text=body_text,
            author=one_line(str(author.get("name")))
            if isinstance(author, dict) and author.get("name")
            else None,
            image_url=absolute_url(str(item.get("image") or item.get("banner_image") or ""), url),
            tags=tags,
            published_at=published,
            sections=sections,
        )


MARKDOWN = MarkdownReader()
FEED = FeedReader()
JSON_FEED = JsonFeedReader()
READERS: dict[str, Reader] = {".md": MARKDOWN, ".markdown": MARKDOWN, ".json": JSON_FEED}


def reader_for(path: Path) -> Reader:
    """Pick the reader for a file by its extension; feeds are sniffed by content."""
    return READERS.get(path.suffix.lower(), FEED)
