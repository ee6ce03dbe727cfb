"""Queue and compose the double opt-in message: one link that confirms one sign-up.

A sign-up only queues its confirmation on the ledger (:func:`queue_confirmation`,
in the sign-up's own transaction); the transactional drain of the web process,
``serve`` or ``send`` composes it with :func:`composers` and sends it like a
digest: same From, bounce envelope, DKIM and retries.

One link may confirm a sign-up of several briefings (its lead confirmation
and the members riding on it); the message names them all. It is built by
:mod:`briefing.audience.mail` with nothing taken from the sign-up form but
the address itself. Its templates are ``confirmation.txt.j2`` and
``confirmation.html.j2``, looked up like the digest's (a site's own
``templates/`` folder first). The submitted name is never echoed, so the message
cannot carry someone else's words to a victim (subscription bombing).
"""

from __future__ import annotations

from datetime import datetime

from briefing.audience.lifecycle import Signup, SignupOutcome
from briefing.audience.mail import build_message, new_message_id
from briefing.audience.selfservice import account_composer
from briefing.config import Config
from briefing.domain.states import MessageKind
from briefing.domain.tokens import Purpose, Signer
from briefing.store import Session
from briefing.store.messages import Composers, Queued, as_composed
from briefing.store.messages import queue_confirmation as queue_row

CONFIRM_ROUTE = Purpose.CONFIRM.route


def confirm_link(config: Config, signer: Signer, confirmation_id: int) -> str:
    """Return the URL of a confirmation link: ``<base_url>/c/<token>``."""
    return f"{config.site.base_url}/{CONFIRM_ROUTE}/{signer.sign(Purpose.CONFIRM, confirmation_id)}"


def titles_of(config: Config, briefings: tuple[str, ...] | list[str]) -> str:
    """Name briefings for a sentence: ``The Daily``, ``The Daily and World Weekly``."""
    titles = [config.briefings[b].title for b in briefings if b in config.briefings]
    if len(titles) <= 1:
        return titles[0] if titles else ""
    return ", ".join(titles[:-1]) + " and " + titles[-1]


def compose_confirmation(
    config: Config,
    signup: Signup,
    link: str,
    now: datetime,
    *,
    message_id: str | None = None,
    briefings: tuple[str, ...] = (),
) -> bytes:
    """Build the confirmation message for one sign-up (a fresh Message-ID unless given).

    ``briefings`` names every briefing the link confirms (a sign-up of several).
    """
    assert signup.expires_at is not None
    title = titles_of(config, briefings or (signup.briefing,))
    context = {
        "site": config.site,
        "title": title,
        "link": link,
        "expires": f"{signup.expires_at:%d %B %Y, %H:%M} UTC",
    }
    return build_message(
        config,
        to=signup.email,
        subject=f"Confirm your subscription to {title}",
        template="confirmation",
        context=context,
        now=now,
        message_id=message_id or new_message_id(config),
    )


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
        return compose_confirmation(
            config, signup, link, now, message_id=queued.message_id, briefings=queued.briefings
        )

    return {
        MessageKind.CONFIRMATION: confirmation,
        MessageKind.ACCOUNT: account_composer(config, signer),
        MessageKind.TEST: as_composed,  # composed when an editor asked for it
    }
