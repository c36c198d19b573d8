from __future__ import annotations

from rest_framework import serializers

from ..models import Contact, Lead
from ..services.memory import MEMORY_KEYS


class MemoryFact(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]
    updated_at = serializers.CharField()


class ContactOutput(serializers.ModelSerializer):
    memory = MemoryFact(many=True, read_only=True)

    class Meta:
        model = Contact
        fields = [
            "id",
            "name",
            "email",
            "phone",
            "company",
            "attributes",
            "memory",
            "verified",
            "external_id",
            "created_at",
            "updated_at",
        ]


class ContactInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    phone = serializers.RegexField(r"^\+?[0-9 ().-]{5,30}$", max_length=40, required=False, allow_blank=True)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True)
    attributes = serializers.DictField(child=serializers.CharField(max_length=500), required=False)
    external_id = serializers.RegexField(
        r"^[^\x00-\x1f\x7f]{1,128}$",
        required=False,
        allow_blank=True,
        help_text="The user id your site signs visitors' identities with (docs/api.md, identity verification).",
    )
    verified = serializers.BooleanField(
        required=False, help_text="Staff confirm who this contact is (true), or withdraw it (false)."
    )

    def validate_attributes(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 attributes.")
        return value


class MemoryInput(serializers.Serializer):
    key = serializers.ChoiceField(choices=list(MEMORY_KEYS))
    value = serializers.CharField(max_length=300)


class MergeInput(serializers.Serializer):
    into = serializers.IntegerField(min_value=1, help_text="The contact that stays (the known one).")


class LeadOutput(serializers.ModelSerializer):
    contact = ContactOutput(read_only=True)

    class Meta:
        model = Lead
        fields = ["id", "contact", "need", "status", "origin", "details", "created_at"]
