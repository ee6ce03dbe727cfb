"""Limit web sign-ups per address and per client, counted in the database.

Each accepted sign-up leaves a row of two keyed hashes (the address, and the
client's network address — an IPv6 client by its /64, as one host usually
holds the whole prefix), so the limits hold across restarts and across several
web processes, and the table names no one. Rows older than the longest window
are pruned as new ones arrive.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from briefing.config import WebConfig
from briefing.store.schema import SignupAttempt


def network_of(host: str) -> str:
    """Return what a client is counted by: its IPv4 address or its IPv6 /64."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True)
class Refusal:
    """Why a sign-up is refused for now, and when to try again."""

    reason: str
    retry_after: timedelta


class SignupLimiter:
    """Check and record sign-ups against the configured limits."""

    def __init__(self, settings: WebConfig, keys: Sequence[bytes]) -> None:
        self.settings = settings
        self._key = hmac.new(keys[0], b"briefing:signup-limit", hashlib.sha256).digest()

    def _hash(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def _count(
        self, session: Session, column: InstrumentedAttribute[str], value: str, since: datetime
    ) -> tuple[int, datetime | None]:
        count, oldest = session.execute(
            select(func.count(), func.min(SignupAttempt.at)).where(
                column == value, SignupAttempt.at > since
            )
        ).one()
        return count, oldest

    def check(self, session: Session, email: str, client: str, now: datetime) -> Refusal | None:
        """Return why a sign-up must wait, or None if it is within both limits."""
        settings = self.settings
        limits = (
            (
                SignupAttempt.address_hash,
                self._hash("address", email),
                settings.signups_per_address,
                settings.address_window,
                "this address",
            ),
            (
                SignupAttempt.client_hash,
                self._hash("client", network_of(client)),
                settings.signups_per_client,
                settings.client_window,
                "your network",
            ),
        )
        for column, value, most, window, who in limits:
            count, oldest = self._count(session, column, value, now - window)
            if count >= most and oldest is not None:
                wait = max(oldest + window - now, timedelta(seconds=1))
                return Refusal(f"too many sign-ups from {who}", wait)
        return None

    def record(self, session: Session, email: str, client: str, now: datetime) -> None:
        """Count one accepted sign-up, and forget those older than every window."""
        longest = max(self.settings.address_window, self.settings.client_window)
        session.execute(delete(SignupAttempt).where(SignupAttempt.at < now - longest))
        session.add(
            SignupAttempt(
                at=now,
                address_hash=self._hash("address", email),
                client_hash=self._hash("client", network_of(client)),
            )
        )
