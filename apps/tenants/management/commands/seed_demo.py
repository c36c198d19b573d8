from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.accounts.models import Membership, Role, User
from apps.tenants.selectors import primary_domain, tenant_get_by_slug
from apps.tenants.services import plan_default, tenant_create

DEMO_SLUG = "acme"
DEMO_EMAIL = "owner@acme.example"
DEMO_PASSWORD = "syntera-demo-2026"


class Command(BaseCommand):
    help = "Create (or keep) the demo tenant 'acme' and its owner. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        plan_default()
        tenant = tenant_get_by_slug(DEMO_SLUG) or tenant_create(name="Acme Inc.", slug=DEMO_SLUG)
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(email=DEMO_EMAIL, password=DEMO_PASSWORD, full_name="Ada Owner")
        Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": Role.OWNER})
        port = "" if settings.SITE_PORT in (80, 443) else f":{settings.SITE_PORT}"
        base = f"{settings.SITE_SCHEME}://"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "  Syntera is running.",
                    f"  Demo workspace : {base}{primary_domain(tenant)}{port}/",
                    f"  Log in as      : {DEMO_EMAIL} / {DEMO_PASSWORD}",
                    f"  Sign up        : {base}localhost{port}/",
                    f"  API docs       : {base}{primary_domain(tenant)}{port}/api/docs/",
                    "",
                ]
            )
        )
