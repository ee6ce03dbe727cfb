"""Mailbox keys and their hashes: the shortcut for stored keys hashes as the validator would."""

from __future__ import annotations

import re

import pytest

from briefing.domain import addresses
from briefing.domain.addresses import address_hash, mailbox_key

ADDRESSES = [
    "reader@example.com",
    "first.last+tag@mail.example.co.uk",
    "o'neil@example.org",
    "a{b}|c~d@sub-domain.example",
    "x@localhost",
    "two..dots@example.com",
    ".leading@example.com",
    "x@example.com.",
    "x@-bad-.example",
    "x@ab--cd.example",
    "x@" + "a" * 64 + ".example",
    "l" * 65 + "@example.com",
    "x@xn--bcher-kva.example",
    "x@xn--invalid-.example",
    "Mixed.Case@Example.COM",
    "josé@bücher.example",
    ' "quoted"@example.com',
    "no-at-sign",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_a_stored_key_hashes_as_through_the_validator(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = address_hash(address)
    monkeypatch.setattr(addresses, "_OWN_KEY", re.compile(r"(?!)"))  # never matches
    assert fast == address_hash(address)


def test_keys_of_valid_addresses_take_the_shortcut() -> None:
    for address in ("reader@example.com", "Mixed.Case@Example.COM", "o'neil+x@Sub.Example.org"):
        key = mailbox_key(address)
        assert addresses._OWN_KEY.fullmatch(key), key
