from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..batch import CHANGES, batch_summary
from ..models import TOOL_NAMES, Agent, BatchTest, KnowledgeGap, PromptVersion, ProviderCredential
from ..selectors import EXPORT_FORMAT, EXPORT_VERSION

_VARIABLES = serializers.DictField(
    child=serializers.CharField(max_length=500, allow_blank=True), required=False, help_text="Template variables."
)


def _check_variables(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 30:
        raise serializers.ValidationError("At most 30 variables.")
    for key in value:
        if not (key.isidentifier() and key.islower() and len(key) <= 40):
            raise serializers.ValidationError(f"Variable names are lower_case identifiers; {key[:40]!r} is not.")
    return value


def _check_policy(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(str(value)) > 5000:
        raise serializers.ValidationError("The escalation policy is a JSON object (at most 5,000 characters).")
    return value


class AgentOutput(serializers.ModelSerializer):
    knowledge_bases: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "instructions",
            "greeting",
            "language",
            "variables",
            "guidance_rules",
            "knowledge_bases",
            "provider",
            "model",
            "temperature",
            "max_tokens",
            "tools",
            "escalation_policy",
            "min_similarity",
            "top_k",
            "is_active",
            "prompt_version",
            "created_at",
            "updated_at",
        ]


class AgentUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    instructions = serializers.CharField(max_length=20_000, required=False, allow_blank=True)
    greeting = serializers.CharField(max_length=500, required=False, allow_blank=True)
    language = serializers.RegexField(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", max_length=12, required=False)
    variables = _VARIABLES
    guidance_rules = serializers.ListField(child=serializers.CharField(max_length=500), max_length=30, required=False)
    knowledge_bases = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=50, required=False)
    provider = serializers.ChoiceField(choices=Agent.Provider.choices, required=False)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    temperature = serializers.FloatField(min_value=0.0, max_value=2.0, required=False)
    max_tokens = serializers.IntegerField(min_value=16, max_value=8192, required=False)
    tools = serializers.ListField(child=serializers.ChoiceField(choices=list(TOOL_NAMES)), required=False)
    escalation_policy = serializers.JSONField(required=False)
    min_similarity = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    top_k = serializers.IntegerField(min_value=1, max_value=20, required=False)
    is_active = serializers.BooleanField(required=False)

    def validate_variables(self, value: dict[str, str]) -> dict[str, str]:
        return _check_variables(value)

    def validate_escalation_policy(self, value: Any) -> dict[str, Any]:
        return _check_policy(value)

    def validate_tools(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class AgentInput(AgentUpdateInput):
    name = serializers.CharField(max_length=120)


class ExportedKnowledgeBase(serializers.Serializer):
    name = serializers.CharField(max_length=200)


class ExportedAgent(AgentInput):
    knowledge_bases = ExportedKnowledgeBase(many=True, required=False, max_length=50)  # type: ignore[assignment,call-arg]


class AgentExport(serializers.Serializer):
    """The portable document: `GET agents/{id}/export` gives it, `POST agents/import` takes it."""

    format = serializers.ChoiceField(choices=[EXPORT_FORMAT])
    version = serializers.ChoiceField(choices=[EXPORT_VERSION], help_text="Of the format.")
    exported_at = serializers.DateTimeField(required=False)
    prompt_version = serializers.IntegerField(required=False, help_text="The exported agent's, for reference.")
    agent = ExportedAgent(help_text="Every setting; knowledge bases by name.")


class AgentImportInput(AgentExport):
    name = serializers.CharField(
        max_length=120, required=False, allow_blank=True, default="", help_text="Instead of the exported name."
    )

    def to_import(self) -> tuple[dict[str, Any], list[str]]:
        """The validated settings (with the name given instead, if any) and the knowledge
        base names, as `services.agent_import` takes them."""
        fields = dict(self.validated_data["agent"])
        names = [kb["name"] for kb in fields.pop("knowledge_bases", [])]
        if self.validated_data["name"].strip():
            fields["name"] = self.validated_data["name"].strip()
        return fields, names


class AgentImportOutput(serializers.Serializer):
    agent = AgentOutput()
    missing_knowledge_bases = serializers.ListField(
        child=serializers.CharField(),
        help_text="Names with no knowledge base here: the agent was created without them.",
    )


class PromptVersionOutput(serializers.ModelSerializer):
    class Meta:
        model = PromptVersion
        fields = ["number", "snapshot", "created_by_label", "created_at"]


class KnowledgeGapOutput(serializers.ModelSerializer):
    class Meta:
        model = KnowledgeGap
        fields = [
            "id",
            "question",
            "count",
            "unknown_words",
            "channel",
            "first_asked_at",
            "last_asked_at",
            "dismissed_at",
        ]


class TestMessage(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    text = serializers.CharField(max_length=settings.AGENT_MAX_INPUT_CHARS, trim_whitespace=True)


class TestInput(serializers.Serializer):
    messages = TestMessage(many=True, allow_empty=False, max_length=100)  # type: ignore[call-arg]
    summary = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    def validate_messages(self, value: list[dict[str, str]]) -> list[dict[str, str]]:
        if value[-1]["role"] != "user":
            raise serializers.ValidationError("The last message must be the visitor's (role user).")
        return value


class CitationOutput(serializers.Serializer):
    source_id = serializers.IntegerField()
    title = serializers.CharField()
    url = serializers.CharField(allow_blank=True)
    chunk_id = serializers.IntegerField()


class TestOutput(serializers.Serializer):
    text = serializers.CharField()
    decision = serializers.ChoiceField(choices=["answered", "abstained", "escalate"])
    citations = CitationOutput(many=True)
    tool_calls = serializers.ListField(child=serializers.DictField())
    summary = serializers.CharField(allow_blank=True)
    audit = serializers.DictField()


class CredentialOutput(serializers.ModelSerializer):
    has_key = serializers.SerializerMethodField()

    class Meta:
        model = ProviderCredential
        fields = ["provider", "has_key", "key_hint", "base_url", "organization", "updated_by_label", "updated_at"]

    def get_has_key(self, obj: ProviderCredential) -> bool:
        return bool(obj.api_key_encrypted)


class CredentialInput(serializers.Serializer):
    api_key = serializers.CharField(max_length=500, required=False, allow_blank=True, default="", write_only=True)
    base_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    organization = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class UsageOutput(serializers.Serializer):
    day = serializers.DateField()
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    request_quota = serializers.IntegerField(help_text="0 means unlimited.")
    token_quota = serializers.IntegerField(help_text="0 means unlimited.")


class StatsQuery(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=366, default=30, help_text="Days up to today (UTC).")


class StatsRow(serializers.Serializer):
    turns = serializers.IntegerField(help_text="AI turns that reached a visitor (the test chat is not counted).")
    answered = serializers.IntegerField()
    abstained = serializers.IntegerField()
    escalated = serializers.IntegerField()
    unanswered = serializers.IntegerField(help_text="Abstentions for want of knowledge (see knowledge-gaps).")
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    slowest_ms = serializers.IntegerField()
    answer_rate = serializers.FloatField(allow_null=True, help_text="Share of the turns; null without turns.")
    abstention_rate = serializers.FloatField(allow_null=True)
    escalation_rate = serializers.FloatField(allow_null=True)
    avg_latency_ms = serializers.IntegerField(allow_null=True)
    helpful = serializers.IntegerField(help_text="Answers visitors marked helpful (on the day they said so).")
    unhelpful = serializers.IntegerField()
    helpful_rate = serializers.FloatField(allow_null=True, help_text="helpful / (helpful + unhelpful).")


class StatsDay(StatsRow):
    day = serializers.DateField()


class StatsChannel(StatsRow):
    channel = serializers.CharField()


class StatsOutput(serializers.Serializer):
    days = serializers.IntegerField()
    since = serializers.DateField()
    until = serializers.DateField()
    totals = StatsRow()
    by_day = StatsDay(many=True)
    by_channel = StatsChannel(many=True)


class DuplicateInput(serializers.Serializer):
    name = serializers.CharField(
        max_length=120, required=False, allow_blank=True, default="", help_text='Defaults to "<name> (copy)".'
    )


class GapAnswerInput(serializers.Serializer):
    answer = serializers.CharField(max_length=20000, help_text="What the agent should say.")
    question = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, default="", help_text="Defaults to the question as asked."
    )
    knowledge_base = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="One of the agent's; defaults to its first."
    )


class GapAnswerOutput(serializers.Serializer):
    source_id = serializers.IntegerField()
    knowledge_base = serializers.IntegerField()
    title = serializers.CharField()
    entries = serializers.IntegerField()


class BatchQuestion(serializers.Serializer):
    question = serializers.CharField(max_length=1000)
    expected = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="", help_text="Title of the source to cite."
    )


class BatchInput(serializers.Serializer):
    questions = serializers.ListField(child=BatchQuestion(), allow_empty=False, max_length=200)


class BatchSummary(serializers.Serializer):
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    answered = serializers.IntegerField()
    abstained = serializers.IntegerField()
    escalate = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Questions whose turn failed (quota, provider).")
    expected = serializers.IntegerField(help_text="Questions given an expected source.")
    matched = serializers.IntegerField(help_text="... whose answer cited it.")
    avg_latency_ms = serializers.IntegerField(allow_null=True)


class BatchResult(serializers.Serializer):
    question = serializers.CharField()
    expected = serializers.CharField()
    decision = serializers.CharField(help_text="answered | abstained | escalate | error")
    text = serializers.CharField()
    citations = serializers.ListField(child=serializers.DictField())
    matched = serializers.BooleanField(allow_null=True)
    latency_ms = serializers.IntegerField(required=False)
    error = serializers.CharField(required=False)


class BatchOutput(serializers.ModelSerializer):
    summary = serializers.SerializerMethodField()

    class Meta:
        model = BatchTest
        fields = [
            "id",
            "agent",
            "prompt_version",
            "status",
            "error",
            "created_by_label",
            "created_at",
            "finished_at",
            "summary",
        ]

    @extend_schema_field(BatchSummary)
    def get_summary(self, obj: BatchTest) -> dict[str, Any]:
        return batch_summary(obj)


class BatchQuery(serializers.Serializer):
    compare_to = serializers.RegexField(
        r"^(previous|[0-9]{1,18})$",
        required=False,
        help_text="`previous` (the agent's latest finished run before this one) or the id of another batch test "
        "of the same agent: fills `comparison`.",
    )


class BatchBefore(serializers.Serializer):
    decision = serializers.CharField()
    text = serializers.CharField()
    citations = serializers.ListField(child=serializers.DictField())
    matched = serializers.BooleanField(allow_null=True)


class BatchChange(serializers.Serializer):
    question = serializers.CharField()
    change = serializers.ChoiceField(choices=CHANGES)
    before = BatchBefore(allow_null=True, help_text="The earlier run's result; null for a question it did not ask.")


class BatchComparison(serializers.Serializer):
    baseline = serializers.IntegerField(help_text="The batch test compared with.")
    baseline_prompt_version = serializers.IntegerField()
    baseline_created_at = serializers.DateTimeField()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Questions per change.")
    items = BatchChange(many=True, help_text="One per result of this run, in its order.")


class BatchDetailOutput(BatchOutput):
    questions = BatchQuestion(many=True)
    results = BatchResult(many=True)
    comparison = serializers.SerializerMethodField(
        help_text="With `?compare_to=`: this run against an earlier one; null when there is none to compare with."
    )

    class Meta(BatchOutput.Meta):
        fields = [*BatchOutput.Meta.fields, "questions", "results", "comparison"]

    @extend_schema_field(BatchComparison(allow_null=True))
    def get_comparison(self, obj: BatchTest) -> dict[str, Any] | None:
        comparison = self.context.get("comparison")
        return BatchComparison(comparison).data if comparison else None
