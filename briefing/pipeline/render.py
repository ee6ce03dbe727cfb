"""Render a digest to HTML (Jinja2 -> MJML -> mjml-python) and to plain text.

Rendering happens once per variant. Personal links carry placeholders of the
tokens' exact length; composing swaps them per recipient. Templates are looked
up as ``<briefing>.mjml.j2`` then ``digest.mjml.j2`` (and ``.txt.j2`` for the
plain-text twin) in the config's folder ``templates/``, then the project's.
Plugins add filters and context names through the ``briefing_template_filters``
and ``briefing_template_context`` hooks, called here, once per variant.
"""

from __future__ import annotations

import secrets
import string
import textwrap
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
import jinja2.bccache
from babel.dates import format_date, format_timedelta
from jinja2.sandbox import SandboxedEnvironment
from mjml import mjml2html

from briefing.config import BriefingConfig, SiteConfig
from briefing.domain.models import Digest, RenderedDigest
from briefing.domain.text import one_line
from briefing.domain.tokens import TOKEN_LENGTH, Purpose
from briefing.errors import RenderError
from briefing.pipeline.personalise import PERSONAL_PURPOSES, personal_link
from briefing.plugins import template_context, template_filters

# The default email templates ship inside the package; a site's own folder is looked up first.
DEFAULT_TEMPLATES = Path(__file__).resolve().parent / "templates"
RECENT = timedelta(days=7)


def new_placeholders() -> dict[str, str]:
    """Return one random placeholder per personal link, as long as a real token.

    Random per variant, so no article text can contain one by chance or design.
    """
    alphabet = string.ascii_letters + string.digits
    return {
        purpose.value: "".join(secrets.choice(alphabet) for _ in range(TOKEN_LENGTH))
        for purpose in PERSONAL_PURPOSES
    }


def tag_url(url: str, params: Mapping[str, str]) -> str:
    """Append UTM parameters to an article link, keeping its own query."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def language_tag(locale: str) -> str:
    """Return the BCP 47 tag of a Babel locale name (en_GB -> en-GB)."""
    return locale.replace("_", "-")


class _CompiledTemplates(jinja2.BytecodeCache):
    """Keep each template's compiled code in memory, by name and source checksum.

    Every variant renders through an overlay of the cached environment (its own
    filters), and an overlay starts with a copy of its parent's empty template
    cache: without this, each variant would parse and compile every template
    again. A changed template file has another checksum and is compiled anew.
    """

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


@lru_cache(maxsize=8)
def environment(extra_folder: Path | None) -> jinja2.Environment:
    """Return the template environment, autoescaping the MJML templates."""
    folders = [str(f) for f in (extra_folder, DEFAULT_TEMPLATES) if f and f.is_dir()]
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        bytecode_cache=_CompiledTemplates(),
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml.j2", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_subject_environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def render_subject(template: str, **values: object) -> str:
    """Render the subject template; the result is one line with no control characters."""
    try:
        return one_line(_subject_environment.from_string(template).render(**values))[:250]
    except jinja2.TemplateError as exc:
        raise RenderError(f"subject template {template!r}: {exc}") from exc


def make_preheader(digest: Digest, limit: int = 140) -> str:
    """Return the inbox preview line: the top headlines, joined."""
    titles = [item.article.title for item in digest.items[:3]]
    text = " · ".join(titles) or "No new stories since your last briefing."
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def render_digest(
    digest: Digest,
    *,
    key: str,
    site: SiteConfig,
    briefing: BriefingConfig,
    placeholders: Mapping[str, str],
    templates: Path | None = None,
) -> RenderedDigest:
    """Render one variant's digest to HTML and plain text."""
    locale = digest.locale
    env = environment(templates)
    utm: dict[str, str] = {}
    if briefing.utm is not None:
        utm = {
            "utm_source": briefing.utm.source,
            "utm_medium": briefing.utm.medium,
            "utm_campaign": briefing.utm.campaign or key,
        }

    def age(moment: datetime) -> str:
        delta = moment - digest.cut_at
        if -delta > RECENT:
            return format_date(moment.date(), format="medium", locale=locale)
        if abs(delta) < timedelta(minutes=1):
            delta = timedelta(minutes=-1)
        return format_timedelta(delta, add_direction=True, locale=locale, threshold=1.0)

    filters = {
        "age": age,
        "tagged": (lambda url: tag_url(url, utm)) if utm else (lambda url: url),
        "wrap": lambda text: textwrap.fill(
            text, width=72, break_long_words=False, break_on_hyphens=False
        ),
    }
    env = env.overlay()
    # A copy: an overlay shares its parent's filter dict, and the parent is cached.
    env.filters = {
        **env.filters,
        **template_filters(reserved=set(env.filters) | set(filters)),
        **filters,
    }
    date_label = format_date(digest.issue_date, format="full", locale=locale)
    top = digest.items[0].article.title if digest.items else "no new stories"
    subject = render_subject(
        briefing.subject,
        title=digest.title,
        date=date_label,
        top_headline=top,
        items=len(digest.items),
    )
    links = {
        route: personal_link(site.base_url, purpose, placeholders[purpose.value])
        for purpose, route in (
            (Purpose.UNSUBSCRIBE, "unsubscribe"),
            (Purpose.PREFERENCES, "preferences"),
            (Purpose.VIEW, "view"),
        )
    }
    context = {
        "site": site,
        "title": digest.title,
        "subject": subject,
        "preheader": make_preheader(digest),
        "date_label": date_label,
        "lang": language_tag(locale),
        "sections": [section for section in digest.sections if section.items],
        "links": links,
    }
    context.update(template_context(briefing, key, digest, reserved=context))
    try:
        mjml_source = env.select_template([f"{key}.mjml.j2", "digest.mjml.j2"]).render(context)
        text = env.select_template([f"{key}.txt.j2", "digest.txt.j2"]).render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"briefing {key}: template error: {exc}") from exc
    try:
        html = mjml2html(mjml_source, fonts={})
    except Exception as exc:  # mjml-python raises plain exceptions from Rust
        raise RenderError(f"briefing {key}: MJML rejected the template: {exc}") from exc
    notes = tuple(
        f"section {section.title!r} has no new articles"
        for section in digest.sections
        if not section.items
    )
    return RenderedDigest(
        subject=subject,
        preheader=context["preheader"],  # type: ignore[arg-type]
        html=html,
        text=text,
        item_count=len(digest.items),
        notes=digest.notes + notes,
    )
