"""The workspace's deletion and export through `/api/v1/tenant/` (docs/api.md): who may do what,
on which host, and what the other side of the API sees meanwhile."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from apps.accounts.models import Membership, Role
from apps.tenants.models import Tenant, TenantDeletion, TenantExport
from tests.workspaces import Doomed, jwt_on


def _member(doomed: Doomed, role: str, make_member: Any, alpha: Any) -> str:
    user, _ = make_member(alpha, "viewer")
    Membership.objects.create(user=user, tenant=doomed.tenant, role=role)
    return str(user.email)


def test_only_the_owner_confirming_the_slug_deletes_and_only_the_owner_cancels(
    doomed: Doomed,
    alpha: Any,
    api_for: Any,
    jwt_for: Any,
    make_member: Any,
    mailoutbox: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    owner = api_for(doomed.host, jwt_on(api_for, doomed.host, doomed.owner.email))
    admin = api_for(doomed.host, jwt_on(api_for, doomed.host, _member(doomed, Role.ADMIN, make_member, alpha)))
    agent = api_for(doomed.host, jwt_on(api_for, doomed.host, _member(doomed, Role.AGENT, make_member, alpha)))
    confirm = {"confirm": doomed.slug}
    refused = [
        (admin.delete("/api/v1/tenant/", confirm, format="json"), 403),
        (agent.delete("/api/v1/tenant/", confirm, format="json"), 403),
        (api_for(doomed.host, doomed.api_key).delete("/api/v1/tenant/", confirm, format="json"), 403),
        (api_for("localhost", doomed.api_key).delete("/api/v1/tenant/", confirm, format="json"), 403),
        # alpha's owner: their token is for alpha, their key for alpha
        (
            api_for(doomed.host, jwt_for(alpha, alpha.owner_email)).delete("/api/v1/tenant/", confirm, format="json"),
            403,
        ),
        (api_for(alpha.host, alpha.api_key).delete("/api/v1/tenant/", confirm, format="json"), 403),
        (owner.delete("/api/v1/tenant/", {"confirm": "alpha"}, format="json"), 400),
        (owner.delete("/api/v1/tenant/", {}, format="json"), 400),
        (owner.delete("/api/v1/tenant/", {"confirm": ["x"] * 100}, format="json"), 400),
        (owner.delete("/api/v1/tenant/", "not json", content_type="application/json"), 400),
    ]
    for response, status in refused:
        assert response.status_code == status, (response.status_code, response.content[:300])
        assert set(response.json()["error"]) == {"code", "detail", "fields"}
    assert not TenantDeletion.objects.filter(tenant=doomed.tenant).exists()
    assert Tenant.objects.get(pk=doomed.tenant.pk).is_active
    assert Tenant.objects.get(pk=alpha.tenant_id).is_active

    with django_capture_on_commit_callbacks(execute=True):
        response = owner.delete("/api/v1/tenant/", {**confirm, "export": True}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["slug"] == doomed.slug and body["deletion"]["status"] == "scheduled"
    assert body["deletion"]["requested_by"] == doomed.owner.email and body["deletion"]["purge_after"]
    # The export it offered is being made (here: made, Celery runs eagerly).
    exports = owner.get("/api/v1/tenant/exports/").json()["results"]
    assert [e["status"] for e in exports] == ["ready"]
    # Meanwhile: the workspace resource still answers owners and admins, nothing else does.
    assert owner.get("/api/v1/tenant/").json()["deletion"]["status"] == "scheduled"
    assert admin.get("/api/v1/tenant/").status_code == 200
    blocked = owner.get("/api/v1/conversations/")
    assert blocked.status_code == 404 and blocked.json()["error"]["code"] == "scheduled_for_deletion"
    assert api_for("localhost", doomed.api_key).get("/api/v1/tenant/").status_code == 401
    assert owner.delete("/api/v1/tenant/", confirm, format="json").status_code == 409
    assert admin.delete("/api/v1/tenant/deletion/").status_code == 403
    assert agent.get("/api/v1/tenant/exports/").status_code == 403

    with django_capture_on_commit_callbacks(execute=True):
        response = owner.delete("/api/v1/tenant/deletion/")
    assert response.status_code == 200 and response.json()["deletion"] is None
    assert api_for("localhost", doomed.api_key).get("/api/v1/conversations/").status_code == 200
    assert owner.delete("/api/v1/tenant/deletion/").status_code == 409


def test_exports_are_made_and_downloaded_by_owners_and_admins_of_the_workspace_only(
    doomed: Doomed,
    alpha: Any,
    beta: Any,
    api_for: Any,
    jwt_for: Any,
    make_member: Any,
    media: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    admin = api_for(doomed.host, jwt_on(api_for, doomed.host, _member(doomed, Role.ADMIN, make_member, alpha)))
    viewer = api_for(doomed.host, jwt_on(api_for, doomed.host, _member(doomed, Role.VIEWER, make_member, alpha)))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post("/api/v1/tenant/exports/", {}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"  # made by a worker
    export = admin.get(f"/api/v1/tenant/exports/{response.json()['id']}/").json()
    assert export["status"] == "ready" and export["size_bytes"] > 0 and export["requested_by"]
    assert export["download_url"] == f"/api/v1/tenant/exports/{export['id']}/download/"
    assert export["counts"]["conversations"] == 1 and export["counts"]["contacts"] == 1

    download = admin.get(export["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert f'filename="{doomed.slug}-export-' in download["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert f"{doomed.slug} transcript line" in archive.read("conversations.jsonl").decode()
    # The file lives under the workspace's own media path.
    assert list((media / "tenants" / doomed.schema / "exports").iterdir())

    assert viewer.post("/api/v1/tenant/exports/", {}, format="json").status_code == 403
    assert viewer.get(export["download_url"]).status_code == 403
    key = api_for(doomed.host, doomed.api_key)
    assert key.post("/api/v1/tenant/exports/", {}, format="json").status_code == 403
    assert key.get(export["download_url"]).status_code == 403
    # Another workspace's owner, on their own host or ours, never reaches it.
    beta_owner = jwt_for(beta, beta.owner_email)
    assert api_for(beta.host, beta_owner).get(export["download_url"]).status_code == 404
    assert api_for(beta.host, beta_owner).get(f"/api/v1/tenant/exports/{export['id']}/").status_code == 404
    assert api_for(doomed.host, beta_owner).get(export["download_url"]).status_code == 403
    assert api_for("localhost", beta.api_key).get(export["download_url"]).status_code == 403
    assert admin.get("/api/v1/tenant/exports/999999/download/").status_code == 404
    # One export at a time.
    TenantExport.objects.filter(pk=export["id"]).update(status="running")
    busy = admin.post("/api/v1/tenant/exports/", {}, format="json")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "export_in_progress"
