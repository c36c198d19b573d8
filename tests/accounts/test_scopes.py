"""Scopes bound every API key and every grant, checked over the whole API.

The endpoint list comes from the URL resolver (every route under /api/v1/ and each method its
view implements) and the granting operations from the OpenAPI schema (every operation whose
input carries a `role` or `scopes`), so an endpoint added later is in these matrices without
editing this file:

- every endpoint x a key lacking one of the scopes it needs -> 403, nothing changed;
- every role x every endpoint: a person may call it exactly when the scopes /api/v1/me/
  reports for their role include what it needs (/me is truthful);
- every granting operation x a key asking for more than it holds (a role above its reach,
  scopes it lacks, an expiry after its own) -> 403, nothing created; within reach it works.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_tenants.utils import tenant_context
from drf_spectacular.generators import SchemaGenerator
from rest_framework.permissions import AllowAny
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from apps.accounts.models import APIKey, Invitation, Membership, Role, User
from apps.accounts.permissions import IsTenantMember
from apps.accounts.scopes import ALL_SCOPES, ROLE_SCOPES
from apps.accounts.services.actors import Actor
from apps.accounts.services.api_keys import api_key_create
from apps.tenants.models import Tenant

API_PREFIX = "/api/v1/"
WRITE_METHODS = ("post", "put", "patch", "delete")
SAFE = {"GET", "HEAD", "OPTIONS"}

# Endpoints that take credentials instead of requiring them (rate limited, tested in test_api).
PUBLIC_VIEWS = {"TokenObtainView", "TokenRefreshView"}


@dataclass(frozen=True)
class Endpoint:
    route: str  # e.g. "members/<int:member_id>/"
    method: str  # upper case
    view: type[APIView]

    def __str__(self) -> str:
        return f"{self.method} {self.route}"


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _endpoints() -> list[Endpoint]:
    found = []
    for route, callback in _walk(get_resolver("syntera.urls_api").url_patterns):
        view = getattr(callback, "cls", None)
        assert view is not None and issubclass(view, APIView), f"{route} is not a DRF view"
        for method in ("get", *WRITE_METHODS):
            if hasattr(view, method):
                found.append(Endpoint(route, method.upper(), view))
    return found


ENDPOINTS = _endpoints()
GUARDED = [e for e in ENDPOINTS if e.view.__name__ not in PUBLIC_VIEWS]


def needed_scopes(view: Any, method: str) -> tuple[str, ...] | None:
    """What the view declares it needs (the contract of apps/accounts/scopes.py, restated)."""
    method = "GET" if getattr(view, "reads_only", False) else method
    resources = getattr(view, "scope_resource", None)
    if not resources:
        return None
    resources = (resources,) if isinstance(resources, str) else tuple(resources)
    if method not in SAFE and getattr(view, "write_scopes", None):
        return tuple(view.write_scopes)
    return tuple(f"{r}:{'read' if method in SAFE else 'write'}" for r in resources)


def _tenant(info: Any) -> Tenant:
    return Tenant.objects.get(schema_name=info.schema)


def _owner(info: Any) -> Actor:
    user = User.objects.get(email=info.owner_email)
    return Actor(tenant=_tenant(info), role=Role.OWNER, user=user, label=user.email)


def _key(info: Any, scopes: list[str] | tuple[str, ...], **extra: Any) -> tuple[APIKey, str]:
    return api_key_create(actor=_owner(info), name="matrix", scopes=list(scopes), **extra)


# Columns that change on a refused request by design: the calling key's last use.
VOLATILE = {("accounts.APIKey", "last_used_at")}


def snapshot(info: Any) -> dict[str, str]:
    """A digest of every row of every model of ours, as the tenant sees it (its schema, then
    the public one): what a refused request must leave exactly as it was."""
    digests = {}
    with tenant_context(_tenant(info)):
        for model in django_apps.get_models():
            if not model.__module__.startswith("apps.") or model._meta.proxy:
                continue
            label = model._meta.label
            columns = [f.attname for f in model._meta.concrete_fields if (label, f.attname) not in VOLATILE]
            rows = model.objects.order_by("pk").values_list(*columns)
            digests[label] = hashlib.sha256(repr(list(rows)).encode()).hexdigest()
    return digests


@pytest.fixture
def world(alpha: Any, make_member: Any) -> dict[str, Any]:
    """A real row for every id the API's routes take, in alpha (canaries plus a few more)."""
    from apps.agents.models import Agent, BatchTest, KnowledgeGap
    from apps.conversations.models import Conversation, Inbox
    from apps.crm.models import Contact
    from apps.knowledge.models import KnowledgeBase, Source
    from apps.routing import services as routing

    viewer, _ = make_member(alpha, Role.VIEWER)
    owner = _owner(alpha)
    with tenant_context(owner.tenant):
        agent = Agent.objects.get(name=f"canary-{alpha.slug} agent")
        gap = KnowledgeGap.objects.create(agent=agent, key="k", question="Do you ship?", last_asked_at=timezone.now())
        batch = BatchTest.objects.create(agent=agent, prompt_version=1, questions=[{"question": "q"}])
        source = Source.objects.filter(knowledge_base__name__startswith="canary").first()
        team = routing.team_save(actor=owner, name="Matrix team")
        intent = routing.intent_save(actor=owner, name="matrix", examples=["where is my order"])
        rule = routing.rule_save(actor=owner, name="matrix rule", team_id=team.pk)
        from apps.tenants.models import TenantExport

        made = TenantExport.objects.create(tenant_id=alpha.tenant_id, requested_by=alpha.owner_email)
        return {
            "export_id": made.pk,
            "member_id": Membership.objects.get(user=viewer, tenant_id=alpha.tenant_id).pk,
            "invitation_id": Invitation.objects.get(tenant_id=alpha.tenant_id, email=alpha.canary_invite_email).pk,
            "key_id": APIKey.objects.get(tenant_id=alpha.tenant_id, name=alpha.canary_key_name).pk,
            "agent_id": agent.pk,
            "number": 1,
            "gap_id": gap.pk,
            "batch_id": batch.pk,
            "kb_id": KnowledgeBase.objects.get(name__startswith="canary").pk,
            "source_id": source.pk if source else 0,
            "inbox_id": Inbox.objects.get(name__startswith="canary").pk,
            "conversation_id": Conversation.objects.order_by("pk").first().pk,  # type: ignore[union-attr]
            "contact_id": Contact.objects.get(name__startswith="canary").pk,
            "team_id": team.pk,
            "intent_id": intent.pk,
            "rule_id": rule.pk,
            "provider": "openai",
        }


def url(route: str, world: dict[str, Any]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in world:
            pytest.fail(f"The scope matrix needs a real {name!r} for {route}: add one to the `world` fixture.")
        return str(world[name])

    return API_PREFIX + re.sub(r"<(?:\w+:)?(\w+)>", fill, route)


def _send(client: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.generic(method, path, data=json.dumps(body or {}), content_type="application/json")


# --- every endpoint x a key lacking one of its scopes -----------------------------------------


def test_the_matrix_sees_every_api_route() -> None:
    routes = {e.route for e in ENDPOINTS}
    assert {"api-keys/", "invitations/", "members/<int:member_id>/", "agents/<int:agent_id>/test"} <= routes
    assert len(GUARDED) > 80
    for endpoint in ENDPOINTS:
        if endpoint.view.__name__ in PUBLIC_VIEWS:
            assert endpoint.view.permission_classes == [AllowAny]
        else:  # any other permission class must be reviewed here before it ships
            assert endpoint.view.permission_classes == [IsTenantMember], endpoint


@pytest.mark.parametrize("endpoint", GUARDED, ids=str)
def test_a_key_lacking_a_scope_is_refused_and_changes_nothing(
    endpoint: Endpoint, alpha: Any, world: dict[str, Any], api_for: Any
) -> None:
    needed = needed_scopes(endpoint.view, endpoint.method)
    if needed is None and getattr(endpoint.view, "needs_no_scope", False) and endpoint.method in SAFE:
        _, raw = _key(alpha, ["tenant:read"])  # who-am-I: any key may ask
        assert api_for(alpha.host, raw).generic(endpoint.method, url(endpoint.route, world)).status_code == 200
        return
    # A view that names no resource is closed to keys: even a key with every scope is refused.
    lacking = [(s, [x for x in ALL_SCOPES if x != s]) for s in needed] if needed else [("(none)", list(ALL_SCOPES))]
    for missing, scopes in lacking:
        _, raw = _key(alpha, scopes)
        before = snapshot(alpha)
        response = _send(api_for(alpha.host, raw), endpoint.method, url(endpoint.route, world))
        assert response.status_code == 403, (str(endpoint), missing, response.content[:300])
        assert response.json()["error"]["code"] == "permission_denied"
        if needed:
            assert missing in response.json()["error"]["detail"]
        assert snapshot(alpha) == before, f"{endpoint} changed data for a key lacking {missing}"


def test_a_view_that_names_no_resource_is_closed_to_keys(alpha: Any) -> None:
    """A future view that forgets `scope_resource` is refused to every key, not opened."""

    class Forgetful(APIView):
        def post(self, request: Any) -> Any:
            raise AssertionError("never reached")

    key, _ = _key(alpha, ALL_SCOPES)
    from apps.accounts.authentication import APIKeyPrincipal

    request = APIRequestFactory().post("/api/v1/forgetful/", {}, format="json")
    request.tenant = _tenant(alpha)  # type: ignore[attr-defined]
    force_authenticate(request, user=APIKeyPrincipal(key))  # type: ignore[arg-type]
    response = Forgetful.as_view()(request)
    assert response.status_code == 403
    assert "API keys cannot use this endpoint" in str(response.data)


# --- /me is truthful: every role x every endpoint ---------------------------------------------


def _role_allowed(endpoint: Endpoint, membership: Membership, tenant: Tenant) -> bool:
    """Whether the API's permission lets this member through to the endpoint's handler."""
    request = APIRequestFactory().generic(endpoint.method, "/api/v1/x/")
    request.tenant = tenant  # type: ignore[attr-defined]
    request.membership = membership  # type: ignore[attr-defined]
    force_authenticate(request, user=membership.user)
    view = endpoint.view()
    view.args, view.kwargs, view.format_kwarg = (), {}, None
    drf_request = view.initialize_request(request)
    view.request = drf_request
    return all(p.has_permission(drf_request, view) for p in view.get_permissions())


@pytest.mark.parametrize("role", Role.values)
def test_me_lists_exactly_what_a_role_may_do(
    role: str, alpha: Any, make_member: Any, jwt_for: Any, api_for: Any
) -> None:
    user, _ = make_member(alpha, role)
    me = api_for(alpha.host, jwt_for(alpha, user.email)).get("/api/v1/me/").json()
    assert me["role"] == role and set(me["scopes"]) == set(ROLE_SCOPES[role])
    membership = Membership.objects.select_related("tenant", "user").get(user=user, tenant_id=alpha.tenant_id)
    untruthful = []
    for endpoint in GUARDED:
        needed = needed_scopes(endpoint.view, endpoint.method)
        if needed is None:
            continue
        says = set(needed) <= set(me["scopes"])
        if _role_allowed(endpoint, membership, membership.tenant) != says:
            untruthful.append(f"{endpoint} needs {needed}: /me says {'yes' if says else 'no'}")
    assert untruthful == []


# --- every granting operation x a key asking for more than it holds ---------------------------


def _schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-any-return]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    if "allOf" in node and len(node["allOf"]) == 1:
        return _resolve(schema, node["allOf"][0])
    return node


def _is_role(prop: dict[str, Any]) -> bool:
    """A member role field: the `RoleEnum` component, directly or wrapped in an allOf."""
    refs = [prop.get("$ref", ""), *(p.get("$ref", "") for p in prop.get("allOf", []))]
    return any(ref.endswith("/RoleEnum") for ref in refs)


@dataclass(frozen=True)
class Grant:
    path: str  # OpenAPI path, e.g. /api/v1/members/{member_id}/
    method: str
    body: dict[str, Any]  # the resolved request schema
    fields: tuple[str, ...]  # the granting fields in it: a member role, scopes, expires_at

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({', '.join(self.fields)})"


def _grants() -> list[Grant]:
    schema = _schema()
    found = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            content = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if not content:
                continue
            body = _resolve(schema, content["schema"])
            properties = body.get("properties", {})
            roles = [name for name, prop in properties.items() if _is_role(prop)]
            granting = (*roles, *(name for name in ("scopes", "expires_at") if name in properties))
            if roles or "scopes" in granting:
                found.append(Grant(path, method.upper(), body, granting))
    return found


GRANTS = _grants()


def test_the_grant_matrix_finds_every_granting_operation() -> None:
    assert {str(g).split(" (")[0] for g in GRANTS} >= {
        "POST /api/v1/api-keys/",
        "POST /api/v1/invitations/",
        "PATCH /api/v1/members/{member_id}/",
    }


_counter = itertools.count()


def _body(grant: Grant, **overrides: Any) -> dict[str, Any]:
    """The operation's required fields with plausible values, then the granting ones."""
    body: dict[str, Any] = {}
    for name in grant.body.get("required", []):
        prop = grant.body["properties"][name]
        if prop.get("format") == "email":
            body[name] = f"grantee{next(_counter)}@example.com"
        elif prop.get("type") == "string":
            body[name] = f"granted {next(_counter)}"
    return {**body, **overrides}


def _granting_key(alpha: Any, grant: Grant) -> tuple[APIKey, str]:
    """A key with what the operation needs plus every read: the viewer role is within its
    reach, the agent, admin and owner roles and every other write scope are not."""
    from django.urls import resolve

    match = resolve(re.sub(r"\{\w+\}", "1", grant.path))
    view = match.func.cls  # type: ignore[attr-defined]
    own = {*(needed_scopes(view, grant.method) or ()), *(s for s in ALL_SCOPES if s.endswith(":read"))}
    return _key(alpha, sorted(own), expires_at=timezone.now() + timedelta(days=1))


def _path(grant: Grant, world: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(world[m.group(1)]), grant.path)


@pytest.mark.parametrize("grant", GRANTS, ids=str)
def test_a_key_cannot_grant_more_than_it_holds(grant: Grant, alpha: Any, world: dict[str, Any], api_for: Any) -> None:
    key, raw = _granting_key(alpha, grant)
    client = api_for(alpha.host, raw)
    path = _path(grant, world)
    role_fields = [name for name in grant.fields if name not in ("scopes", "expires_at")]
    attempts: list[dict[str, Any]] = []
    for name in role_fields:
        attempts += [_body(grant, **{name: r}) for r in (Role.AGENT, Role.ADMIN, Role.OWNER)]
    if "scopes" in grant.fields:
        attempts += [_body(grant, scopes=[s]) for s in ALL_SCOPES if s not in key.scopes]
        attempts.append(_body(grant, scopes=list(ALL_SCOPES)))
    if "expires_at" in grant.fields:
        later = key.expires_at + timedelta(minutes=1)  # type: ignore[operator]
        attempts.append(_body(grant, scopes=key.scopes[:1], expires_at=later.isoformat()))
    for body in attempts:
        before = snapshot(alpha)
        response = _send(client, grant.method, path, body)
        assert response.status_code == 403, (str(grant), body, response.content[:300])
        assert response.json()["error"]["code"] == "permission_denied"
        assert snapshot(alpha) == before, f"{grant} changed data when asked for {body}"

    # Within reach it works: the viewer role, the key's own scopes, no later expiry.
    within = _body(grant, **dict.fromkeys(role_fields, Role.VIEWER))
    response = _send(client, grant.method, path, within)
    assert response.status_code in (200, 201), response.content[:300]
    if "scopes" in grant.fields:  # unscoped means the creator's own scopes, and its expiry
        made = response.json()
        assert made["scopes"] == sorted(key.scopes) and made["created_by_key"] == key.pk
        assert parse_datetime(made["expires_at"]) == key.expires_at


# --- the rules, one by one ---------------------------------------------------------------------


def test_a_key_made_by_a_key_is_revoked_with_it(alpha: Any, api_for: Any) -> None:
    parent, parent_raw = _key(alpha, ["api_keys:read", "api_keys:write", "members:read"])
    child = api_for(alpha.host, parent_raw).post("/api/v1/api-keys/", {"name": "child"}, format="json").json()
    grandchild = (
        api_for(alpha.host, child["key"])
        .post("/api/v1/api-keys/", {"name": "grandchild", "scopes": ["members:read"]}, format="json")
        .json()
    )
    assert child["scopes"] == ["api_keys:read", "api_keys:write", "members:read"]
    assert grandchild["scopes"] == ["members:read"] and grandchild["created_by_key"] == child["id"]
    assert api_for(alpha.host, grandchild["key"]).get("/api/v1/members/").status_code == 200

    revoked = api_for(alpha.host, alpha.api_key).delete(f"/api/v1/api-keys/{parent.pk}/")
    assert revoked.status_code == 200
    for raw in (parent_raw, child["key"], grandchild["key"]):
        assert api_for(alpha.host, raw).get("/api/v1/me/").status_code == 401
    events = api_for(alpha.host, alpha.api_key).get("/api/v1/audit-events/?action=api_key.revoked").json()
    assert {e["data"]["name"] for e in events["results"]} >= {"matrix", "child", "grandchild"}


def test_me_tells_a_key_its_scopes_and_expiry(alpha: Any, api_for: Any) -> None:
    expires = timezone.now() + timedelta(hours=3)
    _, raw = _key(alpha, ["crm:read", "api_keys:write"], expires_at=expires)
    me = api_for(alpha.host, raw).get("/api/v1/me/").json()
    assert me["kind"] == "api_key" and me["scopes"] == ["api_keys:write", "crm:read"]
    made = api_for(alpha.host, raw).post("/api/v1/api-keys/", {"name": "inherits"}, format="json").json()
    child_me = api_for(alpha.host, made["key"]).get("/api/v1/me/").json()
    assert child_me["scopes"] == me["scopes"] and child_me["expires_at"] == me["expires_at"]
    assert parse_datetime(me["expires_at"]) == expires


def test_a_key_cannot_manage_a_member_who_has_more_access(alpha: Any, api_for: Any, make_member: Any) -> None:
    """members:write and every read reach viewers only: an admin's or agent's role is out of
    its reach, to change or to remove."""
    _, raw = _key(alpha, ["members:write", *(s for s in ALL_SCOPES if s.endswith(":read"))])
    client = api_for(alpha.host, raw)
    for role in (Role.AGENT, Role.ADMIN):
        user, _ = make_member(alpha, role)
        member = Membership.objects.get(user=user, tenant_id=alpha.tenant_id)
        assert client.patch(f"/api/v1/members/{member.pk}/", {"role": "viewer"}, format="json").status_code == 403
        assert client.delete(f"/api/v1/members/{member.pk}/").status_code == 403
        member.refresh_from_db()
        assert member.role == role
    viewer, _ = make_member(alpha, Role.VIEWER)
    member = Membership.objects.get(user=viewer, tenant_id=alpha.tenant_id)
    assert client.delete(f"/api/v1/members/{member.pk}/").status_code == 204


def test_answering_a_knowledge_gap_needs_knowledge_write_too(alpha: Any, world: dict[str, Any], api_for: Any) -> None:
    """The answer becomes a knowledge source, so `agents:write` alone does not reach it."""
    _, raw = _key(alpha, ["agents:read", "agents:write", "knowledge:read"])
    before = snapshot(alpha)
    response = api_for(alpha.host, raw).post(
        f"/api/v1/agents/{world['agent_id']}/knowledge-gaps/{world['gap_id']}/answer",
        {"answer": "Yes, worldwide.", "question": "Do you ship?"},
        format="json",
    )
    assert response.status_code == 403 and "knowledge:write" in response.json()["error"]["detail"]
    assert snapshot(alpha) == before


def test_services_bound_grants_whatever_the_edge(alpha: Any) -> None:
    """The services check the actor's scopes themselves (a dashboard page, a command or a
    future edge gets the same rules)."""
    from apps.accounts import services
    from syntera.errors import ApplicationError

    key, _ = _key(alpha, ["invitations:write", "api_keys:write"])
    actor = Actor.for_api_key(key)
    assert actor.role == Role.ADMIN and actor.scopes == {"invitations:write", "api_keys:write"}
    with pytest.raises(ApplicationError) as denied:
        services.invitation_create(actor=actor, email="boss@example.com", role=Role.ADMIN)
    assert denied.value.status_code == 403 and "role" in denied.value.fields
    with pytest.raises(ApplicationError) as denied:
        services.api_key_create(actor=actor, name="wider", scopes=["members:write"])
    assert denied.value.status_code == 403 and denied.value.fields["scopes"]
    with pytest.raises(ApplicationError) as denied:
        services.workspace_rename(actor=actor, name="Renamed by a key")
    assert denied.value.status_code == 403
    agent = Actor(tenant=_tenant(alpha), role=Role.AGENT)
    assert "agents:test" in agent.scopes and "inboxes:write" not in agent.scopes


def test_existing_keys_keep_what_they_could_do_when_scopes_are_split(alpha: Any) -> None:
    import importlib

    migration = importlib.import_module("apps.accounts.migrations.0004_split_scopes")
    old_all = [f"{r}:{a}" for r in ("tenant", "agents", "conversations") for a in ("read", "write")]
    wide, _ = _key(alpha, ["tenant:read"])
    narrow, _ = _key(alpha, ["tenant:read"])
    APIKey.objects.filter(pk=wide.pk).update(scopes=old_all)
    APIKey.objects.filter(pk=narrow.pk).update(scopes=["conversations:read", "crm:write"])
    migration.forwards(django_apps, None)
    wide.refresh_from_db()
    narrow.refresh_from_db()
    assert set(wide.scopes) == {
        *old_all,
        "inboxes:read",
        "inboxes:write",
        "llm_credentials:read",
        "llm_credentials:write",
        "agents:test",
    }
    assert set(narrow.scopes) == {"conversations:read", "crm:write", "inboxes:read"}
