"""config.yaml: strict, documented, errors with the file and key path."""

from __future__ import annotations

import subprocess
import sys
from datetime import time, timedelta
from pathlib import Path

import pytest

from briefing.config import Config, load_config
from briefing.errors import ConfigError
from tests.support.factories import REPO, config_dict, write_config


def problems(tmp_path: Path, data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, data))
    assert str(tmp_path / "config.yaml") in str(caught.value)
    return caught.value.problems


def test_repo_config_is_valid() -> None:
    config = load_config(REPO / "config.yaml")
    assert set(config.briefings) == {"daily", "markets"}
    assert config.briefings["daily"].send_time == time(7, 0)
    assert config.sections["sport"].lookback == timedelta(hours=36)


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    data = config_dict()
    data["briefings"]["daily"]["sendtime"] = "07:00"
    assert problems(tmp_path, data) == [
        "briefings.daily.sendtime: unknown key (check its spelling and indentation)"
    ]


def test_bad_values_say_what_was_expected(tmp_path: Path) -> None:
    data = config_dict()
    daily = data["briefings"]["daily"]
    daily.update(send_time="7am", timezone="Mars/Olympus", frequency="hourly", deadline="soon")
    found = problems(tmp_path, data)
    assert "briefings.daily.send_time: expected a time of day as HH:MM, got '7am'" in found
    assert any(p.startswith("briefings.daily.timezone: expected an IANA timezone") for p in found)
    assert any(p.startswith("briefings.daily.frequency: expected daily, weekdays") for p in found)
    assert any(p.startswith("briefings.daily.deadline: expected a duration") for p in found)


def test_missing_required_key(tmp_path: Path) -> None:
    data = config_dict()
    del data["site"]["postal_address"]
    assert problems(tmp_path, data) == ["site.postal_address: required key is missing"]


def test_unknown_section_in_briefing(tmp_path: Path) -> None:
    data = config_dict()
    data["briefings"]["daily"]["sections"].append("weather")
    (found,) = problems(tmp_path, data)
    assert "briefings.daily.sections.3: unknown section 'weather'" in found


def test_related_threshold_must_be_below_fold_threshold(tmp_path: Path) -> None:
    data = config_dict()
    data["briefings"]["daily"].update(related_threshold=0.3, fold_threshold=0.2)
    (found,) = problems(tmp_path, data)
    assert found.startswith("briefings.daily: related_threshold (0.3) must be below fold_threshold")
    data["briefings"]["daily"].update(related_threshold=0.1, related_window="1w")
    daily = load_config(write_config(tmp_path, data)).briefings["daily"]
    assert (daily.related_threshold, daily.related_window) == (0.1, timedelta(weeks=1))


def test_public_archive_is_off_by_default_and_only_a_yaml_boolean(tmp_path: Path) -> None:
    data = config_dict()
    assert load_config(write_config(tmp_path, data)).briefings["daily"].public_archive is False
    data["briefings"]["daily"]["public_archive"] = "yes"
    (found,) = problems(tmp_path, data)
    assert found.startswith("briefings.daily.public_archive: ")
    assert "bool" in found
    data["briefings"]["daily"]["public_archive"] = True
    assert load_config(write_config(tmp_path, data)).briefings["daily"].public_archive is True


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("site:\n  name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "config.yaml")
    assert "line 3" in caught.value.problems[0] or "line 2" in caught.value.problems[0]


def test_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(tmp_path / "site", config_dict()))
    monkeypatch.chdir(tmp_path)
    assert config.database == f"sqlite:///{tmp_path / 'site' / 'var' / 'briefing.db'}"
    assert config.outbox_path == tmp_path / "site" / "var" / "outbox"
    relative = load_config(
        write_config(tmp_path / "other", config_dict(database_url="sqlite:///data/b.db"))
    )
    assert relative.database == f"sqlite:///{tmp_path / 'other' / 'data' / 'b.db'}"


def test_unquoted_yaml_time_is_read_as_clock_time(tmp_path: Path) -> None:
    path = write_config(tmp_path, config_dict())
    path.write_text(
        path.read_text()
        .replace("send_time: 07:00", "send_time: 07:30")
        .replace("send_time: '07:00'", "send_time: 07:30")
    )
    assert load_config(path).briefings["daily"].send_time == time(7, 30)


def test_every_field_is_documented() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            annotation = field.annotation
            for candidate in (*getattr(annotation, "__args__", ()), annotation):
                if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
                    missing.extend(walk(candidate))
        return missing

    assert walk(Config) == []


def test_config_check_cli(tmp_path: Path) -> None:
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "briefing",
            "--config",
            str(REPO / "config.yaml"),
            "config",
            "check",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout
    data = config_dict()
    data["site"]["base_url"] = "ftp://nope"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "briefing",
            "--config",
            str(write_config(tmp_path, data)),
            "config",
            "check",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "site.base_url: expected an http(s) URL, got 'ftp://nope'" in bad.stderr
    assert "hint:" in bad.stderr
    assert "Traceback" not in bad.stderr
