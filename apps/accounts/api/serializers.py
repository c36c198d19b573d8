from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.tenants.api.serializers import TenantDeletionOutput, deletion_of

from ..models import APIKey, Invitation, Membership, Role
from ..scopes import ALL_SCOPES


class TokenInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class TokenOutput(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RefreshInput(serializers.Serializer):
    refresh = serializers.CharField(max_length=2048)


class AccessOutput(serializers.Serializer):
    access = serializers.CharField()


class MemberOutput(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="user.full_name")

    class Meta:
        model = Membership
        fields = ["id", "email", "full_name", "role", "created_at"]


class MemberUpdateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationOutput(serializers.ModelSerializer):
    status = serializers.CharField()
    invited_by = serializers.EmailField(source="invited_by.email", allow_null=True, default=None)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "invited_by", "created_at", "expires_at", "accepted_at"]


class InvitationInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.AGENT)


class APIKeyOutput(serializers.ModelSerializer):
    status = serializers.CharField()
    prefix = serializers.SerializerMethodField()
    created_by = serializers.EmailField(source="created_by.email", allow_null=True, default=None)
    created_by_key: serializers.PrimaryKeyRelatedField[APIKey] = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="The key that created this one through the API (revoking it revokes this one).",
    )

    class Meta:
        model = APIKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "status",
            "created_by",
            "created_by_key",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]

    def get_prefix(self, obj: APIKey) -> str:
        from django.conf import settings

        return f"{settings.API_KEY_PREFIX}{obj.public_id}_"


class APIKeyCreatedOutput(APIKeyOutput):
    key = serializers.CharField(help_text="The full key. Shown once; store it now.")

    class Meta(APIKeyOutput.Meta):
        fields = [*APIKeyOutput.Meta.fields, "key"]


class APIKeyInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ALL_SCOPES),
        required=False,
        allow_empty=True,
        max_length=50,
        help_text="At most the caller's own scopes; omit or leave empty for all of them.",
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="A key made by a key expires no later than it (and gets its expiry when omitted).",
    )


class TenantOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    plan = serializers.CharField(source="plan.code", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    deletion = serializers.SerializerMethodField(help_text="The scheduled deletion, if any.")

    @extend_schema_field(TenantDeletionOutput(allow_null=True))
    def get_deletion(self, tenant: Any) -> dict[str, Any] | None:
        return deletion_of(tenant)


class TenantUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)


class MeOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["user", "api_key"])
    email = serializers.EmailField(allow_null=True)
    role = serializers.CharField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True, help_text="An API key's expiry; null for a person.")
    tenant = TenantOutput()
