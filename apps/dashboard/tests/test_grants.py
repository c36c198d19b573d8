"""Nobody reaches a grant above their own through the dashboard or the tenant admin: the pages
offer only the roles within the person's reach, and a forged form is refused with nothing
changed (the services check it whatever the page sent)."""

from __future__ import annotations

import re
from typing import Any

from apps.accounts.models import APIKey, Invitation, Membership


def _options(html: bytes, select: str) -> list[str]:
    found = re.search(rb"<select[^>]*" + select.encode() + rb"[^>]*>(.*?)</select>", html, re.S)
    assert found is not None, select
    return [v.decode() for v in re.findall(rb'<option value="([^"]+)"', found.group(1))]


def test_an_admin_is_offered_and_granted_no_more_than_admin(alpha: Any, make_member: Any, login: Any) -> None:
    admin, _ = make_member(alpha, "admin")
    agent, _ = make_member(alpha, "agent")
    client = login(alpha, admin.email)
    page = client.get("/dashboard/members/").content
    assert _options(page, 'name="role" id="id_role"') == ["admin", "agent", "viewer"]
    assert _options(page, f'aria-label="Role of {agent.email}"') == ["admin", "agent", "viewer"]
    assert f'aria-label="Role of {alpha.owner_email}"'.encode() not in page  # the owner is out of reach

    forged = client.post("/dashboard/members/", {"email": "boss@example.com", "role": "owner"})
    assert forged.status_code == 200 and b"Select a valid choice" in forged.content
    assert not Invitation.objects.filter(email="boss@example.com").exists()

    agent_m = Membership.objects.get(user=agent, tenant_id=alpha.tenant_id)
    owner_m = Membership.objects.get(user__email=alpha.owner_email, tenant_id=alpha.tenant_id)
    refused = client.post(f"/dashboard/members/{agent_m.pk}/", {"role": "owner"}, follow=True)
    assert b"Only an owner can grant" in refused.content and b"is now owner" not in refused.content
    client.post(f"/dashboard/members/{owner_m.pk}/", {"role": "viewer"})
    client.post(f"/dashboard/members/{owner_m.pk}/", {"action": "remove"})
    agent_m.refresh_from_db()
    owner_m.refresh_from_db()
    assert (agent_m.role, owner_m.role) == ("agent", "owner")


def test_the_tenant_admin_grants_nothing(alpha: Any, make_member: Any, login: Any) -> None:
    """The workspace admin site is read-only: no member, invitation or key is added or changed
    there, whatever is posted; below admin it does not open at all."""
    admin, _ = make_member(alpha, "admin")
    agent, _ = make_member(alpha, "agent")
    agent_m = Membership.objects.get(user=agent, tenant_id=alpha.tenant_id)
    key = APIKey.objects.get(tenant_id=alpha.tenant_id, name=alpha.canary_key_name)
    client = login(alpha, admin.email)
    assert client.get("/admin/accounts/membership/").status_code == 200
    for path, data in (
        (f"/admin/accounts/membership/{agent_m.pk}/change/", {"role": "owner", "user": agent.pk}),
        ("/admin/accounts/membership/add/", {"role": "owner", "user": admin.pk, "tenant": alpha.tenant_id}),
        ("/admin/accounts/invitation/add/", {"email": "x@example.com", "role": "owner"}),
        ("/admin/accounts/apikey/add/", {"name": "admin-made", "scopes": "[]"}),
        (f"/admin/accounts/apikey/{key.pk}/change/", {"name": key.name, "scopes": '["tenant:read"]'}),
    ):
        assert client.post(path, data).status_code == 403, path
    agent_m.refresh_from_db()
    key.refresh_from_db()
    assert agent_m.role == "agent" and len(key.scopes) > 1
    assert not APIKey.objects.filter(name="admin-made").exists()
    assert not Invitation.objects.filter(email="x@example.com").exists()

    below = login(alpha, agent.email).get("/admin/accounts/membership/")
    assert below.status_code == 302 and "/login/" in below["Location"]
