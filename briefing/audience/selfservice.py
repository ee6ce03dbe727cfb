"""Let readers download, delete or move their data themselves, through single-use mailed links.

The preferences token travels in every digest, and so in every forward: it
may change what arrives and when, but never hand out, delete or move the
reader's data. Those acts only *ask* for a link, mailed (through the ledger,
kind ``account``) to the address on file; the link works once
(:func:`~briefing.store.account.use_request`) and for
``web.account_link_within``. A change of address takes two links: one to the
address on file allows it, one to the new address confirms that address;
then the old address is mailed an undo link that works for
``web.undo_within``.

    preferences page --ask--> account request + mail --link, POST--> use it once
    move: address on file (allow) -> new address (adopt) -> old address told (undo)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from briefing.audience.mail import build_message, new_message_id
from briefing.config import Config
from briefing.domain.states import AccountAction
from briefing.domain.tokens import Purpose, Signer
from briefing.store import Session
from briefing.store.account import (
    add_request,
    data_of,
    queue_request_mail,
    request_by_id,
    use_request,
)
from briefing.store.messages import Composer, Queued
from briefing.store.schema import AccountRequest, Subscriber
from briefing.store.subscriptions import subscriber_by_email

# What each mailed link says: subject and heading, the lead sentence, the button, the warning.
WORDING: dict[AccountAction, tuple[str, str, str, str]] = {
    AccountAction.EXPORT: (
        "Download your data from {site}",
        (
            "Someone, probably you, asked for a copy of everything {site} stores about this "
            "address. To download it, open this link and press the button:"
        ),
        "Download my data",
        "If you did not ask for this, ignore this message: nothing is sent anywhere.",
    ),
    AccountAction.DELETE: (
        "Delete your data from {site}",
        (
            "Someone, probably you, asked to delete this address and everything {site} stores "
            "about it, ending every subscription. To do so, open this link and press the button:"
        ),
        "Delete my data",
        "If you did not ask for this, ignore this message: nothing will be deleted.",
    ),
    AccountAction.MOVE: (
        "Allow a change of address for {site}",
        (
            "Someone, probably you, asked to send the briefings of {site} to another address "
            "instead of this one. To allow it, open this link and press the button; we then "
            "mail the new address a link to confirm it:"
        ),
        "Allow the change",
        "If you did not ask for this, ignore this message: nothing changes.",
    ),
    AccountAction.ADOPT: (
        "Confirm your new address for {site}",
        (
            "Someone, probably you, asked to receive the briefings of {site} at this address "
            "instead of the one used so far. To confirm, open this link and press the button:"
        ),
        "Use this address",
        "If you did not ask for this, ignore this message: nothing changes.",
    ),
    AccountAction.UNDO: (
        "Your address for {site} was changed",
        (
            "The briefings of {site} that came to this address now go to another one. If you "
            "did not ask for that, open this link and press the button to put this address back:"
        ),
        "Put my address back",
        "If you asked for the change, there is nothing to do.",
    ),
}


def account_link(config: Config, signer: Signer, request_id: int) -> str:
    """Return the URL of a self-service link: ``<base_url>/a/<token>``."""
    return (
        f"{config.site.base_url}/{Purpose.ACCOUNT.route}/{signer.sign(Purpose.ACCOUNT, request_id)}"
    )


def compose_account(
    config: Config,
    action: AccountAction,
    to: str,
    link: str,
    expires: datetime,
    *,
    now: datetime,
    message_id: str,
) -> bytes:
    """Build the message carrying one self-service link."""
    subject, lead, button, warning = WORDING[action]
    site = config.site.name
    context = {
        "site": config.site,
        "heading": subject.format(site=site),
        "lead": lead.format(site=site),
        "button": button,
        "warning": warning,
        "link": link,
        "expires": f"{expires:%d %B %Y, %H:%M} UTC",
    }
    return build_message(
        config,
        to=to,
        subject=subject.format(site=site),
        template="account",
        context=context,
        now=now,
        message_id=message_id,
    )


def account_composer(config: Config, signer: Signer) -> Composer:
    """Return how the transactional drain composes an account message."""

    def compose(queued: Queued, now: datetime) -> bytes:
        assert queued.request_id is not None and queued.action is not None
        link = account_link(config, signer, queued.request_id)
        return compose_account(
            config,
            AccountAction(queued.action),
            queued.recipient,
            link,
            queued.deadline,
            now=now,
            message_id=queued.message_id,
        )

    return compose


def ask(
    session: Session,
    config: Config,
    subscriber: Subscriber,
    action: AccountAction,
    *,
    now: datetime,
    to: str | None = None,
    new_email: str | None = None,
) -> AccountRequest:
    """Record a single-use link for ``action`` and queue its mail, in the caller's transaction.

    It goes to the address on file, or to ``to``; ``new_email`` is where a
    move, adoption or undo takes the subscriber.
    """
    within = (
        config.web.undo_within if action == AccountAction.UNDO else config.web.account_link_within
    )
    request = add_request(
        session,
        subscriber.id,
        action,
        email=to or subscriber.email,
        now=now,
        expires_at=now + within,
        new_email=new_email,
    )
    queue_request_mail(session, request.id, new_message_id(config), now)
    return request


class Used(StrEnum):
    """What following a self-service link came to."""

    DONE = "done"
    SPENT = "spent"  # used before, or expired: links work once, for a while
    UNKNOWN = "unknown"  # the request (or its subscriber) is gone
    TAKEN = "taken"  # the address to move to belongs to another subscriber


@dataclass(frozen=True)
class AccountUse:
    """What a self-service link did: for a download, the data; for a move, the undo link."""

    outcome: Used
    action: AccountAction | None = None
    email: str | None = None  # the address acted on (after a move: the new one)
    data: dict[str, Any] | None = None
    undo_request: int | None = None


def peek(session: Session, ident: int, now: datetime) -> AccountUse:
    """Say what a link would do, changing nothing (GET: mail scanners fetch links)."""
    request = request_by_id(session, ident)
    if request is None:
        return AccountUse(Used.UNKNOWN)
    action = AccountAction(request.action)
    if request.used_at is not None or now > request.expires_at:
        return AccountUse(Used.SPENT, action)
    return AccountUse(Used.DONE, action, request.new_email or request.email)


def use(session: Session, config: Config, ident: int, now: datetime) -> AccountUse:
    """Use a self-service link once; a deletion is left to the caller (:func:`erase`).

    Allowing a move mails the new address its confirmation link; adopting it
    changes the address and mails the old one an undo link.
    """
    request = request_by_id(session, ident)
    if request is None:
        return AccountUse(Used.UNKNOWN)
    action = AccountAction(request.action)
    subscriber_id = request.subscriber_id
    target = request.new_email
    if target is not None:
        holder = subscriber_by_email(session, target)
        if holder is not None and holder.id != subscriber_id:
            return AccountUse(Used.TAKEN, action, target)
    if not use_request(session, ident, now):
        return AccountUse(Used.SPENT, action)
    subscriber = session.get(Subscriber, subscriber_id)
    assert subscriber is not None  # the foreign key cascades deletes
    if action == AccountAction.EXPORT:
        return AccountUse(Used.DONE, action, subscriber.email, data=data_of(session, subscriber))
    if action == AccountAction.DELETE:
        return AccountUse(Used.DONE, action, subscriber.email)
    assert target is not None
    if action == AccountAction.MOVE:
        ask(session, config, subscriber, AccountAction.ADOPT, now=now, to=target, new_email=target)
        return AccountUse(Used.DONE, action, target)
    old = subscriber.email
    subscriber.email = target
    session.flush()
    if action == AccountAction.ADOPT and old != target:
        undo = ask(session, config, subscriber, AccountAction.UNDO, now=now, to=old, new_email=old)
        return AccountUse(Used.DONE, action, target, undo_request=undo.id)
    return AccountUse(Used.DONE, action, target)
