"""Sign outgoing messages with DKIM (dkimpy), covering the headers RFC 8058 wants signed.

The private key's path comes from ``BRIEFING_DKIM_KEY_FILE``; the selector and
domain from ``delivery.dkim``. One-click unsubscribe (RFC 8058) only counts
when List-Unsubscribe and List-Unsubscribe-Post are covered by a valid
signature, so both are always in ``h=``, with From, To, Subject, Date,
Message-ID and List-Id.
"""

from __future__ import annotations

import os
from pathlib import Path

import dkim

from briefing.config import DKIM_KEY_ENV, Config
from briefing.errors import DkimError, SecretError

SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
)
_PROBE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: probe\r\n"
    b"Date: Thu, 26 Nov 2026 07:00:00 +0000\r\nMessage-ID: <probe@example.org>\r\n\r\nprobe\r\n"
)


class DkimSigner:
    """Prepend a DKIM-Signature (relaxed/simple, rsa-sha256 or ed25519-sha256) to a message."""

    def __init__(self, selector: str, domain: str, key: bytes, *, source: str = "key") -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self._key = key
        self._algorithm = b"ed25519-sha256" if b"BEGIN" not in key else b"rsa-sha256"
        try:
            self.sign(_PROBE)
        except (dkim.DKIMException, ValueError, IndexError, TypeError) as exc:
            raise DkimError(f"{source}: cannot sign with this DKIM key: {exc}") from exc

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` with its DKIM-Signature header in front."""
        signature = dkim.sign(
            message,
            self.selector,
            self.domain,
            self._key,
            canonicalize=(b"relaxed", b"simple"),
            signature_algorithm=self._algorithm,
            include_headers=list(SIGNED_HEADERS),
        )
        return signature + message

    @classmethod
    def from_config(cls, config: Config) -> DkimSigner | None:
        """Build the signer ``delivery.dkim`` asks for, or None when DKIM is off."""
        settings = config.delivery.dkim
        if settings is None:
            return None
        path_text = os.environ.get(DKIM_KEY_ENV, "")
        if not path_text:
            raise SecretError(DKIM_KEY_ENV, "path of the DKIM private key (delivery.dkim is set)")
        path = Path(path_text)
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise DkimError(f"{path}: cannot read the DKIM key: {exc.strerror or exc}") from exc
        domain = settings.domain or config.site.from_address.rpartition("@")[2]
        return cls(settings.selector, domain, key, source=str(path))
