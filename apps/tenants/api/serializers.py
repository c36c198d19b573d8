from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..models import TenantDeletion, TenantExport


class TenantDeletionOutput(serializers.ModelSerializer):
    class Meta:
        model = TenantDeletion
        fields = ["status", "requested_by", "requested_at", "purge_after"]


class TenantDeleteInput(serializers.Serializer):
    confirm = serializers.CharField(max_length=64, help_text="The workspace's slug, typed again to confirm.")
    export = serializers.BooleanField(
        default=False, help_text="Also make an export of its data, downloadable during the grace period."
    )


class TenantExportOutput(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = TenantExport
        fields = [
            "id",
            "status",
            "requested_by",
            "size_bytes",
            "counts",
            "error",
            "created_at",
            "finished_at",
            "download_url",
        ]

    def get_download_url(self, obj: TenantExport) -> str | None:
        if obj.status != TenantExport.Status.READY:
            return None
        return f"/api/v1/tenant/exports/{obj.pk}/download/"


def deletion_of(tenant: Any) -> dict[str, Any] | None:
    from ..selectors import deletion_open

    pending = deletion_open(tenant)
    return dict(TenantDeletionOutput(pending).data) if pending is not None else None
