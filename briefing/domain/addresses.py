"""Validate email addresses, derive each mailbox's one key, and hash it for the suppression list.

A mailbox has one key: the whole address lower-cased, its domain in IDNA
ASCII form (``Dup.Case@Bücher.example`` -> ``dup.case@xn--bcher-kva.example``).
Subscribers, suppressions and every lookup go by that key, so two spellings
of one address are one subscriber. Only the case is folded (``str.lower``):
full Unicode case folding would turn ``ß`` into ``ss``, another mailbox.
"""

from __future__ import annotations

import hashlib
import re

from email_validator import EmailNotValidError, validate_email

ALL_BRIEFINGS = "*"

# An address that is its own mailbox key whether or not it validates: lower-case ASCII dot-atom,
# a lower-case ASCII domain without IDNA labels. A valid one keys to itself; an invalid one
# falls back to itself lower-cased, which it already is. Stored addresses are keys, so the
# re-check before every send hashes them without running the validator.
_OWN_KEY = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?!.*xn--)[a-z0-9.-]+"
)


class AddressError(ValueError):
    """Report an address that is not a valid email address."""


def _validated(address: str) -> tuple[str, str, str]:
    """Return (local part, domain as typed but normalised, domain in ASCII) or raise."""
    candidate = address.strip()
    if "\r" in candidate or "\n" in candidate:
        raise AddressError("address contains a line break")
    try:
        valid = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from exc
    local = valid.local_part or ""
    return local, valid.domain, valid.ascii_domain


def mailbox_key(address: str) -> str:
    """Return the key of the mailbox an address names (for lookups), or raise AddressError.

    Any valid address has a key, including one with a non-ASCII local part,
    so a stored address can always be found again.
    """
    local, _, ascii_domain = _validated(address)
    return f"{local.lower()}@{ascii_domain}"


def normalise_address(address: str, *, smtputf8: bool = False) -> str:
    """Return the key of a new address that can be mailed, or raise AddressError.

    A local part with non-ASCII characters (``josé@``) is refused unless the
    relay is known to speak SMTPUTF8 (``delivery.smtputf8``): without it no
    message to that address can ever leave. Internationalised domains are
    fine; they are written in their IDNA ASCII form.
    """
    local, _, ascii_domain = _validated(address)
    if not local.isascii() and not smtputf8:
        raise AddressError(
            f"the part before the @ ({local}) has non-ASCII characters, which mail can only "
            "reach through a relay that speaks SMTPUTF8 (set delivery.smtputf8: true if yours does)"
        )
    return f"{local.lower()}@{ascii_domain}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def address_hash(address: str) -> str:
    """Hash an address's mailbox key for the suppression list (kept after deletion)."""
    if _OWN_KEY.fullmatch(address):
        return _digest(address)
    try:
        key = mailbox_key(address)
    except AddressError:
        key = address.strip().lower()
    return _digest(key)


def address_hashes(address: str) -> tuple[str, ...]:
    """Return every hash an address's suppression entries may carry, the current one first.

    Entries written before addresses were keyed hashed the address with its
    domain in Unicode; the hash of an erased address cannot be rewritten, so
    lookups try both.
    """
    current = address_hash(address)
    try:
        local, domain, _ = _validated(address)
    except AddressError:
        return (current,)
    legacy = _digest(f"{local}@{domain}".lower())
    return (current,) if legacy == current else (current, legacy)
