from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from apps.accounts.models import Role
from apps.accounts.scopes import ALL_SCOPES
from apps.accounts.services.actors import Actor
from apps.accounts.services.api_keys import api_key_create
from apps.tenants.selectors import tenant_get_by_slug
from syntera.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once. All scopes when none are given."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", nargs="*", default=None, help=f"any of: {' '.join(ALL_SCOPES)}")
        parser.add_argument("--expires", help="ISO 8601 expiry, e.g. 2027-01-01T00:00:00Z")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_get_by_slug(opts["tenant"])
        if tenant is None:
            raise CommandError(f"No tenant {opts['tenant']!r}.")
        expires = None
        if opts["expires"]:
            expires = parse_datetime(opts["expires"])
            if expires is None:
                raise CommandError("--expires must be an ISO 8601 date-time.")
        scopes = [s for chunk in (opts["scopes"] or []) for s in chunk.split(",") if s]
        actor = Actor(tenant=tenant, role=Role.OWNER, label="command:create_api_key")
        try:
            key, raw = api_key_create(actor=actor, name=opts["name"], scopes=scopes or None, expires_at=expires)
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        self.stderr.write(f"created key {key.name} ({key.public_id}) with scopes: {' '.join(key.scopes)}")
        self.stderr.write("store it now; it is not shown again:")
        self.stdout.write(raw)
