"""An installed plugin changes a real run: `briefing send --now` through its transport.

The test plugin (``tests/plugins/stamp.py``) is installed the way a package
would be, by an entry point of the group ``briefing`` in a ``dist-info``
folder on the path, and the CLI runs in a separate process that knows nothing
else about it.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
from email.policy import SMTP
from pathlib import Path

from tests.support.factories import REPO, make_project

KEY = "plugin-cli-test-key"


def install_stamp(site_packages: Path) -> None:
    dist = site_packages / "briefing_stamp-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: briefing-stamp\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[briefing]\nstamp = tests.plugins.stamp\n")


def briefing(config: Path, site_packages: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    env["BRIEFING_SECRET_KEY"] = KEY
    env["PYTHONPATH"] = os.pathsep.join([str(site_packages), str(REPO)])
    return subprocess.run(
        [sys.executable, "-m", "briefing", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=120,
    )


def test_an_installed_plugin_transport_and_summariser_serve_a_send(tmp_path: Path) -> None:
    project = make_project(tmp_path / "site", delivery={"transport": "stamp-drop"})
    config = project.base_dir / "config.yaml"
    site_packages = tmp_path / "site-packages"
    install_stamp(site_packages)
    (project.base_dir / "readers.csv").write_text(
        "email,name,briefing,sections,timezone,send_time,frequency\n"
        "ann@example.com,Ann,daily,,Europe/London,07:00,daily\n"
        "bo@example.net,Bo,daily,world,Asia/Tokyo,07:00,daily\n",
        encoding="utf-8",
    )

    for args in (("ingest",), ("subscribers", "import", "readers.csv"), ("send", "--now")):
        run = briefing(config, site_packages, *args)
        assert run.returncode == 0, (args, run.stdout, run.stderr)

    dropped = sorted((project.base_dir / "var" / "stamp-drop").iterdir())
    assert sorted(path.name.split("-", 1)[1] for path in dropped) == [
        "ann@example.com.eml",
        "bo@example.net.eml",
    ]
    for path in dropped:
        message = email.message_from_bytes(path.read_bytes(), policy=SMTP)
        assert message["X-Stamp"].startswith("The Daily / ")
        plain = message.get_body(("plain",))
        assert plain is not None
        assert "Stamp summary of " in plain.get_content()
    # The default outbox was not used: the plugin's transport carried every message.
    assert not (project.base_dir / "var" / "outbox").exists()
