"""Normalise email addresses and keep the suppression list."""

from __future__ import annotations

import hashlib
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from briefing.store.schema import Suppression

ALL_BRIEFINGS = "*"


class AddressError(ValueError):
    """Report an address that is not a valid email address."""


def normalise_address(address: str) -> str:
    """Return the normalised form of an address (domain lower-cased), or raise AddressError."""
    candidate = address.strip()
    if "\r" in candidate or "\n" in candidate:
        raise AddressError("address contains a line break")
    try:
        return validate_email(candidate, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from exc


def address_hash(address: str) -> str:
    """Hash a normalised address for the suppression list (kept after deletion)."""
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def suppression_for(session: Session, address: str, briefing: str) -> Suppression | None:
    """Return the suppression that stops mail of ``briefing`` to ``address``, if any."""
    return session.scalar(
        select(Suppression)
        .where(
            Suppression.email_hash == address_hash(address),
            Suppression.briefing.in_((briefing, ALL_BRIEFINGS)),
        )
        .limit(1)
    )


def suppress(
    session: Session,
    address: str,
    *,
    reason: str,
    source: str,
    now: datetime,
    briefing: str = ALL_BRIEFINGS,
) -> Suppression:
    """Put an address on the suppression list (idempotent)."""
    digest = address_hash(address)
    row = session.scalar(
        select(Suppression).where(
            Suppression.email_hash == digest, Suppression.briefing == briefing
        )
    )
    if row is None:
        row = Suppression(
            email_hash=digest,
            email=address,
            briefing=briefing,
            reason=reason,
            source=source,
            created_at=now,
        )
        session.add(row)
    return row
