"""The timezone list, frequencies in words and the first edition's time, as readers see them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from briefing.web.reader import describe_frequency, first_edition, read_zone_tab, zone_choices

ZONE_TAB = """# tzdb timezone descriptions
#country-code\tcoordinates\tTZ\tcomments
IN\t+2232+08822\tAsia/Kolkata
AU\t-3352+15113\tAustralia/Sydney\tNew South Wales (most areas)
"""


def test_the_system_zone_list_has_no_aliases() -> None:
    zones = zone_choices()
    assert zones[0] == "UTC" and len(zones) == len(set(zones))
    assert "Asia/Kolkata" in zones and "Europe/Kyiv" in zones
    for alias in ("Asia/Calcutta", "Europe/Kiev", "US/Eastern", "Etc/GMT+5", "GB"):
        assert alias not in zones


def test_the_list_is_read_from_zone_tab(tmp_path: Path) -> None:
    (tmp_path / "zone.tab").write_text(ZONE_TAB, encoding="utf-8")
    assert read_zone_tab(tmp_path / "zone.tab") == ("Asia/Kolkata", "Australia/Sydney")
    assert zone_choices((str(tmp_path),)) == ("UTC", "Asia/Kolkata", "Australia/Sydney")


def test_without_zone_tab_the_regional_zones_are_offered(tmp_path: Path) -> None:
    zones = zone_choices((str(tmp_path),))
    assert zones[0] == "UTC" and "Europe/London" in zones
    assert not any(zone.startswith(("US/", "Etc/", "SystemV/")) for zone in zones)


def test_frequencies_in_words() -> None:
    assert describe_frequency("daily") == "every day"
    assert describe_frequency("weekdays") == "Monday to Friday"
    assert describe_frequency("weekly:sun") == "every Sunday"


def test_the_first_edition_in_the_readers_zone() -> None:
    thursday_evening_in_sydney = datetime(2026, 11, 26, 7, 5, tzinfo=UTC)
    assert first_edition("Australia/Sydney", "07:00", "daily", thursday_evening_in_sydney) == (
        "Friday 27 November at 07:00 (Australia/Sydney)"
    )
    assert first_edition("Europe/London", "07:00", "weekdays", thursday_evening_in_sydney) == (
        "Friday 27 November at 07:00 (Europe/London)"
    )
    # The day the clocks go forward in London: 01:30 does not exist, the first minute after does.
    spring = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert first_edition("Europe/London", "01:30", "daily", spring) == (
        "Sunday 29 March at 02:00 (Europe/London)"
    )
