"""Personalise a variant's message for one recipient: tokens, personal links, headers.

A variant is rendered once with placeholders where the personal links'
tokens go (:mod:`briefing.pipeline.render`); here each recipient's message
is made from it by swapping in their tokens and adding the headers that name
them. Pure functions: the caller supplies the clock's reading and any
Message-ID.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import formataddr
from typing import Protocol

from briefing.config import Config
from briefing.domain.tokens import Purpose, Signer
from briefing.pipeline.compose import MessageTemplate

# The links every digest carries for its recipient, each with its own token.
PERSONAL_PURPOSES: tuple[Purpose, ...] = (Purpose.UNSUBSCRIBE, Purpose.PREFERENCES, Purpose.VIEW)
INTENDED_HEADER = "X-Briefing-Intended-Recipient"
# Names the delivery with its signed token, for reports that lose the envelope sender (an ESP
# rewrites it) but quote the original headers. The token has a fixed length, and the header is
# added per recipient like To and Message-ID, so the variant's encoded body is untouched.
DELIVERY_HEADER = "X-Briefing-Delivery"


class Addressee(Protocol):
    """Who one message goes to, and the rows its links act on."""

    @property
    def recipient(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    @property
    def message_id(self) -> str: ...

    @property
    def subscription_id(self) -> int: ...

    @property
    def edition_id(self) -> int: ...


def personal_link(base_url: str, purpose: Purpose, token: str) -> str:
    """Return the URL of a personal link: ``<base_url>/<route>/<token>``."""
    return f"{base_url}/{purpose.route}/{token}"


_UNSUBSCRIBE, _PREFERENCES, _VIEW = PERSONAL_PURPOSES
_KEYS = tuple(purpose.value for purpose in PERSONAL_PURPOSES)  # read once, not per message


def personal_tokens(signer: Signer, subscription_id: int, edition_id: int) -> dict[str, str]:
    """Return the tokens of one recipient's links, keyed by purpose."""
    sign = signer.sign
    unsubscribe, preferences, view = _KEYS
    return {
        unsubscribe: sign(_UNSUBSCRIBE, subscription_id),
        preferences: sign(_PREFERENCES, subscription_id),
        view: sign(_VIEW, edition_id),
    }


def inert_tokens(signer: Signer) -> dict[str, str]:
    """Return the tokens of test sends and previews: genuine in form, acting on nobody."""
    return {purpose.value: signer.inert(purpose) for purpose in PERSONAL_PURPOSES}


def list_unsubscribe(config: Config, token: str) -> tuple[str, ...]:
    """Return the List-Unsubscribe URIs: the one-click https URL, then an optional mailto."""
    uris = [personal_link(config.site.base_url, Purpose.UNSUBSCRIBE, token)]
    if config.site.unsubscribe_mailto:
        uris.append(f"mailto:{config.site.unsubscribe_mailto}?subject=unsubscribe%20{token}")
    return tuple(uris)


def message_for(
    config: Config,
    signer: Signer,
    template: MessageTemplate,
    addressee: Addressee,
    now: datetime,
    *,
    delivery_token: str | None = None,
    tokens: Mapping[str, str] | None = None,
) -> bytes:
    """Personalise a variant's message for one recipient (naming its delivery when given).

    ``tokens`` are the recipient's :func:`personal_tokens` when the caller made them already.
    """
    if tokens is None:
        tokens = personal_tokens(signer, addressee.subscription_id, addressee.edition_id)
    return template.personalise(
        recipient=addressee.recipient,
        name=addressee.name,
        message_id=addressee.message_id,
        date=now,
        tokens=tokens,
        list_unsubscribe=list_unsubscribe(config, tokens[Purpose.UNSUBSCRIBE.value]),
        extra_headers={DELIVERY_HEADER: delivery_token} if delivery_token else None,
    )


def redirected_message(
    config: Config,
    signer: Signer,
    template: MessageTemplate,
    addressee: Addressee,
    now: datetime,
    *,
    redirect_to: str,
    message_id: str,
    tokens: Mapping[str, str] | None = None,
) -> bytes:
    """Personalise a test send: inert links, its own Message-ID, the intended recipient named.

    ``tokens`` are :func:`inert_tokens` when the caller made them already.
    """
    if tokens is None:
        tokens = inert_tokens(signer)
    return template.personalise(
        recipient=redirect_to,
        name=None,
        message_id=message_id,
        date=now,
        tokens=tokens,
        list_unsubscribe=list_unsubscribe(config, tokens[Purpose.UNSUBSCRIBE.value]),
        extra_headers={INTENDED_HEADER: formataddr((addressee.name or "", addressee.recipient))},
    )
