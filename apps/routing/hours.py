"""Business hours: weekly opening intervals in a time zone, with holidays. Pure functions,
tested across time zones, DST changes and holidays. See docs/subsystems/routing.md.

Format (a team's `business_hours`): `{"timezone": "Europe/Amsterdam", "weekly": {"mon":
[["09:00", "17:30"]], "tue": [...], ...}, "holidays": ["2026-12-25"], "always_open": false}`.
Intervals are local wall-clock times; "24:00" ends at midnight; an interval may not cross
midnight (write two). A day missing from `weekly` is closed; a holiday is closed all day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class HoursError(ValueError):
    pass


def _parse_time(value: str) -> time | None:
    """`HH:MM` → time; "24:00" → None (end of day)."""
    if value == "24:00":
        return None
    try:
        hours, minutes = (int(p) for p in value.split(":"))
        return time(hours, minutes)
    except (ValueError, TypeError) as exc:
        raise HoursError(f"{value!r} is not a time like 09:00.") from exc


def validate(hours: dict[str, Any]) -> dict[str, Any]:
    """A cleaned copy of `hours`, or HoursError with a plain reason."""
    if not isinstance(hours, dict):
        raise HoursError("Business hours are an object.")
    tz = str(hours.get("timezone") or "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise HoursError(f"Unknown time zone {tz!r}.") from exc
    weekly: dict[str, list[list[str]]] = {}
    for day, intervals in (hours.get("weekly") or {}).items():
        if day not in DAYS:
            raise HoursError(f"Unknown day {day!r}; use {', '.join(DAYS)}.")
        cleaned = []
        for interval in intervals or []:
            if not isinstance(interval, list | tuple) or len(interval) != 2:
                raise HoursError("Each interval is [start, end].")
            start, end = _parse_time(str(interval[0])), _parse_time(str(interval[1]))
            if start is None or (end is not None and end <= start):
                raise HoursError(f"{interval[0]}-{interval[1]} on {day} ends before it starts.")
            cleaned.append([str(interval[0]), str(interval[1])])
        weekly[day] = cleaned
    holidays = []
    for value in hours.get("holidays") or []:
        try:
            holidays.append(date.fromisoformat(str(value)).isoformat())
        except ValueError as exc:
            raise HoursError(f"{value!r} is not a date like 2026-12-25.") from exc
    return {"timezone": tz, "weekly": weekly, "holidays": holidays, "always_open": bool(hours.get("always_open"))}


def is_open(hours: dict[str, Any], at: datetime) -> bool:
    """Whether `at` (aware) falls inside the opening hours."""
    if hours.get("always_open"):
        return True
    local = at.astimezone(ZoneInfo(str(hours.get("timezone") or "UTC")))
    if local.date().isoformat() in set(hours.get("holidays") or []):
        return False
    for start_s, end_s in (hours.get("weekly") or {}).get(DAYS[local.weekday()], []):
        start, end = _parse_time(start_s), _parse_time(end_s)
        assert start is not None
        now = local.time().replace(tzinfo=None)
        if start <= now and (end is None or now < end):
            return True
    return False


def next_open(hours: dict[str, Any], at: datetime, *, horizon_days: int = 14) -> datetime | None:
    """The next moment at or after `at` when the hours are open (aware, in UTC), or None
    within `horizon_days`. Wall-clock starts that a DST change skips open at the next valid
    instant."""
    if is_open(hours, at):
        return at
    tz = ZoneInfo(str(hours.get("timezone") or "UTC"))
    local = at.astimezone(tz)
    holidays = set(hours.get("holidays") or [])
    for offset in range(horizon_days + 1):
        day = local.date() + timedelta(days=offset)
        if day.isoformat() in holidays:
            continue
        for start_s, _end in sorted((hours.get("weekly") or {}).get(DAYS[day.weekday()], [])):
            start = _parse_time(start_s)
            assert start is not None
            candidate = datetime.combine(day, start, tzinfo=tz)
            # Through UTC: a start inside a spring-forward gap becomes the instant after it.
            candidate_utc = candidate.astimezone(ZoneInfo("UTC"))
            if candidate_utc >= at and is_open(hours, candidate_utc):
                return candidate_utc
    return None
