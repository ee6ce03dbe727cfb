"""Keep the double opt-in records: one confirmation per link mailed to a sign-up."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from briefing.store.schema import Confirmation


def add_confirmation(
    session: Session,
    subscription_id: int,
    *,
    source: str,
    name: str | None,
    now: datetime,
    expires_at: datetime,
    lead_id: int | None = None,
) -> Confirmation:
    """Record a confirmation link for a subscription and give it its id.

    With ``lead_id`` it is confirmed by the lead confirmation's link (one mail
    for a sign-up of several briefings) and mails nothing of its own.
    """
    confirmation = Confirmation(
        subscription_id=subscription_id,
        lead_id=lead_id,
        source=source,
        name=name,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(confirmation)
    session.flush()
    return confirmation


def confirmation_by_id(session: Session, ident: int) -> Confirmation | None:
    """Return the confirmation a link names, if it still exists."""
    return session.get(Confirmation, ident)


def confirmations_of(session: Session, subscription_id: int) -> list[Confirmation]:
    """Return every confirmation sent for a subscription, oldest first."""
    return list(
        session.scalars(
            select(Confirmation)
            .where(Confirmation.subscription_id == subscription_id)
            .order_by(Confirmation.id)
        )
    )


def members_of(session: Session, lead_id: int) -> list[Confirmation]:
    """Return the confirmations a lead confirmation's link confirms too, oldest first."""
    return list(
        session.scalars(
            select(Confirmation).where(Confirmation.lead_id == lead_id).order_by(Confirmation.id)
        )
    )
