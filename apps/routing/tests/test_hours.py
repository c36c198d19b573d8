"""Business hours at their edges: time zones, DST changes (both directions), holidays,
midnight, and the validation of what admins type."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.routing.hours import HoursError, is_open, next_open, validate

AMSTERDAM = {
    "timezone": "Europe/Amsterdam",
    "weekly": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-25"],
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 7, 1, 7, 0), True),  # 09:00 CEST (UTC+2): opening minute
        (utc(2026, 7, 1, 6, 59), False),  # 08:59 local
        (utc(2026, 7, 1, 14, 59), True),  # 16:59 local
        (utc(2026, 7, 1, 15, 0), False),  # 17:00 local: closed (end is exclusive)
        (utc(2026, 1, 14, 8, 0), True),  # 09:00 CET (UTC+1) in winter
        (utc(2026, 1, 14, 7, 30), False),  # 08:30 local in winter, though 09:30 in summer offset
        (utc(2026, 12, 25, 10, 0), False),  # a Friday, but a holiday
        (utc(2026, 7, 4, 10, 0), False),  # Saturday
    ],
)
def test_is_open_in_the_teams_time_zone(at: datetime, expected: bool) -> None:
    assert is_open(AMSTERDAM, at) is expected


def test_dst_changes() -> None:
    # Europe: clocks go forward on Sunday 2026-03-29 and back on Sunday 2026-10-25.
    hours = {"timezone": "Europe/Amsterdam", "weekly": {"mon": [["09:00", "17:00"]]}}
    assert is_open(hours, utc(2026, 3, 30, 7, 0))  # Monday after spring-forward: 09:00 CEST
    assert not is_open(hours, utc(2026, 3, 30, 6, 30))  # 08:30 CEST, although 07:30 CET would be
    assert is_open(hours, utc(2026, 10, 26, 8, 0))  # Monday after fall-back: 09:00 CET
    assert not is_open(hours, utc(2026, 10, 26, 7, 30))
    # A night shift starting inside the spring-forward gap opens at the first real instant.
    night = {"timezone": "Europe/Amsterdam", "weekly": {"sun": [["02:30", "06:00"]]}}
    opened = next_open(night, utc(2026, 3, 29, 0, 0))
    assert opened is not None and opened == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    assert is_open(night, opened)


def test_next_open_skips_weekends_and_holidays() -> None:
    # Thursday 2026-12-24 at 18:00 local: Friday is Christmas, so Monday 28th 09:00 CET.
    opened = next_open(AMSTERDAM, utc(2026, 12, 24, 17, 0))
    assert opened == utc(2026, 12, 28, 8, 0)
    assert next_open(AMSTERDAM, utc(2026, 7, 1, 8, 0)) == utc(2026, 7, 1, 8, 0)  # already open
    assert next_open({"timezone": "UTC", "weekly": {}}, utc(2026, 7, 1)) is None


def test_midnight_and_other_zones() -> None:
    hours = {"timezone": "America/New_York", "weekly": {"fri": [["20:00", "24:00"]], "sat": [["00:00", "02:00"]]}}
    assert is_open(hours, utc(2026, 7, 4, 3, 59))  # Friday 23:59 EDT
    assert is_open(hours, utc(2026, 7, 4, 4, 0))  # Saturday 00:00 EDT
    assert not is_open(hours, utc(2026, 7, 4, 6, 0))  # Saturday 02:00 EDT
    tokyo = {"timezone": "Asia/Tokyo", "weekly": {"mon": [["09:00", "18:00"]]}}
    assert is_open(tokyo, utc(2026, 7, 6, 0, 0))  # Monday 09:00 JST = Monday 00:00 UTC
    assert not is_open(tokyo, utc(2026, 7, 5, 23, 59))
    assert is_open({"always_open": True}, utc(2026, 1, 1))


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Olympus"},
        {"weekly": {"someday": []}},
        {"weekly": {"mon": [["17:00", "09:00"]]}},
        {"weekly": {"mon": [["9am", "5pm"]]}},
        {"weekly": {"mon": [["09:00"]]}},
        {"holidays": ["25/12/2026"]},
        "always",
    ],
)
def test_validation_gives_plain_reasons(bad: object) -> None:
    with pytest.raises(HoursError):
        validate(bad)  # type: ignore[arg-type]
