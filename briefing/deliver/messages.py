"""Make the bytes a transport sends to one recipient: personalised, signed, in its wire form.

A variant's template is loaded once per run, and everything that does not
depend on the recipient is done then: the template is put in SMTP DATA form
(when the transport wants that) and, with DKIM, its body is canonicalised.
Each worker then personalises the template for its recipient (or for the
test address under ``delivery.redirect_to``) by substitution and, with DKIM,
hashes the canonical body with the recipient's tokens in and signs the
headers; no message is scanned or re-encoded per recipient.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from briefing.config import Config
from briefing.deliver.dkim import CanonicalBody, DkimSigner
from briefing.deliver.transports import Transport, to_wire
from briefing.domain.tokens import Signer
from briefing.pipeline.compose import MessageTemplate
from briefing.pipeline.personalise import (
    inert_tokens,
    message_for,
    personal_tokens,
    redirected_message,
)
from briefing.store.ledger import Outgoing


def wire_template(template: MessageTemplate) -> MessageTemplate:
    """Return a variant's template already in DATA form, so no message is scanned per recipient.

    Dot-stuffing the template equals dot-stuffing each personalised message:
    the personal parts (tokens of URL-safe base64, headers starting with a
    name) never put a dot at the start of a line, and never add or remove a
    line break. Composed templates already end their lines with CRLF.
    """
    return MessageTemplate(
        head=to_wire(template.head), body=to_wire(template.body), placeholders=template.placeholders
    )


def redirect_message_id(config: Config) -> str:
    """Return a fresh Message-ID for a redirected test send."""
    domain = config.site.from_address.rpartition("@")[2]
    return f"<test.{uuid.uuid4().hex}@{domain}>"


def build_problem(exc: Exception) -> str:
    """Say why a message could not be built for one recipient (bad data, not a bug)."""
    if isinstance(exc, UnicodeEncodeError):
        return (
            f"{exc.object[exc.start : exc.end]!r} cannot be written in the "
            "message's ASCII headers (an internationalised mailbox name needs "
            "SMTPUTF8)"
        )
    return str(exc)


@dataclass(frozen=True)
class Letter:
    """One message ready for the transport, and who it goes to."""

    sender: str
    recipient: str
    message: bytes


class MessageMaker:
    """Build each recipient's message from the variant templates of one run.

    Templates are added by the coordinating thread before any job that needs
    them is handed out; workers only read them.
    """

    def __init__(
        self,
        config: Config,
        signer: Signer,
        transport: Transport,
        *,
        dkim: DkimSigner | None = None,
    ) -> None:
        self.config = config
        self.signer = signer
        self.transport = transport
        self.dkim = dkim
        self.redirect_to = config.delivery.redirect_to
        self.templates: dict[int, MessageTemplate] = {}
        # Already in SMTP DATA form, when the transport wants that form.
        self.wire_templates: dict[int, MessageTemplate] = {}
        # With DKIM: each variant's body in canonical form, hashed per recipient.
        self.bodies: dict[int, CanonicalBody] = {}

    def knows(self, variant_id: int) -> bool:
        """Tell whether the template of ``variant_id`` is loaded."""
        return variant_id in self.templates

    def add(self, variant_id: int, template: MessageTemplate) -> None:
        """Load one variant's template and prepare what every recipient shares."""
        self.templates[variant_id] = template
        if self.transport.wire_form:
            wire = wire_template(template)
            # The signature covers the head as sent: dot-stuffing must have left it alone
            # (it does unless a header line starts with a dot; then each message is stuffed).
            if self.dkim is None or wire.head == template.head:
                self.wire_templates[variant_id] = wire
        if self.dkim is not None:
            self.bodies[variant_id] = self.dkim.canonical_body(template)

    def letter(self, outgoing: Outgoing, now: datetime) -> Letter:
        """Build the message for ``outgoing``; raise BriefingError, ValueError or UnicodeError."""
        variant_id = outgoing.variant_id
        wire = self.wire_templates.get(variant_id)
        template = wire if wire is not None else self.templates[variant_id]
        token: str | None = None
        if self.redirect_to:
            tokens = inert_tokens(self.signer)
            message = redirected_message(
                self.config,
                self.signer,
                template,
                outgoing,
                now,
                redirect_to=self.redirect_to,
                message_id=redirect_message_id(self.config),
                tokens=tokens,
            )
            recipient = self.redirect_to
        else:
            token = self.signer.delivery_token(outgoing.delivery_id)
            tokens = personal_tokens(self.signer, outgoing.subscription_id, outgoing.edition_id)
            message = message_for(
                self.config,
                self.signer,
                template,
                outgoing,
                now,
                delivery_token=token,
                tokens=tokens,
            )
            recipient = outgoing.recipient
        if self.dkim is not None:
            message = self.dkim.sign_personalised(message, self.bodies[variant_id], tokens)
        if self.transport.wire_form and wire is None:
            message = to_wire(message)
        sender = self.transport.envelope_sender(
            self.config.site.from_address,
            briefing=outgoing.briefing,
            recipient=outgoing.recipient,
            token=token,
        )
        return Letter(sender, recipient, message)
