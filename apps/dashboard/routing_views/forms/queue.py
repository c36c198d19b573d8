"""The queue's and the SLA page's filters, manual assignment and presence (routing pages)."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.routing.models import SLAEvent, Team


class SLAFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[("", "Any state"), ("open", "Open"), ("met", "Met"), ("breached", "Breached")], required=False
    )
    kind = forms.ChoiceField(choices=[("", "Any kind"), *SLAEvent.Kind.choices], required=False)
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False, empty_label="Any team")
    page = forms.IntegerField(min_value=1, max_value=100_000, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.order_by("name")  # type: ignore[attr-defined]


class QueueFilterForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False, empty_label="All teams")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.order_by("name")  # type: ignore[attr-defined]


class AssignForm(forms.Form):
    user = forms.TypedChoiceField(coerce=int, label="Assign to")

    def __init__(self, *args: Any, staff: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].choices = [  # type: ignore[attr-defined]
            (m.user_id, m.user.full_name or m.user.email) for m in staff
        ]


class PresenceForm(forms.Form):
    status = forms.ChoiceField(choices=[("online", "Online"), ("away", "Away")])
