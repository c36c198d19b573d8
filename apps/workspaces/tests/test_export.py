"""The workspace export: every kind of data the workspace holds, read through the same interfaces
the product uses (the conversation store for transcripts), and no secret."""

from __future__ import annotations

import json
import zipfile
from typing import Any

import pytest
from django_tenants.utils import schema_context

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.tenants.models import TenantExport
from apps.workspaces import export as exports
from syntera.errors import ApplicationError
from tests.workspaces import Doomed


def _actor(doomed: Doomed, role: str = Role.OWNER, user: Any = None) -> Actor:
    user = user or doomed.owner
    return Actor(tenant=doomed.tenant, role=role, user=user, label=user.email if user else "api-key:x")


def test_the_export_holds_all_the_workspaces_data_and_no_secret(
    doomed: Doomed, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        made = exports.tenant_export_request(actor=_actor(doomed))
    made.refresh_from_db()
    assert made.status == "ready", made.error
    assert made.file.name.startswith(f"tenants/{doomed.schema}/exports/") and made.size_bytes > 0
    slug = doomed.slug
    with made.file.open("rb") as handle, zipfile.ZipFile(handle) as archive:
        names = set(archive.namelist())
        text = {name: archive.read(name).decode(errors="replace") for name in names}
    assert {
        "README.txt",
        "workspace.json",
        "conversations.jsonl",
        "contacts.json",
        "leads.json",
        "knowledge.json",
        "agents.json",
        "audit.jsonl",
    } <= names
    workspace = json.loads(text["workspace.json"])
    assert workspace["slug"] == slug and {"email": doomed.owner.email, "role": "owner"} in workspace["members"]
    assert [i["name"] for i in workspace["inboxes"]] == [f"{slug} inbox"]
    (conversation,) = [json.loads(line) for line in text["conversations.jsonl"].splitlines()]
    assert [m["text"] for m in conversation["messages"]] == [f"{slug} transcript line"]
    assert conversation["messages"][0]["seq"] == 1 and conversation["contact_id"]
    (contact,) = json.loads(text["contacts.json"])
    assert f"{slug} memory" in [fact["value"] for fact in contact["memory"]]
    (lead,) = json.loads(text["leads.json"])
    assert lead["need"] == f"{slug} need"
    (kb,) = json.loads(text["knowledge.json"])
    sources = {s["title"]: s for s in kb["sources"]}
    assert f"Returns take 30 days at {slug}." in sources["Returns"]["content"]
    assert "shipping is free" in sources["guide.txt"]["text"]
    assert f"knowledge/files/{sources['guide.txt']['file']}" in names
    (agent,) = json.loads(text["agents.json"])
    assert agent["agent"]["instructions"] == f"{slug} instructions"
    actions = [json.loads(line)["action"] for line in text["audit.jsonl"].splitlines()]
    assert "tenant.created" in actions and "tenant.export_requested" in actions
    everything = "".join(text.values())
    for secret in (doomed.api_key, doomed.visitor_token, "visitor_token_hash", "key_hash", "api_key_encrypted"):
        assert secret not in everything
    with schema_context(doomed.schema):
        from apps.audit.models import AuditEvent

        assert AuditEvent.objects.filter(action="tenant.export_ready").exists()


def test_exports_are_for_owners_and_admins_in_person(doomed: Doomed, make_member: Any, alpha: Any) -> None:
    viewer, _ = make_member(alpha, "viewer")
    for actor in (_actor(doomed, Role.AGENT, viewer), Actor(tenant=doomed.tenant, role=Role.ADMIN, label="api-key")):
        with pytest.raises(ApplicationError) as err:
            exports.tenant_export_request(actor=actor)
        assert err.value.code == "permission_denied"
    assert not TenantExport.objects.filter(tenant=doomed.tenant).exists()


def test_a_failed_export_says_so_and_leaves_no_file(
    doomed: Doomed, media: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("store down")

    monkeypatch.setattr(exports, "_write_conversations", broken)
    with django_capture_on_commit_callbacks(execute=True):
        made = exports.tenant_export_request(actor=_actor(doomed))
    made.refresh_from_db()
    assert made.status == "failed" and made.error and "store down" not in made.error
    assert not made.file
    assert not (media / "tenants" / doomed.schema / "exports").exists() or not list(
        (media / "tenants" / doomed.schema / "exports").iterdir()
    )
