"""Tenant isolation, tested with canary rows: nothing of beta ever reaches a caller of alpha.

Every API endpoint and dashboard page of the foundation is read with each kind of
credential (API key, JWT, session cookie, tenant admin) and must either refuse or show
only the caller's own tenant. Later subsystems add their endpoints to `API_LISTS` and
`PAGES` and their canaries in conftest's `_seed_canaries`.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import APIKey, Invitation, Membership
from apps.events import dispatch

API_LISTS = [
    "/api/v1/knowledge-bases/",
    "/api/v1/members/",
    "/api/v1/invitations/",
    "/api/v1/api-keys/",
    "/api/v1/audit-events/",
    "/api/v1/me/",
    "/api/v1/tenant/",
    "/api/v1/agents/",
    "/api/v1/llm-credentials/",
    "/api/v1/ai-usage",
    "/api/v1/contacts/",
    "/api/v1/leads/",
    "/api/v1/teams/",
    "/api/v1/intents/",
    "/api/v1/routing-rules/",
    "/api/v1/queue/",
    "/api/v1/presence/",
    "/api/v1/sla-events/",
]
PAGES = [
    "/dashboard/knowledge/",
    "/dashboard/",
    "/dashboard/members/",
    "/dashboard/api-keys/",
    "/dashboard/audit/",
    "/dashboard/agents/",
    "/dashboard/ai/",
    "/dashboard/contacts/",
    "/dashboard/inbox/",
    "/dashboard/inbox/?status=any",
    "/dashboard/inbox/conversations.json?status=any",
    "/dashboard/inboxes/",
    "/dashboard/queue/",
    "/dashboard/teams/",
    "/dashboard/intents/",
    "/dashboard/routing/",
    "/dashboard/sla/",
    "/dashboard/workspace/",
]
ADMIN_PAGES = [
    "/admin/",
    "/admin/audit/auditevent/",
    "/admin/accounts/membership/",
    "/admin/accounts/invitation/",
    "/admin/accounts/apikey/",
    "/admin/knowledge/knowledgebase/",
    "/admin/knowledge/source/",
    "/admin/agents/agent/",
    "/admin/agents/promptversion/",
    "/admin/agents/providercredential/",
    "/admin/agents/usagecounter/",
    "/admin/crm/contact/",
    "/admin/crm/lead/",
    "/admin/conversations/inbox/",
    "/admin/conversations/conversation/",
    "/admin/conversations/message/",
    "/admin/routing/team/",
    "/admin/routing/intent/",
    "/admin/routing/routingrule/",
    "/admin/routing/slaevent/",
]


def _canaries(info: Any) -> list[bytes]:
    return [
        info.canary_key_name.encode(),
        info.canary_invite_email.encode(),
        info.canary_action.encode(),
        info.owner_email.encode(),
        f"canary-{info.slug} inbox".encode(),
        f"canary-{info.slug} message".encode(),
    ]


def _assert_clean(content: bytes, foreign: Any) -> None:
    for canary in _canaries(foreign):
        assert canary not in content, f"{canary!r} leaked"


@pytest.mark.parametrize("path", API_LISTS)
def test_api_key_sees_only_its_tenant(alpha: Any, beta: Any, api_for: Any, path: str) -> None:
    for host in (alpha.host, "localhost"):
        response = api_for(host, alpha.api_key).get(path)
        assert response.status_code == 200
        _assert_clean(response.content, beta)
    # alpha's key on beta's host: refused outright
    assert api_for(beta.host, alpha.api_key).get(path).status_code == 403


@pytest.mark.parametrize("path", API_LISTS)
def test_jwt_sees_only_its_tenant(alpha: Any, beta: Any, api_for: Any, jwt_for: Any, path: str) -> None:
    token = jwt_for(alpha, alpha.owner_email)
    response = api_for(alpha.host, token).get(path)
    assert response.status_code == 200
    _assert_clean(response.content, beta)
    assert api_for(beta.host, token).get(path).status_code == 403


def test_detail_endpoints_do_not_reach_other_tenants_rows(alpha: Any, beta: Any, api_for: Any) -> None:
    client = api_for(alpha.host, alpha.api_key)
    beta_key = APIKey.objects.get(tenant_id=beta.tenant_id, name=beta.canary_key_name)
    beta_invite = Invitation.objects.get(tenant_id=beta.tenant_id, email=beta.canary_invite_email)
    beta_member = Membership.objects.get(tenant_id=beta.tenant_id, user__email=beta.owner_email)
    assert client.get(f"/api/v1/api-keys/{beta_key.pk}/").status_code == 404
    assert client.delete(f"/api/v1/api-keys/{beta_key.pk}/").status_code == 404
    assert client.get(f"/api/v1/invitations/{beta_invite.pk}/").status_code == 404
    assert client.delete(f"/api/v1/invitations/{beta_invite.pk}/").status_code == 404
    assert client.get(f"/api/v1/members/{beta_member.pk}/").status_code == 404
    assert client.patch(f"/api/v1/members/{beta_member.pk}/", {"role": "viewer"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/members/{beta_member.pk}/").status_code == 404
    beta_key.refresh_from_db()
    assert beta_key.revoked_at is None
    assert Membership.objects.filter(pk=beta_member.pk, role="owner").exists()


@pytest.mark.parametrize("path", PAGES + ADMIN_PAGES)
def test_session_sees_only_its_tenant_and_is_worthless_elsewhere(
    alpha: Any, beta: Any, login: Any, client_for: Any, path: str
) -> None:
    client = login(alpha, alpha.owner_email)
    response = client.get(path)
    assert response.status_code == 200, path
    _assert_clean(response.content, beta)
    # the same session cookie presented on beta's host
    stolen = client_for(beta.host)
    stolen.cookies = client.cookies
    response = stolen.get(path)
    assert response.status_code in (302, 403)
    _assert_clean(response.content, beta)
    # ...and it was ended, so it no longer works on alpha either
    assert client.get("/dashboard/").status_code == 302


def test_member_of_both_tenants_sees_each_separately(alpha: Any, beta: Any, make_member: Any, login: Any) -> None:
    user, _ = make_member(alpha, "admin", email="both@example.com")
    make_member(beta, "admin", email="both@example.com")
    a = login(alpha, user.email).get("/dashboard/api-keys/").content
    b = login(beta, user.email).get("/dashboard/api-keys/").content
    assert alpha.canary_key_name.encode() in a and beta.canary_key_name.encode() not in a
    assert beta.canary_key_name.encode() in b and alpha.canary_key_name.encode() not in b


def test_tenant_admin_is_for_owners_and_admins_only(alpha: Any, make_member: Any, login: Any) -> None:
    agent, _ = make_member(alpha, "agent")
    response = login(alpha, agent.email).get("/admin/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_public_admin_does_not_list_tenant_data_for_tenant_owners(alpha: Any, client_for: Any) -> None:
    client = client_for("localhost")
    client.post("/admin/login/", {"username": alpha.owner_email, "password": "x"})
    response = client.get("/admin/accounts/apikey/")
    assert response.status_code == 302  # not platform staff: redirected to the admin login


def test_search_never_returns_another_tenants_chunks(alpha: Any, beta: Any, api_for: Any) -> None:
    """Knowledge base ids are per tenant: alpha asking for every id it can name, with beta's
    canary word as the query, still only ever sees alpha's chunks."""
    from django_tenants.utils import schema_context

    from apps.knowledge.models import KnowledgeBase

    with schema_context(beta.schema):
        beta_ids = list(KnowledgeBase.objects.values_list("id", flat=True))
    with schema_context(alpha.schema):
        alpha_ids = list(KnowledgeBase.objects.values_list("id", flat=True))
    client = api_for(alpha.host, alpha.api_key)
    for mode in ("hybrid", "dense", "lexical"):
        response = client.post(
            "/api/v1/knowledge/search",
            {"query": "canary-beta secret word", "knowledge_bases": alpha_ids, "mode": mode, "top_k": 50},
            format="json",
        )
        assert response.status_code == 200
        assert b"canary-beta" not in response.content
        assert all("canary-alpha" in r["text"] for r in response.json()["results"])
    unknown = sorted(set(beta_ids) - set(alpha_ids)) or [max(beta_ids) + 1000]
    refused = client.post("/api/v1/knowledge/search", {"query": "canary", "knowledge_bases": unknown}, format="json")
    assert refused.status_code == 400 and b"canary-beta" not in refused.content


def test_inbox_pages_show_only_their_tenants_conversations(alpha: Any, beta: Any, login: Any) -> None:
    """Conversation and inbox ids are per schema, so alpha's and beta's canary conversations
    share an id: alpha's pages for that id show alpha's canary, never beta's."""
    from django_tenants.utils import schema_context

    from apps.conversations.models import Conversation, Inbox

    with schema_context(alpha.schema):
        conversation = Conversation.objects.get(inbox__name="canary-alpha inbox").pk
        inbox = Inbox.objects.get(name="canary-alpha inbox").pk
    client = login(alpha, alpha.owner_email)
    for path in (
        f"/dashboard/inbox/{conversation}/",
        f"/dashboard/inbox/{conversation}/messages.json?after=0",
        f"/dashboard/inboxes/{inbox}/",
        f"/admin/conversations/conversation/{conversation}/change/",
        f"/admin/conversations/inbox/{inbox}/change/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"canary-alpha" in response.content, path
        _assert_clean(response.content, beta)


def test_routing_rows_and_presence_stay_in_their_tenant(
    alpha: Any, beta: Any, make_member: Any, login: Any, api_for: Any
) -> None:
    """Teams, intents, rules, the queue, SLA events and presence of beta never reach alpha's
    API or pages; presence is per workspace even for a person who works in both."""
    from django_tenants.utils import tenant_context

    from apps.accounts.models import Role, User
    from apps.accounts.services import Actor
    from apps.conversations import services as conversations
    from apps.routing import presence
    from apps.routing import services as routing
    from apps.tenants.models import Tenant

    both, _ = make_member(alpha, "agent", email="routing-both@example.com")
    make_member(beta, "agent", email="routing-both@example.com")
    tenant = Tenant.objects.get(schema_name=beta.schema)
    owner = User.objects.get(email=beta.owner_email)
    actor = Actor(tenant=tenant, role=Role.OWNER, user=owner, label=owner.email)
    with tenant_context(tenant):
        team = routing.team_save(actor=actor, name="canary-beta team", members=[(both.pk, 2)])
        intent = routing.intent_save(actor=actor, name="canary-beta intent", keywords=["canary-beta"])
        routing.rule_save(actor=actor, name="canary-beta rule", intent_id=intent.pk, team_id=team.pk)
        inbox = conversations.inbox_create(actor=actor, name="canary-beta queue")
        conversation, _ = conversations.conversation_start(inbox=inbox)
        conversations.message_post(conversation_id=conversation.pk, role="visitor", text="canary-beta waiting")
        conversations.conversation_escalate(conversation_id=conversation.pk, reason="canary-beta", epoch=None)
        dispatch.run()
        presence.set_status(beta.schema, both.pk, "away")

    client = api_for(alpha.host, alpha.api_key)
    for path in ("teams/", "intents/", "routing-rules/", "queue/", "sla-events/", "presence/"):
        response = client.get(f"/api/v1/{path}")
        assert response.status_code == 200, path
        assert b"canary-beta" not in response.content, path
    detected = client.post("/api/v1/intents/detect", {"text": "canary-beta"}, format="json").json()
    assert detected["intent"] is None
    statuses = {r["user"]: r["status"] for r in client.get("/api/v1/presence/").json()["results"]}
    assert statuses[both.pk] != "away"  # away in beta only
    page_client = login(alpha, alpha.owner_email)
    for path in (
        "/dashboard/teams/",
        "/dashboard/intents/",
        "/dashboard/routing/",
        "/dashboard/queue/",
        "/dashboard/sla/",
    ):
        assert b"canary-beta" not in page_client.get(path).content, path
    with tenant_context(tenant):
        assert presence.status_of(beta.schema, both.pk) == "away"
