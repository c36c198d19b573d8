"""The workspace itself, its deletion and its exports, under `/api/v1/tenant/` (docs/api.md)."""

from __future__ import annotations

import os
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api import serializers as account_serializers
from apps.accounts.api.views import TenantListView, actor_for, current_tenant
from apps.accounts.models import Role
from apps.accounts.services import workspace_rename
from apps.tenants.api import serializers as s

from .. import deletion, export


class TenantView(APIView):
    scope_resource = "tenant"

    @extend_schema(responses={200: account_serializers.TenantOutput})
    def get(self, request: Request) -> Response:
        return Response(account_serializers.TenantOutput(current_tenant(request)).data)

    @extend_schema(request=account_serializers.TenantUpdateInput, responses={200: account_serializers.TenantOutput})
    def patch(self, request: Request) -> Response:
        data = account_serializers.TenantUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = workspace_rename(actor=actor_for(request), name=data.validated_data["name"])
        return Response(account_serializers.TenantOutput(tenant).data)

    @extend_schema(request=s.TenantDeleteInput, responses={202: account_serializers.TenantOutput})
    def delete(self, request: Request) -> Response:
        """Schedule the workspace's deletion (owners; `confirm` is its slug). It is switched off
        at once and purged after the grace period; `DELETE /api/v1/tenant/deletion/` cancels."""
        data = s.TenantDeleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = current_tenant(request)
        deletion.tenant_deletion_request(
            tenant=tenant,
            confirm=data.validated_data["confirm"],
            export=data.validated_data["export"],
            actor=actor_for(request),
            via="api",
        )
        return Response(account_serializers.TenantOutput(tenant).data, status=status.HTTP_202_ACCEPTED)


class TenantDeletionView(APIView):
    """The workspace's scheduled deletion: `DELETE` cancels it (owners)."""

    scope_resource = "tenant"

    @extend_schema(request=None, responses={200: account_serializers.TenantOutput})
    def delete(self, request: Request) -> Response:
        tenant = current_tenant(request)
        deletion.tenant_deletion_cancel(tenant=tenant, actor=actor_for(request), via="api")
        return Response(account_serializers.TenantOutput(tenant).data)


class TenantExportListView(TenantListView):
    """Exports of the workspace's data (owners and admins, in person)."""

    scope_resource = "exports"
    read_role = Role.ADMIN
    serializer_class = s.TenantExportOutput
    ordering_fields = ["id", "created_at"]

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return super().get_queryset()
        return export.tenant_export_list_for(actor=actor_for(self.request))

    @extend_schema(request=None, responses={202: s.TenantExportOutput})
    def post(self, request: Request) -> Response:
        made = export.tenant_export_request(actor=actor_for(request))
        made.refresh_from_db()
        return Response(s.TenantExportOutput(made).data, status=status.HTTP_202_ACCEPTED)


class TenantExportDetailView(APIView):
    scope_resource = "exports"
    read_role = Role.ADMIN

    @extend_schema(responses={200: s.TenantExportOutput})
    def get(self, request: Request, export_id: int) -> Response:
        made = export.tenant_export_get(actor=actor_for(request), export_id=export_id)
        return Response(s.TenantExportOutput(made).data)


class TenantExportDownloadView(APIView):
    scope_resource = "exports"
    read_role = Role.ADMIN

    @extend_schema(
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The ZIP archive.")}
    )
    def get(self, request: Request, export_id: int) -> FileResponse:
        made = export.tenant_export_for_download(actor=actor_for(request), export_id=export_id)
        return FileResponse(
            made.file.open("rb"),
            as_attachment=True,
            filename=os.path.basename(str(made.file.name)),
            content_type="application/zip",
        )
