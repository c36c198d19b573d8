"""Routing in the tenant's schema: teams (members with capacity, assignment strategy,
business hours, SLA targets), intents, routing rules and SLA events.
See docs/subsystems/routing.md."""

from __future__ import annotations

from django.conf import settings
from django.db import models


def default_hours() -> dict[str, object]:
    """Always open: a new workspace works without configuring anything."""
    return {"timezone": "UTC", "weekly": {}, "holidays": [], "always_open": True}


class Team(models.Model):
    class Strategy(models.TextChoices):
        ROUND_ROBIN = "round_robin", "Round robin"
        LEAST_BUSY = "least_busy", "Least busy"
        MANUAL = "manual", "Manual only"

    name = models.CharField(max_length=120, unique=True)
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.ROUND_ROBIN)
    # {"timezone": "Europe/Amsterdam", "weekly": {"mon": [["09:00", "17:30"]], ...},
    #  "holidays": ["2026-12-25", ...], "always_open": false}
    business_hours = models.JSONField(default=default_hours, blank=True)
    out_of_hours_message = models.CharField(max_length=500, blank=True)
    first_response_minutes = models.PositiveIntegerField(default=15)
    resolution_minutes = models.PositiveIntegerField(default=24 * 60)
    rr_last_user_id = models.IntegerField(null=True, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class TeamMember(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    capacity = models.PositiveSmallIntegerField(default=5, help_text="Open conversations at most.")

    class Meta:
        ordering = ["team_id", "user_id"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="team_member_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.team_id}"


class Intent(models.Model):
    name = models.CharField(max_length=80, unique=True)
    examples = models.JSONField(default=list, blank=True)
    keywords = models.JSONField(default=list, blank=True)
    threshold = models.FloatField(default=0.55, help_text="Least similarity for a match.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoutingRule(models.Model):
    """Conditions (all optional, all must hold) → a target (an AI agent or a team).
    Rules are tried in `position` order; the first match wins."""

    name = models.CharField(max_length=120)
    position = models.PositiveIntegerField(default=0)
    intent = models.ForeignKey(Intent, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")
    channel = models.CharField(max_length=10, blank=True)
    language = models.CharField(max_length=12, blank=True)
    contact_attribute = models.CharField(max_length=40, blank=True)
    contact_value = models.CharField(max_length=200, blank=True)
    hours = models.CharField(
        max_length=10, default="any", choices=[("any", "Any time"), ("open", "Open hours"), ("closed", "Closed")]
    )
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class SLAEvent(models.Model):
    class Kind(models.TextChoices):
        FIRST_RESPONSE = "first_response", "First response"
        RESOLUTION = "resolution", "Resolution"

    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="sla_events")
    team = models.ForeignKey(Team, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    due_at = models.DateTimeField()
    breached_at = models.DateTimeField(null=True, blank=True)
    met_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at"]
        indexes = [models.Index(fields=["breached_at", "met_at", "due_at"], name="sla_open_due")]
        constraints = [models.UniqueConstraint(fields=["conversation", "kind"], name="sla_event_unique")]

    def __str__(self) -> str:
        return f"{self.kind} for {self.conversation_id}"
