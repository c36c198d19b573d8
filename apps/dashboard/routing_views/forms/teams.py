"""The team form (routing pages): members with capacity, strategy, business hours, SLA targets."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from django import forms

from apps.routing import hours
from apps.routing.models import Team

from . import lines

DAY_LABELS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
MAX_CAPACITY = 100
MAX_HOLIDAYS = 366
_INTERVAL = re.compile(r"^(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})$")


@lru_cache(maxsize=1)
def timezone_choices() -> list[tuple[str, str]]:
    zones = sorted(z for z in available_timezones() if "/" in z or z == "UTC")
    return [(z, z.replace("_", " ")) for z in zones]


class TeamForm(forms.Form):
    """A team. Members are fields of their own (`member_<user id>`, `capacity_<user id>`),
    one pair per staff member of the workspace."""

    name = forms.CharField(max_length=120)
    strategy = forms.ChoiceField(
        choices=Team.Strategy.choices,
        help_text="Round robin takes turns; least busy picks whoever has the most room; manual only queues.",
    )
    is_default = forms.BooleanField(
        required=False, label="Default team", help_text="Conversations no rule sends elsewhere wait here."
    )
    timezone = forms.ChoiceField(choices=timezone_choices, initial="UTC", label="Time zone")
    always_open = forms.BooleanField(required=False, initial=True, label="Open around the clock")
    mon = forms.CharField(required=False, max_length=200, label="Monday")
    tue = forms.CharField(required=False, max_length=200, label="Tuesday")
    wed = forms.CharField(required=False, max_length=200, label="Wednesday")
    thu = forms.CharField(required=False, max_length=200, label="Thursday")
    fri = forms.CharField(required=False, max_length=200, label="Friday")
    sat = forms.CharField(required=False, max_length=200, label="Saturday")
    sun = forms.CharField(required=False, max_length=200, label="Sunday")
    holidays = forms.CharField(
        required=False,
        max_length=MAX_HOLIDAYS * 12,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Closed all day: one date per line, like 2026-12-25.",
    )
    out_of_hours_message = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Out-of-hours message",
        help_text="Told to visitors who escalate while the team is closed; the next opening time follows.",
    )
    first_response_minutes = forms.IntegerField(
        min_value=1, max_value=7 * 24 * 60, initial=15, label="First response target (minutes)"
    )
    resolution_minutes = forms.IntegerField(
        min_value=1, max_value=90 * 24 * 60, initial=24 * 60, label="Resolution target (minutes)"
    )

    def __init__(self, *args: Any, staff: list[Any], team: Team | None = None, **kwargs: Any) -> None:
        self.staff = staff
        self.team = team
        if team is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(team)
        super().__init__(*args, **kwargs)
        for membership in staff:
            uid = membership.user_id
            self.fields[f"member_{uid}"] = forms.BooleanField(required=False, label=membership.user.email)
            self.fields[f"capacity_{uid}"] = forms.IntegerField(
                min_value=1, max_value=MAX_CAPACITY, initial=5, required=False, label="Capacity"
            )

    @staticmethod
    def initial_for(team: Team) -> dict[str, Any]:
        stored = team.business_hours if isinstance(team.business_hours, dict) else {}
        raw_weekly = stored.get("weekly")
        weekly: dict[str, Any] = raw_weekly if isinstance(raw_weekly, dict) else {}
        initial: dict[str, Any] = {
            "name": team.name,
            "strategy": team.strategy,
            "is_default": team.is_default,
            "timezone": str(stored.get("timezone") or "UTC"),
            "always_open": bool(stored.get("always_open")),
            "holidays": "\n".join(str(d) for d in stored.get("holidays") or []),
            "out_of_hours_message": team.out_of_hours_message,
            "first_response_minutes": team.first_response_minutes,
            "resolution_minutes": team.resolution_minutes,
        }
        for day in DAY_LABELS:
            initial[day] = ", ".join(f"{a}-{b}" for a, b in (weekly.get(day) or []))
        for member in team.members.all():
            initial[f"member_{member.user_id}"] = True
            initial[f"capacity_{member.user_id}"] = member.capacity
        return initial

    def member_rows(self) -> list[dict[str, Any]]:
        """One row per staff member for the template: the checkbox and capacity fields."""
        return [
            {"membership": m, "checkbox": self[f"member_{m.user_id}"], "capacity": self[f"capacity_{m.user_id}"]}
            for m in self.staff
        ]

    def day_fields(self) -> list[Any]:
        return [self[day] for day in DAY_LABELS]

    def _intervals(self, day: str) -> list[list[str]]:
        value = self.cleaned_data.get(day) or ""
        intervals = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            match = _INTERVAL.match(part)
            if not match:
                raise forms.ValidationError(f"“{part[:40]}” is not like 09:00-17:00.")
            intervals.append([match.group(1).zfill(5), match.group(2).zfill(5)])
        return intervals

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("A team needs a name.")
        clash = Team.objects.filter(name__iexact=name)
        if self.team is not None:
            clash = clash.exclude(pk=self.team.pk)
        if clash.exists():
            raise forms.ValidationError("Another team has this name.")
        return name

    def clean_holidays(self) -> list[str]:
        found = []
        for number, line in enumerate(lines(self.cleaned_data.get("holidays", "")), start=1):
            try:
                found.append(date.fromisoformat(line).isoformat())
            except ValueError:
                raise forms.ValidationError(f"Line {number}: “{line[:40]}” is not a date like 2026-12-25.") from None
        if len(found) > MAX_HOLIDAYS:
            raise forms.ValidationError(f"At most {MAX_HOLIDAYS} holidays.")
        return sorted(set(found))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        weekly: dict[str, list[list[str]]] = {}
        for day in DAY_LABELS:
            try:
                intervals = self._intervals(day)
            except forms.ValidationError as exc:
                self.add_error(day, exc)
                continue
            if intervals:
                weekly[day] = intervals
        members = []
        for membership in self.staff:
            uid = membership.user_id
            if data.get(f"member_{uid}"):
                capacity = data.get(f"capacity_{uid}")
                if capacity is None and f"capacity_{uid}" not in self.errors:
                    self.add_error(f"capacity_{uid}", "Give a capacity from 1 to 100.")
                members.append((uid, capacity or 5))
        data["members"] = members
        if self.errors:
            return data
        if not data.get("always_open") and not weekly:
            raise forms.ValidationError("Give the opening hours of at least one day, or tick “Open around the clock”.")
        if data.get("always_open") and weekly:
            self.add_error("always_open", "Untick “Open around the clock” to use the opening hours below.")
            return data
        try:
            data["business_hours"] = hours.validate(
                {
                    "timezone": data.get("timezone") or "UTC",
                    "weekly": weekly,
                    "holidays": data.get("holidays") or [],
                    "always_open": bool(data.get("always_open")),
                }
            )
        except hours.HoursError as exc:
            raise forms.ValidationError(f"Business hours: {exc}") from exc
        return data

    def team_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "strategy": data["strategy"],
            "is_default": data["is_default"],
            "business_hours": data["business_hours"],
            "out_of_hours_message": data["out_of_hours_message"].strip(),
            "first_response_minutes": data["first_response_minutes"],
            "resolution_minutes": data["resolution_minutes"],
        }
