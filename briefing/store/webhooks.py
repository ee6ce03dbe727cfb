"""Remember the signed tokens provider webhooks carried, so each is accepted once."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from briefing.store.schema import WebhookToken


def first_use(
    session: Session, provider: str, token: str, *, now: datetime, forget_before: datetime
) -> bool:
    """Record ``token`` of ``provider`` and tell whether this is its first use.

    Tokens seen before ``forget_before`` are deleted first: a request that old
    is refused by its timestamp anyway. Two processes racing on one token meet
    at the unique key; the loser's insert is undone in a savepoint and it is
    told the token was used.
    """
    session.execute(delete(WebhookToken).where(WebhookToken.seen_at < forget_before))
    token_hash = hashlib.sha256(token.encode("utf-8")).hexdigest()
    seen = session.scalar(
        select(WebhookToken.id).where(
            WebhookToken.provider == provider, WebhookToken.token_hash == token_hash
        )
    )
    if seen is not None:
        return False
    try:
        with session.begin_nested():
            session.add(WebhookToken(provider=provider, token_hash=token_hash, seen_at=now))
    except IntegrityError:
        return False
    return True
