"""Sign outgoing messages with DKIM (dkimpy), covering the headers RFC 8058 wants signed.

The private key's path comes from ``BRIEFING_DKIM_KEY_FILE``; the selector and
domain from ``delivery.dkim``. One-click unsubscribe (RFC 8058) only counts
when List-Unsubscribe and List-Unsubscribe-Post are covered by a valid
signature, so both are always in ``h=``, with From, To, Subject, Date,
Message-ID, Feedback-ID and List-Id.

Canonicalisation is relaxed/relaxed: a relay that re-folds a header or
changes the whitespace inside or at the end of body lines leaves the
signature valid. Each signed header is over-signed (named in ``h=`` once more
than it appears, RFC 6376 section 8.15), so nobody on the way can add a
second From, Subject or List-Unsubscribe that a reader's client would show
without breaking the signature.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from briefing.config import DKIM_KEY_ENV, Config
from briefing.errors import DkimError, SecretError

_HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha1": hashes.SHA1,
}


@lru_cache(maxsize=8)
def _openssl_key(
    modulus: int, public: int, private: int, p: int, q: int, dp: int, dq: int, qinv: int
) -> rsa.RSAPrivateKey:
    numbers = rsa.RSAPrivateNumbers(
        p, q, private, dp, dq, qinv, rsa.RSAPublicNumbers(public, modulus)
    )
    return numbers.private_key()


def _rsa_sign_with_openssl(digest: Any, key: Mapping[str, int]) -> bytes:
    """Sign a dkimpy digest with OpenSSL: the same PKCS#1 v1.5 signature, ~20x faster.

    dkimpy computes RSA with Python's pow() (about 5 ms per 2048-bit signature
    here, serial under the GIL); OpenSSL takes about 0.25 ms. dkimpy still does
    the canonicalisation, hashing and header; only this primitive changes.
    """
    private_key = _openssl_key(
        key["modulus"],
        key["publicExponent"],
        key["privateExponent"],
        key["prime1"],
        key["prime2"],
        key["exponent1"],
        key["exponent2"],
        key["coefficient"],
    )
    algorithm = _HASHES[digest.name.lower()]()
    return private_key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(algorithm))


# dkimpy looks the primitive up as a module global when it signs.
dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign_with_openssl

SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Feedback-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
)
# Each name twice: the second matches no header, so adding one later breaks the signature.
OVERSIGNED_HEADERS = SIGNED_HEADERS + SIGNED_HEADERS
_PROBE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: probe\r\n"
    b"Date: Thu, 26 Nov 2026 07:00:00 +0000\r\nMessage-ID: <probe@example.org>\r\n\r\nprobe\r\n"
)


class DkimSigner:
    """Prepend a DKIM-Signature (relaxed/relaxed, rsa-sha256 or ed25519-sha256) to a message."""

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
        signature: bytes = dkim.sign(
            message,
            self.selector,
            self.domain,
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=self._algorithm,
            include_headers=list(OVERSIGNED_HEADERS),
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
