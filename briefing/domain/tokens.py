"""Sign and check the tokens in personal links, and derive Message-IDs.

A token names a purpose and a row id (a subscription or an edition) and
nothing else: no address. It is 24 bytes — purpose (1), id (8, big-endian),
HMAC-SHA256 tag (15) — written as 32 URL-safe base64 characters, so every
token has the same length and a message's line lengths hold when the
placeholder it was rendered with is swapped for it.

A *delivery token* names one ledger row (a delivery) for the mail that comes
back: the bounce address ``bounces+<token>@<domain>`` and the
``X-Briefing-Delivery`` header carry it. It is 20 bytes — ``d`` (1), id (8),
tag (11) — written as 32 lowercase base32 characters without padding, because
some MTAs case-fold local parts.

Id 0 is the *inert* token carried by previews and test sends: it verifies,
but acts on nobody. Verification is constant-time and accepts the previous
key during a rotation. Only the one spelling :meth:`Signer.sign` writes is
accepted: the same bytes in the standard base64 alphabet are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from enum import StrEnum

from briefing.errors import TokenError

TOKEN_LENGTH = 32
DELIVERY_TOKEN_LENGTH = 32
_DELIVERY_TAG_BYTES = 11
_DELIVERY_PURPOSE = b"d"
_TAG_BYTES = 15
_ID_BYTES = 8


class Purpose(StrEnum):
    """What a link does; part of the signed payload so tokens cannot be reused across routes."""

    UNSUBSCRIBE = "u"
    PREFERENCES = "p"
    VIEW = "e"
    CONFIRM = "c"
    ACCOUNT = "a"  # a single-use self-service link (download, delete, change of address)

    @property
    def route(self) -> str:
        """Return the path segment of this purpose's links: ``<base_url>/<route>/<token>``."""
        return ROUTES[self]


# Each purpose's first byte of a token's payload.
_PREFIXES: Mapping[Purpose, bytes] = {purpose: purpose.value.encode("ascii") for purpose in Purpose}

# The one-letter path segment of each kind of link; the web routes and the links agree on it.
ROUTES: Mapping[Purpose, str] = {
    Purpose.UNSUBSCRIBE: "u",
    Purpose.PREFERENCES: "p",
    Purpose.VIEW: "e",
    Purpose.CONFIRM: "c",
    Purpose.ACCOUNT: "a",
}


class InertTokenError(TokenError):
    """Report a preview token: genuine, but it names nobody."""


def _derive(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, b"briefing:" + label, hashlib.sha256).digest()


def feedback_key(secret: bytes) -> bytes:
    """Derive the key of Feedback-ID's HMAC part from the secret key (its own purpose)."""
    return hmac.new(secret, b"briefing feedback-id", hashlib.sha256).digest()


class _Keyed:
    """HMAC-SHA256 under one key, its pads hashed once (RFC 2104).

    Equal to ``hmac.new(key, payload, hashlib.sha256).digest()``; each tag
    copies the two hash states keyed once instead of keying two new ones,
    which halves the cost of the four tags every message carries.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_ID_LIMIT = 2 ** (8 * _ID_BYTES)
_URL_SAFE = bytes.maketrans(b"+/", b"-_")  # base64.urlsafe_b64encode's alphabet
# Base32 (RFC 4648) of ten bits at a time: two characters each, as base64.b32encode writes.
_B32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".lower()
_B32_PAIRS = [bytes((_B32[n >> 5], _B32[n & 31])) for n in range(1024)]
_DELIVERY_SHIFTS = tuple(range(8 * (1 + _ID_BYTES + _DELIVERY_TAG_BYTES) - 10, -1, -10))


class Signer:
    """Make and check tokens and Message-IDs with the configured keys."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self._keys = tuple(keys)
        self._token_keys = [_Keyed(_derive(key, b"token")) for key in keys]
        self._message_id_key = _derive(keys[0], b"message-id")
        # Signs Feedback-ID headers; handed to the pipeline, which reads no secrets itself.
        self.feedback_key = feedback_key(keys[0])

    def __reduce__(self) -> tuple[type[Signer], tuple[tuple[bytes, ...]]]:
        # Pickled by its keys (a delivery process gets its own); keyed hash states are not.
        return (Signer, (self._keys,))

    def _tag(self, key: _Keyed, payload: bytes) -> bytes:
        return key.digest(payload)[:_TAG_BYTES]

    def sign(self, purpose: Purpose, ident: int) -> str:
        """Return the token for ``purpose`` on row ``ident``."""
        if not 0 <= ident < _ID_LIMIT:
            raise ValueError(f"id {ident} out of range")
        payload = _PREFIXES[purpose] + ident.to_bytes(_ID_BYTES, "big")
        raw = payload + self._token_keys[0].digest(payload)[:_TAG_BYTES]
        # base64.urlsafe_b64encode, without its two Python calls per token.
        return binascii.b2a_base64(raw, newline=False).translate(_URL_SAFE).decode("ascii")

    def inert(self, purpose: Purpose) -> str:
        """Return the token previews carry: valid in form, acting on nobody."""
        return self.sign(purpose, 0)

    def verify(self, token: str, purpose: Purpose) -> int:
        """Return the row id a token names, or raise :class:`TokenError`."""
        if len(token) != TOKEN_LENGTH:
            raise TokenError("this link is incomplete or damaged")
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise TokenError("this link is incomplete or damaged") from None
        if base64.urlsafe_b64encode(raw) != token.encode("ascii"):
            # Only the URL-safe alphabet as sign() writes it: no '+' or '/' variants.
            raise TokenError("this link is incomplete or damaged")
        payload, tag = raw[: 1 + _ID_BYTES], raw[1 + _ID_BYTES :]
        if not any(hmac.compare_digest(self._tag(key, payload), tag) for key in self._token_keys):
            raise TokenError("this link is not valid")
        if payload[:1] != purpose.value.encode("ascii"):
            raise TokenError("this link is not valid here")
        ident = int.from_bytes(payload[1:], "big")
        if ident == 0:
            raise InertTokenError("this link comes from a preview and acts on nobody")
        return ident

    def delivery_token(self, delivery_id: int) -> str:
        """Return the token naming one delivery in its bounce address and correlation header."""
        if not 0 <= delivery_id < _ID_LIMIT:
            raise ValueError(f"id {delivery_id} out of range")
        payload = _DELIVERY_PURPOSE + delivery_id.to_bytes(_ID_BYTES, "big")
        tag = self._token_keys[0].digest(payload)[:_DELIVERY_TAG_BYTES]
        # base64.b32encode(...).lower() of the 20 bytes (160 bits: no padding), ten bits a step.
        bits = int.from_bytes(payload + tag, "big")
        pairs = _B32_PAIRS
        return b"".join([pairs[(bits >> shift) & 1023] for shift in _DELIVERY_SHIFTS]).decode(
            "ascii"
        )

    def verify_delivery(self, token: str) -> int:
        """Return the delivery a token names, or raise :class:`TokenError`."""
        if len(token) != DELIVERY_TOKEN_LENGTH:
            raise TokenError("not a delivery token")
        try:
            raw = base64.b32decode(token.upper().encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise TokenError("not a delivery token") from None
        payload, tag = raw[: 1 + _ID_BYTES], raw[1 + _ID_BYTES :]
        if not any(
            hmac.compare_digest(self._tag(key, payload)[:_DELIVERY_TAG_BYTES], tag)
            for key in self._token_keys
        ):
            raise TokenError("this delivery token is not valid")
        if payload[:1] != _DELIVERY_PURPOSE:
            raise TokenError("not a delivery token")
        ident = int.from_bytes(payload[1:], "big")
        if ident == 0:
            raise InertTokenError("this token comes from a test send and names no delivery")
        return ident

    def message_id(self, edition_key: str, domain: str) -> str:
        """Derive the Message-ID of an edition: the same for every resend of it."""
        digest = hmac.new(self._message_id_key, edition_key.encode("utf-8"), hashlib.sha256)
        return f"<{digest.hexdigest()[:40]}@{domain}>"
