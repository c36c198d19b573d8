"""The workspace settings page (`/dashboard/workspace/`): rename, export, and the danger zone
where an owner deletes the workspace by typing its address, and cancels during the grace period."""

from __future__ import annotations

import zipfile
from io import BytesIO
from typing import Any

from apps.accounts.models import Membership, Role
from apps.tenants.models import Tenant, TenantDeletion, TenantExport
from tests.workspaces import Doomed, session_for


def _member(doomed: Doomed, role: str, make_member: Any, alpha: Any, client_for: Any) -> Any:
    user, _ = make_member(alpha, "viewer")
    Membership.objects.create(user=user, tenant=doomed.tenant, role=role)
    return session_for(client_for, doomed.host, user.email)


def test_owner_exports_deletes_and_cancels_from_the_page(
    doomed: Doomed, client_for: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    owner = session_for(client_for, doomed.host, doomed.owner.email)
    page = owner.get("/dashboard/workspace/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Danger zone" in html and doomed.slug in html and "Download an export" in html
    assert 'href="/dashboard/workspace/"' in owner.get("/dashboard/").content.decode()  # in the navigation

    assert owner.post("/dashboard/workspace/", {"action": "rename", "name": "Renamed Co"}).status_code == 302
    assert Tenant.objects.get(pk=doomed.tenant.pk).name == "Renamed Co"

    wrong = owner.post("/dashboard/workspace/delete/", {"confirm": "not-the-slug", "export": "on"})
    assert wrong.status_code == 400 and b"Type the workspace address" in wrong.content
    assert not TenantDeletion.objects.filter(tenant=doomed.tenant).exists()

    with django_capture_on_commit_callbacks(execute=True):
        done = owner.post("/dashboard/workspace/delete/", {"confirm": doomed.slug, "export": "on"})
    assert done.status_code == 302 and done["Location"] == "/dashboard/workspace/"
    scheduled = owner.get("/dashboard/workspace/").content.decode()
    tenant = Tenant.all_objects.get(pk=doomed.tenant.pk)
    assert "scheduled for deletion" in scheduled and f"{tenant.purge_after:%Y-%m-%d}" in scheduled
    assert "Cancel the deletion" in scheduled
    # The export offered with the request is listed and downloads.
    link = scheduled.split('href="/dashboard/workspace/exports/')[1].split('"')[0]
    download = owner.get(f"/dashboard/workspace/exports/{link}")
    assert download.status_code == 200
    archive = zipfile.ZipFile(BytesIO(b"".join(download.streaming_content)))
    assert "conversations.jsonl" in archive.namelist()
    # Every other page says the workspace is going away.
    for path in ("/dashboard/", "/dashboard/inbox/", "/admin/"):
        response = owner.get(path)
        assert response.status_code == 404 and b"scheduled for deletion" in response.content, path

    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post("/dashboard/workspace/cancel/").status_code == 302
    assert Tenant.objects.get(pk=doomed.tenant.pk).is_active
    assert owner.get("/dashboard/inbox/").status_code == 200
    assert "Cancel the deletion" not in owner.get("/dashboard/workspace/").content.decode()


def test_admins_export_but_do_not_delete_and_others_see_nothing(
    doomed: Doomed,
    alpha: Any,
    beta: Any,
    make_member: Any,
    client_for: Any,
    login: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    admin = _member(doomed, Role.ADMIN, make_member, alpha, client_for)
    page = admin.get("/dashboard/workspace/").content.decode()
    assert "Only an owner can delete" in page and 'name="confirm"' not in page
    assert admin.post("/dashboard/workspace/delete/", {"confirm": doomed.slug}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.post("/dashboard/workspace/export/").status_code == 302
    assert not TenantDeletion.objects.filter(tenant=doomed.tenant).exists()
    made = TenantExport.objects.get(tenant=doomed.tenant)
    assert made.status == "ready"
    assert admin.get(f"/dashboard/workspace/exports/{made.pk}/download/").status_code == 200

    agent = _member(doomed, Role.AGENT, make_member, alpha, client_for)
    assert agent.get("/dashboard/workspace/").status_code == 403
    assert agent.post("/dashboard/workspace/export/").status_code == 403
    assert agent.get(f"/dashboard/workspace/exports/{made.pk}/download/").status_code == 403
    # beta's owner, on beta's host: beta's own page, nothing of this workspace's exports
    other = login(beta, beta.owner_email)
    assert other.get(f"/dashboard/workspace/exports/{made.pk}/download/").status_code == 404
    assert doomed.slug.encode() not in other.get("/dashboard/workspace/").content
