"""Typed values passed between the pipeline's stages.

ingest  -> ArticleDraft        (one parsed, cleaned entry of a source)
select  -> Selection           (the articles of one variant, per section)
summarise/relate -> Digest     (sections of DigestItems with summaries and links)
render  -> RenderedDigest      (HTML and plain text with link placeholders)
compose -> ComposedVariant     (the encoded message, personalised per recipient)
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    """A value object: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ArticleDraft(Frozen):
    """One entry read from a source, cleaned and ready to store."""

    uid: str = Field(description="Dedupe key: canonical URL, else GUID, else a content hash.")
    url: str | None = None
    guid: str | None = None
    title: str
    dek: str | None = Field(default=None, description="The article's own standfirst.")
    body_html: str = Field(default="", description="Sanitised HTML body.")
    body_text: str = Field(default="", description="Plain-text body, paragraphs by newline.")
    author: str | None = None
    image_url: str | None = None
    image_alt: str | None = None
    image_credit: str | None = None
    tags: tuple[str, ...] = ()
    published_at: datetime | None = None
    sections: tuple[str, ...] = Field(description="Section keys the entry belongs to.")


class SelectedArticle(Frozen):
    """A stored article chosen for a digest."""

    id: int
    section: str
    title: str
    url: str | None
    dek: str | None
    body_text: str
    image_url: str | None
    image_alt: str | None
    image_credit: str | None
    published_at: datetime | None
    first_seen_at: datetime
    source: str | None = Field(default=None, description="Name of the source it came from.")

    @property
    def shown_at(self) -> datetime:
        """Return the time shown to readers: pubDate, else first seen."""
        if self.published_at is None or self.published_at > self.first_seen_at:
            return self.first_seen_at
        return self.published_at


class Selection(Frozen):
    """The articles of one variant, in section order, newest first within a section."""

    briefing: str
    sections: tuple[str, ...]
    since: datetime | None
    cut_at: datetime
    articles: tuple[SelectedArticle, ...]
    ranking: tuple[int, ...] = Field(
        default=(), description="Article ids from most to least important (round-robin rank)."
    )
    dropped: int = Field(default=0, description="Articles left out (over the cap or the size).")


class Link(Frozen):
    """A headline link under an item."""

    article_id: int | None = None
    title: str
    url: str
    section: str | None = None
    source: str | None = None
    published_at: datetime | None = None


class DigestItem(Frozen):
    """One story in the digest with its summary and links."""

    article: SelectedArticle
    summary: str
    related: tuple[Link, ...] = ()
    also_covered: tuple[Link, ...] = ()


class DigestSection(Frozen):
    """A titled group of items."""

    key: str
    title: str
    items: tuple[DigestItem, ...]


class Digest(Frozen):
    """Everything a variant's message shows, before rendering."""

    briefing: str
    title: str
    locale: str
    issue_date: date
    cut_at: datetime
    sections: tuple[DigestSection, ...]
    notes: tuple[str, ...] = ()

    @property
    def items(self) -> list[DigestItem]:
        """Return every item in reading order."""
        return [item for section in self.sections for item in section.items]


class RenderedDigest(Frozen):
    """The digest as HTML and plain text, with placeholders for personal parts."""

    subject: str
    preheader: str
    html: str
    text: str
    item_count: int
    notes: tuple[str, ...] = ()
