"""Make the bytes a transport sends to one recipient: personalised, signed, in its wire form.

A variant's template is loaded once per run; each worker then personalises
it for its recipient (or for the test address under ``delivery.redirect_to``),
signs it with DKIM when configured and puts it in SMTP DATA form when the
transport wants that. Without DKIM the template itself is put in DATA form
once, so no message is scanned per recipient.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from briefing.config import Config
from briefing.deliver.dkim import DkimSigner
from briefing.deliver.transports import Transport, to_wire
from briefing.domain.tokens import Signer
from briefing.pipeline.compose import MessageTemplate
from briefing.pipeline.personalise import message_for, redirected_message
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
        # Already in SMTP DATA form: used when nothing (DKIM) must see the message first.
        self.wire_templates: dict[int, MessageTemplate] = {}

    def knows(self, variant_id: int) -> bool:
        """Tell whether the template of ``variant_id`` is loaded."""
        return variant_id in self.templates

    def add(self, variant_id: int, template: MessageTemplate) -> None:
        """Load one variant's template."""
        self.templates[variant_id] = template
        if self.transport.wire_form:
            self.wire_templates[variant_id] = wire_template(template)

    def letter(self, outgoing: Outgoing, now: datetime) -> Letter:
        """Build the message for ``outgoing``; raise BriefingError, ValueError or UnicodeError."""
        ready = self.transport.wire_form and self.dkim is None
        template = (self.wire_templates if ready else self.templates)[outgoing.variant_id]
        token: str | None = None
        if self.redirect_to:
            message = redirected_message(
                self.config,
                self.signer,
                template,
                outgoing,
                now,
                redirect_to=self.redirect_to,
                message_id=redirect_message_id(self.config),
            )
            recipient = self.redirect_to
        else:
            token = self.signer.delivery_token(outgoing.delivery_id)
            message = message_for(
                self.config, self.signer, template, outgoing, now, delivery_token=token
            )
            recipient = outgoing.recipient
        if self.dkim is not None:
            message = self.dkim.sign(message)
        if self.transport.wire_form and not ready:
            message = to_wire(message)
        sender = self.transport.envelope_sender(
            self.config.site.from_address,
            briefing=outgoing.briefing,
            recipient=outgoing.recipient,
            token=token,
        )
        return Letter(sender, recipient, message)
