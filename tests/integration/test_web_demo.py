"""As a new user would: `make demo`, then one click on `briefing web`, then the next sends.

From a message that `make demo` produced, a one-click POST to its
List-Unsubscribe URL's path on `briefing web` returns 200, the subscriber is
out of the next `briefing send`, and re-importing subscribers/sample.csv
leaves them out.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.factories import REPO
from tests.support.web import links_in, outbox_files, parse, path_of

ANA = "ana.silva@example.com"


def demo_key() -> str:
    match = re.search(r"^DEMO_KEY := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile sets no DEMO_KEY"
    return match.group(1)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    env.update(extra)
    return env


def briefing(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "briefing", "--config", str(folder / "config.yaml"), *args],
        capture_output=True,
        text=True,
        env=clean_env(BRIEFING_SECRET_KEY=demo_key()),
        cwd="/",
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def recipients(folder: Path, names: list[str]) -> list[str]:
    return [str(parse((folder / "var/outbox/new" / name).read_bytes())["To"]) for name in names]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the README's `make demo` in a copy of the repository, using this test's venv."""
    venv = Path(sys.prefix)
    if shutil.which("make") is None or not (venv / "bin" / "briefing").exists():
        pytest.skip("needs make and a venv with the briefing command (run through `make test`)")
    folder = tmp_path_factory.mktemp("demo")
    for name in ("samples", "subscribers"):
        shutil.copytree(REPO / name, folder / name)
    for name in ("config.yaml", "Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, folder / name)
    made = subprocess.run(
        ["make", "demo", f"VENV={venv}", "-o", f"{venv}/bin/briefing"],
        cwd=folder,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "6 sent" in made.stdout
    return folder


def test_one_click_from_a_demo_message_on_briefing_web(demo: Path) -> None:
    sent = outbox_files(demo)
    ana_message = next(
        (demo / "var/outbox/new" / name).read_bytes()
        for name in sent
        if ANA in recipients(demo, [name])[0]
    )
    link = links_in(ana_message)["u"]
    assert link.startswith("https://news.example.org/briefing/u/")

    port = free_port()
    config = demo / "config.yaml"
    text, replaced = re.subn(r"(?m)^(  port:) 8080\b", rf"\1 {port}", config.read_text())
    assert replaced == 1, "config.yaml has no web.port 8080"
    config.write_text(text)
    server = subprocess.Popen(
        [sys.executable, "-m", "briefing", "--config", str(config), "web"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd="/",
        env=clean_env(BRIEFING_SECRET_KEY=demo_key()),
    )
    try:
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{origin}/briefing/subscribe", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "briefing web did not start"
            time.sleep(0.1)
        response = httpx.post(
            origin + path_of(link),
            data={"List-Unsubscribe": "One-Click"},
            follow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert "set-cookie" not in response.headers
        assert "You are unsubscribed from The Morning Briefing" in response.text
        # The sample config publishes the daily briefing's archive, and its feed.
        archive = httpx.get(f"{origin}/briefing/archive/daily/", timeout=10)
        assert archive.status_code == 200 and "feed.atom" in archive.text
        feed = httpx.get(f"{origin}/briefing/archive/daily/feed.atom", timeout=10)
        assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert httpx.get(f"{origin}/briefing/archive/markets/", timeout=10).status_code == 404
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert f"on http://127.0.0.1:{port}/briefing/" in output  # host and port from config.yaml
    assert "Traceback" not in output

    # Every daily reader gets a message even with no news, so a missing one means left out.
    text = config.read_text()
    assert text.count("skip_if_empty: true") == 2
    config.write_text(text.replace("skip_if_empty: true", "skip_if_empty: false", 1))
    for day in (1, 2):
        at = (datetime.now(UTC) + timedelta(days=day)).isoformat(timespec="seconds")
        before = set(outbox_files(demo))
        send = briefing(demo, "send", "--now", "--at", at)
        assert send.returncode == 0, send.stderr
        assert "dispatched 5 edition(s)" in send.stdout  # six readers, one gone
        new = recipients(demo, sorted(set(outbox_files(demo)) - before))
        assert len(new) == 3 and not any(ANA in to for to in new), new  # Raj, Mia, Lukas
        if day == 1:
            again = briefing(demo, "subscribers", "import", str(demo / "subscribers/sample.csv"))
            assert f"refused line 2: {ANA} is suppressed (unsubscribed)" in again.stdout
            assert "0 created" in again.stdout
    shown = briefing(demo, "subscribers", "show", ANA)
    assert "daily: unsubscribed" in shown.stdout and "editions: 1" in shown.stdout
