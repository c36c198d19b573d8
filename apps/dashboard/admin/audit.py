"""The audit trail in the workspace admin (site.py), read-only."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.models import AuditEvent

from .site import TenantScopedAdmin, tenant_admin_site


@admin.register(AuditEvent, site=tenant_admin_site)
class AuditEventAdmin(TenantScopedAdmin):
    tenant_field = None  # lives in the tenant schema already
    list_display = ["created_at", "action", "actor_label", "target_type", "target_id", "ip_address"]
    list_filter = ["action"]
    search_fields = ["action", "actor_label", "target_id"]
