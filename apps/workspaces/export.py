"""Workspace exports: one ZIP of everything a workspace holds, built by a Celery task into the
workspace's own media path (`tenants/<schema>/exports/`), downloadable by its owners and admins
(dashboard: /dashboard/workspace/, API: /api/v1/tenant/exports/). Offered before a deletion and
kept through its grace period; the purge removes the files with the rest.
See docs/subsystems/tenancy.md ("Exports").

Transcripts are read through the conversation-store interface, so an export is the same with
PostgreSQL or MongoDB. No secret is exported: no API key or its hash, no visitor token hash, no
LLM credential, no widget key.
"""

from __future__ import annotations

import json
import logging
import secrets
import tempfile
import zipfile
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.core.files import File
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.accounts.models import Membership, Role
from apps.accounts.services import Actor
from apps.agents.models import Agent
from apps.agents.selectors import agent_export
from apps.audit.selectors import audit_event_list
from apps.audit.services import audit_action, audit_record
from apps.conversations.models import Conversation, Inbox
from apps.conversations.stores import get_store
from apps.crm.models import Contact, Lead
from apps.knowledge.models import Chunk, KnowledgeBase
from apps.tenants.models import Tenant, TenantExport
from apps.tenants.selectors import tenant_export_list
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

logger = logging.getLogger(__name__)

# An export still queued or running after this long is taken for dead (its worker died).
EXPORT_STALE_AFTER = timedelta(hours=6)
TRANSCRIPT_PAGE = 500

README = """Export of the Syntera workspace {name} ({slug}), made {made} UTC.

workspace.json       the workspace, its members and roles, its inboxes
conversations.jsonl  one conversation per line, with its transcript ("messages", in order of seq)
contacts.json        contacts, with their attributes and memory (the facts the AI remembers)
leads.json           leads, by contact id
knowledge.json       knowledge bases and their sources: text, FAQ entries, and the text of each
                     document as it was indexed (chunks, in order)
knowledge/files/     the files uploaded as sources, by knowledge base id
agents.json          AI agents' settings (the format the agent import reads back)
audit.jsonl          the audit trail, newest first

Dates are ISO 8601 in UTC. Ids are the workspace's own; secrets (API keys, credentials,
visitor tokens) are never exported.
"""


def _require_exporter(actor: Actor) -> None:
    if actor.user is None or not actor.has_role(Role.ADMIN):
        raise ApplicationError(
            "Exports are made and downloaded by the workspace's owners and admins.",
            code="permission_denied",
            status_code=403,
        )


@transaction.atomic
def tenant_export_request(*, actor: Actor) -> TenantExport:
    """Queue an export of the actor's workspace (one at a time)."""
    _require_exporter(actor)
    with schema_context("public"):
        tenant = Tenant.all_objects.select_for_update().get(pk=actor.tenant.pk)
        if tenant.deleted_at is not None:
            raise ApplicationError("This workspace was deleted.", code="workspace_deleted", status_code=409)
        busy = TenantExport.objects.filter(
            tenant=tenant,
            status__in=(TenantExport.Status.QUEUED, TenantExport.Status.RUNNING),
            created_at__gt=timezone.now() - EXPORT_STALE_AFTER,
        )
        if busy.exists():
            raise ApplicationError(
                "An export is being made already; it will be listed here when it is ready.",
                code="export_in_progress",
                status_code=409,
            )
        export = TenantExport.objects.create(tenant=tenant, requested_by=actor.label)
        from .tasks import build_export

        # Sent from public: the task reads the workspace itself, during a grace period too.
        enqueue_on_commit(build_export, export.pk)
    audit_action(actor, "tenant.export_requested", export)
    return export


def tenant_export_list_for(*, actor: Actor) -> QuerySet[TenantExport]:
    """The exports of the actor's workspace, newest first (owners and admins)."""
    _require_exporter(actor)
    return tenant_export_list(actor.tenant)


def tenant_export_get(*, actor: Actor, export_id: int) -> TenantExport:
    """One export of the actor's workspace (owners and admins)."""
    export = tenant_export_list_for(actor=actor).filter(pk=export_id).first()
    if export is None:
        raise ApplicationError("Not found.", code="not_found", status_code=404)
    return export


def tenant_export_for_download(*, actor: Actor, export_id: int) -> TenantExport:
    """A ready export of the actor's workspace, its download audited."""
    export = tenant_export_get(actor=actor, export_id=export_id)
    if export.status != TenantExport.Status.READY or not export.file:
        raise ApplicationError("This export is not ready.", code="export_not_ready", status_code=409)
    audit_action(actor, "tenant.export_downloaded", export, {"size_bytes": export.size_bytes})
    return export


def tenant_export_build(*, export_id: int) -> TenantExport | None:
    """Build a queued export (the `tenants.build_export` task). A failure is recorded on the
    export with a message for the person, and the details in the log."""
    export = TenantExport.objects.select_related("tenant").filter(pk=export_id).first()
    if export is None or export.status not in (TenantExport.Status.QUEUED, TenantExport.Status.RUNNING):
        return export
    tenant = export.tenant
    if tenant.deleted_at is not None:
        TenantExport.objects.filter(pk=export.pk).update(status=TenantExport.Status.FAILED, error="Workspace deleted.")
        return export
    TenantExport.objects.filter(pk=export.pk).update(status=TenantExport.Status.RUNNING)
    made = timezone.now()
    try:
        with tempfile.TemporaryFile() as handle:
            with (
                zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive,
                schema_context(tenant.schema_name),
            ):
                counts = _write_all(archive, tenant, made)
            size = handle.tell()
            handle.seek(0)
            name = f"{tenant.slug}-export-{made:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}.zip"
            export.file.save(name, File(handle), save=False)
    except Exception:
        logger.exception("export %s of workspace %s failed", export.pk, tenant.schema_name)
        TenantExport.objects.filter(pk=export.pk).update(
            status=TenantExport.Status.FAILED,
            error="The export could not be made. Try again; if it keeps failing, contact support.",
            finished_at=timezone.now(),
        )
        return export
    TenantExport.objects.filter(pk=export.pk).update(
        status=TenantExport.Status.READY, file=export.file.name, size_bytes=size, counts=counts, finished_at=made
    )
    audit_record(tenant=tenant, action="tenant.export_ready", target=export, data={"size_bytes": size, **counts})
    export.refresh_from_db()
    return export


# --- what goes in ------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def _row(obj: models.Model, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields if f.attname not in exclude}


def _write_all(archive: zipfile.ZipFile, tenant: Tenant, made: Any) -> dict[str, int]:
    archive.writestr("README.txt", README.format(name=tenant.name, slug=tenant.slug, made=f"{made:%Y-%m-%d %H:%M}"))
    counts = {
        "conversations": _write_conversations(archive, tenant.schema_name),
        **_write_crm(archive),
        "knowledge_bases": _write_knowledge(archive),
        "agents": _write_agents(archive),
        "audit_events": _write_audit(archive),
    }
    _write_workspace(archive, tenant, made)
    return counts


def _write_workspace(archive: zipfile.ZipFile, tenant: Tenant, made: Any) -> None:

    members = Membership.objects.filter(tenant_id=tenant.pk).select_related("user").order_by("id")
    inboxes = Inbox.objects.select_related("agent").order_by("id")
    archive.writestr(
        "workspace.json",
        _json(
            {
                "name": tenant.name,
                "slug": tenant.slug,
                "plan": tenant.plan.code if tenant.plan else None,
                "created_at": tenant.created_at,
                "exported_at": made,
                "members": [{"email": m.user.email, "role": m.role} for m in members],
                "inboxes": [
                    {**_row(i, exclude=("widget_key",)), "agent": i.agent.name if i.agent else None} for i in inboxes
                ],
            }
        ),
    )


def _write_conversations(archive: zipfile.ZipFile, schema: str) -> int:

    store = get_store()
    count = 0
    with archive.open("conversations.jsonl", "w", force_zip64=True) as out:
        for conversation in Conversation.objects.order_by("id").iterator(chunk_size=200):
            messages: list[dict[str, Any]] = []
            after = 0
            while True:
                page = store.after(
                    schema=schema, conversation_id=conversation.pk, after_seq=after, limit=TRANSCRIPT_PAGE
                )
                messages.extend(asdict(m) for m in page)
                if len(page) < TRANSCRIPT_PAGE:
                    break
                after = page[-1].seq
            row = _row(conversation, exclude=("visitor_token_hash",))
            out.write((_json({**row, "messages": messages}) + "\n").encode())
            count += 1
    return count


def _write_crm(archive: zipfile.ZipFile) -> dict[str, int]:

    contacts = [_row(c) for c in Contact.objects.order_by("id")]
    leads = [_row(lead) for lead in Lead.objects.order_by("id")]
    archive.writestr("contacts.json", _json(contacts))
    archive.writestr("leads.json", _json(leads))
    return {"contacts": len(contacts), "leads": len(leads)}


def _write_knowledge(archive: zipfile.ZipFile) -> int:

    bases = []
    for kb in KnowledgeBase.objects.order_by("id"):
        sources = []
        for source in kb.sources.order_by("id").prefetch_related("faq_entries"):
            item = _row(source, exclude=("file", "knowledge_base_id", "run", "content_hash"))
            item["faq"] = [{"question": e.question, "answer": e.answer} for e in source.faq_entries.all()]
            texts = (
                Chunk.objects.filter(source=source).order_by("document_id", "ordinal").values_list("text", flat=True)
            )
            item["text"] = "\n\n".join(texts)
            if source.file:
                item["file"] = f"{kb.pk}/{str(source.file.name).rsplit('/', 1)[-1]}"
                try:
                    with source.file.open("rb") as handle:
                        archive.writestr(f"knowledge/files/{item['file']}", handle.read())
                except OSError:
                    item["file_missing"] = True
            sources.append(item)
        bases.append({**_row(kb), "sources": sources})
    archive.writestr("knowledge.json", _json(bases))
    return len(bases)


def _write_agents(archive: zipfile.ZipFile) -> int:

    agents = [agent_export(agent) for agent in Agent.objects.order_by("id")]
    archive.writestr("agents.json", _json(agents))
    return len(agents)


def _write_audit(archive: zipfile.ZipFile) -> int:

    count = 0
    with archive.open("audit.jsonl", "w", force_zip64=True) as out:
        for event in audit_event_list().iterator(chunk_size=500):
            out.write((_json(_row(event)) + "\n").encode())
            count += 1
    return count
