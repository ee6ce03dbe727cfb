"""Queue and compose the double opt-in message: one link that confirms one sign-up.

A sign-up only queues its confirmation on the ledger (:func:`queue_confirmation`,
in the sign-up's own transaction); the transactional drain of the web process,
``serve`` or ``send`` composes it with :func:`composers` and sends it like a
digest: same From, bounce envelope, DKIM and retries.

It is a single transactional message, so Python's email package builds it
directly: ``multipart/alternative`` (text/plain then text/html, UTF-8,
quoted-printable), Date, Message-ID, and nothing taken from the sign-up form
but the address itself. Its templates are ``confirmation.txt.j2`` and
``confirmation.html.j2``, looked up like the digest's (a site's own
``templates/`` folder first). The submitted name is never echoed, so the message
cannot carry someone else's words to a victim (subscription bombing).
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, make_msgid
from typing import cast

from briefing.audience.lifecycle import Signup, SignupOutcome
from briefing.config import Config
from briefing.domain.states import MessageKind
from briefing.domain.tokens import Purpose, Signer
from briefing.pipeline.compose import ascii_address, clean_header
from briefing.pipeline.render import environment
from briefing.store import Session
from briefing.store.messages import Composers, Queued
from briefing.store.messages import queue_confirmation as queue_row

CONFIRM_ROUTE = Purpose.CONFIRM.route


def confirm_link(config: Config, signer: Signer, confirmation_id: int) -> str:
    """Return the URL of a confirmation link: ``<base_url>/c/<token>``."""
    return f"{config.site.base_url}/{CONFIRM_ROUTE}/{signer.sign(Purpose.CONFIRM, confirmation_id)}"


def compose_confirmation(
    config: Config, signup: Signup, link: str, now: datetime, *, message_id: str | None = None
) -> bytes:
    """Build the confirmation message for one sign-up (a fresh Message-ID unless given)."""
    assert signup.expires_at is not None
    site = config.site
    briefing = config.briefings[signup.briefing]
    context = {
        "site": site,
        "title": briefing.title,
        "link": link,
        "expires": f"{signup.expires_at:%d %B %Y, %H:%M} UTC",
    }
    templates = environment(config.templates_folder())
    text = templates.get_template("confirmation.txt.j2").render(context)
    html = templates.get_template("confirmation.html.j2").render(context)
    # An address with a non-ASCII local part (only taken with delivery.smtputf8) goes in the
    # header as UTF-8 (RFC 6532): an encoded word is not allowed in an address.
    policy = SMTP if signup.email.isascii() else SMTPUTF8
    message = EmailMessage(policy=policy)
    message["From"] = Address(
        display_name=clean_header(site.from_name or site.name), addr_spec=site.from_address
    )
    message["To"] = ascii_address(clean_header(signup.email))
    if site.reply_to:
        message["Reply-To"] = site.reply_to
    message["Subject"] = clean_header(f"Confirm your subscription to {briefing.title}")
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id or new_message_id(config)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    html_part = cast(list[EmailMessage], message.get_payload())[1]
    del html_part["MIME-Version"]  # add_alternative repeats it on the part
    return message.as_bytes(policy=policy)


def new_message_id(config: Config) -> str:
    """Return a fresh Message-ID on the From address's domain."""
    return make_msgid(domain=config.site.from_address.rpartition("@")[2])


def queue_confirmation(session: Session, config: Config, signup: Signup, now: datetime) -> int:
    """Put a sign-up's confirmation mail on the ledger in the sign-up's transaction.

    Its Message-ID is fixed now, so every resend of it is the same message.
    """
    assert signup.confirmation_id is not None
    return queue_row(session, signup.confirmation_id, new_message_id(config), now)


def composers(config: Config, signer: Signer) -> Composers:
    """Return how the transactional drain composes each kind this package queues."""

    def confirmation(queued: Queued, now: datetime) -> bytes:
        signup = Signup(
            SignupOutcome.CONFIRMATION,
            queued.recipient,
            queued.briefing,
            queued.subscription_id,
            queued.confirmation_id,
            queued.deadline,
            None,
        )
        link = confirm_link(config, signer, queued.confirmation_id)
        return compose_confirmation(config, signup, link, now, message_id=queued.message_id)

    return {MessageKind.CONFIRMATION: confirmation}
