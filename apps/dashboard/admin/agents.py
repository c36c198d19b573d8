"""Agents in the workspace admin (site.py): read-only views of the tenant's agents, prompt
versions, provider credentials, AI usage, unanswered questions, daily performance and batch
tests. Changes go through the dashboard and the API, where the services version prompts and
audit every write.

A provider credential's encrypted key is never shown, not even encrypted; `key_hint` is.
"""

from __future__ import annotations

from django.contrib import admin

from apps.agents.models import (
    Agent,
    AgentDailyStats,
    BatchTest,
    KnowledgeGap,
    PromptVersion,
    ProviderCredential,
    UsageCounter,
)

from .site import TenantScopedAdmin, tenant_admin_site


@admin.register(Agent, site=tenant_admin_site)
class AgentAdmin(TenantScopedAdmin):
    tenant_field = None  # lives in the tenant schema already
    list_display = ["name", "provider", "model", "prompt_version", "is_active", "updated_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name"]


@admin.register(PromptVersion, site=tenant_admin_site)
class PromptVersionAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["agent", "number", "created_by_label", "created_at"]
    list_filter = ["agent"]
    list_select_related = ["agent"]


@admin.register(ProviderCredential, site=tenant_admin_site)
class ProviderCredentialAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["provider", "key_hint", "base_url", "organization", "updated_by_label", "updated_at"]
    exclude = ["api_key_encrypted"]


@admin.register(UsageCounter, site=tenant_admin_site)
class UsageCounterAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["day", "requests", "prompt_tokens", "completion_tokens"]
    date_hierarchy = "day"


@admin.register(KnowledgeGap, site=tenant_admin_site)
class KnowledgeGapAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["question", "agent", "count", "channel", "last_asked_at", "dismissed_at"]
    list_filter = ["agent", "channel"]
    list_select_related = ["agent"]
    search_fields = ["question"]


@admin.register(AgentDailyStats, site=tenant_admin_site)
class AgentDailyStatsAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["day", "agent", "channel", "turns", "answered", "abstained", "escalated", "helpful", "unhelpful"]
    list_filter = ["agent", "channel"]
    list_select_related = ["agent"]
    date_hierarchy = "day"


@admin.register(BatchTest, site=tenant_admin_site)
class BatchTestAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = ["id", "agent", "prompt_version", "status", "created_by_label", "created_at", "finished_at"]
    list_filter = ["agent", "status"]
    list_select_related = ["agent"]
