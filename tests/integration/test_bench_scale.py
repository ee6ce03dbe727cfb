"""The scale benchmark's own parts: its subscriber list imports cleanly and its table adds up."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from briefing.audience.imports import import_subscribers
from briefing.config import load_config
from briefing.store import open_database

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@cache
def load_scale() -> ModuleType:
    """Import benchmarks/scale.py (a script beside its helper module, not a package)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("bench_scale", BENCHMARKS / "scale.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_generated_list_imports_every_row_with_variety(tmp_path: Path) -> None:
    scale = load_scale()
    rows = scale.write_subscribers(tmp_path / "subscribers.csv", 60)
    config_path = scale.write_config(
        tmp_path / "config.yaml", f"sqlite:///{tmp_path / 'b.db'}", 2525, 8
    )
    config = load_config(config_path)
    database = open_database(config.database)
    try:
        report = import_subscribers(config, database, rows, datetime(2026, 12, 6, 6, tzinfo=UTC))
    finally:
        database.dispose()

    assert not report.errors and not report.refused
    assert report.created == 60
    with rows.open(encoding="utf-8") as stream:
        table = list(csv.DictReader(stream))
    addresses = Counter(row["email"].lower() for row in table)
    assert set(addresses.values()) == {1, 2}  # some readers take two briefings
    assert {row["briefing"] for row in table} == {"daily", "markets", "morgen"}
    assert len({row["timezone"] for row in table}) >= 5
    assert len({row["frequency"] for row in table}) >= 3
    assert len({row["sections"] for row in table}) >= 5


def test_table_gives_medians_ratios_and_names_what_is_missing() -> None:
    scale = load_scale()
    results = scale.Results()
    for seconds in (10.0, 20.0, 30.0):
        results.add(
            scale.SEND, "sqlite", 50, scale.Run(seconds, 100.0 + seconds, 1_000, seconds / 2)
        )
        results.add(scale.SOURCE, "sqlite", 50, scale.Run(1.0, 0.0, 1_000))
    results.add(scale.IMPORT, "sqlite", 50, scale.Run(4.0, 90.0, 50))
    results.unavailable[scale.DELIVER] = "no deliver command"

    printed = scale.table(results, 8)

    send = next(line for line in printed.splitlines() if line.startswith("| send --now"))
    cells = [cell.strip() for cell in send.strip("|").split("|")]
    # median wall 20 s and CPU 10 s; largest peak RSS; 1,000 / 20 s = 50 msg/s against 1,000
    assert cells[3:] == ["20.0", "10.0", "130", "50 msgs", "0.05"]
    deliver = next(line for line in printed.splitlines() if line.startswith("| deliver --exit"))
    assert deliver.count("n/a") == 5
    assert "n/a: no deliver command" in printed
    assert "smtp-source -s 8 -d" in printed


def test_crash_phase_config_sets_the_lease_and_phases_are_checked(tmp_path: Path) -> None:
    scale = load_scale()
    path = scale.write_config(
        tmp_path / "config.yaml", f"sqlite:///{tmp_path / 'b.db'}", 2525, 8, lease=30
    )
    assert load_config(path).delivery.lease == 30
    plain = scale.write_config(tmp_path / "plain.yaml", f"sqlite:///{tmp_path / 'b.db'}", 2525, 8)
    assert load_config(plain).delivery.lease == 120

    assert scale.parse_phases("crash, source") == ["crash", "source"]
    with pytest.raises(argparse.ArgumentTypeError, match=r"explode.*known: split"):
        scale.parse_phases("crash,explode")
