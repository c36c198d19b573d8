from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Membership, Role, User
from apps.tenants.selectors import primary_domain
from apps.tenants.services import tenant_create
from syntera.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a tenant (schema, domain) with an owner. Prints the owner's password if one was generated."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="owner's email (an existing account is reused)")
        parser.add_argument("--name", help="company name (default: the slug, capitalised)")
        parser.add_argument("--password", help="owner's password for a new account (default: generated)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            tenant = tenant_create(name=opts["name"] or opts["slug"].replace("-", " ").title(), slug=opts["slug"])
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        email = opts["owner"].strip().lower()
        user = User.objects.filter(email=email).first()
        password = None
        if user is None:
            password = opts["password"] or secrets.token_urlsafe(12)
            user = User.objects.create_user(email=email, password=password)
        Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": Role.OWNER})
        self.stdout.write(f"tenant {tenant.slug} (schema {tenant.schema_name}) at {primary_domain(tenant)}")
        self.stdout.write(f"owner {email}" + (f" password {password}" if password else " (existing account)"))
