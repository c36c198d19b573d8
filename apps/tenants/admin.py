from typing import Any

from django import forms
from django.contrib import admin

from syntera.errors import ApplicationError

from .models import Domain, Plan, Tenant
from .selectors import forget_host
from .services import validate_slug


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


class TenantAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Tenant
        fields = ["name", "slug", "plan", "is_active"]

    def clean_slug(self) -> str:
        slug = str(self.cleaned_data["slug"])
        if self.instance.pk:
            return slug
        try:
            return validate_slug(slug)  # same rules as signup: format, reserved, unique
        except ApplicationError as exc:
            raise forms.ValidationError(exc.detail) from exc


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "schema_name", "plan", "is_active", "created_at"]
    list_filter = ["is_active", "plan"]
    search_fields = ["name", "slug"]
    readonly_fields = ["schema_name", "created_at"]
    inlines = [DomainInline]
    prepopulated_fields = {"slug": ("name",)}

    form = TenantAdminForm

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the inline domains are saved: deactivating, renaming or adding a host takes
        # effect at once, not when the host cache expires.
        for host in form.instance.domains.values_list("domain", flat=True):
            forget_host(host)


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "max_members", "max_api_keys", "is_default"]
