"""Build one transactional message (confirmation, self-service link) from its two templates.

It is a single message, so Python's email package builds it directly:
``multipart/alternative`` (text/plain then text/html, UTF-8,
quoted-printable), Date, Message-ID and ``Auto-Submitted``. Templates are
looked up like the digest's (a site's own ``templates/`` folder first).
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, make_msgid
from typing import Any, cast

from briefing.config import Config
from briefing.pipeline.compose import ascii_address, clean_header
from briefing.pipeline.render import environment


def new_message_id(config: Config) -> str:
    """Return a fresh Message-ID on the From address's domain."""
    return make_msgid(domain=config.site.from_address.rpartition("@")[2])


def build_message(
    config: Config,
    *,
    to: str,
    subject: str,
    template: str,
    context: dict[str, Any],
    now: datetime,
    message_id: str,
) -> bytes:
    """Render ``<template>.txt.j2`` and ``<template>.html.j2`` into one message to ``to``."""
    site = config.site
    templates = environment(config.templates_folder())
    text = templates.get_template(f"{template}.txt.j2").render(context)
    html = templates.get_template(f"{template}.html.j2").render(context)
    # An address with a non-ASCII local part (only taken with delivery.smtputf8) goes in the
    # header as UTF-8 (RFC 6532): an encoded word is not allowed in an address.
    policy = SMTP if to.isascii() else SMTPUTF8
    message = EmailMessage(policy=policy)
    message["From"] = Address(
        display_name=clean_header(site.from_name or site.name), addr_spec=site.from_address
    )
    message["To"] = ascii_address(clean_header(to))
    if site.reply_to:
        message["Reply-To"] = site.reply_to
    message["Subject"] = clean_header(subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    html_part = cast(list[EmailMessage], message.get_payload())[1]
    del html_part["MIME-Version"]  # add_alternative repeats it on the part
    return message.as_bytes(policy=policy)
