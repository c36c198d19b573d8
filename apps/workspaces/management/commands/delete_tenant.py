from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.tenants.models import Tenant
from apps.tenants.selectors import deletion_open
from apps.workspaces import deletion
from syntera.errors import ApplicationError

OPERATOR = "operator (manage.py delete_tenant)"


class Command(BaseCommand):
    help = (
        "Delete a workspace: schedule it for deletion after the grace period (TENANT_DELETION_GRACE_DAYS; "
        "it is switched off at once and its owners are emailed), or purge it now (--purge-now), or cancel "
        "a scheduled deletion (--cancel). The slug stays taken for good."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--purge-now", action="store_true", help="purge at once instead of after the grace period")
        group.add_argument(
            "--cancel", action="store_true", help="cancel a scheduled deletion and restore the workspace"
        )
        parser.add_argument("--noinput", "--no-input", action="store_true", help="do not ask to type the slug")

    def handle(self, *args: Any, **opts: Any) -> None:
        slug = opts["slug"]
        tenant = Tenant.all_objects.filter(slug=slug).exclude(schema_name="public").first()
        if tenant is None:
            raise CommandError(f"No workspace has the slug {slug!r}.")
        if tenant.deleted_at is not None:
            raise CommandError(f"{slug} was already deleted on {tenant.deleted_at:%Y-%m-%d %H:%M} UTC.")
        try:
            if opts["cancel"]:
                deletion.tenant_deletion_cancel(tenant=tenant, operator=OPERATOR, via="command")
                self.stdout.write(f"deletion of {slug} cancelled; the workspace is restored")
                return
            if not opts["noinput"]:
                what = "PURGE NOW, for good" if opts["purge_now"] else "schedule for deletion"
                typed = input(f"Type the slug of the workspace to {what} ({slug}): ")
                if typed.strip() != slug:
                    raise CommandError("Deletion not confirmed.")
            request = deletion_open(tenant)
            if request is None:
                request = deletion.tenant_deletion_request(
                    tenant=tenant, confirm=slug, operator=OPERATOR, via="command"
                )
                self.stdout.write(
                    f"{slug} is switched off and scheduled for deletion on {request.purge_after:%Y-%m-%d %H:%M} UTC"
                )
            if opts["purge_now"]:
                deletion.tenant_deletion_end_grace(request=request, operator=OPERATOR)
                request = deletion.tenant_purge(deletion_id=request.pk, by=OPERATOR)
                self.stdout.write(f"{slug} {request.status}")
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
