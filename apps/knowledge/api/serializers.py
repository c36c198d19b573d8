from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..embeddings import provider_names
from ..models import KnowledgeBase, Source


class KnowledgeBaseOutput(serializers.ModelSerializer):
    source_count = serializers.IntegerField(read_only=True, default=0)
    chunk_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = KnowledgeBase
        fields = [
            "id",
            "name",
            "description",
            "embedding_model",
            "dense_weight",
            "lexical_weight",
            "source_count",
            "chunk_count",
            "created_at",
            "updated_at",
        ]


class KnowledgeBaseInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    embedding_model = serializers.ChoiceField(choices=provider_names(), default="local-minilm")


class KnowledgeBaseUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    embedding_model = serializers.ChoiceField(choices=provider_names(), required=False)
    dense_weight = serializers.FloatField(min_value=0, max_value=10, required=False)
    lexical_weight = serializers.FloatField(min_value=0, max_value=10, required=False)


class FAQEntrySerializer(serializers.Serializer):
    question = serializers.CharField(max_length=1000)
    answer = serializers.CharField(max_length=20000)


class SourceOutput(serializers.ModelSerializer):
    error = serializers.SerializerMethodField()

    class Meta:
        model = Source
        fields = [
            "id",
            "knowledge_base",
            "type",
            "title",
            "url",
            "status",
            "progress",
            "error",
            "chunk_count",
            "size_bytes",
            "sync_interval_hours",
            "last_synced_at",
            "next_sync_at",
            "created_at",
            "updated_at",
        ]

    def get_error(self, obj: Source) -> str | None:
        return obj.error or None


class SourceDetailOutput(SourceOutput):
    entries = serializers.SerializerMethodField()

    class Meta(SourceOutput.Meta):
        fields = [*SourceOutput.Meta.fields, "entries"]

    def get_entries(self, obj: Source) -> list[dict[str, str]] | None:
        if obj.type != Source.Type.FAQ:
            return None
        return [{"question": e.question, "answer": e.answer} for e in obj.faq_entries.all()]


class SourceJSONInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=["url", "text", "faq"])
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    url = serializers.URLField(max_length=2000, required=False)
    crawl = serializers.BooleanField(required=False, default=False)
    max_pages = serializers.IntegerField(min_value=1, max_value=10000, required=False)
    sync_interval_hours = serializers.IntegerField(min_value=0, max_value=8760, required=False, allow_null=True)
    text = serializers.CharField(required=False, allow_blank=False, trim_whitespace=False, max_length=5_000_000)
    entries = FAQEntrySerializer(many=True, required=False, max_length=5000)  # type: ignore[call-arg]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        needed = {"url": "url", "text": "text", "faq": "entries"}[attrs["type"]]
        if not attrs.get(needed):
            raise serializers.ValidationError({needed: [f"Required for a {attrs['type']} source."]})
        return attrs


class SourceUploadInput(serializers.Serializer):
    file = serializers.FileField()
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    type = serializers.ChoiceField(
        choices=["file", "faq"],
        required=False,
        default="file",
        help_text="`faq` imports a CSV with question and answer columns.",
    )


class SourceUpdateInput(serializers.Serializer):
    title = serializers.CharField(max_length=300, required=False)
    sync_interval_hours = serializers.IntegerField(min_value=0, max_value=8760, required=False, allow_null=True)
    entries = FAQEntrySerializer(many=True, required=False, max_length=5000)  # type: ignore[call-arg]


class SearchInput(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    knowledge_bases = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=50)
    top_k = serializers.IntegerField(min_value=1, max_value=100, default=10)
    mode = serializers.ChoiceField(choices=["hybrid", "dense", "lexical"], default="hybrid")
    mmr = serializers.BooleanField(default=False)
    min_similarity = serializers.FloatField(min_value=-1, max_value=1, required=False, allow_null=True)


class SearchSourceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    url = serializers.CharField(allow_blank=True)


class SearchResultOutput(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    score = serializers.FloatField()
    dense_score = serializers.FloatField(allow_null=True)
    lexical_score = serializers.FloatField(allow_null=True)
    text = serializers.CharField()
    heading = serializers.CharField(allow_blank=True)
    anchor = serializers.CharField(allow_blank=True)
    page = serializers.IntegerField(allow_null=True)
    knowledge_base_id = serializers.IntegerField()
    source = SearchSourceOutput()  # type: ignore[assignment]


class SearchOutput(serializers.Serializer):
    results = SearchResultOutput(many=True)
