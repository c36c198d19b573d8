"""Knowledge bases and their sources in the workspace admin (site.py), read-only: changes go
through the dashboard and the API, where the services ingest, audit and version them."""

from __future__ import annotations

from django.contrib import admin

from apps.knowledge.models import KnowledgeBase, Source

from .site import TenantScopedAdmin, tenant_admin_site


@admin.register(KnowledgeBase, site=tenant_admin_site)
class KnowledgeBaseAdmin(TenantScopedAdmin):
    tenant_field = None  # lives in the tenant schema already
    list_display = ["name", "embedding_model", "dense_weight", "lexical_weight", "created_at"]
    search_fields = ["name"]


@admin.register(Source, site=tenant_admin_site)
class SourceAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["title", "knowledge_base", "type", "status", "progress", "chunk_count", "last_synced_at"]
    list_filter = ["type", "status", "knowledge_base"]
    search_fields = ["title", "url"]
    exclude = ["content"]
