"""The one classifier of returned mail: RFC 3464 DSNs, RFC 5965 ARF, RFC 3834 replies, the corpus."""

from __future__ import annotations

import email
from pathlib import Path

import pytest
from flufl.bounce import all_failures

from briefing.audience.bounces import classify, read_messages
from briefing.config import Config
from briefing.domain.states import BounceKind
from briefing.domain.tokens import Purpose, Signer
from briefing.errors import BriefingError
from tests.support.bounces import arf, auto_reply, dsn, maildir_of, unsubscribe_mail
from tests.support.factories import KEY, REPO, make_config

SIGNER = Signer([KEY])
CORPUS = REPO / "tests" / ".cache" / "bounce-corpus"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return make_config(tmp_path_factory.mktemp("bounces"), bounces={"domain": "news.example.org"})


@pytest.mark.parametrize(
    ("status", "action", "kind"),
    [
        ("5.1.1", "failed", BounceKind.HARD),
        ("5.1.10", "failed", BounceKind.HARD),
        ("5.2.2", "failed", BounceKind.SOFT),
        ("4.2.2", "delayed", BounceKind.SOFT),
        ("5.7.1", "failed", BounceKind.HARD),
    ],
)
def test_a_dsn_is_read_by_status(
    config: Config, status: str, action: str, kind: BounceKind
) -> None:
    token = SIGNER.delivery_token(42)
    raw = dsn(
        to=f"bounces+{token}@news.example.org",
        recipient="reader@example.com",
        status=status,
        action=action,
        original_headers="Message-ID: <abc@news.example.org>\r\n",
    )
    report = classify(raw, config)
    assert (report.kind, report.recipients, report.status) == (
        kind,
        ("reader@example.com",),
        status,
    )
    assert report.delivery_tokens == (token,)
    assert report.message_ids == ("<abc@news.example.org>",)
    assert SIGNER.verify_delivery(report.delivery_tokens[0]) == 42


def test_a_delivered_dsn_action_is_no_bounce(config: Config) -> None:
    raw = dsn(
        to="x@news.example.org", recipient="r@example.com", status="2.0.0", action="delivered"
    )
    assert classify(raw, config).kind != BounceKind.HARD


def test_an_arf_report_is_a_complaint_with_the_original_delivery(config: Config) -> None:
    token = SIGNER.delivery_token(7)
    original = (
        f"From: briefing@news.example.org\r\nTo: reader@example.com\r\n"
        f"Message-ID: <m7@news.example.org>\r\nX-Briefing-Delivery: {token}\r\n\r\nhello\r\n"
    ).encode()
    report = classify(arf(recipient="reader@example.com", original=original), config)
    assert report.kind == BounceKind.COMPLAINT
    assert report.recipients == ("reader@example.com",)
    assert report.status == "abuse"
    assert token in report.delivery_tokens
    assert "<m7@news.example.org>" in report.message_ids


def test_an_out_of_office_reply_is_no_bounce(config: Config) -> None:
    report = classify(
        auto_reply(sender="r@example.com", in_reply_to="<m@news.example.org>"), config
    )
    assert report.kind == BounceKind.AUTO_REPLY
    assert report.message_ids == ("<m@news.example.org>",)


def test_mail_to_the_unsubscribe_address_carries_its_token(config: Config) -> None:
    token = SIGNER.sign(Purpose.UNSUBSCRIBE, 9)
    raw = unsubscribe_mail(
        sender="r@example.com", to="unsubscribe@news.example.org", subject=f"unsubscribe {token}"
    )
    report = classify(raw, config)
    assert report.kind == BounceKind.UNSUBSCRIBE
    assert report.unsubscribe_token == token


def test_anything_else_is_other(config: Config) -> None:
    raw = b"From: someone@example.com\r\nTo: briefing@news.example.org\r\nSubject: hi\r\n\r\nHello\r\n"
    assert classify(raw, config).kind == BounceKind.OTHER


def test_a_delivery_token_is_short_lowercase_and_tamper_proof() -> None:
    token = SIGNER.delivery_token(123456789)
    assert len(token) == 32 and token == token.lower() and token.isalnum()
    assert len(f"bounces+{token}") <= 64
    assert SIGNER.verify_delivery(token.upper()) == 123456789  # a case-folding MTA is harmless
    forged = token[:-1] + ("a" if token[-1] != "a" else "b")
    with pytest.raises(Exception):  # noqa: B017 - TokenError or a decoding error
        SIGNER.verify_delivery(forged)
    with pytest.raises(Exception):  # noqa: B017
        Signer([b"another key"]).verify_delivery(token)


def test_read_messages_takes_a_maildir_an_mbox_and_a_file(tmp_path: Path) -> None:
    one = b"From: a@example.com\r\nSubject: one\r\n\r\nbody\r\n"
    box = maildir_of(tmp_path / "Maildir", [one, one])
    assert len(list(read_messages(box))) == 2
    mbox = tmp_path / "box.mbox"
    mbox.write_bytes(b"From a@example.com Thu Nov 26 07:00:00 2026\n" + one.replace(b"\r\n", b"\n"))
    assert len(list(read_messages(mbox))) == 1
    single = tmp_path / "one.eml"
    single.write_bytes(one)
    assert [name for name, _ in read_messages(single)] == [str(single)]
    (tmp_path / "plain").mkdir()
    with pytest.raises(BriefingError):
        list(read_messages(tmp_path / "plain"))


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.txt")) if CORPUS.is_dir() else []


@pytest.mark.skipif(
    not corpus(),
    reason="no bounce corpus: run `make bounce-corpus` (downloads the flufl.bounce sdist)",
)
@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.name)
def test_the_real_bounce_corpus(config: Config, path: Path) -> None:
    raw = path.read_bytes()
    report = classify(raw, config)
    temporary, permanent = all_failures(email.message_from_bytes(raw))
    expected = {a.decode().lower() for a in permanent | temporary}
    # Every failing recipient Mailman's detectors find, we find, and call it a bounce.
    assert expected <= {r.lower() for r in report.recipients}
    if expected:
        assert report.kind in (BounceKind.HARD, BounceKind.SOFT)
    if permanent:
        assert report.kind == BounceKind.HARD or (report.status or "").startswith(("4.", "5.2.2"))
