"""AI agents in the tenant's schema: their settings, the versioned prompt, the tenant's
provider credentials (encrypted) and AI usage counters for quotas. See
docs/subsystems/agents.md."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.knowledge.models import KnowledgeBase

TOOL_NAMES = ("search_knowledge", "capture_lead", "escalate_to_human", "set_attributes")


def default_tools() -> list[str]:
    return list(TOOL_NAMES)


def default_escalation_policy() -> dict[str, object]:
    return {
        "on_request": True,
        "abstentions": {"enabled": True, "threshold": 2},
        "max_turns": {"enabled": False, "threshold": 12},
        "negative_sentiment": {"enabled": True, "threshold": -0.5},
        "vip": {"enabled": False},
        "keywords": {"enabled": False, "words": []},
    }


class Agent(models.Model):
    """An AI agent. Fields that shape the prompt (instructions, guidance rules, variables,
    greeting, language, model settings) are versioned: every change that touches them makes a
    new `PromptVersion`, and `prompt_version` names the current one."""

    class Provider(models.TextChoices):
        OFFLINE = "offline", "Offline responder"
        OPENAI = "openai", "OpenAI (or compatible)"

    name = models.CharField(max_length=120)
    instructions = models.TextField(blank=True, max_length=20_000)
    greeting = models.CharField(max_length=500, blank=True)
    language = models.CharField(max_length=12, default="en")
    variables = models.JSONField(default=dict, blank=True)
    guidance_rules = models.JSONField(default=list, blank=True)
    knowledge_bases = models.ManyToManyField(KnowledgeBase, blank=True, related_name="agents")
    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.OFFLINE)
    model = models.CharField(max_length=100, blank=True)
    temperature = models.FloatField(default=0.2)
    max_tokens = models.PositiveIntegerField(default=512)
    tools = models.JSONField(default=default_tools, blank=True)
    escalation_policy = models.JSONField(default=default_escalation_policy, blank=True)
    min_similarity = models.FloatField(default=0.3)
    top_k = models.PositiveSmallIntegerField(default=12)
    is_active = models.BooleanField(default=True)
    prompt_version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


# Fields whose change makes a new prompt version (they change what the model is told).
VERSIONED_FIELDS = (
    "name",
    "instructions",
    "greeting",
    "language",
    "variables",
    "guidance_rules",
    "provider",
    "model",
    "temperature",
    "max_tokens",
    "tools",
    "min_similarity",
    "top_k",
)
SETTABLE_FIELDS = (*VERSIONED_FIELDS, "escalation_policy", "is_active")


class PromptVersion(models.Model):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    created_by_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["agent", "number"], name="agents_version_unique")]

    def __str__(self) -> str:
        return f"{self.agent} v{self.number}"


class ProviderCredential(models.Model):
    """A tenant's credentials for one LLM provider. The key is encrypted at rest
    (syntera/crypto.py) and never returned by the API; `key_hint` shows its last characters."""

    provider = models.CharField(max_length=20, unique=True)
    api_key_encrypted = models.TextField(blank=True)
    key_hint = models.CharField(max_length=12, blank=True)
    base_url = models.URLField(max_length=500, blank=True)
    organization = models.CharField(max_length=100, blank=True)
    updated_by_label = models.CharField(max_length=254, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.provider


class UsageCounter(models.Model):
    """AI requests and tokens per day, for the tenant's quota."""

    day = models.DateField(unique=True)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"AI usage {self.day}"


class KnowledgeGap(models.Model):
    """A question an agent could not answer from its knowledge (it abstained), counted per
    distinct wording, with the words the knowledge never mentions: what to write next.
    Dismissing hides it until it is asked again."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="knowledge_gaps")
    key = models.CharField(max_length=64)  # the normalised question's hash
    question = models.CharField(max_length=500)
    unknown_words = models.JSONField(default=list, blank=True)
    channel = models.CharField(max_length=20, blank=True)
    count = models.PositiveIntegerField(default=1)
    first_asked_at = models.DateTimeField(auto_now_add=True)
    last_asked_at = models.DateTimeField()
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-count", "-last_asked_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["agent", "key"], name="agents_gap_unique")]
        indexes = [models.Index(fields=["agent", "dismissed_at", "-count"])]

    def __str__(self) -> str:
        return self.question[:80]


# The summed counters of AgentDailyStats (slowest_ms is a maximum).
STATS_COUNTS = (
    "turns",
    "answered",
    "abstained",
    "escalated",
    "unanswered",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "helpful",
    "unhelpful",
)


class AgentDailyStats(models.Model):
    """What an agent did on one day (UTC) on one channel: its turns by decision, the tokens
    and the time they took, and the verdicts visitors gave its answers. Every turn that
    reaches a visitor adds to it (not the test chat)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="daily_stats")
    day = models.DateField()
    channel = models.CharField(max_length=20, blank=True)
    turns = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    abstained = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    unanswered = models.PositiveIntegerField(default=0)  # abstained for want of knowledge (the gaps)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    latency_ms = models.PositiveBigIntegerField(default=0)  # summed over the turns
    slowest_ms = models.PositiveIntegerField(default=0)
    helpful = models.PositiveIntegerField(default=0)  # visitors' verdicts given that day
    unhelpful = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "channel"]
        constraints = [models.UniqueConstraint(fields=["agent", "day", "channel"], name="agents_daily_stats_unique")]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.day} {self.channel}"


class BatchTest(models.Model):
    """A batch of questions put to an agent as a dry run (nothing stored as a conversation):
    what it would answer to each, with sources, and whether it cited the source expected."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="batch_tests")
    prompt_version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # [{"question", "expected"}] as given; results: one entry per question answered so far.
    questions = models.JSONField(default=list)
    results = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_by_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Batch test {self.pk} of agent {self.agent_id}"
