"""Normalise email addresses and hash them for the suppression list."""

from __future__ import annotations

import hashlib

from email_validator import EmailNotValidError, validate_email

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
