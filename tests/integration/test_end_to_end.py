"""The CLI on the repository's samples, as a newcomer runs it: ingest, import, send, preview."""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from briefing.pipeline.summarise import split_sentences
from tests.support.factories import REPO
from tests.support.message_checks import check_message

KEY = "end-to-end-test-key"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    for name in ("samples", "subscribers"):
        shutil.copytree(REPO / name, folder / name)
    shutil.copy(REPO / "config.yaml", folder / "config.yaml")
    return folder


def briefing(site: Path, *args: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    if key:
        env["BRIEFING_SECRET_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "briefing", "--config", str(site / "config.yaml"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )


def test_samples_end_to_end(site: Path) -> None:
    ingest = briefing(site, "ingest")
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert re.search(r"new\s+samples/world/\*\.md\s+5 new", ingest.stdout)
    assert re.search(r"new\s+Example Wire\s+4 new", ingest.stdout)

    imported = briefing(site, "subscribers", "import", str(site / "subscribers" / "sample.csv"))
    assert imported.returncode == 1  # the sample's deliberately bad row
    assert "sample.csv:8: email 'not-an-address'" in imported.stderr
    assert "6 created" in imported.stdout

    no_key = briefing(site, "send", "--now", key=None)
    assert no_key.returncode == 1 and "BRIEFING_SECRET_KEY is not set" in no_key.stderr
    assert "Traceback" not in no_key.stderr

    sent = briefing(site, "send", "--now")
    assert sent.returncode == 0, sent.stderr
    assert "6 sent" in sent.stdout
    box = mailbox.Maildir(str(site / "var" / "outbox"))
    messages = [box.get_bytes(key) for key in box.iterkeys()]
    assert len(messages) == 6
    lists = set()
    for raw in messages:
        message, _text, html = check_message(raw, "https://news.example.org/briefing")
        lists.add(str(message["List-Id"]))
        assert len(raw) < 150_000
        assert "<script" not in html and 'alert("feeds cannot run code")' not in html
    assert lists == {
        "The Morning Briefing <daily.news.example.org>",
        "Markets at the Open <markets.news.example.org>",
    }

    again = briefing(site, "send", "--now")
    assert "dispatched 0 edition(s)" in again.stdout and "0 sent" in again.stdout
    assert len(list(box.keys())) == 6

    preview = briefing(
        site, "preview", "--subscriber", "ana.silva@example.com", "--out", str(site / "var" / "p")
    )
    assert preview.returncode == 0, preview.stderr
    html_path = Path(re.search(r"html:\s+(\S+)", preview.stdout).group(1))
    page = html_path.read_text()
    assert "India Approves $1.1 Billion Russian Missile Deal" in page
    assert "Photo: Unsplash / Prakash rao" in page
    assert 'alt="An S-400 missile launcher on a parade ground"' in page
    # The Meridian Post covers two of the stories: each is shown once, with the other outlet
    # under "Also covered by", and related links point at other stories.
    text = html_path.with_suffix(".txt").read_text()
    assert text.count("Also covered by:") == 2
    assert (
        "Also covered by:\n  - The Meridian Post: "
        "https://meridianpost.example.com/world/india-s400-batteries-russia"
    ) in text
    assert text.count("meridianpost.example.com/business/central-bank-holds-4-25") == 1
    related = re.findall(r"^  - .+\n    (https://\S+)$", text, flags=re.MULTILINE)
    read = set(re.findall(r"^Read: (https://\S+)$", text, flags=re.MULTILINE))
    assert related and not read & set(related)
    eml = html_path.with_suffix(".eml").read_bytes()
    check_message(eml, "https://news.example.org/briefing")
    assert b"X-Briefing-Preview" in eml

    by_sections = briefing(site, "preview", "--sections", "sport", "--out", str(site / "var" / "p"))
    assert by_sections.returncode == 0 and "items:   3" in by_sections.stdout

    listed = briefing(site, "articles", "--section", "technology", "--json")
    assert listed.returncode == 0 and listed.stdout.count("\n") == 4  # 3 files + 1 mapped wire item


def test_summarize_command_and_glued_sentences(site: Path, tmp_path: Path) -> None:
    article = (site / "samples" / "world" / "india-s400.md").read_text().split("---\n", 2)[2]
    sentences = split_sentences(article)
    assert (
        "The approval shows how India balances its partners: it works ever more closely with "
        "Western democracies on trade and technology, yet will not give up defence links that "
        "are older than today's rivalries."
    ) in sentences
    assert any(s.startswith("Officials say the new units") for s in sentences)
    assert any(s.startswith("The U.S. has so far held back") for s in sentences)
    text_file = tmp_path / "a.txt"
    text_file.write_text("Headline\n\n" + article)
    result = briefing(site, "summarize", str(text_file), "--words", "40", key=None)
    assert result.returncode == 0
    summary = result.stdout.strip()
    assert 0 < len(summary.split()) <= 40
    assert summary.endswith((".", "…", '"'))
