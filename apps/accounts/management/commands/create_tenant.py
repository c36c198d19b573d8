from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.services.users import tenant_create_with_owner
from apps.tenants.selectors import primary_domain
from syntera.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a tenant (schema, domain) with an owner. Prints the owner's password if one was generated."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="owner's email (an existing account is made owner)")
        parser.add_argument("--name", help="company name (default: the slug, capitalised)")
        parser.add_argument("--password", help="password for a new owner account (default: generated and printed)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            result, generated = tenant_create_with_owner(
                name=opts["name"] or opts["slug"].replace("-", " ").title(),
                slug=opts["slug"],
                owner_email=opts["owner"],
                password=opts["password"],
            )
        except ApplicationError as exc:
            details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.fields.items())
            raise CommandError(f"{exc.detail} {details}".strip()) from exc
        tenant = result.tenant
        self.stdout.write(f"tenant {tenant.slug} (schema {tenant.schema_name}) at {primary_domain(tenant)}")
        self.stdout.write(f"owner {result.user.email}" + (f" password {generated}" if generated else ""))
