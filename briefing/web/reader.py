"""Say things the reader pages share: the timezone list, a frequency, the first edition's time.

The timezone picker lists the zones of the system's ``zone.tab`` (one
canonical name per region, so ``Asia/Kolkata`` and never its alias
``Asia/Calcutta``), plus ``UTC``. Without a ``zone.tab`` on the zone path it
falls back to the installed zones under the nine regional areas, which may
include a few aliases, and says so in the log once.
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

from briefing.domain.calendar import next_send

logger = logging.getLogger(__name__)

AREAS = (
    "Africa/",
    "America/",
    "Antarctica/",
    "Arctic/",
    "Asia/",
    "Atlantic/",
    "Australia/",
    "Europe/",
    "Indian/",
    "Pacific/",
)
WEEKDAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


def read_zone_tab(path: Path) -> tuple[str, ...]:
    """Return the zone names listed in a ``zone.tab`` file (third column), sorted."""
    zones = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            zones.add(fields[2].strip())
    return tuple(sorted(zones))


def zone_choices(search: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Return the timezones offered to readers: ``UTC``, then ``zone.tab``'s zones."""
    for folder in search if search is not None else tuple(zoneinfo.TZPATH):
        tab = Path(folder) / "zone.tab"
        if tab.is_file():
            return ("UTC", *read_zone_tab(tab))
    logger.warning("no zone.tab on the zone path; the timezone list may hold aliases")
    zones = sorted(z for z in available_timezones() if z.startswith(AREAS))
    return ("UTC", *zones)


@lru_cache(maxsize=1)
def timezone_choices() -> tuple[str, ...]:
    """Return :func:`zone_choices` of this system, read once."""
    return zone_choices()


def describe_frequency(frequency: str) -> str:
    """Say a frequency in words: ``every day``, ``Monday to Friday``, ``every Monday``."""
    if frequency == "daily":
        return "every day"
    if frequency == "weekdays":
        return "Monday to Friday"
    return f"every {WEEKDAY_NAMES.get(frequency.partition(':')[2], 'week')}"


@dataclass(frozen=True)
class Timing:
    """A send schedule not stored yet (a sign-up that may be confirmed now)."""

    timezone: str
    send_time: str
    frequency: str
    created_at: datetime


def first_edition(timezone: str, send_time: str, frequency: str, now: datetime) -> str | None:
    """Say when the next edition after ``now`` arrives, in the reader's own zone.

    ``Friday 27 November at 07:00 (Australia/Sydney)``; None if none is due
    within the calendar's horizon.
    """
    upcoming = next_send(Timing(timezone, send_time, frequency, now), now, timedelta(0), set())
    if upcoming is None:
        return None
    local = upcoming.moment.astimezone(ZoneInfo(timezone))
    return f"{local:%A} {local.day} {local:%B} at {local:%H:%M} ({timezone})"
