"""Dashboard pages driven the way staff use them: forms, redirects, what the page shows."""

from __future__ import annotations

import re
from typing import Any

from apps.accounts.models import APIKey, Invitation, Membership, PendingSignup, User
from apps.tenants.models import Tenant
from tests.support import PASSWORD


def test_signup_page_shows_errors_and_creates_nothing(alpha: Any, client_for: Any) -> None:
    before = Tenant.objects.count()
    response = client_for("localhost").post("/", {"company_name": "Dup", "slug": "alpha", "email": "d@dup.example"})
    assert response.status_code == 400 and b"already taken" in response.content
    response = client_for("localhost").post("/", {"company_name": "", "slug": "", "email": "bad"})
    assert response.status_code == 400
    assert Tenant.objects.count() == before and not PendingSignup.objects.exists()


def test_signup_is_rate_limited(client_for: Any, settings: Any) -> None:
    settings.RATELIMIT_SIGNUP = "2/h"
    client = client_for("localhost")
    for _ in range(2):
        assert client.post("/", {"company_name": "", "slug": "x"}).status_code == 400
    response = client.post("/", {"company_name": "", "slug": "x"})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert b"Too many requests" in response.content


def test_login_rejects_wrong_password_and_non_members(alpha: Any, beta: Any, client_for: Any) -> None:
    client = client_for(alpha.host)
    assert client.post("/login/", {"email": alpha.owner_email, "password": "nope"}).status_code == 400
    assert client.post("/login/", {"email": beta.owner_email, "password": PASSWORD}).status_code == 400
    ok = client.post(
        "/login/", {"email": alpha.owner_email.upper(), "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert ok.status_code == 302 and ok["Location"] == "/dashboard/"


def test_login_is_rate_limited(alpha: Any, client_for: Any, settings: Any) -> None:
    settings.RATELIMIT_LOGIN = "2/h"
    client = client_for(alpha.host)
    for _ in range(2):
        client.post("/login/", {"email": alpha.owner_email, "password": "nope"})
    response = client.post("/login/", {"email": alpha.owner_email, "password": PASSWORD})
    assert response.status_code == 429 and response["Retry-After"]


def test_owner_invites_and_new_person_accepts(
    alpha: Any, login: Any, client_for: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    owner = login(alpha, alpha.owner_email)
    with django_capture_on_commit_callbacks(execute=True):
        page = owner.post("/dashboard/members/", {"email": "newbie@example.com", "role": "agent"})
    assert page.status_code == 200 and b"Invitation sent" in page.content
    link = re.search(r"http://alpha\.localhost:8000(/invite/[^/]+/)", mailoutbox[0].body)
    assert link is not None
    visitor = client_for(alpha.host)
    form = visitor.get(link.group(1))
    assert form.status_code == 200 and b"Choose a password" in form.content
    weak = visitor.post(link.group(1), {"full_name": "New", "password": "short"})
    assert weak.status_code == 400
    accepted = visitor.post(link.group(1), {"full_name": "New Bie", "password": PASSWORD}, follow=True)
    assert accepted.redirect_chain[-1][0] == "/dashboard/"
    assert Membership.objects.get(tenant_id=alpha.tenant_id, user__email="newbie@example.com").role == "agent"
    reused = client_for(alpha.host).get(link.group(1))
    assert reused.status_code == 410
    members = owner.get("/dashboard/members/").content
    assert b"newbie@example.com" in members


def test_existing_account_accepts_with_its_password(alpha: Any, beta: Any, api_for: Any, client_for: Any) -> None:
    from apps.accounts.services import Actor, invitation_create

    owner = Membership.objects.get(tenant_id=alpha.tenant_id, user__email=alpha.owner_email)
    _inv, token = invitation_create(actor=Actor.for_membership(owner), email=beta.owner_email, role="viewer")
    client = client_for(alpha.host)
    assert b"existing Syntera account" in client.get(f"/invite/{token}/").content
    assert client.post(f"/invite/{token}/", {"password": "wrong-password-xyz"}).status_code == 400
    assert client.post(f"/invite/{token}/", {"password": PASSWORD}).status_code == 302
    assert User.objects.get(email=beta.owner_email).memberships.count() == 2


def test_expired_and_foreign_invitations_are_refused(alpha: Any, beta: Any, client_for: Any) -> None:
    from django.utils import timezone

    from apps.accounts.services import Actor, invitation_create

    owner = Membership.objects.get(tenant_id=alpha.tenant_id, user__email=alpha.owner_email)
    inv, token = invitation_create(actor=Actor.for_membership(owner), email="late@example.com")
    assert client_for(beta.host).get(f"/invite/{token}/").status_code == 404  # alpha's link on beta's host
    Invitation.objects.filter(pk=inv.pk).update(expires_at=timezone.now())
    response = client_for(alpha.host).get(f"/invite/{token}/")
    assert response.status_code == 410 and b"expired" in response.content
    assert client_for(alpha.host).get("/invite/not-a-token/").status_code == 404


def test_api_key_page_shows_key_once_and_revokes(alpha: Any, login: Any, api_for: Any) -> None:
    client = login(alpha, alpha.owner_email)
    page = client.post("/dashboard/api-keys/", {"name": "zapier", "scopes": ["members:read"]})
    raw = re.search(rb'id="new-key">(sk_live_[^<]+)<', page.content)
    assert raw is not None
    key = raw.group(1).decode()
    assert api_for(alpha.host, key).get("/api/v1/members/").status_code == 200
    listing = client.get("/dashboard/api-keys/").content
    assert key.encode() not in listing and b"zapier" in listing
    stored = APIKey.objects.get(tenant_id=alpha.tenant_id, name="zapier")
    client.post(f"/dashboard/api-keys/{stored.pk}/revoke/")
    assert api_for(alpha.host, key).get("/api/v1/members/").status_code == 401


def test_agent_and_viewer_pages_respect_roles(alpha: Any, make_member: Any, login: Any) -> None:
    agent, _ = make_member(alpha, "agent")
    client = login(alpha, agent.email)
    assert client.get("/dashboard/").status_code == 200
    members = client.get("/dashboard/members/")
    assert members.status_code == 200 and b"Send invitation" not in members.content
    assert client.post("/dashboard/members/", {"email": "x@y.example", "role": "agent"}).status_code == 403
    assert client.get("/dashboard/api-keys/").status_code == 403
    assert client.post("/dashboard/api-keys/", {"name": "sneaky"}).status_code == 403
    assert not APIKey.objects.filter(name="sneaky").exists()
    assert client.get("/dashboard/audit/").status_code == 403


def test_owner_changes_roles_and_removes_members_in_the_page(alpha: Any, make_member: Any, login: Any) -> None:
    agent, _ = make_member(alpha, "agent")
    membership = Membership.objects.get(user=agent, tenant_id=alpha.tenant_id)
    client = login(alpha, alpha.owner_email)
    client.post(f"/dashboard/members/{membership.pk}/", {"role": "admin"})
    membership.refresh_from_db()
    assert membership.role == "admin"
    client.post(f"/dashboard/members/{membership.pk}/", {"action": "remove"})
    assert not Membership.objects.filter(pk=membership.pk).exists()
    audit = client.get("/dashboard/audit/").content
    assert b"member.role_changed" in audit and b"member.removed" in audit


def test_tenant_admin_lists_only_this_tenants_rows(alpha: Any, beta: Any, login: Any) -> None:
    client = login(alpha, alpha.owner_email)
    page = client.get("/admin/accounts/apikey/").content
    assert alpha.canary_key_name.encode() in page and beta.canary_key_name.encode() not in page
    audit = client.get("/admin/audit/auditevent/").content
    assert alpha.canary_action.encode() in audit and beta.canary_action.encode() not in audit


def test_public_admin_serves_platform_staff(alpha: Any, client_for: Any) -> None:
    User.objects.create_superuser(email="ops@syntera.example", password=PASSWORD)
    client = client_for("localhost")
    assert client.login(email="ops@syntera.example", password=PASSWORD)
    page = client.get("/admin/tenants/tenant/")
    assert page.status_code == 200 and b"alpha" in page.content and b"beta" in page.content


def test_operator_creates_a_tenant_in_the_public_admin(db: None, client_for: Any) -> None:
    from django.db import connection

    User.objects.create_superuser(email="root@syntera.example", password=PASSWORD)
    client = client_for("localhost")
    assert client.login(email="root@syntera.example", password=PASSWORD)
    form = {
        "name": "Delta",
        "slug": "delta",
        "is_active": "on",
        "domains-TOTAL_FORMS": "1",
        "domains-INITIAL_FORMS": "0",
        "domains-0-domain": "delta.localhost",
        "domains-0-is_primary": "on",
    }
    reserved = client.post("/admin/tenants/tenant/add/", {**form, "slug": "admin"})
    assert reserved.status_code == 200 and b"reserved" in reserved.content
    response = client.post("/admin/tenants/tenant/add/", form)
    assert response.status_code == 302, response.content[:2000]
    tenant = Tenant.objects.get(slug="delta")
    assert tenant.schema_name == "delta"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema='delta' AND table_name='audit_auditevent'"
        )
        assert cursor.fetchone() is not None


def test_password_reset_by_email_for_members_only(
    alpha: Any, beta: Any, client_for: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(alpha.host)
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post("/password-reset/", {"email": beta.owner_email})  # not a member of alpha
    assert sent.status_code == 302 and sent["Location"] == "/password-reset/sent/"
    assert mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/password-reset/", {"email": alpha.owner_email.upper()})
    assert len(mailoutbox) == 1
    link = re.search(r"http://alpha\.localhost(/password-reset/[^/]+/[^/]+/)", mailoutbox[0].body)
    assert link is not None
    form = client.get(link.group(1), follow=True)
    assert b"Choose a new password" in form.content
    new_password = "a-brand-new-passphrase-77"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done.status_code == 302
    assert (
        client_for(alpha.host).post("/login/", {"email": alpha.owner_email, "password": new_password}).status_code
        == 302
    )
    reused = client_for(alpha.host).get(link.group(1), follow=True)
    assert b"no longer valid" in reused.content


def test_account_page_changes_name_and_password(alpha: Any, make_member: Any, login: Any, client_for: Any) -> None:
    user, _ = make_member(alpha, "viewer")
    client = login(alpha, user.email)
    client.post("/account/", {"form": "profile", "full_name": "Vera Viewer"})
    user.refresh_from_db()
    assert user.full_name == "Vera Viewer"
    wrong = client.post(
        "/account/", {"form": "password", "old_password": "nope", "new_password1": "x", "new_password2": "x"}
    )
    assert wrong.status_code == 400
    new_password = "another-long-passphrase-88"
    ok = client.post(
        "/account/",
        {"form": "password", "old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert ok.status_code == 302
    assert client.get("/dashboard/").status_code == 200  # still logged in after the change
    assert client_for(alpha.host).post("/login/", {"email": user.email, "password": new_password}).status_code == 302


def test_find_workspace_keeps_the_port_the_visitor_used_not_the_servers(client_for: Any, alpha: Any) -> None:
    """Behind a TLS proxy the server listens on its own port; the visitor's browser sent
    the public one (or none) in Host, and that is where the redirect must lead."""
    proxied = client_for("localhost").post("/login/", {"slug": alpha.slug}, SERVER_PORT="8000", secure=True)
    assert proxied.status_code == 302 and proxied["Location"] == f"https://{alpha.host}/login/"
    direct = client_for("localhost:8443").post("/login/", {"slug": alpha.slug}, SERVER_PORT="8000")
    assert direct["Location"] == f"http://{alpha.host}:8443/login/"
