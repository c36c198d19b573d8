"""Operators delete workspaces too: from the public admin (actions with a confirmation step) and
with `manage.py delete_tenant`. Same service, same audit, same tombstone."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context, schema_exists

from apps.audit.models import AuditEvent
from apps.tenants.models import Tenant, TenantDeletion
from tests.workspaces import Doomed

CHANGELIST = "/admin/tenants/tenant/"


def _action(operator: Any, action: str, tenant_id: int, confirmed: bool) -> Any:
    data: dict[str, Any] = {"action": action, "_selected_action": [tenant_id]}
    if confirmed:
        data["confirmed"] = "yes"
    return operator.post(CHANGELIST, data)


def _tenant(doomed: Doomed) -> Tenant:
    return Tenant.all_objects.get(pk=doomed.tenant.pk)


def test_operator_schedules_cancels_and_purges_from_the_public_admin(
    doomed: Doomed, operator: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    pk = doomed.tenant.pk
    confirm = _action(operator, "schedule_deletion", pk, confirmed=False)
    assert confirm.status_code == 200 and doomed.slug.encode() in confirm.content
    assert b"grace period" in confirm.content and _tenant(doomed).is_active  # asked, not done
    with django_capture_on_commit_callbacks(execute=True):
        assert _action(operator, "schedule_deletion", pk, confirmed=True).status_code == 302
    tenant = _tenant(doomed)
    assert tenant.deletion_pending and not tenant.is_active
    request = TenantDeletion.objects.get(tenant_id=pk)
    assert (request.requested_by, request.requested_via) == ("ops@syntera.example", "admin")
    assert [m.to for m in mailoutbox if doomed.slug in m.subject] == [[doomed.owner.email]]
    with schema_context(doomed.schema):
        assert AuditEvent.objects.get(action="tenant.deletion_requested").actor_label == "ops@syntera.example"
    listing = operator.get(CHANGELIST).content.decode()
    assert "scheduled for deletion" in listing.lower()
    # Its activation is not the operator's to flip meanwhile: cancelling is the way back.
    operator.post(f"/admin/tenants/tenant/{pk}/change/", {"name": "X", "slug": doomed.slug, "is_active": "on"})
    assert not _tenant(doomed).is_active

    with django_capture_on_commit_callbacks(execute=True):
        assert _action(operator, "cancel_deletion", pk, confirmed=True).status_code == 302
    assert _tenant(doomed).is_active and not _tenant(doomed).deletion_pending

    with django_capture_on_commit_callbacks(execute=True):
        _action(operator, "schedule_deletion", pk, confirmed=True)
        assert _action(operator, "purge_now", pk, confirmed=False).status_code == 200  # asks first
        assert schema_exists(doomed.schema)
        assert _action(operator, "purge_now", pk, confirmed=True).status_code == 302
    tombstone = _tenant(doomed)
    assert tombstone.deleted_at is not None and not schema_exists(doomed.schema)
    assert tombstone.deleted_by == "ops@syntera.example"  # the operator who purged it
    listing = operator.get(CHANGELIST).content.decode()
    assert doomed.slug in listing and "deleted" in listing.lower()
    view = operator.get(f"/admin/tenants/tenant/{pk}/change/")
    assert view.status_code == 200 and b'name="_save"' not in view.content
    assert (
        operator.post(f"/admin/tenants/tenant/{pk}/change/", {"name": "Back", "slug": doomed.slug}).status_code == 403
    )
    deletions = operator.get("/admin/tenants/tenantdeletion/")
    assert deletions.status_code == 200 and doomed.slug.encode() in deletions.content


def test_purge_now_only_purges_workspaces_scheduled_for_deletion(alpha: Any, operator: Any) -> None:
    response = _action(operator, "purge_now", alpha.tenant_id, confirmed=True)
    assert response.status_code == 302
    assert schema_exists(alpha.schema) and Tenant.objects.get(pk=alpha.tenant_id).is_active
    assert b"not scheduled for deletion" in operator.get(CHANGELIST).content


def test_delete_tenant_command(
    doomed: Doomed, capsys: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with pytest.raises(CommandError, match="No workspace"):
        call_command("delete_tenant", "no-such-workspace", "--noinput")
    monkeypatch.setattr("builtins.input", lambda prompt: "something else")
    with pytest.raises(CommandError, match="not confirmed"):
        call_command("delete_tenant", doomed.slug)
    assert _tenant(doomed).is_active

    with django_capture_on_commit_callbacks(execute=True):
        call_command("delete_tenant", doomed.slug, "--noinput")
    out = capsys.readouterr().out
    tenant = _tenant(doomed)
    assert tenant.deletion_pending and f"{tenant.purge_after:%Y-%m-%d}" in out
    assert TenantDeletion.objects.get(tenant=tenant).requested_via == "command"

    with django_capture_on_commit_callbacks(execute=True):
        call_command("delete_tenant", doomed.slug, "--cancel")
    assert _tenant(doomed).is_active

    monkeypatch.setattr("builtins.input", lambda prompt: doomed.slug)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("delete_tenant", doomed.slug, "--purge-now")
    assert "purged" in capsys.readouterr().out
    assert _tenant(doomed).deleted_at is not None and not schema_exists(doomed.schema)
    with pytest.raises(CommandError, match="already deleted"):
        call_command("delete_tenant", doomed.slug, "--noinput")
