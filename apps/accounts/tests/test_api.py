"""The accounts API as an integrator and a staff member use it: keys, JWTs, roles, errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import APIKey, Invitation, Membership
from tests.support import PASSWORD


def _assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "detail", "fields"}
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def test_api_key_works_on_its_host_and_on_the_public_host(alpha: Any, api_for: Any) -> None:
    for host in (alpha.host, "localhost"):
        response = api_for(host, alpha.api_key).get("/api/v1/me/")
        assert response.status_code == 200
        assert response.json()["tenant"]["slug"] == "alpha"
        assert response.json()["kind"] == "api_key"


def test_api_key_of_one_tenant_is_refused_on_another_tenants_host(alpha: Any, beta: Any, api_for: Any) -> None:
    _assert_error(api_for(beta.host, alpha.api_key).get("/api/v1/members/"), 403, "permission_denied")


@pytest.mark.parametrize(
    "token",
    ["sk_live_nope", "sk_live_000000000000_wrong", "sk_live_" + "a" * 500, "garbage", "sk_live_\u00e9\u00e9_x"],
)
def test_bad_keys_are_401_in_the_error_shape(alpha: Any, api_for: Any, token: str) -> None:
    _assert_error(api_for(alpha.host, token).get("/api/v1/members/"), 401)


def test_no_credentials_is_401(alpha: Any, api_for: Any) -> None:
    response = api_for(alpha.host).get("/api/v1/members/")
    _assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_key_revocation_and_expiry_take_effect_at_once(alpha: Any, api_for: Any) -> None:
    created = api_for(alpha.host, alpha.api_key).post("/api/v1/api-keys/", {"name": "temp"}, format="json")
    assert created.status_code == 201
    body = created.json()
    raw = body["key"]
    assert raw.startswith("sk_live_") and body["prefix"] in raw
    assert api_for(alpha.host, raw).get("/api/v1/me/").status_code == 200
    stored = APIKey.objects.get(pk=body["id"])
    assert raw not in stored.key_hash and stored.last_used_at is not None
    # listing never shows the secret again
    listed = api_for(alpha.host, alpha.api_key).get("/api/v1/api-keys/").json()["results"]
    assert all("key" not in item for item in listed)

    revoked = api_for(alpha.host, alpha.api_key).delete(f"/api/v1/api-keys/{body['id']}/")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    _assert_error(api_for(alpha.host, raw).get("/api/v1/me/"), 401)

    created = api_for(alpha.host, alpha.api_key).post("/api/v1/api-keys/", {"name": "short"}, format="json").json()
    APIKey.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_error(api_for(alpha.host, created["key"]).get("/api/v1/me/"), 401)


def test_scopes_limit_what_a_key_can_do(alpha: Any, api_for: Any) -> None:
    response = api_for(alpha.host, alpha.api_key).post(
        "/api/v1/api-keys/", {"name": "read-only", "scopes": ["members:read"]}, format="json"
    )
    key = response.json()["key"]
    assert api_for(alpha.host, key).get("/api/v1/members/").status_code == 200
    error = _assert_error(
        api_for(alpha.host, key).post("/api/v1/invitations/", {"email": "x@y.example"}, format="json"), 403
    )
    assert "invitations:write" in error["detail"]
    _assert_error(api_for(alpha.host, key).get("/api/v1/api-keys/"), 403)
    bad = api_for(alpha.host, alpha.api_key).post("/api/v1/api-keys/", {"name": "x", "scopes": ["root"]}, format="json")
    assert "scopes" in " ".join(_assert_error(bad, 400, "invalid")["fields"])


def test_jwt_login_refresh_and_tenant_binding(alpha: Any, beta: Any, api_for: Any, jwt_for: Any) -> None:
    pair = (
        api_for(alpha.host)
        .post("/api/v1/auth/token/", {"email": alpha.owner_email, "password": PASSWORD}, format="json")
        .json()
    )
    me = api_for(alpha.host, pair["access"]).get("/api/v1/me/")
    assert me.status_code == 200 and me.json()["role"] == "owner" and me.json()["email"] == alpha.owner_email
    # the JWT of a member of alpha is refused on beta's host, and on the public host
    _assert_error(api_for(beta.host, pair["access"]).get("/api/v1/me/"), 403)
    _assert_error(api_for("localhost", pair["access"]).get("/api/v1/me/"), 403)
    refreshed = api_for(alpha.host).post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert refreshed.status_code == 200
    assert api_for(alpha.host, refreshed.json()["access"]).get("/api/v1/me/").status_code == 200
    _assert_error(
        api_for(beta.host).post("/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json"), 403
    )
    # a member of alpha cannot get a token on beta
    _assert_error(
        api_for(beta.host).post(
            "/api/v1/auth/token/", {"email": alpha.owner_email, "password": PASSWORD}, format="json"
        ),
        401,
        "invalid_credentials",
    )
    _assert_error(api_for(alpha.host, "not.a.jwt").get("/api/v1/me/"), 401)


def test_removing_a_member_invalidates_their_jwt_at_once(
    alpha: Any, api_for: Any, jwt_for: Any, make_member: Any
) -> None:
    user, _ = make_member(alpha, "agent")
    token = jwt_for(alpha, user.email)
    assert api_for(alpha.host, token).get("/api/v1/me/").status_code == 200
    Membership.objects.filter(user=user, tenant_id=alpha.tenant_id).delete()
    _assert_error(api_for(alpha.host, token).get("/api/v1/me/"), 403)


def test_viewer_reads_but_cannot_write(alpha: Any, api_for: Any, jwt_for: Any, make_member: Any) -> None:
    user, _ = make_member(alpha, "viewer")
    token = jwt_for(alpha, user.email)
    assert api_for(alpha.host, token).get("/api/v1/members/").status_code == 200
    _assert_error(api_for(alpha.host, token).patch("/api/v1/tenant/", {"name": "Hacked"}, format="json"), 403)
    _assert_error(api_for(alpha.host, token).post("/api/v1/invitations/", {"email": "a@b.example"}, format="json"), 403)


def test_agent_cannot_manage_members_or_keys(alpha: Any, api_for: Any, jwt_for: Any, make_member: Any) -> None:
    user, _ = make_member(alpha, "agent")
    token = jwt_for(alpha, user.email)
    owner = Membership.objects.get(tenant_id=alpha.tenant_id, user__email=alpha.owner_email)
    _assert_error(api_for(alpha.host, token).post("/api/v1/invitations/", {"email": "a@b.example"}, format="json"), 403)
    _assert_error(api_for(alpha.host, token).post("/api/v1/api-keys/", {"name": "mine"}, format="json"), 403)
    _assert_error(
        api_for(alpha.host, token).patch(f"/api/v1/members/{owner.pk}/", {"role": "viewer"}, format="json"), 403
    )
    _assert_error(api_for(alpha.host, token).delete(f"/api/v1/members/{owner.pk}/"), 403)
    _assert_error(api_for(alpha.host, token).get("/api/v1/audit-events/"), 403)


def test_admin_manages_members_but_not_owners(alpha: Any, api_for: Any, jwt_for: Any, make_member: Any) -> None:
    admin, _ = make_member(alpha, "admin")
    agent, _ = make_member(alpha, "agent")
    token = jwt_for(alpha, admin.email)
    agent_m = Membership.objects.get(user=agent, tenant_id=alpha.tenant_id)
    owner_m = Membership.objects.get(tenant_id=alpha.tenant_id, user__email=alpha.owner_email)
    ok = api_for(alpha.host, token).patch(f"/api/v1/members/{agent_m.pk}/", {"role": "viewer"}, format="json")
    assert ok.status_code == 200 and ok.json()["role"] == "viewer"
    _assert_error(
        api_for(alpha.host, token).patch(f"/api/v1/members/{agent_m.pk}/", {"role": "owner"}, format="json"), 403
    )
    _assert_error(api_for(alpha.host, token).delete(f"/api/v1/members/{owner_m.pk}/"), 403)
    assert api_for(alpha.host, token).delete(f"/api/v1/members/{agent_m.pk}/").status_code == 204


def test_last_owner_cannot_be_demoted(alpha: Any, api_for: Any, jwt_for: Any) -> None:
    token = jwt_for(alpha, alpha.owner_email)
    owner_m = Membership.objects.get(tenant_id=alpha.tenant_id, user__email=alpha.owner_email)
    _assert_error(
        api_for(alpha.host, token).patch(f"/api/v1/members/{owner_m.pk}/", {"role": "admin"}, format="json"),
        409,
        "last_owner",
    )


def test_invitation_via_api_sends_email_after_commit(
    alpha: Any, api_for: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(alpha.host, alpha.api_key).post(
            "/api/v1/invitations/", {"email": "New.Person@Example.com", "role": "viewer"}, format="json"
        )
    assert response.status_code == 201
    assert response.json()["status"] == "pending" and response.json()["email"] == "new.person@example.com"
    assert len(mailoutbox) == 1
    assert "http://alpha.localhost:8000/invite/" in mailoutbox[0].body
    _assert_error(
        api_for(alpha.host, alpha.api_key).post("/api/v1/invitations/", {"email": alpha.owner_email}, format="json"),
        409,
        "already_member",
    )
    bad = api_for(alpha.host, alpha.api_key).post(
        "/api/v1/invitations/", {"email": "nope", "role": "god"}, format="json"
    )
    assert set(_assert_error(bad, 400, "invalid")["fields"]) == {"email", "role"}


def test_invitation_revocation(alpha: Any, api_for: Any) -> None:
    created = api_for(alpha.host, alpha.api_key).post("/api/v1/invitations/", {"email": "r@x.example"}, format="json")
    invitation_id = created.json()["id"]
    revoked = api_for(alpha.host, alpha.api_key).delete(f"/api/v1/invitations/{invitation_id}/")
    assert revoked.json()["status"] == "revoked"
    assert Invitation.objects.get(pk=invitation_id).revoked_at is not None


def test_pagination_filtering_and_ordering_are_consistent(alpha: Any, api_for: Any, make_member: Any) -> None:
    for _ in range(4):
        make_member(alpha, "viewer")
    client = api_for(alpha.host, alpha.api_key)
    page = client.get("/api/v1/members/?page_size=2&ordering=-id").json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert len(page["results"]) == 2 and page["count"] >= 5 and page["next"]
    assert page["results"][0]["id"] > page["results"][1]["id"]
    viewers = client.get("/api/v1/members/?role=viewer").json()
    assert viewers["count"] == 4 and {m["role"] for m in viewers["results"]} == {"viewer"}
    _assert_error(client.get("/api/v1/members/?role=emperor"), 400, "invalid")
    _assert_error(client.get("/api/v1/members/?page=999"), 404, "not_found")
    assert client.get("/api/v1/members/?page_size=100000").status_code == 200


def test_malformed_bodies_get_400_not_500(alpha: Any, api_for: Any) -> None:
    client = api_for(alpha.host, alpha.api_key)
    response = client.generic("POST", "/api/v1/api-keys/", b"{not json", content_type="application/json")
    _assert_error(response, 400, "parse_error")
    _assert_error(client.generic("POST", "/api/v1/api-keys/", b"name=x", content_type="text/plain"), 415)
    _assert_error(client.post("/api/v1/api-keys/", ["a", "list"], format="json"), 400)
    _assert_error(client.post("/api/v1/api-keys/", {"name": "x" * 101}, format="json"), 400)
    past = (timezone.now() - timedelta(days=1)).isoformat()
    _assert_error(client.post("/api/v1/api-keys/", {"name": "old", "expires_at": past}, format="json"), 400)
    _assert_error(client.get("/api/v1/members/not-a-number/"), 404)
    _assert_error(client.put("/api/v1/me/", {}, format="json"), 405)


def test_login_token_endpoint_is_rate_limited_with_retry_after(alpha: Any, api_for: Any, settings: Any) -> None:
    settings.RATELIMIT_LOGIN = "3/h"
    client = api_for(alpha.host)
    for _ in range(3):
        _assert_error(
            client.post("/api/v1/auth/token/", {"email": alpha.owner_email, "password": "x"}, format="json"), 401
        )
    response = client.post("/api/v1/auth/token/", {"email": alpha.owner_email, "password": PASSWORD}, format="json")
    _assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 3600


def test_failed_api_key_guesses_are_rate_limited(alpha: Any, api_for: Any, settings: Any) -> None:
    settings.RATELIMIT_API_AUTH_FAILURES = "2/h"
    client = api_for(alpha.host, "sk_live_abcdef012345_guess")
    assert client.get("/api/v1/me/").status_code == 401
    assert client.get("/api/v1/me/").status_code == 401
    response = client.get("/api/v1/me/")
    _assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_audit_trail_records_key_and_member_changes(alpha: Any, api_for: Any) -> None:
    client = api_for(alpha.host, alpha.api_key)
    client.post("/api/v1/api-keys/", {"name": "audited"}, format="json")
    events = client.get("/api/v1/audit-events/?action=api_key.created").json()["results"]
    assert any(e["data"].get("name") == "audited" and e["actor"].startswith("api-key:") for e in events)


def test_unknown_api_paths_and_hosts_answer_in_the_error_shape(alpha: Any, api_for: Any) -> None:
    _assert_error(api_for(alpha.host, alpha.api_key).get("/api/v1/does-not-exist/"), 404, "not_found")
    _assert_error(api_for(alpha.host, alpha.api_key).delete("/api/v1/api-keys/abc/"), 404, "not_found")
    _assert_error(api_for("ghost.localhost", alpha.api_key).get("/api/v1/me/"), 404, "not_found")


def test_me_reports_what_a_persons_role_allows(alpha: Any, api_for: Any, jwt_for: Any, make_member: Any) -> None:
    viewer, _ = make_member(alpha, "viewer")
    scopes = api_for(alpha.host, jwt_for(alpha, viewer.email)).get("/api/v1/me/").json()["scopes"]
    assert "members:read" in scopes and not any(s.endswith(":write") for s in scopes)
    owner_scopes = api_for(alpha.host, jwt_for(alpha, alpha.owner_email)).get("/api/v1/me/").json()["scopes"]
    assert "api_keys:write" in owner_scopes


def test_invitation_email_is_recorded_in_the_tenants_audit_trail(
    alpha: Any, api_for: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        api_for(alpha.host, alpha.api_key).post("/api/v1/invitations/", {"email": "aud@x.example"}, format="json")
    events = api_for(alpha.host, alpha.api_key).get("/api/v1/audit-events/?action=invitation.email_sent").json()
    assert [e["data"]["email"] for e in events["results"]][:1] == ["aud@x.example"]
