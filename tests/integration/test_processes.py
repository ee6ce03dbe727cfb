"""The live-process table: registration, heartbeats by the database's clock, pruning, rate shares."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from click.testing import CliRunner

from briefing.cli import cli
from briefing.config import Config
from briefing.deliver.ratelimit import RateLimiter
from briefing.domain.states import ProcessKind
from briefing.ops.presence import Presence
from briefing.store import Database
from briefing.store.processes import live_processes, prune, register
from tests.support.factories import KEY


def rows(database: Database, kind: ProcessKind | None = None, stale: float = 60.0) -> list[int]:
    with database.transaction() as session:
        return [r.process_id for r in live_processes(session, kind, stale=timedelta(seconds=stale))]


def test_a_process_registers_beats_and_leaves(database: Database) -> None:
    presence = Presence(database, ProcessKind.SERVE, interval=0.1, detail={"deliver": False})
    with presence:
        assert presence.process_id is not None
        with database.transaction() as session:
            (row,) = live_processes(session, stale=timedelta(seconds=5))
        assert row.kind == ProcessKind.SERVE and row.detail["deliver"] is False
        assert row.detail["version"]
        time.sleep(0.35)
        with database.transaction() as session:
            (later,) = live_processes(session, stale=timedelta(seconds=5))
        assert later.heartbeat_at > row.heartbeat_at  # renewed by the heartbeat thread
        assert later.started_at == row.started_at
    assert rows(database) == []  # a clean exit removes the row


def test_a_process_that_stops_beating_is_ignored_then_pruned(database: Database) -> None:
    with database.transaction() as session:
        dead = register(session, ProcessKind.DELIVER, {})  # registered, never beats again
    assert rows(database, ProcessKind.DELIVER) == [dead]
    time.sleep(0.3)
    assert rows(database, ProcessKind.DELIVER, stale=0.2) == []  # stale: ignored
    assert rows(database, ProcessKind.DELIVER) == [dead]  # still stored
    with database.transaction() as session:
        assert prune(session, timedelta(seconds=0.2)) == 1
    assert rows(database) == []


def test_two_live_workers_each_take_half_of_the_rate(database: Database) -> None:
    limiters = [RateLimiter(40.0), RateLimiter(40.0)]
    seen: list[list[int]] = [[], []]

    def share(n: int) -> Callable[[int], None]:
        def on_beat(workers: int) -> None:
            seen[n].append(workers)
            limiters[n].share(workers)

        return on_beat

    first = Presence(database, ProcessKind.DELIVER, interval=0.1, on_beat=share(0))
    with first:
        assert limiters[0].configured == 40.0  # alone: the whole rate
        with Presence(database, ProcessKind.DELIVER, interval=0.1, on_beat=share(1)):
            assert limiters[1].configured == 20.0  # at its first heartbeat
            time.sleep(0.35)  # the first worker's next heartbeats see the second
            assert limiters[0].configured == 20.0
            # Other kinds do not count as delivery workers.
            with Presence(database, ProcessKind.WEB, interval=0.1):
                time.sleep(0.25)
                assert limiters[0].configured == 20.0
        time.sleep(0.35)
        assert limiters[0].configured == 40.0  # the second left cleanly: the whole rate again
    assert 2 in seen[0] and seen[1][0] == 2


def test_processes_command_lists_the_live_ones(project: Config, database: Database) -> None:
    runner = CliRunner()
    arguments = ["--config", str(project.base_dir / "config.yaml"), "processes"]
    env = {"BRIEFING_SECRET_KEY": KEY.decode()}
    result = runner.invoke(cli, arguments, env=env)
    assert result.exit_code == 0, result.output
    assert "no live processes" in result.output
    with Presence(database, ProcessKind.DELIVER, interval=5, detail={"connections": 4}):
        result = runner.invoke(cli, arguments, env=env)
    assert result.exit_code == 0, result.output
    assert "deliver" in result.output and "connections=4" in result.output
