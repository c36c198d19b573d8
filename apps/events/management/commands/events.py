"""`manage.py events ...`: the outbox of a workspace, for operators (docs/subsystems/events.md).

status [--tenant SLUG]            counts per workspace: pending, failed, delivered; oldest pending
failed --tenant SLUG              failed events with their last error
show --tenant SLUG ID             one event: envelope and delivery state
retry --tenant SLUG (ID... | --all)
drop --tenant SLUG ID...
dispatch --tenant SLUG            deliver now, in this process
schema [TYPE]                     a type's JSON Schema, or every type name
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Min
from django.utils import timezone
from django_tenants.utils import get_tenant_model, tenant_context

from apps.events import dispatch
from apps.events.models import OutboxEvent
from apps.events.registry import REGISTRY
from apps.events.services import events_drop, events_retry


def _ids(values: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(value) for value in values]
    except ValueError as exc:
        raise CommandError(f"Not an event id (a UUID): {exc}") from exc


class Command(BaseCommand):
    help = "Inspect and repair a workspace's domain-event outbox."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="Counts per workspace.")
        status.add_argument("--tenant", help="One workspace's slug (default: all).")
        failed = sub.add_parser("failed", help="Failed events of a workspace.")
        failed.add_argument("--tenant", required=True)
        show = sub.add_parser("show", help="One event.")
        show.add_argument("--tenant", required=True)
        show.add_argument("id")
        retry = sub.add_parser("retry", help="New attempts for failed events.")
        retry.add_argument("--tenant", required=True)
        retry.add_argument("ids", nargs="*")
        retry.add_argument("--all", action="store_true", help="Every failed event of the workspace.")
        drop = sub.add_parser("drop", help="Give up on failed events (deleted).")
        drop.add_argument("--tenant", required=True)
        drop.add_argument("ids", nargs="+")
        run = sub.add_parser("dispatch", help="Deliver a workspace's events now, in this process.")
        run.add_argument("--tenant", required=True)
        schema = sub.add_parser("schema", help="A type's JSON Schema, or the list of types.")
        schema.add_argument("type", nargs="?")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "schema":
            self._schema(options.get("type"))
            return
        tenants = self._tenants(options.get("tenant"))
        for tenant in tenants:
            with tenant_context(tenant):
                getattr(self, f"_{action}")(tenant, options)

    def _tenants(self, slug: str | None) -> list[Any]:
        model = get_tenant_model()
        workspaces = model.objects.exclude(schema_name="public").order_by("slug")
        if slug is None:
            return list(workspaces)
        found = workspaces.filter(slug=slug).first()
        if found is None:
            raise CommandError(f"No workspace {slug!r}.")
        return [found]

    def _schema(self, name: str | None) -> None:
        if name is None:
            for type_name, event_type in REGISTRY.items():
                self.stdout.write(f"{type_name}\t{event_type.description}")
            return
        if name not in REGISTRY:
            raise CommandError(f"No event type {name!r}; `manage.py events schema` lists them.")
        self.stdout.write(json.dumps(REGISTRY[name].schema, indent=2))

    def _status(self, tenant: Any, options: dict[str, Any]) -> None:
        counts = dict(OutboxEvent.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
        oldest = OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING).aggregate(at=Min("created_at"))["at"]
        age = f", oldest pending {(timezone.now() - oldest).total_seconds():.0f} s old" if oldest else ""
        self.stdout.write(
            f"{tenant.slug}: {counts.get('pending', 0)} pending, {counts.get('failed', 0)} failed, "
            f"{counts.get('done', 0)} delivered{age}"
        )

    def _failed(self, tenant: Any, options: dict[str, Any]) -> None:
        rows = OutboxEvent.objects.filter(state=OutboxEvent.State.FAILED).order_by("id")
        if not rows.exists():
            self.stdout.write(f"{tenant.slug}: no failed events")
        for row in rows:
            error = row.last_error.replace("\n", " | ")
            self.stdout.write(f"{row.uuid}\t{row.type}\t{row.stream}\t{row.attempts} attempts\t{error}")

    def _show(self, tenant: Any, options: dict[str, Any]) -> None:
        (event_id,) = _ids([options["id"]])
        row = OutboxEvent.objects.filter(uuid=event_id).first()
        if row is None:
            raise CommandError(f"No event {event_id} in {tenant.slug}.")
        envelope = {
            "id": str(row.uuid),
            "type": row.type,
            "created": row.created_at.isoformat(),
            "tenant": tenant.slug,
            "data": row.data,
        }
        state = {
            "state": row.state,
            "stream": row.stream,
            "attempts": row.attempts,
            "handled_by": row.handled_by,
            "last_error": row.last_error,
            "actor": row.actor_label,
        }
        self.stdout.write(json.dumps({"event": envelope, "delivery": state}, indent=2))

    def _retry(self, tenant: Any, options: dict[str, Any]) -> None:
        if options["all"] == bool(options["ids"]):
            raise CommandError("Name the events to retry, or give --all.")
        count = events_retry(ids=None if options["all"] else _ids(options["ids"]))
        self.stdout.write(f"{tenant.slug}: {count} event(s) queued again")

    def _drop(self, tenant: Any, options: dict[str, Any]) -> None:
        count = events_drop(ids=_ids(options["ids"]))
        self.stdout.write(f"{tenant.slug}: {count} failed event(s) dropped")

    def _dispatch(self, tenant: Any, options: dict[str, Any]) -> None:
        report = dispatch.run()
        self.stdout.write(f"{tenant.slug}: {json.dumps(report.as_dict())}")
