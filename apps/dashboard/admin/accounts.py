"""Accounts in both admins. The operator admin (public host) manages every account, its
memberships, invitations, API keys and pending signups; the workspace admin (site.py) lists the
workspace's own members, invitations and API keys, read-only. Neither ever shows a secret's hash."""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apps.accounts.models import APIKey, Invitation, Membership, PendingSignup, User

from .site import TenantScopedAdmin, tenant_admin_site

# --- the operator admin ------------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "email_verified_at", "is_active", "is_staff", "date_joined"]
    search_fields = ["email", "full_name"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    fieldsets = (
        (None, {"fields": ("email", "password", "full_name")}),
        # An operator may vouch for an address (set it) or withdraw that (clear it): an
        # unverified account is taken over by whoever follows a link sent to its address.
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser", "email_verified_at")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    filter_horizontal = ()
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__email", "tenant__slug"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "status", "expires_at"]
    exclude = ["token_hash"]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "public_id", "status", "last_used_at"]
    exclude = ["key_hash"]
    readonly_fields = ["public_id", "last_used_at"]


@admin.register(PendingSignup)
class PendingSignupAdmin(admin.ModelAdmin):
    """Signups waiting for their emailed link (read-only: support sees why a workspace is missing)."""

    list_display = ["email", "slug", "company_name", "status", "created_at", "expires_at"]
    search_fields = ["email", "slug"]
    exclude = ["token_hash"]
    readonly_fields = ["email", "company_name", "slug", "full_name", "expires_at", "completed_at", "tenant"]

    def has_add_permission(self, request: Any) -> bool:
        return False


# --- the workspace admin -----------------------------------------------------------------------


@admin.register(Membership, site=tenant_admin_site)
class WorkspaceMembershipAdmin(TenantScopedAdmin):
    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email"]


@admin.register(Invitation, site=tenant_admin_site)
class WorkspaceInvitationAdmin(TenantScopedAdmin):
    list_display = ["email", "role", "status", "created_at", "expires_at"]
    exclude = ["token_hash"]


@admin.register(APIKey, site=tenant_admin_site)
class WorkspaceAPIKeyAdmin(TenantScopedAdmin):
    list_display = ["name", "public_id", "status", "created_at", "last_used_at", "expires_at"]
    exclude = ["key_hash"]
