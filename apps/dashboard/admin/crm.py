"""CRM records in the workspace admin (site.py), read-only: contacts with the facts the AI
remembers, and leads. Edits and erasure go through the dashboard and the API, where the
services audit them."""

from __future__ import annotations

from django.contrib import admin

from apps.crm.models import Contact, Lead

from .site import TenantScopedAdmin, TenantScopedInline, tenant_admin_site


class LeadInline(TenantScopedInline):
    model = Lead
    fields = ["created_at", "need", "status", "origin"]
    readonly_fields = ["created_at", "need", "status", "origin"]
    show_change_link = True


@admin.register(Contact, site=tenant_admin_site)
class ContactAdmin(TenantScopedAdmin):
    tenant_field = None  # lives in the tenant schema already
    list_display = ["__str__", "email", "phone", "company", "verified", "updated_at"]
    list_filter = ["verified"]
    search_fields = ["name", "email", "phone", "company", "external_id"]
    inlines = [LeadInline]


@admin.register(Lead, site=tenant_admin_site)
class LeadAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["__str__", "contact", "status", "origin", "created_at"]
    list_filter = ["status", "origin"]
    search_fields = ["need", "contact__name", "contact__email"]
    list_select_related = ["contact"]
