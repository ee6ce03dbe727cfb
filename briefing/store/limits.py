"""Count accepted web sign-ups by keyed hashes of the address and of the client's network."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from briefing.store.schema import SignupAttempt


@dataclass(frozen=True)
class AttemptCount:
    """How many sign-ups a key made since a moment, and when the oldest of them was."""

    count: int
    oldest: datetime | None


def attempts_by_address(session: Session, address_hash: str, since: datetime) -> AttemptCount:
    """Count the sign-ups of one hashed address after ``since``."""
    count, oldest = session.execute(
        select(func.count(), func.min(SignupAttempt.at)).where(
            SignupAttempt.address_hash == address_hash, SignupAttempt.at > since
        )
    ).one()
    return AttemptCount(count, oldest)


def attempts_by_client(session: Session, client_hash: str, since: datetime) -> AttemptCount:
    """Count the sign-ups of one hashed client network after ``since``."""
    count, oldest = session.execute(
        select(func.count(), func.min(SignupAttempt.at)).where(
            SignupAttempt.client_hash == client_hash, SignupAttempt.at > since
        )
    ).one()
    return AttemptCount(count, oldest)


def record_attempt(
    session: Session, *, address_hash: str, client_hash: str, now: datetime, forget_before: datetime
) -> None:
    """Count one accepted sign-up, and delete those from before ``forget_before``."""
    session.execute(delete(SignupAttempt).where(SignupAttempt.at < forget_before))
    session.add(SignupAttempt(at=now, address_hash=address_hash, client_hash=client_hash))
