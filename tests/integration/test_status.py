"""`briefing status`: the ops picture in a terminal, and its exit status as a check."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from briefing.cli import cli
from briefing.cli.status_cmd import NEEDS_A_PERSON
from briefing.config import Config
from briefing.deliver import OutboxTransport, deliver
from briefing.domain.states import ProcessKind
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.ops.controls import pause
from briefing.ops.presence import Presence
from briefing.store import Database, open_database
from tests.support.delivery import reader, subscribe
from tests.support.factories import KEY, NOW, config_dict, make_project
from tests.support.web import AT


def status(config: Config, *args: str) -> Result:
    """Run `briefing status` as a shell would."""
    return CliRunner().invoke(
        cli,
        ["--config", str(config.base_dir / "config.yaml"), "status", "--no-schedule", *args],
        env={"BRIEFING_SECRET_KEY": "status-test-key"},
    )


def project_with_editions(folder: Path, **overrides: object) -> tuple[Config, Database]:
    config = make_project(folder, metrics={"window": "3650d"}, **overrides)
    database = open_database(config.database)
    ingest(config, database, NOW)
    subscribe(config, database, [reader(n) for n in range(3)])
    dispatch(config, database, Signer([KEY]), AT)
    return config, database


def test_due_and_unsent_with_nobody_to_send_needs_a_person(tmp_path: Path) -> None:
    config, _database = project_with_editions(tmp_path)
    result = status(config)
    assert result.exit_code == NEEDS_A_PERSON, result.output
    assert "[unsent] daily: 3 edition(s) due and unsent" in result.output
    assert "[no-sender] daily" in result.output
    assert "processes:\n  none running" in result.output

    report = json.loads(status(config, "--json").output)
    assert report["needs_a_person"] is True
    assert {p["rule"] for p in report["problems"]} == {"unsent", "no-sender"}
    daily = report["briefings"]["daily"]
    assert daily["due_unsent"] == 3 and daily["deliveries"] == {"pending": 3}
    assert daily["oldest_due_unsent_seconds"] > 0 and daily["last_dispatch"] is not None


def test_a_live_sender_clears_no_sender_but_not_the_lag(tmp_path: Path) -> None:
    config, database = project_with_editions(tmp_path)
    with Presence(database, ProcessKind.DELIVER, interval=5.0, detail={}):
        result = status(config)
    assert result.exit_code == NEEDS_A_PERSON
    assert "[no-sender]" not in result.output and "[unsent]" in result.output
    assert "deliver " in result.output and "heartbeat" in result.output


def test_all_sent_is_exit_zero_and_paused_is_not_a_problem(tmp_path: Path) -> None:
    config, database = project_with_editions(tmp_path)
    deliver(config, database, Signer([KEY]), OutboxTransport(config.outbox_path), clock=lambda: AT)
    result = status(config)
    assert result.exit_code == 0, result.output
    assert "nothing needs a person" in result.output
    assert "deliveries: sent 3" in result.output

    other, other_database = project_with_editions(tmp_path / "paused")
    pause(other_database, "daily", AT, by="ops")
    held = status(other)
    assert held.exit_code == 0, held.output
    assert "daily: PAUSED; 3 due and unsent" in held.output


def test_a_source_failing_in_a_row_needs_a_person(tmp_path: Path) -> None:
    data = config_dict()
    data["sections"]["world"]["sources"] = ["content/world/*.md", "content/missing.xml"]
    config = make_project(tmp_path, ingest={"flag_after_failures": 2}, sections=data["sections"])
    database = open_database(config.database)
    ingest(config, database, NOW)
    assert status(config).exit_code == 0  # once is not yet a pattern
    ingest(config, database, NOW)
    result = status(config, "--json")
    assert result.exit_code == NEEDS_A_PERSON
    report = json.loads(result.output)
    assert report["sources"]["flagged"] == 1 and report["sources"]["max_failures_in_a_row"] == 2
    assert [p["rule"] for p in report["problems"]] == ["source"]


def test_with_the_timetable_a_quiet_project_is_fine(project: Config, database: Database) -> None:
    result = CliRunner().invoke(cli, ["--config", str(project.base_dir / "config.yaml"), "status"])
    assert result.exit_code == 0, result.output
    assert "daily: running; nothing due and unsent; 0 due, not dispatched" in result.output
    assert "last dispatch never" in result.output and "last ingest never" in result.output


def test_a_bad_config_exits_one(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("site: {}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "status"])
    assert result.exit_code == 1
