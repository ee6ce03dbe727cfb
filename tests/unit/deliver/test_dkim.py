"""DKIM signing: canonical forms as dkimpy computes them, per-variant bodies, dkimpy verifies."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import Relaxed

from briefing.deliver.dkim import CanonicalBody, DkimSigner, canonical_body
from briefing.errors import DkimError
from briefing.pipeline.compose import MessageTemplate

SELECTOR = b"brief2026"
DOMAIN = "news.example.org"


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[bytes, bytes]:
    """Return a PEM RSA key and the DNS TXT record that publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def verifies(message: bytes, record: bytes) -> bool:
    """Verify with dkimpy against ``record`` published for the test selector."""

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == SELECTOR + b"._domainkey." + DOMAIN.encode() + b"." else b""

    return bool(dkim.verify(message, dnsfunc=dns))


BODIES = (
    b"",
    b"\r\n",
    b"\r\n\r\n\r\n",
    b"no line end",
    b"one line\r\n",
    b"trailing blanks \t \r\nand\ttabs\t\tinside  here\r\n\r\n\r\n",
    b"  leading blanks\r\n \r\n\t\r\nlast line without end  ",
    b"a\r\n\r\nb\r\n \r\n",
    b"soft=\r\nbreak =\r\n   spaces   =\r\n\r\n",
)


@pytest.mark.parametrize("body", BODIES)
def test_relaxed_body_is_what_dkimpy_computes(body: bytes) -> None:
    assert canonical_body(body) == Relaxed.canonicalize_body(body)


def qp_template(placeholders: dict[str, str]) -> MessageTemplate:
    """Return a template whose placeholders sit among blanks and across soft line breaks."""
    unsubscribe, view = placeholders["u"], placeholders["e"]
    body = (
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"View  it:\thttps://x.example/e/" + view.encode() + b"   \r\n"
        b"Leave: https://x.example/u/" + unsubscribe[:10].encode() + b"=\r\n"
        + unsubscribe[10:].encode() + b" \t end\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<a href=3D"https://x.example/u/' + unsubscribe.encode() + b'">  leave </a>  \r\n'
        b"--b--\r\n\r\n\r\n"
    )  # fmt: skip
    return MessageTemplate(head=b"Subject: s\r\n", body=body, placeholders=placeholders)


def test_tokens_put_into_the_canonical_body_hash_as_the_canonical_personalised_body() -> None:
    placeholders = {"u": "P" * 32, "e": "Q" * 32}
    template = qp_template(placeholders)
    body = CanonicalBody(template)
    assert template.slots == 3 and body.substitutable
    for tokens in (
        {"u": "a-b_c" * 6 + "zz", "e": "0123456789" * 3 + "AB"},
        {"u": "x" * 32, "e": "-" * 32},
    ):
        personalised = template.personalise_body(tokens)
        assert body.hash(tokens) == hashlib.sha256(canonical_body(personalised)).digest()
        assert body.hash(tokens) == hashlib.sha256(Relaxed.canonicalize_body(personalised)).digest()


def test_a_token_with_whitespace_is_hashed_from_the_whole_body() -> None:
    # Substitution only commutes with canonicalisation for tokens without blanks; any other
    # token (no signer makes one) falls back to canonicalising the personalised body.
    template = qp_template({"u": "P" * 32, "e": "Q" * 32})
    tokens = {"u": "with  two blanks" + "x" * 16, "e": "tab\there" + "y" * 24}
    personalised = template.personalise_body(tokens)
    assert (
        CanonicalBody(template).hash(tokens)
        == hashlib.sha256(Relaxed.canonicalize_body(personalised)).digest()
    )


MESSAGE = (
    b"From: =?utf-8?q?Die_Zeitung_f=C3=BCr_M=C3=BCnchen?= <briefing@news.example.org>\r\n"
    b"To: =?utf-8?q?Zo=C3=AB_=C3=85ngstr=C3=B6m-=C3=91=C3=BA=C3=B1ez_de_la_Vega_y?=\r\n"
    b" =?utf-8?q?_Alc=C3=A1ntara?= <zoe@example.com>\r\n"
    b"Subject: =?utf-8?q?Les_nouvelles_du_jour=2C_tr=C3=A8s_longues=2C_qui_se?=\r\n"
    b"\t=?utf-8?q?_plient_sur_deux_lignes?=\r\n"
    b"Date: Thu, 26 Nov 2026 07:00:00 +0000\r\n"
    b"Message-ID: <x1@news.example.org>\r\n"
    b"List-Id: The Daily <daily.news.example.org>\r\n"
    b"List-Unsubscribe: <https://news.example.org/b/u/AAAA>,\r\n"
    b" <mailto:unsubscribe@news.example.org?subject=unsubscribe%20AAAA>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"MIME-Version: 1.0\r\n\r\n"
    b"Hello   there \t\r\n\r\n"
)


def test_signed_messages_verify_with_dkimpy_and_stay_under_the_line_limit(
    rsa_pair: tuple[bytes, bytes],
) -> None:
    pem, record = rsa_pair
    signer = DkimSigner(SELECTOR.decode(), DOMAIN, pem)
    signed = signer.sign(MESSAGE)
    assert signed.endswith(MESSAGE) and signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert verifies(signed, record)
    signature = signed[: len(signed) - len(MESSAGE)]
    assert all(len(line) <= 78 for line in signature.split(b"\r\n"))
    assert signed.count(b"\r\n") == signed.count(b"\n")
    # Over-signed: a second Subject, or a changed one, breaks it.
    assert not verifies(b"Subject: added\r\n" + signed, record)
    assert not verifies(signed.replace(b"Alc=C3=A1ntara", b"Alcantara"), record)
    # Bare LF line ends are signed as the CRLF form a relay sends.
    lf = MESSAGE.replace(b"\r\n", b"\n")
    assert verifies(signer.sign(lf).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), record)


def test_a_personalised_message_signs_from_its_variant_as_the_whole_message_does(
    rsa_pair: tuple[bytes, bytes],
) -> None:
    pem, record = rsa_pair
    signer = DkimSigner(SELECTOR.decode(), DOMAIN, pem)
    placeholders = {"u": "P" * 32, "e": "Q" * 32}
    head, _, rest = MESSAGE.partition(b"Date: ")
    template = MessageTemplate(
        head=head.replace(b"To:", b"Cc:"),
        body=qp_template(placeholders).body,
        placeholders=placeholders,
    )
    tokens = {"u": "U" * 32, "e": "E" * 32}
    message = b"Date: " + rest.split(b"\r\n\r\n")[0] + b"\r\n" + template.head + b"\r\n"
    message += template.personalise_body(tokens)
    fast = signer.sign_personalised(message, signer.canonical_body(template), tokens)
    whole = signer.sign(message)
    assert verifies(fast, record) and verifies(whole, record)
    body_hashes = {re.search(rb"bh=([^;]+);", m).group(1) for m in (fast, whole)}  # type: ignore[union-attr]
    assert len(body_hashes) == 1
    with pytest.raises(ValueError, match="not personalised from this template"):
        signer.sign_personalised(MESSAGE, signer.canonical_body(template), tokens)


def test_an_ed25519_key_signs_ed25519_sha256(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for form in (base64.b64encode(seed), pem):  # dkimpy's base64 seed, or PEM
        signed = DkimSigner(SELECTOR.decode(), DOMAIN, form).sign(MESSAGE)
        assert b"a=ed25519-sha256;" in signed
        pytest.importorskip("nacl", reason="dkimpy verifies ed25519 only with PyNaCl")
        assert verifies(signed, record)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (b"-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n", "read"),
        (b"not base64 at all!", "read"),
        (base64.b64encode(b"short"), "read"),
    ],
)
def test_an_unusable_key_is_named(key: bytes, problem: str) -> None:
    with pytest.raises(DkimError, match=rf"keys/dkim\.pem: cannot {problem} the DKIM key"):
        DkimSigner("s", DOMAIN, key, source="keys/dkim.pem")


def test_a_body_with_bare_line_feeds_is_signed_as_sent_with_crlf(
    rsa_pair: tuple[bytes, bytes],
) -> None:
    pem, record = rsa_pair
    signer = DkimSigner(SELECTOR.decode(), DOMAIN, pem)
    placeholders = {"u": "P" * 32, "e": "Q" * 32}
    crlf = qp_template(placeholders)
    template = MessageTemplate(
        head=MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n",
        body=crlf.body.replace(b"\r\n", b"\n"),
        placeholders=placeholders,
    )
    tokens = {"u": "U" * 32, "e": "E" * 32}
    sent = template.head + b"\r\n" + template.personalise_body(tokens).replace(b"\n", b"\r\n")
    signed = signer.sign_personalised(sent, signer.canonical_body(template), tokens)
    assert verifies(signed, record)
