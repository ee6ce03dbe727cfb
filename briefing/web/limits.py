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

from briefing.config import WebConfig
from briefing.store import Session
from briefing.store.limits import attempts_by_address, attempts_by_client, record_attempt


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

    def check(self, session: Session, email: str, client: str, now: datetime) -> Refusal | None:
        """Return why a sign-up must wait, or None if it is within both limits."""
        settings = self.settings
        limits = (
            (
                attempts_by_address,
                self._hash("address", email),
                settings.signups_per_address,
                settings.address_window,
                "for this email address",
            ),
            (
                attempts_by_client,
                self._hash("client", network_of(client)),
                settings.signups_per_client,
                settings.client_window,
                "from your network (the IP address you are connecting from)",
            ),
        )
        for count_of, value, most, window, who in limits:
            seen = count_of(session, value, now - window)
            if seen.count >= most and seen.oldest is not None:
                wait = max(seen.oldest + window - now, timedelta(seconds=1))
                return Refusal(f"too many requests {who}", wait)
        return None

    def record(self, session: Session, email: str, client: str, now: datetime) -> None:
        """Count one accepted sign-up, and forget those older than every window."""
        longest = max(self.settings.address_window, self.settings.client_window)
        record_attempt(
            session,
            address_hash=self._hash("address", email),
            client_hash=self._hash("client", network_of(client)),
            now=now,
            forget_before=now - longest,
        )
