from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.accounts.services import tenant_create_with_owner
from apps.tenants.selectors import primary_domain, tenant_get_by_slug
from apps.tenants.services import plan_default
from apps.workspaces.demo import seed_demo_content
from syntera.errors import ApplicationError

DEMO_SLUG = "acme"
DEMO_EMAIL = "owner@acme.example"
DEMO_PASSWORD = "syntera-demo-2026"


class Command(BaseCommand):
    help = (
        "Create (or keep) the demo tenant 'acme', its owner, a help centre, an AI agent and a web-chat "
        "inbox, and print how to reach them. Idempotent."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        plan_default()
        tenant = tenant_get_by_slug(DEMO_SLUG)
        if tenant is None:
            try:
                result, _ = tenant_create_with_owner(
                    name="Acme Inc.",
                    slug=DEMO_SLUG,
                    owner_email=DEMO_EMAIL,
                    password=DEMO_PASSWORD,
                    full_name="Ada Owner",
                )
            except ApplicationError as exc:  # e.g. the demo workspace was deleted: its address stays taken
                raise CommandError(f"Cannot create the demo workspace {DEMO_SLUG!r}: {exc.detail}") from exc
            tenant = result.tenant
        port = "" if settings.SITE_PORT in (80, 443) else f":{settings.SITE_PORT}"
        base = f"{settings.SITE_SCHEME}://"
        host = primary_domain(tenant)
        owner = User.objects.get(email=DEMO_EMAIL)
        inbox = seed_demo_content(tenant, owner, f"{base}{host}{port}")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "  Syntera is running.",
                    f"  Demo workspace : {base}{host}{port}/",
                    f"  Log in as      : {DEMO_EMAIL} / {DEMO_PASSWORD}",
                    f"  Sign up        : {base}{settings.TENANT_BASE_DOMAIN}{port}/ (confirmed by an emailed link)",
                    f"  Chat widget    : {base}{host}{port}/dashboard/inboxes/{inbox.pk}/demo/",
                    f"  Staff inbox    : {base}{host}{port}/dashboard/inbox/",
                    f"  API docs       : {base}{host}{port}/api/docs/",
                    *self._notes(),
                    "",
                ]
            )
        )

    @staticmethod
    def _notes() -> list[str]:
        notes = []
        if settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
            notes.append("  Emails         : printed below by the worker, not sent (sign-up links, invitations)")
        if settings.LOCAL_KEYS_FILE:
            notes.append(f"  Keys           : generated in {settings.LOCAL_KEYS_FILE} (keep it private)")
        return notes
