"""The operator's admin of tenants (public host). A workspace is never deleted from here as a
row: operators schedule its deletion, cancel it, or end its grace period (actions), through the
same service as owners (apps/workspaces/deletion.py); a deleted workspace stays listed as a
tombstone."""

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.tenants.models import Domain, Plan, Tenant, TenantDeletion, TenantExport
from apps.tenants.selectors import deletion_open, forget_host
from apps.tenants.services import validate_slug
from apps.workspaces import deletion
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit


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


def _operator(request: HttpRequest) -> str:
    return str(getattr(request.user, "email", "") or "operator")


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "schema_name", "plan", "state", "created_at", "deleted_at", "deleted_by"]
    list_filter = ["is_active", "plan"]
    search_fields = ["name", "slug"]
    readonly_fields = ["schema_name", "created_at", "purge_after", "deleted_at", "deleted_by"]
    inlines = [DomainInline]
    prepopulated_fields = {"slug": ("name",)}
    actions = ["schedule_deletion", "cancel_deletion", "purge_now"]

    form = TenantAdminForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return Tenant.all_objects.select_related("plan")  # tombstones included

    @admin.display(description="state")
    def state(self, obj: Tenant) -> str:
        if obj.deleted_at is not None:
            return "deleted"
        if obj.purge_after is not None:
            return f"scheduled for deletion ({obj.purge_after:%Y-%m-%d %H:%M} UTC)"
        return "active" if obj.is_active else "inactive"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting the row would leave the schema for the next signup to inherit

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.deleted_at is not None:
            return False  # a tombstone is shown, never changed
        return super().has_change_permission(request, obj)

    def _frozen(self, obj: Any) -> bool:
        return obj is not None and (obj.purge_after is not None or obj.deleted_at is not None)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self._frozen(obj):
            # Cancelling the deletion is the way back, not switching it on here.
            return [*self.readonly_fields, "name", "slug", "plan", "is_active"]
        return self.readonly_fields

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> dict[str, Any]:
        return {} if self._frozen(obj) else dict(self.prepopulated_fields)

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the inline domains are saved: deactivating, renaming or adding a host takes
        # effect at once, not when the host cache expires.
        for host in form.instance.domains.values_list("domain", flat=True):
            forget_host(host)

    # --- deletion ----------------------------------------------------------------------------

    def _confirm(self, request: HttpRequest, queryset: QuerySet[Tenant], action: str, title: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "action": action,
            "tenants": list(queryset),
            "grace_days": settings.TENANT_DELETION_GRACE_DAYS,
            "purge_after": timezone.now() + timedelta(days=settings.TENANT_DELETION_GRACE_DAYS),
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/tenants/tenant/deletion_confirmation.html", context)

    @admin.action(description="Schedule deletion (after the grace period)")
    def schedule_deletion(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> HttpResponse | None:
        queryset = queryset.filter(deleted_at__isnull=True).exclude(schema_name="public")
        if request.POST.get("confirmed") != "yes":
            return self._confirm(request, queryset, "schedule_deletion", "Schedule the deletion of these workspaces?")
        for tenant in queryset:
            try:
                deletion.tenant_deletion_request(
                    tenant=tenant, confirm=tenant.slug, operator=_operator(request), via="admin"
                )
            except ApplicationError as exc:
                self.message_user(request, f"{tenant.slug}: {exc.detail}", messages.WARNING)
            else:
                self.message_user(request, f"{tenant.slug} is scheduled for deletion on {tenant.purge_after:%Y-%m-%d}.")
        return None

    @admin.action(description="Cancel scheduled deletion")
    def cancel_deletion(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            try:
                deletion.tenant_deletion_cancel(tenant=tenant, operator=_operator(request), via="admin")
            except ApplicationError as exc:
                self.message_user(request, f"{tenant.slug}: {exc.detail}", messages.WARNING)
            else:
                self.message_user(request, f"{tenant.slug} is restored.")

    @admin.action(description="Purge now (scheduled deletions only: ends the grace period)")
    def purge_now(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> HttpResponse | None:
        if request.POST.get("confirmed") != "yes":
            return self._confirm(request, queryset, "purge_now", "Purge these workspaces now? This cannot be undone.")
        from apps.workspaces.tasks import purge

        for tenant in queryset:
            pending = deletion_open(tenant)
            if pending is None:
                self.message_user(request, f"{tenant.slug} is not scheduled for deletion.", messages.WARNING)
                continue
            deletion.tenant_deletion_end_grace(request=pending, operator=_operator(request))
            enqueue_on_commit(purge, pending.pk, _operator(request))
            self.message_user(request, f"{tenant.slug} is being purged.")
        return None

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(TenantDeletion)
class TenantDeletionAdmin(admin.ModelAdmin):
    """The history of deletion requests: who asked, who cancelled, how far each purge got."""

    list_display = ["tenant", "status", "requested_by", "requested_via", "requested_at", "purge_after", "purged_at"]
    list_filter = ["status", "requested_via"]
    search_fields = ["tenant__slug", "requested_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TenantExport)
class TenantExportAdmin(admin.ModelAdmin):
    list_display = ["tenant", "status", "requested_by", "size_bytes", "created_at", "finished_at"]
    list_filter = ["status"]
    exclude = ["file"]  # downloads go through the workspace's own, audited, page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "max_members", "max_api_keys", "is_default"]
