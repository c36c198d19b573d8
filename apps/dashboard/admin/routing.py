"""Teams, intents, routing rules and SLA events in the workspace admin (site.py), read-only:
changes go through the dashboard and the API, where the services validate, audit and tell the
sockets."""

from __future__ import annotations

from django.contrib import admin

from apps.routing.models import Intent, RoutingRule, SLAEvent, Team, TeamMember

from .site import TenantScopedAdmin, TenantScopedInline, tenant_admin_site


class TeamMemberInline(TenantScopedInline):
    model = TeamMember
    fields = ["user", "capacity"]
    readonly_fields = ["user", "capacity"]


@admin.register(Team, site=tenant_admin_site)
class TeamAdmin(TenantScopedAdmin):
    tenant_field = None  # lives in the tenant schema already
    list_display = ["name", "strategy", "is_default", "first_response_minutes", "resolution_minutes", "created_at"]
    list_filter = ["strategy", "is_default"]
    search_fields = ["name"]
    exclude = ["rr_last_user_id"]
    inlines = [TeamMemberInline]


@admin.register(Intent, site=tenant_admin_site)
class IntentAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["name", "threshold", "created_at"]
    search_fields = ["name"]


@admin.register(RoutingRule, site=tenant_admin_site)
class RoutingRuleAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["position", "name", "intent", "channel", "language", "hours", "agent", "team", "is_active"]
    list_filter = ["is_active", "hours", "channel"]
    list_select_related = ["intent", "agent", "team"]
    search_fields = ["name"]


@admin.register(SLAEvent, site=tenant_admin_site)
class SLAEventAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["conversation", "kind", "team", "due_at", "breached_at", "met_at"]
    list_filter = ["kind", "team"]
    list_select_related = ["team", "conversation"]
