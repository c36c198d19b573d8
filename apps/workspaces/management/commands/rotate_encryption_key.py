"""Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS.

The rotation procedure (docs/subsystems/operations.md): put the new key first in
FIELD_ENCRYPTION_KEYS, keeping the old one after it, on every process; run this command;
`--check` confirms nothing is left under the old key; then remove the old key.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import get_public_schema_name, schema_context, schema_exists

from apps.audit.services import audit_record
from apps.tenants.models import Tenant
from syntera.crypto import RotationReport, legacy_key_for, rotate_encrypted_fields


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (public schema and every tenant schema) with the first key of "
        "FIELD_ENCRYPTION_KEYS, and report the counts. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing; fail if any stored secret is not yet under the first key",
        )
        parser.add_argument(
            "--print-legacy-key",
            action="store_true",
            help="print the key that versions without FIELD_ENCRYPTION_KEYS derived from SECRET_KEY, and exit",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["print_legacy_key"]:
            self.stdout.write(legacy_key_for(settings.SECRET_KEY))
            return
        write = not opts["check"]
        public = get_public_schema_name()
        total = RotationReport()
        unreadable: list[str] = []
        schemas: list[tuple[str, Tenant | None]] = [(public, None)]
        schemas += [(t.schema_name, t) for t in Tenant.objects.exclude(schema_name=public).order_by("schema_name")]
        for schema, tenant in schemas:
            if tenant is not None and not schema_exists(schema):
                continue
            with schema_context(schema):
                report = rotate_encrypted_fields(tenant_apps=tenant is not None, write=write)
            if write and report.rotated and tenant is not None:
                audit_record(
                    tenant=tenant, action="secrets.reencrypted", actor_label="operator", data={"count": report.rotated}
                )
            if report.rotated or report.current or report.unreadable:
                self.stdout.write(f"{schema}: {self._counts(report, write)}")
            total.rotated += report.rotated
            total.current += report.current
            unreadable += [f"{schema} {row}" for row in report.unreadable]
        total.unreadable = unreadable
        self.stdout.write(f"total: {self._counts(total, write)}")
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} stored secrets cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS "
                f"and were left as they are: {', '.join(unreadable)}. Add the key they were encrypted with and "
                "run again, or have them entered again."
            )
        if not write and total.rotated:
            raise CommandError(
                f"{total.rotated} stored secrets are not under the first key yet: run without --check "
                "before removing the old key."
            )
        if not write:
            self.stdout.write("all stored secrets are under the first key: the other keys can be removed")

    @staticmethod
    def _counts(report: RotationReport, write: bool) -> str:
        verb = "re-encrypted" if write else "to re-encrypt"
        return (
            f"{report.rotated} {verb}, {report.current} already under the first key, "
            f"{len(report.unreadable)} unreadable"
        )
