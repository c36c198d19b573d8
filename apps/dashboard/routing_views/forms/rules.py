"""The routing rule form (routing pages): conditions, and the team or AI agent it sends to."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.agents.models import Agent
from apps.conversations.models import Inbox
from apps.routing.models import Intent, RoutingRule, Team


def _target_choices() -> list[tuple[str, Any]]:
    teams = [(f"team:{t.pk}", f"Team: {t.name}") for t in Team.objects.order_by("name")]
    agents = [(f"agent:{a.pk}", f"AI agent: {a.name}") for a in Agent.objects.order_by("name")]
    return [("", "Choose…"), ("Teams", teams), ("AI agents", agents)]


class RuleForm(forms.Form):
    name = forms.CharField(max_length=120)
    position = forms.IntegerField(
        min_value=0, max_value=100_000, required=False, help_text="Rules are tried from the lowest; empty: last."
    )
    intent = forms.ModelChoiceField(queryset=Intent.objects.none(), required=False, empty_label="Any intent")
    channel = forms.ChoiceField(choices=[("", "Any channel"), *Inbox.Channel.choices], required=False)
    language = forms.RegexField(
        r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
        max_length=12,
        required=False,
        help_text="A language code such as en or pt-BR; empty: any.",
        error_messages={"invalid": "Use a language code such as en or pt-BR."},
    )
    contact_attribute = forms.RegexField(
        r"^[\w.-]{1,40}$",
        max_length=40,
        required=False,
        label="Contact attribute",
        help_text="e.g. plan or vip; compared with the value below.",
        error_messages={"invalid": "Letters, digits, dots, dashes and underscores only."},
    )
    contact_value = forms.CharField(max_length=200, required=False, label="Attribute value")
    hours = forms.ChoiceField(
        choices=[("any", "Any time"), ("open", "During business hours"), ("closed", "Outside business hours")],
        initial="any",
        label="When",
    )
    target = forms.ChoiceField(label="Send to")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args: Any, rule: RoutingRule | None = None, **kwargs: Any) -> None:
        if rule is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": rule.name,
                "position": rule.position,
                "intent": rule.intent_id,
                "channel": rule.channel,
                "language": rule.language,
                "contact_attribute": rule.contact_attribute,
                "contact_value": rule.contact_value,
                "hours": rule.hours,
                "target": f"team:{rule.team_id}" if rule.team_id else f"agent:{rule.agent_id}",
                "is_active": rule.is_active,
            }
        super().__init__(*args, **kwargs)
        self.fields["intent"].queryset = Intent.objects.order_by("name")  # type: ignore[attr-defined]
        self.fields["target"].choices = _target_choices()  # type: ignore[attr-defined]

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("A rule needs a name.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("contact_value") and not data.get("contact_attribute"):
            self.add_error("contact_attribute", "Name the attribute the value is compared with.")
        return data

    def rule_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        kind, _, pk = data["target"].partition(":")
        fields = {
            "name": data["name"],
            "intent_id": data["intent"].pk if data.get("intent") else None,
            "channel": data.get("channel") or "",
            "language": data.get("language") or "",
            "contact_attribute": data.get("contact_attribute") or "",
            "contact_value": (data.get("contact_value") or "").strip(),
            "hours": data["hours"],
            "team_id": int(pk) if kind == "team" else None,
            "agent_id": int(pk) if kind == "agent" else None,
            "is_active": bool(data.get("is_active")),
        }
        if data.get("position") is not None:
            fields["position"] = data["position"]
        return fields
