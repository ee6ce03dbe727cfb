"""Sign outgoing messages with DKIM, covering the headers RFC 8058 wants signed.

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

Canonicalisation, hashing and the header are done here (RFC 6376 sections
3.4.2, 3.4.4, 3.5 and 3.7); the signature itself by OpenSSL through
``cryptography`` (rsa-sha256 for a PEM RSA key, ed25519-sha256 (RFC 8463) for
an Ed25519 key, PEM or dkimpy's base64 seed). Canonicalising a 70 KB body
costs about as much as everything else done for one recipient, so a digest's
body is canonicalised once per variant (:class:`CanonicalBody`) and each
recipient's tokens are put into the canonical bytes: tokens and placeholders
hold no whitespace and no line break, and relaxed body canonicalisation only
looks at whitespace and line breaks, so substituting commutes with
canonicalising. Per recipient only the body hash (``hashlib``), the few
personal headers and the signature remain. dkimpy verifies what this module
signs, in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from briefing.config import DKIM_KEY_ENV, Config
from briefing.errors import DkimError, SecretError
from briefing.pipeline.compose import MessageTemplate

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
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")
_WSP = re.compile(rb"[\t ]+")
_FOLD = re.compile(rb"\r?\n")
_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")
# What a token may not hold for substitution to commute with relaxed canonicalisation.
_NOT_SUBSTITUTABLE = re.compile(r"[\s]")
_B64_LINE = 72  # characters of b= per folded line


def _crlf(data: bytes) -> bytes:
    # What goes over SMTP (to_wire) has CRLF line ends only; the hashes must be taken over that.
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        return _LINE_ENDS.sub(b"\r\n", data)
    return data


def canonical_body(body: bytes) -> bytes:
    """Return ``body`` (CRLF line ends) in relaxed canonical form (RFC 6376 section 3.4.4).

    Whitespace at the end of a line goes, every other run of spaces and tabs
    becomes one space, empty lines at the end go, and a non-empty body ends
    with one CRLF; an empty body stays empty.
    """
    body = _WSP.sub(b" ", _TRAILING_WSP.sub(b"\r\n", body))
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    if end == 0:
        return b""
    if end == len(body):
        return body + b"\r\n"
    return body[: end + 2]


def header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """Split a header block (CRLF line ends) into (name, value) pairs, folding kept."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[0] in (0x09, 0x20) and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
            continue
        match = _FIELD_NAME.match(line)
        if match is None:
            raise ValueError(f"not a header line: {line[:60]!r}")
        fields.append((match.group(1), line[match.end() :]))
    return fields


def canonical_header(name: bytes, value: bytes) -> bytes:
    """Return one header field in relaxed canonical form, without its CRLF (section 3.4.2)."""
    return name.lower().rstrip() + b":" + _WSP.sub(b" ", _FOLD.sub(b"", value)).strip()


def canonical_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """Return each field of a header block as (lower-case name, canonical form with CRLF)."""
    return [
        (name.lower(), canonical_header(name, value) + b"\r\n")
        for name, value in header_fields(head)
    ]


def signed_header_data(fields: list[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> bytes:
    """Return the canonical headers ``h=`` names, in its order, each instance from the bottom up.

    ``fields`` come from :func:`canonical_fields`. A name listed more often
    than its header appears contributes nothing the extra times
    (over-signing, RFC 6376 section 5.4.2).
    """
    used: dict[bytes, int] = {}
    out: list[bytes] = []
    for wanted in names:
        key = wanted.lower()
        index = used.get(key, len(fields))
        while index > 0:
            index -= 1
            if fields[index][0] == key:
                out.append(fields[index][1])
                break
        used[key] = index
    return b"".join(out)


def _fold_list(names: tuple[bytes, ...], *, start: int, width: int = 76) -> bytes:
    # Header names joined by ':', a line break before a name that would pass ``width``.
    out, column = b"", start
    for n, name in enumerate(names):
        separator = b":" if n else b""
        if n and column + len(separator + name) > width:
            separator, column = b"\r\n :", 2
        out += separator + name
        column += len(name) + 1
    return out


def _fold(value: bytes, width: int) -> bytes:
    return b"\r\n ".join(value[i : i + width] for i in range(0, len(value), width))


class CanonicalBody:
    """A variant's body in relaxed canonical form with its placeholders, hashed per recipient.

    Built once per variant; :meth:`hash` puts one recipient's tokens into the
    canonical bytes (across the quoted-printable soft line breaks the encoder
    put inside a placeholder, exactly as the message itself is personalised)
    and hashes them. Only the text/plain and text/html parts of a digest hold
    placeholders, both quoted-printable, which leaves the URL-safe characters
    of a placeholder or token as they are.
    """

    def __init__(self, template: MessageTemplate) -> None:
        self.template = template
        # The variant's own headers, canonical once; each recipient's few are added in front.
        self.head_fields = canonical_fields(template.head)
        self.canonical = MessageTemplate(
            head=b"", body=canonical_body(_crlf(template.body)), placeholders=template.placeholders
        )
        # Canonicalising cannot change a placeholder (no whitespace, no line break in it), so the
        # same placeholders must be found; if not, every recipient's body is canonicalised.
        self.substitutable = self.canonical.slots == template.slots and not any(
            _NOT_SUBSTITUTABLE.search(p) for p in template.placeholders.values()
        )

    def hash(self, tokens: Mapping[str, str]) -> bytes:
        """Return the SHA-256 of the recipient's canonical body."""
        if self.substitutable and not any(_NOT_SUBSTITUTABLE.search(t) for t in tokens.values()):
            return hashlib.sha256(self.canonical.personalise_body(tokens)).digest()
        body = _crlf(self.template.personalise_body(tokens))
        return hashlib.sha256(canonical_body(body)).digest()


class DkimSigner:
    """Prepend a DKIM-Signature (relaxed/relaxed, rsa-sha256 or ed25519-sha256) to a message."""

    def __init__(self, selector: str, domain: str, key: bytes, *, source: str = "key") -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self._key, self._source = key, source
        self._private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = _load_key(key, source)
        if isinstance(self._private, rsa.RSAPrivateKey):
            self.algorithm = b"rsa-sha256"
        else:
            self.algorithm = b"ed25519-sha256"
        self._tags = (
            b"v=1; a=" + self.algorithm + b"; c=relaxed/relaxed;\r\n d=" + self.domain
            + b"; s=" + self.selector + b";\r\n t="
        )  # fmt: skip
        self._h = b"; h=" + _fold_list(OVERSIGNED_HEADERS, start=len(b" t=1234567890; h="))
        try:
            self.sign(_PROBE)
        except ValueError as exc:
            raise DkimError(f"{source}: cannot sign with this DKIM key: {exc}") from exc

    def __reduce__(self) -> tuple[object, tuple[str, str, bytes, str]]:
        # Pickled by its key's bytes (a delivery process gets its own); OpenSSL's key is not.
        return (_restore, (self.selector.decode(), self.domain.decode(), self._key, self._source))

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` with its DKIM-Signature header in front.

        The hashes are taken over the message with CRLF line ends, as it
        travels over SMTP.
        """
        head, separator, body = _crlf(message).partition(b"\r\n\r\n")
        if not separator:
            head, body = _crlf(message), b""
        body_hash = hashlib.sha256(canonical_body(body)).digest()
        return self.signature(head + b"\r\n", body_hash) + message

    def sign_personalised(
        self, message: bytes, body: CanonicalBody, tokens: Mapping[str, str]
    ) -> bytes:
        """Return a message personalised from ``body``'s template (with ``tokens``) signed.

        ``message`` is the template's head with the recipient's headers in
        front, then the body (in DATA form or not: the body hash comes from
        ``body``). Only the recipient's headers are canonicalised here.
        """
        end = message.find(b"\r\n\r\n") + 2
        start = end - len(body.template.head)
        if end < 2 or start < 0 or not message.startswith(body.template.head, start):
            raise ValueError("the message was not personalised from this template")
        fields = canonical_fields(message[:start]) + body.head_fields
        return self._signature(fields, body.hash(tokens)) + message

    def signature(self, head: bytes, body_hash: bytes) -> bytes:
        """Return the DKIM-Signature header (folded, CRLF) for a header block and body hash."""
        return self._signature(canonical_fields(head), body_hash)

    def _signature(self, fields: list[tuple[bytes, bytes]], body_hash: bytes) -> bytes:
        header = (
            b"DKIM-Signature: " + self._tags + str(int(time.time())).encode("ascii") + self._h
            + b";\r\n bh=" + base64.b64encode(body_hash) + b";\r\n b="
        )  # fmt: skip
        name, _, value = header.partition(b":")
        data = signed_header_data(fields, OVERSIGNED_HEADERS)
        # The signature's own header goes last, with an empty b= and no CRLF (section 3.7).
        data += canonical_header(name, value)
        if isinstance(self._private, rsa.RSAPrivateKey):
            signature = self._private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = self._private.sign(hashlib.sha256(data).digest())  # RFC 8463
        return header + _fold(base64.b64encode(signature), _B64_LINE) + b"\r\n"

    def canonical_body(self, template: MessageTemplate) -> CanonicalBody:
        """Canonicalise a variant's body once, for :meth:`CanonicalBody.hash` per recipient."""
        return CanonicalBody(template)

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


def _restore(selector: str, domain: str, key: bytes, source: str) -> DkimSigner:
    return DkimSigner(selector, domain, key, source=source)


def _load_key(key: bytes, source: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """Read a PEM RSA or Ed25519 private key, or dkimpy's base64 Ed25519 seed."""
    try:
        if b"BEGIN" in key:
            loaded = serialization.load_pem_private_key(key, password=None)
        else:
            seed = base64.b64decode(key.strip(), validate=True)
            loaded = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise DkimError(f"{source}: cannot read the DKIM key: {exc}") from exc
    if isinstance(loaded, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return loaded
    raise DkimError(
        f"{source}: a DKIM key must be RSA or Ed25519, not {type(loaded).__name__}",
        hint="Generate one with `openssl genrsa -out dkim.pem 2048`.",
    )
