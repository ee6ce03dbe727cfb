"""A big import lands a chunk at a time: a send started meanwhile proceeds, and a re-run is a no-op."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from briefing.cli import cli
from briefing.config import Config
from briefing.ingest import ingest
from briefing.store import Database, open_database
from briefing.store.schema import Subscriber
from tests.support.factories import KEY, NOW, config_dict, make_project, subscribe

ROWS = 10_000


def two_briefings(tmp_path: Path) -> Config:
    briefings = config_dict()["briefings"]
    briefings["evening"] = {**briefings["daily"], "list_id": "evening.news.example.org"}
    return make_project(tmp_path, briefings=briefings)


def subscribers(database: Database) -> int:
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Subscriber)) or 0)


def test_a_send_started_during_a_big_import_proceeds(tmp_path: Path) -> None:
    config = two_briefings(tmp_path)
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(hours=1))
    subscribe(config, database, ["eve1@example.com,,evening", "eve2@example.com,,evening"], NOW)
    big = tmp_path / "big.csv"
    big.write_text(
        "email,briefing\n" + "".join(f"reader{n}@example.com,daily\n" for n in range(ROWS))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
    env["BRIEFING_SECRET_KEY"] = KEY.decode()
    command = [sys.executable, "-m", "briefing", "--config", str(config.base_dir / "config.yaml")]
    importing = subprocess.Popen(
        [*command, "subscribers", "import", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # The first chunks are visible to others while the import goes on.
        deadline = time.monotonic() + 120
        while subscribers(database) <= 2 and importing.poll() is None:
            assert time.monotonic() < deadline, "no chunk of the import landed in 120 s"
            time.sleep(0.02)
        # Rows were visible while the import still ran (its last chunk may have landed by now:
        # the process can still be finishing, so how many landed is not asserted).
        assert importing.poll() is None, "the import finished before any chunk was seen"
        sent = CliRunner().invoke(
            cli,
            [
                "--config",
                str(config.base_dir / "config.yaml"),
                "send",
                "--briefing",
                "evening",
                "--now",
                "--at",
                NOW.isoformat(),
            ],
            env={"BRIEFING_SECRET_KEY": KEY.decode()},
        )
        assert sent.exit_code == 0, sent.output
        assert "delivered: 2 sent" in sent.output
        out, err = importing.communicate(timeout=300)
    finally:
        if importing.poll() is None:
            importing.kill()
    assert importing.returncode == 0, err
    assert "database is locked" not in err
    assert f"{ROWS} created, 0 updated, 0 unchanged" in out
    assert subscribers(database) == ROWS + 2
    # Run again (as after a crash): everything that landed is unchanged.
    again = subprocess.run(
        [*command, "subscribers", "import", str(big)], capture_output=True, text=True, env=env
    )
    assert f"0 created, 0 updated, {ROWS} unchanged" in again.stdout, again.stderr
    database.dispose()
