from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.conversations.models import Conversation, Inbox

from .. import hours
from ..models import Intent, RoutingRule, SLAEvent, Team

PRESENCE_CHOICES = ["online", "away", "offline"]
HOURS_CHOICES = ["any", "open", "closed"]
INTERVAL_HELP = 'Local wall-clock times, e.g. ["09:00", "17:30"]; "24:00" is midnight.'


# --- teams ------------------------------------------------------------------------------------


class BusinessHoursField(serializers.Serializer):
    timezone = serializers.CharField(max_length=64, default="UTC", help_text="An IANA time zone.")
    weekly = serializers.DictField(
        child=serializers.ListField(
            child=serializers.ListField(
                child=serializers.CharField(max_length=5), min_length=2, max_length=2, help_text=INTERVAL_HELP
            ),
            max_length=12,
        ),
        required=False,
        default=dict,
        help_text='Opening intervals per day: keys "mon" ... "sun"; a missing day is closed.',
    )
    holidays = serializers.ListField(
        child=serializers.CharField(max_length=10),
        max_length=366,
        required=False,
        default=list,
        help_text="Dates (YYYY-MM-DD) closed all day.",
    )
    always_open = serializers.BooleanField(
        required=False, help_text="Open around the clock; defaults to true when no weekly hours are given."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The reasons (unknown zone, a day or time that cannot be read, an interval that ends
        # before it starts) come from the service, as `business_hours` errors.
        if "always_open" not in attrs:
            attrs["always_open"] = not any(attrs.get("weekly") or {})
        return attrs


class BusinessHoursOutput(serializers.Serializer):
    timezone = serializers.CharField()
    weekly = serializers.DictField(
        child=serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    )
    holidays = serializers.ListField(child=serializers.CharField())
    always_open = serializers.BooleanField()


class TeamMemberInput(serializers.Serializer):
    user = serializers.IntegerField(min_value=1)
    capacity = serializers.IntegerField(min_value=1, max_value=100, default=5)


class TeamMemberOutput(serializers.Serializer):
    user = serializers.IntegerField()
    email = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    capacity = serializers.IntegerField()
    open_conversations = serializers.IntegerField()
    presence = serializers.ChoiceField(choices=PRESENCE_CHOICES)


class TeamOutput(serializers.ModelSerializer):
    business_hours = serializers.SerializerMethodField()
    members = serializers.SerializerMethodField()
    open_now = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = [
            "id",
            "name",
            "strategy",
            "business_hours",
            "open_now",
            "out_of_hours_message",
            "first_response_minutes",
            "resolution_minutes",
            "is_default",
            "members",
            "created_at",
        ]

    @extend_schema_field(BusinessHoursOutput)
    def get_business_hours(self, team: Team) -> dict[str, Any]:
        try:
            return hours.validate(team.business_hours)
        except hours.HoursError:  # stored before validation existed: show it as closed
            return {"timezone": "UTC", "weekly": {}, "holidays": [], "always_open": False}

    @extend_schema_field(TeamMemberOutput(many=True))
    def get_members(self, team: Team) -> list[dict[str, Any]]:
        from ..selectors import team_members

        return [
            {
                "user": m.user_id,
                "email": m.email,
                "name": m.name,
                "capacity": m.capacity,
                "open_conversations": m.load,
                "presence": m.status,
            }
            for m in team_members(team)
        ]

    @extend_schema_field(serializers.BooleanField())
    def get_open_now(self, team: Team) -> bool:
        from ..selectors import team_is_open

        try:
            return team_is_open(team)
        except Exception:  # unreadable stored hours
            return False


class TeamInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    strategy = serializers.ChoiceField(choices=Team.Strategy.choices, default=Team.Strategy.ROUND_ROBIN)
    business_hours = BusinessHoursField(required=False)
    out_of_hours_message = serializers.CharField(max_length=500, required=False, allow_blank=True)
    first_response_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, required=False)
    resolution_minutes = serializers.IntegerField(min_value=1, max_value=90 * 24 * 60, required=False)
    is_default = serializers.BooleanField(required=False)
    members = TeamMemberInput(
        many=True,
        required=False,
        help_text="The full list of members with their capacity; an empty list stands for all staff.",
    )

    def validate_name(self, value: str) -> str:
        name = " ".join(value.split())
        if not name:
            raise serializers.ValidationError("A team needs a name.")
        team = self.context.get("team")
        clash = Team.objects.filter(name__iexact=name)
        if team is not None:
            clash = clash.exclude(pk=team.pk)
        if clash.exists():
            raise serializers.ValidationError("Another team has this name.")
        return name

    def validate_members(self, value: list[dict[str, int]]) -> list[dict[str, int]]:
        if len(value) > 500:
            raise serializers.ValidationError("At most 500 members.")
        users = [m["user"] for m in value]
        if len(set(users)) != len(users):
            raise serializers.ValidationError("Each person is listed once.")
        allowed: set[int] = self.context.get("staff_ids", set())
        unknown = sorted(set(users) - allowed)
        if unknown:
            raise serializers.ValidationError(
                f"Not staff (agent role or above) of this workspace: {', '.join(map(str, unknown[:10]))}."
            )
        return value


class TeamUpdateInput(TeamInput):
    name = serializers.CharField(max_length=120, required=False)
    strategy = serializers.ChoiceField(choices=Team.Strategy.choices, required=False)


# --- intents ----------------------------------------------------------------------------------


def _clean_list(values: list[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        value = " ".join(value.split())
        if value and value not in seen:
            seen.append(value)
    return seen


class IntentOutput(serializers.ModelSerializer):
    examples = serializers.ListField(child=serializers.CharField())
    keywords = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Intent
        fields = ["id", "name", "examples", "keywords", "threshold", "created_at"]


class IntentInput(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    examples = serializers.ListField(
        child=serializers.CharField(max_length=500, allow_blank=True), max_length=200, required=False, default=list
    )
    keywords = serializers.ListField(
        child=serializers.CharField(max_length=80, allow_blank=True), max_length=100, required=False, default=list
    )
    threshold = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.55)

    def validate_name(self, value: str) -> str:
        name = " ".join(value.split())
        if not name:
            raise serializers.ValidationError("An intent needs a name.")
        intent = self.context.get("intent")
        clash = Intent.objects.filter(name__iexact=name)
        if intent is not None:
            clash = clash.exclude(pk=intent.pk)
        if clash.exists():
            raise serializers.ValidationError("Another intent has this name.")
        return name

    def validate_examples(self, value: list[str]) -> list[str]:
        return _clean_list(value)

    def validate_keywords(self, value: list[str]) -> list[str]:
        return _clean_list(value)


class IntentUpdateInput(IntentInput):
    name = serializers.CharField(max_length=80, required=False)
    examples = serializers.ListField(
        child=serializers.CharField(max_length=500, allow_blank=True), max_length=200, required=False
    )
    keywords = serializers.ListField(
        child=serializers.CharField(max_length=80, allow_blank=True), max_length=100, required=False
    )
    threshold = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)


class IntentDetectInput(serializers.Serializer):
    text = serializers.CharField(max_length=4000)


class IntentDetectOutput(serializers.Serializer):
    intent = serializers.CharField(allow_null=True, help_text="null when no intent reaches its threshold.")
    confidence = serializers.FloatField(allow_null=True)
    by = serializers.ChoiceField(choices=["examples", "keyword"], allow_null=True)


# --- rules ------------------------------------------------------------------------------------


class RoutingRuleOutput(serializers.ModelSerializer):
    class Meta:
        model = RoutingRule
        fields = [
            "id",
            "name",
            "position",
            "intent",
            "channel",
            "language",
            "contact_attribute",
            "contact_value",
            "hours",
            "agent",
            "team",
            "is_active",
        ]


class RoutingRuleInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    position = serializers.IntegerField(
        min_value=0, max_value=100_000, required=False, help_text="Rules are tried in this order; default: last."
    )
    intent = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    channel = serializers.ChoiceField(choices=[("", "Any"), *Inbox.Channel.choices], required=False, allow_blank=True)
    language = serializers.RegexField(
        r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", max_length=12, required=False, allow_blank=True
    )
    contact_attribute = serializers.RegexField(r"^[\w.-]{1,40}$", max_length=40, required=False, allow_blank=True)
    contact_value = serializers.CharField(max_length=200, required=False, allow_blank=True)
    hours = serializers.ChoiceField(choices=HOURS_CHOICES, required=False)
    agent = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    team = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    is_active = serializers.BooleanField(required=False)

    def validate_name(self, value: str) -> str:
        name = " ".join(value.split())
        if not name:
            raise serializers.ValidationError("A rule needs a name.")
        return name

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("contact_value") and not attrs.get("contact_attribute", self.context.get("attribute", "")):
            raise serializers.ValidationError({"contact_attribute": ["Name the attribute the value is compared with."]})
        return attrs


class RoutingRuleUpdateInput(RoutingRuleInput):
    name = serializers.CharField(max_length=120, required=False)


# --- queue, assignment, presence, SLA ---------------------------------------------------------


class QueueEntryOutput(serializers.Serializer):
    conversation = serializers.IntegerField()
    position = serializers.IntegerField(help_text="Place in its team's queue, from 1.")
    priority = serializers.IntegerField()
    waited_seconds = serializers.IntegerField()
    queued_at = serializers.DateTimeField(allow_null=True)
    team = serializers.IntegerField(allow_null=True, help_text="The team it waits for (the default team if none).")
    team_name = serializers.CharField(allow_blank=True)
    channel = serializers.CharField()
    inbox = serializers.IntegerField()
    contact = serializers.IntegerField(allow_null=True)
    intent = serializers.CharField(allow_blank=True)
    preview = serializers.CharField(allow_blank=True)


class AssignInput(serializers.Serializer):
    user = serializers.IntegerField(min_value=1, help_text="A member with the agent role or above.")


class AssignedConversationOutput(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = ["id", "status", "owner", "assignee", "team", "priority", "intent", "intent_confidence"]


class PresenceOutput(serializers.Serializer):
    user = serializers.IntegerField()
    email = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    role = serializers.CharField()
    status = serializers.ChoiceField(choices=PRESENCE_CHOICES)


class PresenceInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=PRESENCE_CHOICES)


class SLAEventOutput(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()

    class Meta:
        model = SLAEvent
        fields = ["id", "conversation", "team", "kind", "due_at", "breached_at", "met_at", "state"]

    @extend_schema_field(serializers.ChoiceField(choices=["open", "met", "breached"]))
    def get_state(self, event: SLAEvent) -> str:
        from ..selectors import sla_state

        return sla_state(event)
