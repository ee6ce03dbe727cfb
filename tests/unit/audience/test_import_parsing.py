"""The import's fast address check gives normalise_address's answer, domain by domain."""

from __future__ import annotations

import pytest

from briefing.audience.imports import _normalised
from briefing.domain.addresses import AddressError, normalise_address

ADDRESSES = [
    "Ann.Example@Example.COM",
    "o'brien+news@example.org",
    "first.last@sub.example.co.uk",
    "dup.case@Bücher.example",
    "josé@example.com",
    '"quoted local"@example.com',
    "double..dot@example.com",
    ".lead@example.com",
    "trail.@example.com",
    "no-at-sign.example.com",
    "two@@example.com",
    "ann@",
    "ann@localhost",
    "ann@exa mple.com",
    "ann@-bad-.example",
    "x" * 65 + "@example.com",
    "a@" + "b" * 250 + ".com",
    "ann@example.com.",
]


@pytest.mark.parametrize("address", ADDRESSES)
@pytest.mark.parametrize("smtputf8", [False, True])
def test_fast_path_agrees_with_the_full_validation(address: str, smtputf8: bool) -> None:
    try:
        expected: str | None = normalise_address(address, smtputf8=smtputf8)
    except AddressError:
        expected = None
    try:
        got: str | None = _normalised(address, smtputf8)
    except AddressError:
        got = None
    assert got == expected
