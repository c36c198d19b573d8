from django.contrib import admin

from .models import Domain, Plan, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "schema_name", "plan", "is_active", "created_at"]
    list_filter = ["is_active", "plan"]
    search_fields = ["name", "slug"]
    readonly_fields = ["schema_name", "created_at"]
    inlines = [DomainInline]


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "max_members", "max_api_keys", "is_default"]
