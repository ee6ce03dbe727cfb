"""The built wheel works on its own: migrations, digest and confirmation from package data.

The wheel is built from a copy of the sources (so no build/ folder lands in the
checkout), installed with ``pip install --no-deps --target``, and exercised by
this venv's interpreter from a working directory outside the checkout, with
only the installed copy on PYTHONPATH. The dependencies come from this venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support.factories import REPO, config_dict

pytestmark = pytest.mark.slow
PIP = [sys.executable, "-m", "pip", "--quiet"]

# Run by the installed copy: prints what it used and made, as JSON.
USE_THE_WHEEL = """
import json, sqlite3, sys
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import briefing
from briefing.audience.confirmations import compose_confirmation
from briefing.audience.lifecycle import Signup
from briefing.config import load_config
from briefing.domain.models import Digest, DigestItem, DigestSection, SelectedArticle
from briefing.pipeline import render
from briefing.pipeline.compose import compose_variant
from briefing.store import open_database

now = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
config = load_config(Path(sys.argv[1]))
database_file = Path(sys.argv[2])
open_database(f"sqlite:///{database_file}").dispose()
with sqlite3.connect(database_file) as connection:
    tables = sorted(row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"))
    (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()

article = SelectedArticle(
    id=1, section="world", title="Packaged templates render", url="https://news.example.org/1",
    dek=None, body_text="The wheel carries its templates. It needs no checkout.",
    image_url=None, image_alt=None, image_credit=None,
    published_at=now - timedelta(hours=1), first_seen_at=now - timedelta(minutes=30),
)
digest = Digest(
    briefing="daily", title="The Daily", locale="en_GB", issue_date=date(2026, 11, 26),
    cut_at=now, sections=(DigestSection(key="world", title="World", items=(
        DigestItem(article=article, summary="The wheel carries its templates."),)),),
)
briefing_config = config.briefings["daily"]
placeholders = render.new_placeholders()
rendered = render.render_digest(
    digest, key="daily", site=config.site, briefing=briefing_config, placeholders=placeholders)
composed = compose_variant(
    rendered, variant_key="daily", site=config.site, briefing=briefing_config,
    placeholders=placeholders)

signup = Signup(
    kind="confirmation", email="new.reader@example.com", briefing="daily", subscription_id=1,
    confirmation_id=1, expires_at=now + timedelta(days=2), suppressed=None)
confirmation = message_from_bytes(
    compose_confirmation(config, signup, "https://news.example.org/b/c/TOKEN", now),
    policy=policy.default)

print(json.dumps({
    "briefing": briefing.__file__,
    "templates": str(render.DEFAULT_TEMPLATES),
    "tables": tables,
    "revision": revision,
    "digest_html": rendered.html,
    "digest_text": rendered.text,
    "digest_subject": rendered.subject,
    "confirmation_subject": confirmation["Subject"],
    "confirmation_text": confirmation.get_body(("plain",)).get_content(),
    "confirmation_html": confirmation.get_body(("html",)).get_content(),
}))
"""


def copy_sources(destination: Path) -> Path:
    """Copy what the build reads, so the build leaves nothing in the checkout."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, destination / name)
    shutil.copytree(
        REPO / "briefing",
        destination / "briefing",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return destination


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_installed_wheel_migrates_and_renders_from_package_data(tmp_path: Path) -> None:
    source = copy_sources(tmp_path / "source")
    dist = tmp_path / "dist"
    run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(source)],
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("briefing-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for packaged in (
        "briefing/pipeline/templates/digest.mjml.j2",
        "briefing/pipeline/templates/confirmation.txt.j2",
        "briefing/web/templates/base.html.j2",
        "briefing/web/templates/desk/login.html.j2",
        "briefing/store/migrations/env.py",
    ):
        assert packaged in names, f"{packaged} is missing from {wheel.name}"
    assert any(n.startswith("briefing/store/migrations/versions/") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)

    site = tmp_path / "site"
    run(
        [*PIP, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        cwd=tmp_path,
    )

    work = tmp_path / "elsewhere"  # a site folder with no templates/ of its own
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(config_dict()), encoding="utf-8")
    (work / "use_the_wheel.py").write_text(USE_THE_WHEEL, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(site)
    output = run(
        [sys.executable, "use_the_wheel.py", "config.yaml", str(work / "briefing.db")],
        cwd=work,
        env=env,
    )
    used = json.loads(output)

    assert Path(used["briefing"]).is_relative_to(site), used["briefing"]
    assert Path(used["templates"]).is_relative_to(site), used["templates"]
    assert not Path(used["briefing"]).is_relative_to(REPO)
    assert {"alembic_version", "articles"} <= set(used["tables"])
    assert used["revision"]
    assert "Packaged templates render" in used["digest_html"]
    assert "<html" in used["digest_html"].lower()
    assert "Packaged templates render" in used["digest_text"]
    assert "The Daily" in used["digest_subject"]
    assert used["confirmation_subject"] == "Confirm your subscription to The Daily"
    assert "https://news.example.org/b/c/TOKEN" in used["confirmation_text"]
    assert "https://news.example.org/b/c/TOKEN" in used["confirmation_html"]
