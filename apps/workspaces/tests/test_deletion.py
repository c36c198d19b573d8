"""Deleting a workspace: requested by an owner (or an operator), deactivated at once, restorable
during the grace period, then purged everywhere its data lives: the schema, the vector store,
the conversation store, its files, its Redis keys and its public rows. The tenant row stays as
a tombstone so the slug and schema name can never be taken again (docs/adr/0015-workspace-deletion.md)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from apps.accounts.models import APIKey, Invitation, Membership, Role
from apps.accounts.services import Actor, signup_company
from apps.agents.breaker import Breaker
from apps.audit.models import AuditEvent
from apps.conversations.services.superseding import note_visitor_message
from apps.knowledge.models import Source
from apps.knowledge.tasks import ingest_source
from apps.knowledge.tests.test_stores import pinecone_standin, use_pinecone  # noqa: F401  (their fixtures)
from apps.tenants.models import Domain, Tenant, TenantDeletion, TenantExport
from apps.workspaces import deletion, purge
from apps.workspaces.tasks import purge_due
from syntera import slots
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit
from tests.support import PASSWORD
from tests.workspaces import Doomed, jwt_on, make_workspace, session_for


def _owner(doomed: Doomed) -> Actor:
    return Actor(tenant=doomed.tenant, role=Role.OWNER, user=doomed.owner, label=doomed.owner.email)


def _request(doomed: Doomed, capture: Any) -> TenantDeletion:
    with capture(execute=True):
        return deletion.tenant_deletion_request(
            tenant=doomed.tenant, confirm=doomed.slug, actor=_owner(doomed), via="api"
        )


def _tenant(doomed: Doomed) -> Tenant:
    return Tenant.all_objects.get(pk=doomed.tenant.pk)


def _redis_keys(pattern: str) -> list[bytes]:
    client = redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"])
    return list(client.scan_iter(match=pattern, count=1000))


def _queue_ingestion(schema: str, source_id: int, capture: Any) -> str:
    """Mark the source queued and send its ingestion task the way services do (after commit,
    the schema in the task's headers); returns the source's status once the task has run."""
    with schema_context(schema):
        Source.objects.filter(pk=source_id).update(status=Source.Status.QUEUED)
        run = Source.objects.get(pk=source_id).run
        with capture(execute=True):
            enqueue_on_commit(ingest_source, source_id, run)
        return str(Source.objects.get(pk=source_id).status)


# --- request and grace period ----------------------------------------------------------------


def test_a_request_deactivates_the_workspace_at_once_and_tells_the_owners(
    doomed: Doomed,
    client_for: Any,
    api_for: Any,
    sockets: Any,
    mailoutbox: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    staff = session_for(client_for, doomed.host, doomed.owner.email)
    token = jwt_on(api_for, doomed.host, doomed.owner.email)
    assert sockets.widget(doomed.host, doomed.widget_key) is None  # works before

    before = timezone.now()
    request = _request(doomed, django_capture_on_commit_callbacks)

    tenant = _tenant(doomed)
    assert request.status == "scheduled" and not tenant.is_active and tenant.deletion_pending
    grace = timedelta(days=django_settings.TENANT_DELETION_GRACE_DAYS)
    assert before + grace <= tenant.purge_after <= timezone.now() + grace
    # The hosts say so, for pages and the API alike.
    page = staff.get("/dashboard/inbox/")
    assert page.status_code == 404 and b"scheduled for deletion" in page.content
    api = api_for(doomed.host, token).get("/api/v1/contacts/")
    assert api.status_code == 404 and api.json()["error"]["code"] == "scheduled_for_deletion"
    # API keys stop working, on the public host too; both WebSockets are refused.
    assert api_for("localhost", doomed.api_key).get("/api/v1/contacts/").status_code == 401
    assert sockets.widget(doomed.host, doomed.widget_key) == 4404
    assert sockets.staff(doomed.host, staff) == 4404
    # The owners are told, with the date and where to cancel or download the export.
    (mail,) = [m for m in mailoutbox if doomed.slug in m.subject]
    assert mail.to == [doomed.owner.email]
    assert f"{tenant.purge_after:%Y-%m-%d}" in mail.body and f"{doomed.host}:" in mail.body
    assert "/dashboard/workspace/" in mail.body
    with schema_context(doomed.schema):
        event = AuditEvent.objects.get(action="tenant.deletion_requested")
    assert event.actor_label == doomed.owner.email and event.data["purge_after"]
    # No ingestion (nor AI reply) runs for it any more.
    assert _queue_ingestion(doomed.schema, doomed.source_id, django_capture_on_commit_callbacks) == "queued"


def test_cancelling_during_the_grace_period_restores_everything(
    doomed: Doomed,
    client_for: Any,
    api_for: Any,
    sockets: Any,
    mailoutbox: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _request(doomed, django_capture_on_commit_callbacks)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = deletion.tenant_deletion_cancel(tenant=doomed.tenant, actor=_owner(doomed), via="api")
    assert cancelled.status == "cancelled" and cancelled.cancelled_by == doomed.owner.email

    tenant = _tenant(doomed)
    assert tenant.is_active and tenant.purge_after is None and not tenant.deletion_pending
    staff = session_for(client_for, doomed.host, doomed.owner.email)
    assert staff.get("/dashboard/inbox/").status_code == 200
    assert api_for("localhost", doomed.api_key).get("/api/v1/contacts/").status_code == 200
    assert sockets.widget(doomed.host, doomed.widget_key) is None
    assert sockets.staff(doomed.host, staff) is None
    assert _queue_ingestion(doomed.schema, doomed.source_id, django_capture_on_commit_callbacks) == "ready"
    assert [m.to for m in mailoutbox if "cancelled" in m.subject.lower()] == [[doomed.owner.email]]
    with schema_context(doomed.schema):
        assert AuditEvent.objects.filter(action="tenant.deletion_cancelled").exists()
    # Nothing to cancel any more; a new request starts a new grace period.
    with pytest.raises(ApplicationError) as err:
        deletion.tenant_deletion_cancel(tenant=doomed.tenant, actor=_owner(doomed), via="api")
    assert err.value.code == "no_deletion_scheduled"


def test_only_an_owner_of_this_workspace_confirming_its_slug_can_request(
    doomed: Doomed, alpha: Any, make_member: Any, django_capture_on_commit_callbacks: Any
) -> None:
    tenant = doomed.tenant
    admin, _ = make_member(alpha, "admin")  # a user; made admin of the doomed workspace below
    Membership.objects.create(user=admin, tenant=tenant, role=Role.ADMIN)
    alpha_owner = Actor(tenant=Tenant.objects.get(pk=alpha.tenant_id), role=Role.OWNER, user=admin, label="alpha owner")
    attempts: list[tuple[dict[str, Any], str]] = [
        ({"actor": Actor(tenant=tenant, role=Role.ADMIN, user=admin, label=admin.email)}, "permission_denied"),
        ({"actor": Actor(tenant=tenant, role=Role.ADMIN, label="api-key:ci")}, "permission_denied"),
        ({"actor": alpha_owner}, "permission_denied"),  # an owner, of another workspace
        ({"actor": _owner(doomed), "confirm": "alpha"}, "confirmation_mismatch"),
        ({"actor": _owner(doomed), "confirm": ""}, "confirmation_mismatch"),
        ({"actor": None, "operator": ""}, "permission_denied"),
    ]
    for kwargs, code in attempts:
        with pytest.raises(ApplicationError) as err:
            deletion.tenant_deletion_request(
                tenant=tenant,
                via="api",
                **{"confirm": doomed.slug, **kwargs},  # type: ignore[arg-type]
            )
        assert err.value.code == code, kwargs
    assert _tenant(doomed).is_active and not TenantDeletion.objects.filter(tenant=tenant).exists()

    _request(doomed, django_capture_on_commit_callbacks)
    with pytest.raises(ApplicationError) as err:
        deletion.tenant_deletion_request(tenant=tenant, confirm=doomed.slug, actor=_owner(doomed), via="api")
    assert err.value.code == "deletion_scheduled"
    with pytest.raises(ApplicationError) as err:  # admins cannot cancel either
        deletion.tenant_deletion_cancel(
            tenant=tenant, actor=Actor(tenant=tenant, role=Role.ADMIN, user=admin, label=admin.email), via="api"
        )
    assert err.value.code == "permission_denied"


# --- the purge -------------------------------------------------------------------------------


def _grace_passes(doomed: Doomed) -> None:
    past = timezone.now() - timedelta(minutes=1)
    TenantDeletion.objects.filter(tenant=doomed.tenant, status="scheduled").update(purge_after=past)
    Tenant.all_objects.filter(pk=doomed.tenant.pk).update(purge_after=past)


def test_after_the_grace_period_the_beat_purges_everything_and_leaves_a_tombstone(
    doomed: Doomed,
    alpha: Any,
    media: Path,
    client_for: Any,
    api_for: Any,
    sockets: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    schema, prefix = doomed.schema, django_settings.CACHES["default"]["KEY_PREFIX"]
    assert (media / doomed.file_name).exists()
    (media / "tenants" / alpha.schema).mkdir(parents=True, exist_ok=True)
    (media / "tenants" / alpha.schema / "keep.txt").write_text("alpha's file")
    with schema_context(alpha.schema):
        cache.set("deletion-canary", "alpha")
    assert _redis_keys(f"{schema}:{prefix}:*") and _redis_keys(f"*:presence:{schema}:*")
    layer_prefix = django_settings.CHANNEL_LAYERS["default"]["CONFIG"].get("prefix", "asgi")
    assert _redis_keys(f"{layer_prefix}:group:staff.{schema}")
    # Counted slots, a circuit breaker, a turn hint: named with the schema.
    for owner_schema in (schema, alpha.schema):
        assert slots.acquire(f"ai:{owner_schema}", limit=5, ttl=600, holder="a turn")
        Breaker(owner_schema, "openai").failed()
        note_visitor_message(owner_schema, 1, 5)
    assert len(_redis_keys(f"{prefix}:slots:*:{schema}*")) == 3
    _request(doomed, django_capture_on_commit_callbacks)

    purge_due.apply()  # still in its grace period: nothing happens
    assert schema_exists(schema) and _tenant(doomed).deleted_at is None
    _grace_passes(doomed)
    with django_capture_on_commit_callbacks(execute=True):
        purge_due.apply()

    request = TenantDeletion.objects.get(tenant=doomed.tenant)
    assert request.status == "purged" and request.purged_at is not None, request.last_error
    assert set(request.steps) == set(deletion.PURGE_STEPS)
    # The schema (pgvector tables and the PostgreSQL transcripts with it), the files, the keys.
    assert not schema_exists(schema)
    assert not (media / "tenants" / schema).exists()
    assert (media / "tenants" / alpha.schema / "keep.txt").read_text() == "alpha's file"
    assert _redis_keys(f"{schema}:{prefix}:*") == []
    assert _redis_keys(f"*:presence*:{schema}:*") == []
    assert _redis_keys(f"{layer_prefix}:group:*.{schema}") == []
    assert _redis_keys(f"{layer_prefix}:group:*.{schema}.*") == []
    assert _redis_keys(f"{prefix}:slots:*:{schema}*") == []
    assert len(_redis_keys(f"{prefix}:slots:*:{alpha.schema}*")) == 3  # another workspace's stay
    with schema_context(alpha.schema):
        assert cache.get("deletion-canary") == "alpha"
    # The public rows.
    tenant_id = doomed.tenant.pk
    for model in (Membership, Invitation, APIKey, Domain, TenantExport):
        assert not model.objects.filter(tenant_id=tenant_id).exists(), model
    # The tombstone: who and when, hidden from everything that walks live workspaces.
    tombstone = _tenant(doomed)
    assert tombstone.deleted_at is not None and tombstone.deleted_by == doomed.owner.email
    assert not tombstone.is_active and not Tenant.objects.filter(pk=tenant_id).exists()
    with pytest.raises(ApplicationError):
        tombstone.save()

    # The slug can never be taken again, and nothing of the old workspace can be reached.
    with pytest.raises(ApplicationError) as err:
        signup_company(company_name="Heir", slug=doomed.slug, email="heir@new.example", password=PASSWORD)
    assert err.value.code == "slug_taken"
    assert not schema_exists(schema)
    assert client_for(doomed.host).get("/login/").status_code == 404
    assert api_for("localhost", doomed.api_key).get("/api/v1/contacts/").status_code == 401
    assert sockets.widget(doomed.host, doomed.widget_key) == 4404
    found = client_for("localhost").post("/login/", {"slug": doomed.slug})
    assert b"No workspace has that address" in found.content
    # A second purge run finds nothing to do.
    assert deletion.tenant_purge(deletion_id=request.pk).status == "purged"


def test_a_purge_that_crashed_resumes_where_it_stopped(
    doomed: Doomed, media: Path, client_for: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    request = _request(doomed, django_capture_on_commit_callbacks)
    _grace_passes(doomed)
    real = purge.purge_files
    calls = {"files": 0}

    def crash_once(tenant: Tenant) -> None:
        calls["files"] += 1
        if calls["files"] == 1:
            raise OSError("disk went away")
        real(tenant)

    monkeypatch.setattr(purge, "purge_files", crash_once)
    with pytest.raises(OSError):
        deletion.tenant_purge(deletion_id=request.pk)
    request.refresh_from_db()
    assert request.status == "purging" and "disk went away" in request.last_error
    assert "files" not in request.steps and "mark" in request.steps
    # Marked deleted at the first step: the host is gone and the deletion cannot be cancelled.
    assert _tenant(doomed).deleted_at is not None
    assert client_for(doomed.host).get("/login/").status_code == 404
    with pytest.raises(ApplicationError) as err:
        deletion.tenant_deletion_cancel(tenant=_tenant(doomed), operator="ops@syntera.example", via="command")
    assert err.value.code == "no_deletion_scheduled"
    assert schema_exists(doomed.schema)  # the schema goes last but one; nothing is lost yet

    done = deletion.tenant_purge(deletion_id=request.pk)  # the beat's next run
    assert done.status == "purged" and done.last_error == "" and calls["files"] == 2
    assert not schema_exists(doomed.schema) and not (media / "tenants" / doomed.schema).exists()
    assert set(deletion.tenant_deletions_due()) == set()


def test_tasks_queued_for_a_workspace_being_deleted_do_nothing(
    doomed: Doomed, django_capture_on_commit_callbacks: Any
) -> None:
    request = _request(doomed, django_capture_on_commit_callbacks)
    assert _queue_ingestion(doomed.schema, doomed.source_id, django_capture_on_commit_callbacks) == "queued"
    _grace_passes(doomed)
    deletion.tenant_purge(deletion_id=request.pk)
    # The schema is gone: a task still in the queue for it ends quietly instead of failing
    # (or, worse, running in whatever schema the worker was in).
    with django_capture_on_commit_callbacks(execute=True), schema_context(doomed.schema):
        enqueue_on_commit(ingest_source, doomed.source_id, 1)
    result = ingest_source.apply(args=(doomed.source_id, 1), headers={"_schema_name": doomed.schema})
    assert result.successful() and result.get() is None
    assert connection.schema_name == "public"


@pytest.fixture
def mongo_transcripts(settings: Any) -> Any:
    """Transcripts in MongoDB, through pymongo against the wire-protocol stand-in."""
    from apps.conversations.stores.mongodb import client_for
    from tests.standins.mongo_server import MongoStandIn

    standin = MongoStandIn().start()
    settings.CONVERSATION_STORE = "mongodb"
    settings.MONGODB_URL = f"{standin.url.rstrip('/')}/purgetest{os.getpid()}"
    yield standin
    client_for(settings.MONGODB_URL).close()
    standin.close()


@pytest.mark.usefixtures("use_pinecone")
def test_the_purge_removes_pinecone_vectors_and_mongodb_transcripts(
    db: None, media: Path, alpha: Any, mongo_transcripts: Any, request: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """With the cloud stores configured, the purge goes through their interfaces: the tenant's
    Pinecone namespace (in every index) and its MongoDB database; other tenants keep theirs."""
    from apps.conversations.stores import get_store as conversation_store
    from apps.knowledge.stores import VectorRecord
    from apps.knowledge.stores import get_store as vector_store
    from apps.knowledge.stores.pinecone import namespace_for

    doomed = make_workspace("cloudy")
    index = request.getfixturevalue("use_pinecone").indexes["syntera-384"]
    assert index.ids(namespace_for(doomed.schema))  # its chunks were embedded into Pinecone
    vector_store().upsert(
        schema=alpha.schema,
        model="local-minilm",
        records=[VectorRecord(chunk_id=1, knowledge_base_id=1, source_id=1, vector=[0.1] * 384)],
    )
    transcripts = conversation_store()
    transcripts.append(schema=alpha.schema, conversation_id=1, role="visitor", text="alpha's line")
    with schema_context(doomed.schema):
        assert transcripts.after(schema=doomed.schema, conversation_id=doomed.conversation_id, after_seq=0)
    databases = set(mongo_transcripts.engine.list_database_names())
    assert any(name.endswith(doomed.schema) for name in databases)

    asked = _request(doomed, django_capture_on_commit_callbacks)
    _grace_passes(doomed)
    assert deletion.tenant_purge(deletion_id=asked.pk).status == "purged"

    assert index.ids(namespace_for(doomed.schema)) == set()
    assert index.ids(namespace_for(alpha.schema)) == {"1"}
    assert not any(name.endswith(doomed.schema) for name in mongo_transcripts.engine.list_database_names())
    assert [m.text for m in transcripts.after(schema=alpha.schema, conversation_id=1, after_seq=0)] == ["alpha's line"]
    # Run again (a resumed purge): namespaces and databases already gone are no error.
    assert purge.purge_vectors(_tenant(doomed)) is None
    assert purge.purge_transcripts(_tenant(doomed)) is None
