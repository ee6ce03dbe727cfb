"""Every DKIM-signed digest and test send verifies with dkimpy and is the unsigned message + one header.

The signature of a digest is made from its variant's canonical body with the
recipient's tokens put in; these tests check the result the way a receiving
server does (dkimpy against the published key), on messages whose headers are
non-ASCII and folded, and that signing changes nothing else in the bytes.
Confirmations are signed on the same path (``tests/integration/test_transactional_mail.py``
and ``test_bounces.py`` verify them).
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import update

from briefing.config import Config
from briefing.deliver import DkimSigner, deliver, make_transport
from briefing.domain.states import DeliveryState
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database, open_database
from briefing.store.schema import Delivery
from tests.support.delivery import AT, delivery_settings, without_date
from tests.support.factories import KEY, NOW, config_dict, make_project, subscribe
from tests.support.message_checks import check_message
from tests.support.smtp_server import Received, Server, smtp_server

SIGNER = Signer([KEY])
NAMES = {
    "zoe@example.com": "Zoë Ångström-Ñúñez de la Vega y Alcántara, Condesa de Villafranca del Bierzo",
    "li@example.com": "李小龍",
    "plain@example.com": "Plain Reader",
    "quote@example.com": 'Ann "the reader" O\'Neil',
}


def key_pair(folder: Path) -> tuple[Path, bytes]:
    """Write a 2048-bit RSA key; return its path and the DNS TXT record publishing it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def verified(message: bytes, record: bytes) -> bool:
    """Verify as a receiving server would, with dkimpy and the published record."""

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"brief2026._domainkey.news.example.org." else b""

    return bool(dkim.verify(message, dnsfunc=dns))


def project(folder: Path, server: Server, **delivery: Any) -> tuple[Config, Database]:
    """Write a project with non-ASCII, long headers and readers; dispatch one edition."""
    data = config_dict()
    data["site"]["name"] = (
        "Die Zeitung für München und das Umland \u2013 Morgenausgabe am Donnerstag"
    )
    daily = data["briefings"]["daily"]
    daily["title"] = "Le Quotidien · Édition du matin"
    daily["subject"] = (
        "{{ title }} — {{ top_headline }}, et d'autres nouvelles très longues du jour à lire"
    )
    config = make_project(
        folder,
        site=data["site"],
        briefings=data["briefings"],
        delivery=delivery_settings(server, dkim={"selector": "brief2026"}, **delivery),
    )
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(hours=1))
    rows = [
        f'{email},"{name.replace(chr(34), chr(34) * 2)}",daily,world;sport,Europe/London,07:00,daily'
        for email, name in NAMES.items()
    ]
    subscribe(config, database, rows, AT - timedelta(minutes=10))
    dispatch(config, database, SIGNER, AT)
    return config, database


def send(config: Config, database: Database, signer: DkimSigner | None) -> None:
    transport = make_transport(config)
    try:
        report = deliver(config, database, SIGNER, transport, clock=lambda: AT, dkim=signer)
    finally:
        transport.close()
    assert report.sent == len(NAMES), report


def without_signature(message: bytes) -> bytes:
    assert message.startswith(b"DKIM-Signature: ")
    return re.sub(rb"\ADKIM-Signature: .*?\r\n(?=\S)", b"", message, flags=re.S)


def test_signed_digests_verify_and_are_the_unsigned_bytes_with_one_header_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path, record = key_pair(tmp_path)
    monkeypatch.setenv("BRIEFING_DKIM_KEY_FILE", str(key_path))
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())
    with smtp_server() as server:
        config, database = project(tmp_path / "site", server)
        send(config, database, None)
        unsigned = {m.recipient: m.data for m in server.handler.received}
        with database.transaction() as session:
            session.execute(update(Delivery).values(status=DeliveryState.PENDING, owner=None))
        server.handler.received.clear()
        send(config, database, DkimSigner.from_config(config))
        signed: list[Received] = list(server.handler.received)
    assert sorted(m.recipient for m in signed) == sorted(NAMES)
    for message in signed:
        assert verified(message.data, record), message.recipient
        check_message(message.data, config.site.base_url)
        assert without_date(without_signature(message.data)) == without_date(
            unsigned[message.recipient]
        )
        # A body changed on the way (one link's token) breaks it; whitespace changes do not.
        token = re.search(rb"/u/([A-Za-z0-9_-]{32})", message.data)
        assert token is not None
        forged = message.data.replace(token.group(1), token.group(1)[::-1])
        assert not verified(forged, record)
        head, body = message.data.split(b"\r\n\r\n", 1)
        assert verified(head + b"\r\n\r\n" + body.replace(b"\r\n", b" \t\r\n"), record)
    folded = next(m.data for m in signed if m.recipient == "zoe@example.com")
    assert b"\r\nTo: =?utf-8?" in folded and re.search(rb"\r\nTo: [^\r]*\r\n ", folded)
    assert re.search(rb"\r\nSubject: [^\r]*=\?utf-8\?[^\r]*\r\n ", folded)
    assert re.search(rb"\r\nFrom: [^\r]*=\?utf-8\?[^\r]*\r\n ", folded)


def test_signed_test_sends_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_path, record = key_pair(tmp_path)
    monkeypatch.setenv("BRIEFING_DKIM_KEY_FILE", str(key_path))
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())
    with smtp_server() as server:
        config, database = project(tmp_path / "site", server, redirect_to="desk@news.example.org")
        send(config, database, DkimSigner.from_config(config))
    received = server.handler.received
    assert {m.recipient for m in received} == {"desk@news.example.org"}
    intended = b"".join(m.data for m in received)
    assert intended.count(b"X-Briefing-Intended-Recipient:") == len(NAMES)
    for message in received:
        assert verified(message.data, record)
        check_message(message.data, config.site.base_url)
