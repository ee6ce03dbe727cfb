"""Tokens: fixed length, URL-safe, signed, purpose-bound, rotatable; Message-IDs stable."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re

import pytest

from briefing.domain.tokens import TOKEN_LENGTH, InertTokenError, Purpose, Signer
from briefing.errors import TokenError


def test_tokens_round_trip_with_fixed_length() -> None:
    signer = Signer([b"k1"])
    for ident in (1, 42, 2**40, 2**63):
        token = signer.sign(Purpose.UNSUBSCRIBE, ident)
        assert len(token) == TOKEN_LENGTH
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
        assert signer.verify(token, Purpose.UNSUBSCRIBE) == ident


def test_tampered_token_is_refused() -> None:
    signer = Signer([b"k1"])
    token = signer.sign(Purpose.UNSUBSCRIBE, 7)
    for position in (0, 5, 20, TOKEN_LENGTH - 1):
        changed = (
            token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
        )
        with pytest.raises(TokenError):
            signer.verify(changed, Purpose.UNSUBSCRIBE)
    for junk in ("", "short", "x" * TOKEN_LENGTH, "é" * TOKEN_LENGTH, token + "A"):
        with pytest.raises(TokenError):
            signer.verify(junk, Purpose.UNSUBSCRIBE)


def test_token_is_bound_to_its_purpose() -> None:
    signer = Signer([b"k1"])
    with pytest.raises(TokenError, match="not valid here"):
        signer.verify(signer.sign(Purpose.PREFERENCES, 7), Purpose.UNSUBSCRIBE)


def test_inert_tokens_verify_but_act_on_nobody() -> None:
    signer = Signer([b"k1"])
    inert = signer.inert(Purpose.UNSUBSCRIBE)
    assert len(inert) == TOKEN_LENGTH
    with pytest.raises(InertTokenError):
        signer.verify(inert, Purpose.UNSUBSCRIBE)


def test_previous_key_accepted_during_rotation() -> None:
    old = Signer([b"old"]).sign(Purpose.UNSUBSCRIBE, 9)
    assert Signer([b"new", b"old"]).verify(old, Purpose.UNSUBSCRIBE) == 9
    with pytest.raises(TokenError):
        Signer([b"new"]).verify(old, Purpose.UNSUBSCRIBE)


def test_message_id_is_stable_per_edition() -> None:
    signer = Signer([b"k1"])
    first = signer.message_id("daily:1:2026-11-26", "news.example.org")
    assert first == signer.message_id("daily:1:2026-11-26", "news.example.org")
    assert first != signer.message_id("daily:1:2026-11-27", "news.example.org")
    assert re.fullmatch(r"<[0-9a-f]{40}@news\.example\.org>", first)
    assert first != Signer([b"k2"]).message_id("daily:1:2026-11-26", "news.example.org")


def test_tokens_are_the_bytes_the_standard_library_writes() -> None:
    # The tokens in sent mail must not change with how they are computed: HMAC-SHA256 tags,
    # URL-safe base64 for links, lower-case base32 for delivery tokens.
    key = b"k1"
    signer = Signer([key])
    token_key = hmac.new(key, b"briefing:token", hashlib.sha256).digest()
    ids = [0, 1, 2, 255, 256, 2**32 - 1, 2**40 + 7, 2**63, 2**64 - 1]
    rng = random.Random(14)
    ids += [rng.getrandbits(64) for _ in range(200)]
    for ident in ids:
        for purpose in Purpose:
            payload = purpose.value.encode() + ident.to_bytes(8, "big")
            tag = hmac.new(token_key, payload, hashlib.sha256).digest()[:15]
            expected = base64.urlsafe_b64encode(payload + tag).decode()
            assert signer.sign(purpose, ident) == expected
        payload = b"d" + ident.to_bytes(8, "big")
        tag = hmac.new(token_key, payload, hashlib.sha256).digest()[:11]
        expected = base64.b32encode(payload + tag).decode().lower()
        assert signer.delivery_token(ident) == expected
        if ident:
            assert signer.verify_delivery(expected) == ident
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match="out of range"):
            signer.sign(Purpose.VIEW, bad)
        with pytest.raises(ValueError, match="out of range"):
            signer.delivery_token(bad)
