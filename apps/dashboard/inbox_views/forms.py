"""Forms of the inbox pages: list filters, the reply box, status and tags, and an inbox's
web-chat widget settings."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.utils import timezone

from apps.agents.models import Agent
from apps.conversations.models import Conversation, Inbox

MAX_REPLY_CHARS = 10_000
MAX_TAGS = 20
MAX_TAG_CHARS = 40
MAX_ORIGINS = 50
PRE_CHAT_FIELDS = [("name", "Name"), ("email", "Email"), ("phone", "Phone")]
WIDGET_FIELDS = (
    "title",
    "greeting",
    "color",
    "text_color",
    "position",
    "allowed_origins",
    "pre_chat_fields",
    "business_hours_message",
    "identity_required",
)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_COLOR = r"^#[0-9a-fA-F]{6}$"


class FlagInput(forms.CheckboxInput):
    """A checkbox that sends "1". The raw value is kept, so `unread=banana` is a form error
    rather than a truthy string."""

    def __init__(self) -> None:
        super().__init__(check_test=lambda value: value == "1")

    def format_value(self, value: Any) -> str:
        return "1"

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return str(data.get(name) or "")


class InboxFilterForm(forms.Form):
    """The inbox list's filters (GET). Every field is optional; an unknown value is an error
    the page shows, not a silently ignored filter."""

    status = forms.ChoiceField(
        choices=[*Conversation.Status.choices, ("any", "Any status")], required=False, label="Status"
    )
    channel = forms.ChoiceField(choices=[("", "Any channel"), *Inbox.Channel.choices], required=False)
    inbox = forms.ChoiceField(required=False)
    assignee = forms.ChoiceField(
        choices=[("anyone", "Anyone"), ("me", "Me"), ("unassigned", "Unassigned")], required=False
    )
    owner = forms.ChoiceField(
        choices=[("", "AI or human"), *[(k, v) for k, v in Conversation.Owner.choices]],
        required=False,
        label="Handled by",
    )
    unread = forms.ChoiceField(
        choices=[("", "All"), ("1", "Unread only")], required=False, widget=FlagInput, label="Unread only"
    )
    page = forms.IntegerField(min_value=1, max_value=100_000, required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inboxes = Inbox.objects.order_by("name").values_list("id", "name")
        choices = [("", "Any inbox"), *[(str(pk), name) for pk, name in inboxes]]
        self.fields["inbox"].choices = choices  # type: ignore[attr-defined]

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "status": data.get("status") or Conversation.Status.OPEN,
            "channel": data.get("channel") or "",
            "inbox_id": int(data["inbox"]) if data.get("inbox") else None,
            "assignee": data.get("assignee") or "anyone",
            "owner": data.get("owner") or "",
            "unread": data.get("unread") == "1",
        }


class ReplyForm(forms.Form):
    role = forms.ChoiceField(
        choices=[("agent", "Reply to the visitor"), ("note", "Private note")],
        initial="agent",
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose a reply or a private note."},
    )
    text = forms.CharField(
        max_length=MAX_REPLY_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write a message first."},
    )
    client_id = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)

    def clean_client_id(self) -> str | None:
        value = str(self.cleaned_data.get("client_id") or "")
        if not value:
            return None
        if not _CLIENT_ID.match(value):
            raise forms.ValidationError("Reload the page and send again.")
        return "staff-" + value[:58]


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Conversation.Status.choices)
    snoozed_until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        label="Snoozed until (UTC)",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        until = data.get("snoozed_until")
        if data.get("status") == Conversation.Status.SNOOZED:
            if until is None:
                self.add_error("snoozed_until", "Choose until when to snooze the conversation.")
            elif until <= timezone.now():
                self.add_error("snoozed_until", "Choose a time in the future.")
            elif until > timezone.now() + timedelta(days=366):
                self.add_error("snoozed_until", "Snooze for at most a year.")
        else:
            data["snoozed_until"] = None
        return data


class TagsForm(forms.Form):
    tags = forms.CharField(
        max_length=MAX_TAGS * (MAX_TAG_CHARS + 2), required=False, help_text="Comma-separated, e.g. billing, vip."
    )

    def clean_tags(self) -> list[str]:
        tags = [t.strip() for t in str(self.cleaned_data.get("tags") or "").split(",") if t.strip()]
        too_long = [t for t in tags if len(t) > MAX_TAG_CHARS]
        if too_long:
            raise forms.ValidationError(f"A tag has at most {MAX_TAG_CHARS} characters ({too_long[0][:20]}…).")
        if len({t.lower() for t in tags}) > MAX_TAGS:
            raise forms.ValidationError(f"A conversation has at most {MAX_TAGS} tags.")
        return tags


def _origins(text: str) -> list[str]:
    """One origin per line: scheme://host[:port], normalised the way the widget socket
    compares them (lower case, no trailing slash). `*` allows every site."""
    origins: list[str] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().rstrip("/")
        if not line:
            continue
        if line == "*":
            origins.append("*")
            continue
        try:
            parts = urlsplit(line)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            errors.append(f"Line {number}: write an origin such as https://shop.example (no path).")
            continue
        default_port = {"http": 80, "https": 443}[parts.scheme]  # browsers leave it out of Origin
        origin = (f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port and port != default_port else "")).lower()
        if origin not in origins:
            origins.append(origin)
    if errors:
        raise forms.ValidationError(errors)
    if len(origins) > MAX_ORIGINS:
        raise forms.ValidationError(f"At most {MAX_ORIGINS} origins.")
    return origins


class InboxForm(forms.Form):
    """An inbox: its name and AI agent, and for web chat the widget's settings."""

    name = forms.CharField(max_length=120)
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.order_by("name"),
        required=False,
        empty_label="No AI agent: every conversation waits for a human",
        label="AI agent",
    )
    title = forms.CharField(max_length=80, required=False, help_text="The widget's header. Empty: the inbox name.")
    greeting = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="First message visitors see. Empty: the agent's greeting.",
    )
    color = forms.RegexField(
        _COLOR,
        initial="#2563eb",
        widget=forms.TextInput(attrs={"type": "color"}),
        label="Accent colour",
        error_messages={"invalid": "Pick a colour (#rrggbb)."},
    )
    text_color = forms.RegexField(
        _COLOR,
        initial="#ffffff",
        widget=forms.TextInput(attrs={"type": "color"}),
        label="Text colour on the accent",
        error_messages={"invalid": "Pick a colour (#rrggbb)."},
    )
    position = forms.ChoiceField(choices=[("right", "Bottom right"), ("left", "Bottom left")], initial="right")
    allowed_origins = forms.CharField(
        required=False,
        max_length=MAX_ORIGINS * 260,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://www.example.com"}),
        help_text="Sites that may embed the widget, one per line (https://shop.example). "
        "The workspace's own address always may; * allows any site.",
    )
    pre_chat_fields = forms.MultipleChoiceField(
        choices=PRE_CHAT_FIELDS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Ask before the chat starts",
    )
    business_hours_message = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Business-hours message",
        help_text="Shown in the widget, e.g. 'We reply Mon-Fri 9:00-17:00'.",
    )
    identity_required = forms.BooleanField(
        required=False,
        label="Only signed-in users of my site may chat",
        help_text="The widget opens a chat only with an identity your site signs (see 'Verify who visitors are').",
    )

    def __init__(self, *args: Any, web: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not web:
            for name in WIDGET_FIELDS:
                del self.fields[name]

    def clean_allowed_origins(self) -> list[str]:
        return _origins(str(self.cleaned_data.get("allowed_origins") or ""))

    def widget_settings(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in WIDGET_FIELDS if k in self.cleaned_data}

    @staticmethod
    def initial_for(inbox: Inbox) -> dict[str, Any]:
        settings = inbox.settings if isinstance(inbox.settings, dict) else {}
        initial: dict[str, Any] = {"name": inbox.name, "agent": inbox.agent_id}
        for key in WIDGET_FIELDS:
            if key in settings:
                initial[key] = settings[key]
        initial["allowed_origins"] = "\n".join(str(o) for o in settings.get("allowed_origins") or [])
        return initial
