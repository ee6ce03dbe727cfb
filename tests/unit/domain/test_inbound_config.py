"""The `inbound:` and `bounces.imap:` blocks: defaults, and bad values named by their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from briefing.config import imap_password
from briefing.errors import ConfigError, SecretError
from tests.support.factories import make_config


def test_defaults_listen_on_this_machine(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert (config.inbound.host, config.inbound.port, config.inbound.protocol) == (
        "127.0.0.1",
        2525,
        "lmtp",
    )
    assert config.bounces.imap is None


def test_imap_port_follows_security(tmp_path: Path) -> None:
    imap = {"host": "imap.example.org", "user": "bounces"}
    ports = []
    for name, security in (("a", "ssl"), ("b", "starttls"), ("c", "none")):
        settings = make_config(tmp_path / name, bounces={"imap": {**imap, "security": security}})
        assert settings.bounces.imap is not None
        ports.append(settings.bounces.imap.port_number)
    assert ports == [993, 143, 143]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"inbound": {"protocol": "pop3"}}, "inbound.protocol:"),
        ({"inbound": {"max_bytes": 10}}, "inbound.max_bytes:"),
        ({"inbound": {"hots": "0.0.0.0"}}, "inbound.hots: unknown key"),
        ({"bounces": {"imap": {"host": "h"}}}, "bounces.imap.user: required key is missing"),
        (
            {"bounces": {"imap": {"host": "h", "user": "u", "security": "tls"}}},
            "bounces.imap.security:",
        ),
        (
            {"bounces": {"imap": {"host": "h", "user": "u", "poll_every": "often"}}},
            "bounces.imap.poll_every:",
        ),
    ],
)
def test_a_bad_value_is_named_by_its_key(
    tmp_path: Path, overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.")):
        make_config(tmp_path, **overrides)


def test_the_imap_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRIEFING_IMAP_PASSWORD", raising=False)
    with pytest.raises(SecretError, match="BRIEFING_IMAP_PASSWORD is not set"):
        imap_password()
    monkeypatch.setenv("BRIEFING_IMAP_PASSWORD", "s3cret")
    assert imap_password() == "s3cret"
