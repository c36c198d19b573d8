"""The routing API as integrators and staff use it: teams with members, hours and SLA
targets; intents and detection; ordered routing rules; the queue; manual assignment (with
its race); presence; SLA events. Bad input, roles, scopes and another tenant's ids too."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.accounts.models import Role, User
from apps.accounts.services import Actor, api_key_create
from apps.conversations import services as conversations
from apps.conversations.models import Conversation, Inbox
from apps.events import dispatch
from apps.routing import presence
from apps.routing import services as routing
from apps.routing.models import SLAEvent, Team
from apps.tenants.models import Tenant
from syntera.errors import ApplicationError

HOURS = {
    "timezone": "Europe/Amsterdam",
    "weekly": {"mon": [["09:00", "17:30"]], "tue": [["09:00", "12:00"], ["13:00", "17:00"]]},
    "holidays": ["2026-12-25"],
}


def _in(info: Any) -> Any:
    return _in_schema(info.schema)


def _in_schema(schema: str) -> Any:
    """The tenant's schema with the tenant itself set (services read `connection.tenant`)."""
    return tenant_context(Tenant.objects.get(schema_name=schema))


def _owner(info: Any) -> Actor:
    tenant = Tenant.objects.get(schema_name=info.schema)
    user = User.objects.get(email=info.owner_email)
    return Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email)


def _inbox(info: Any, name: str = "Web") -> Inbox:
    with _in(info):
        return conversations.inbox_create(actor=_owner(info), name=name)  # no AI agent: people answer


def _waiting(info: Any, inbox: Inbox, text: str, *, vip: bool = False) -> int:
    """A conversation escalated to the queue (default team), nobody online to take it."""
    with _in(info):
        conversation, _ = conversations.conversation_start(inbox=inbox, attributes={"vip": "true"} if vip else {})
        conversations.message_post(conversation_id=conversation.pk, role="visitor", text=text, client_id="v1")
        conversations.conversation_escalate(conversation_id=conversation.pk, reason="asked for a person", epoch=None)
        dispatch.run()  # the hand-over's follow-up: SLA clocks, the visitor's place in the queue
        return int(conversation.pk)


@pytest.fixture
def owner_api(alpha: Any, api_for: Any, jwt_for: Any) -> Any:
    return api_for(alpha.host, jwt_for(alpha, alpha.owner_email))


@pytest.fixture
def person(alpha: Any, api_for: Any, jwt_for: Any, make_member: Any) -> Callable[[str], tuple[Any, Any]]:
    """`person("agent")` → (user, an API client logged in as them)."""

    def make(role: str) -> tuple[Any, Any]:
        user, _ = make_member(alpha, role)
        return user, api_for(alpha.host, jwt_for(alpha, user.email))

    return make


# --- teams ------------------------------------------------------------------------------------


def test_teams_crud_with_members_hours_and_sla(alpha: Any, owner_api: Any, person: Any) -> None:
    agent, _ = person("agent")
    admin, _ = person("admin")
    created = owner_api.post(
        "/api/v1/teams/",
        {
            "name": "  Billing   desk ",
            "strategy": "least_busy",
            "business_hours": HOURS,
            "first_response_minutes": 5,
            "resolution_minutes": 120,
            "out_of_hours_message": "We're closed.",
            "members": [{"user": agent.pk, "capacity": 3}, {"user": admin.pk}],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    team = created.json()
    assert team["name"] == "Billing desk" and team["strategy"] == "least_busy" and team["is_default"] is False
    assert team["business_hours"] == {**HOURS, "always_open": False}
    assert isinstance(team["open_now"], bool)
    members = {m["user"]: m for m in team["members"]}
    assert members[agent.pk]["capacity"] == 3 and members[admin.pk]["capacity"] == 5
    assert members[agent.pk]["presence"] == "offline" and members[agent.pk]["open_conversations"] == 0
    assert members[agent.pk]["email"] == agent.email

    # Defaults: a team created with a name only is always open, round robin, all staff.
    plain = owner_api.post("/api/v1/teams/", {"name": "Sales", "is_default": True}, format="json").json()
    assert plain["business_hours"]["always_open"] is True and plain["strategy"] == "round_robin"
    assert plain["members"] == [] and plain["first_response_minutes"] == 15 and plain["is_default"] is True

    url = f"/api/v1/teams/{team['id']}/"
    patched = owner_api.patch(url, {"is_default": True, "members": [{"user": agent.pk, "capacity": 9}]}, format="json")
    assert patched.status_code == 200, patched.content
    assert [(m["user"], m["capacity"]) for m in patched.json()["members"]] == [(agent.pk, 9)]
    assert patched.json()["business_hours"]["timezone"] == "Europe/Amsterdam"  # untouched
    assert owner_api.get(f"/api/v1/teams/{plain['id']}/").json()["is_default"] is False  # one default

    listed = owner_api.get("/api/v1/teams/?ordering=name").json()
    assert [t["name"] for t in listed["results"]] == ["Billing desk", "Sales"]
    assert owner_api.delete(url).status_code == 204
    assert owner_api.get(url).status_code == 404
    assert owner_api.get(url).json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("hours", "reason"),
    [
        ({"timezone": "Mars/Olympus"}, "Unknown time zone 'Mars/Olympus'."),
        ({"weekly": {"monday": [["09:00", "17:00"]]}}, "Unknown day 'monday'"),
        ({"weekly": {"mon": [["17:00", "09:00"]]}}, "17:00-09:00 on mon ends before it starts."),
        ({"weekly": {"mon": [["9am", "5pm"]]}}, "'9am' is not a time like 09:00."),
        ({"holidays": ["25/12/2026"]}, "'25/12/2026' is not a date like 2026-12-25."),
    ],
)
def test_bad_business_hours_are_a_400_with_the_reason(
    alpha: Any, owner_api: Any, hours: dict[str, Any], reason: str
) -> None:
    response = owner_api.post("/api/v1/teams/", {"name": "Night shift", "business_hours": hours}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert reason in error["detail"] and error["fields"]["business_hours"], error
    with _in(alpha):
        assert not Team.objects.filter(name="Night shift").exists()


def test_team_input_is_validated(alpha: Any, beta: Any, owner_api: Any, person: Any, make_member: Any) -> None:
    viewer, _ = person("viewer")
    outsider, _ = make_member(beta, "agent")
    agent, _ = person("agent")
    owner_api.post("/api/v1/teams/", {"name": "Support"}, format="json")
    cases = [
        ({"name": "x", "members": [{"user": viewer.pk}]}, "members"),  # a viewer takes no conversations
        ({"name": "x", "members": [{"user": outsider.pk}]}, "members"),  # another workspace's staff
        ({"name": "x", "members": [{"user": 99_999_999}]}, "members"),
        ({"name": "x", "members": [{"user": agent.pk}, {"user": agent.pk}]}, "members"),
        ({"name": "x", "members": [{"user": agent.pk, "capacity": 0}]}, "members"),
        ({"name": "support"}, "name"),  # names are unique, whatever the case
        ({"name": "   "}, "name"),
        ({"name": "x", "strategy": "random"}, "strategy"),
        ({"name": "x", "business_hours": {"weekly": ["mon"]}}, "business_hours.weekly"),
        ({"name": "x", "business_hours": "always"}, "business_hours.non_field_errors"),
        ({"name": "x", "first_response_minutes": 0}, "first_response_minutes"),
        ({"name": "x" * 121}, "name"),
    ]
    for body, field in cases:
        response = owner_api.post("/api/v1/teams/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["error"]["fields"], (body, response.json())
    assert owner_api.post("/api/v1/teams/", "[1, 2]", content_type="application/json").status_code == 400
    # The service holds every caller to the same rule, not only the API's validation.
    with _in_schema(alpha.schema):
        for user in (viewer, outsider):
            with pytest.raises(ApplicationError) as refused:
                routing.team_save(actor=_owner(alpha), name="Side desk", members=[(agent.pk, 2), (user.pk, 2)])
            assert "members" in refused.value.fields
        assert not Team.objects.filter(name="Side desk").exists()


# --- intents ----------------------------------------------------------------------------------


def test_intents_crud_and_detection(owner_api: Any, person: Any) -> None:
    created = owner_api.post(
        "/api/v1/intents/",
        {
            "name": "Refund",
            "examples": ["I want my money back", "  refund   my order ", ""],
            "keywords": ["refund", "chargeback"],
            "threshold": 0.6,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    intent = created.json()
    assert intent["examples"] == ["I want my money back", "refund my order"] and intent["threshold"] == 0.6
    owner_api.post("/api/v1/intents/", {"name": "Shipping", "examples": ["Where is my parcel?"]}, format="json")

    _, viewer = person("viewer")  # detection changes nothing: any role may try it
    found = viewer.post("/api/v1/intents/detect", {"text": "Can I get a chargeback on this?"}, format="json")
    assert found.status_code == 200, found.content
    assert found.json() == {"intent": "Refund", "confidence": 0.9, "by": "keyword"}
    similar = viewer.post("/api/v1/intents/detect", {"text": "where is my parcel"}, format="json").json()
    assert similar["intent"] == "Shipping" and similar["by"] == "examples" and similar["confidence"] > 0.9
    none = viewer.post("/api/v1/intents/detect", {"text": "The weather is lovely today"}, format="json").json()
    assert none == {"intent": None, "confidence": None, "by": None}
    for bad in ({}, {"text": ""}, {"text": "x" * 4001}):
        assert viewer.post("/api/v1/intents/detect", bad, format="json").status_code == 400
    assert viewer.post("/api/v1/intents/", {"name": "Nope"}, format="json").status_code == 403

    url = f"/api/v1/intents/{intent['id']}/"
    assert owner_api.patch(url, {"threshold": 0.95}, format="json").json()["threshold"] == 0.95
    assert owner_api.patch(url, {"name": "shipping"}, format="json").status_code == 400  # taken
    assert owner_api.patch(url, {"threshold": 1.5}, format="json").status_code == 400
    assert [i["name"] for i in owner_api.get("/api/v1/intents/").json()["results"]] == ["Refund", "Shipping"]
    assert owner_api.delete(url).status_code == 204
    assert owner_api.get(url).status_code == 404


# --- rules ------------------------------------------------------------------------------------


def test_rules_crud_in_position_order(owner_api: Any) -> None:
    team = owner_api.post("/api/v1/teams/", {"name": "VIP desk"}, format="json").json()
    intent = owner_api.post("/api/v1/intents/", {"name": "Refund", "keywords": ["refund"]}, format="json").json()
    first = owner_api.post(
        "/api/v1/routing-rules/",
        {"name": "Refunds", "intent": intent["id"], "team": team["id"], "hours": "open", "language": "en"},
        format="json",
    )
    assert first.status_code == 201, first.content
    second = owner_api.post(
        "/api/v1/routing-rules/",
        {"name": "VIPs", "contact_attribute": "plan", "contact_value": "gold", "team": team["id"], "channel": "web"},
        format="json",
    ).json()
    assert first.json()["position"] == 0 and second["position"] == 1  # appended
    assert first.json()["intent"] == intent["id"] and first.json()["agent"] is None

    url = f"/api/v1/routing-rules/{second['id']}/"
    assert owner_api.patch(url, {"position": 0}, format="json").status_code == 200
    owner_api.patch(f"/api/v1/routing-rules/{first.json()['id']}/", {"position": 5}, format="json")
    listed = owner_api.get("/api/v1/routing-rules/").json()["results"]
    assert [r["name"] for r in listed] == ["VIPs", "Refunds"]

    for body, field in [
        ({"name": "x"}, "agent"),  # no target
        ({"name": "x", "team": team["id"], "agent": 99_999}, "agent"),  # unknown agent
        ({"name": "x", "team": 99_999}, "team"),
        ({"name": "x", "team": team["id"], "intent": 99_999}, "intent"),
        ({"name": "x", "team": team["id"], "hours": "sometimes"}, "hours"),
        ({"name": "x", "team": team["id"], "channel": "pigeon"}, "channel"),
        ({"name": "x", "team": team["id"], "language": "English!"}, "language"),
        ({"name": "x", "team": team["id"], "contact_value": "gold"}, "contact_attribute"),
    ]:
        response = owner_api.post("/api/v1/routing-rules/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["error"]["fields"], (body, response.json())
    assert owner_api.patch(url, {"team": None}, format="json").status_code == 400  # would have no target
    assert owner_api.delete(url).status_code == 204
    assert [r["name"] for r in owner_api.get("/api/v1/routing-rules/").json()["results"]] == ["Refunds"]


# --- queue, assignment ------------------------------------------------------------------------


def test_queue_in_order_with_position_priority_wait_and_team(alpha: Any, owner_api: Any) -> None:
    inbox = _inbox(alpha)
    first = _waiting(alpha, inbox, "Hello, anyone?")
    second = _waiting(alpha, inbox, "Me too")
    vip = _waiting(alpha, inbox, "I pay a lot", vip=True)
    with _in(alpha):
        Conversation.objects.filter(pk=first).update(queued_at=timezone.now() - timedelta(minutes=3))
        support = Team.objects.get(name="Support")  # created on first need
        other = Team.objects.create(name="Night")
        late, _ = conversations.conversation_start(inbox=inbox)
        conversations.message_post(conversation_id=late.pk, role="visitor", text="Night owl", client_id="n")
        Conversation.objects.filter(pk=late.pk).update(team=other)
        conversations.conversation_escalate(conversation_id=late.pk, reason="night", epoch=None)
        dispatch.run()

    body = owner_api.get("/api/v1/queue/").json()
    rows = body["results"]
    assert [r["conversation"] for r in rows] == [vip, first, second, late.pk]
    assert body["count"] == 4
    assert [(r["position"], r["team"], r["team_name"]) for r in rows] == [
        (1, support.pk, "Support"),
        (2, support.pk, "Support"),
        (3, support.pk, "Support"),
        (1, other.pk, "Night"),
    ]
    assert rows[0]["priority"] == 10 and rows[1]["priority"] == 0
    assert rows[1]["waited_seconds"] >= 180 > rows[2]["waited_seconds"] >= 0
    assert rows[1]["preview"] == "Hello, anyone?" and rows[1]["channel"] == "web" and rows[1]["inbox"] == inbox.pk
    night = owner_api.get(f"/api/v1/queue/?team={other.pk}").json()["results"]
    assert [(r["conversation"], r["position"]) for r in night] == [(late.pk, 1)]
    bad = owner_api.get("/api/v1/queue/?team=night")
    assert bad.status_code == 400 and bad.json()["error"]["fields"] == {"team": ["Not an id."]}


def test_manual_assignment_and_reassignment(alpha: Any, owner_api: Any, person: Any) -> None:
    inbox = _inbox(alpha)
    conversation = _waiting(alpha, inbox, "Help please")
    sam, sam_api = person("agent")
    kim, kim_api = person("agent")
    viewer, viewer_api = person("viewer")
    url = f"/api/v1/conversations/{conversation}/assign"

    assigned = sam_api.post(url, {"user": sam.pk}, format="json")  # an agent takes a waiting one
    assert assigned.status_code == 200, assigned.content
    assert assigned.json()["owner"] == "human" and assigned.json()["assignee"] == sam.pk
    assert assigned.json()["team"] is not None
    refused = kim_api.post(url, {"user": kim.pk}, format="json")  # not theirs to take
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_owner"
    handed = sam_api.post(url, {"user": kim.pk}, format="json")  # the owner hands it on
    assert handed.status_code == 200 and handed.json()["assignee"] == kim.pk
    back = owner_api.post(url, {"user": sam.pk}, format="json")  # admins reassign anything
    assert back.status_code == 200 and back.json()["assignee"] == sam.pk
    with _in(alpha):
        assert Conversation.objects.get(pk=conversation).assignee_id == sam.pk

    to_viewer = owner_api.post(url, {"user": viewer.pk}, format="json")
    assert to_viewer.status_code == 400 and "user" in to_viewer.json()["error"]["fields"]
    assert owner_api.post(url, {"user": 99_999_999}, format="json").status_code == 400
    assert owner_api.post(url, {"user": "sam"}, format="json").status_code == 400
    assert owner_api.post(url, {}, format="json").status_code == 400
    assert viewer_api.post(url, {"user": viewer.pk}, format="json").status_code == 403
    assert owner_api.post("/api/v1/conversations/99999999/assign", {"user": sam.pk}, format="json").status_code == 404


def test_two_agents_assigning_at_once_have_one_winner(alpha: Any, api_for: Any) -> None:
    """Two requests on their own connections race for the conversation's row lock (rows
    committed by a setup thread, removed afterwards): one agent wins, the other gets 409."""
    from django.db import connection

    from apps.accounts.authentication import jwt_pair_for
    from apps.accounts.models import Membership
    from apps.audit.models import AuditEvent

    schema = alpha.schema
    made: dict[str, Any] = {}

    def setup() -> None:
        tenant = Tenant.objects.get(schema_name=schema)
        made["people"] = []
        for name in ("assign-race-a", "assign-race-b"):
            user = User.objects.create_user(email=f"{name}@alpha.example", password="x" * 20)
            membership = Membership.objects.create(tenant=tenant, user=user, role=Role.AGENT)
            made["people"].append((user.pk, jwt_pair_for(user=user, membership=membership)["access"]))
        with _in_schema(schema):
            inbox = Inbox.objects.create(name="assign-race")
            conversation, _ = conversations.conversation_start(inbox=inbox)
        made.update(inbox=inbox.pk, conversation=conversation.pk)

    def teardown() -> None:
        with _in_schema(schema):
            AuditEvent.objects.filter(actor__email__startswith="assign-race-").delete()
            Conversation.objects.filter(pk=made["conversation"]).delete()
            Inbox.objects.filter(pk=made["inbox"]).delete()
            User.objects.filter(email__startswith="assign-race-").delete()

    def in_thread(fn: Callable[[], None]) -> None:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=30)
        if errors:
            raise errors[0]

    in_thread(setup)
    barrier = threading.Barrier(2)
    results: dict[int, int] = {}

    def race(user_id: int, token: str) -> Callable[[], None]:
        def go() -> None:
            client = api_for(alpha.host, token)
            barrier.wait(timeout=10)
            response = client.post(
                f"/api/v1/conversations/{made['conversation']}/assign", {"user": user_id}, format="json"
            )
            results[user_id] = response.status_code

        return go

    try:
        threads = [threading.Thread(target=lambda p=p: in_thread(race(*p))) for p in made["people"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(results.values()) == [200, 409], results
        winner = next(u for u, code in results.items() if code == 200)
        with _in_schema(schema):
            assert Conversation.objects.get(pk=made["conversation"]).assignee_id == winner
    finally:
        in_thread(teardown)


# --- presence ---------------------------------------------------------------------------------


def test_presence_list_and_setting_your_own(alpha: Any, owner_api: Any, person: Any, monkeypatch: Any) -> None:
    announced: list[tuple[str, int, str]] = []
    monkeypatch.setattr(presence, "announce", lambda *args: announced.append(args))
    sam, sam_api = person("agent")
    viewer, viewer_api = person("viewer")
    me = sam_api.put("/api/v1/presence/me", {"status": "away"}, format="json")
    assert me.status_code == 200, me.content
    assert me.json() == {"user": sam.pk, "email": sam.email, "name": "", "role": "agent", "status": "away"}
    assert presence.status_of(alpha.schema, sam.pk) == "away"
    assert announced == [(alpha.schema, sam.pk, "away")]
    sam_api.put("/api/v1/presence/me", {"status": "away"}, format="json")
    assert len(announced) == 1  # no change, no event
    assert sam_api.get("/api/v1/presence/me").json()["status"] == "away"

    everyone = {r["user"]: r["status"] for r in viewer_api.get("/api/v1/presence/").json()["results"]}
    assert everyone[sam.pk] == "away" and viewer.pk not in everyone  # staff only
    assert owner_api.get("/api/v1/presence/?status=away").json()["results"] == [me.json()]
    assert owner_api.get("/api/v1/presence/?status=busy").status_code == 400

    for bad in ({"status": "busy"}, {}, {"status": None}):
        assert sam_api.put("/api/v1/presence/me", bad, format="json").status_code == 400
    assert viewer_api.put("/api/v1/presence/me", {"status": "online"}, format="json").status_code == 403
    assert sam_api.put("/api/v1/presence/me", {"status": "offline"}, format="json").json()["status"] == "offline"


def test_scopes_and_roles(alpha: Any, api_for: Any, person: Any) -> None:
    with _in(alpha):
        _, reader = api_key_create(actor=_owner(alpha), name="routing reader", scopes=["routing:read"])
        _, worker = api_key_create(
            actor=_owner(alpha), name="conversation worker", scopes=["routing:read", "conversations:write"]
        )
    read_only = api_for(alpha.host, reader)
    assert read_only.get("/api/v1/teams/").status_code == 200
    assert read_only.post("/api/v1/intents/detect", {"text": "hi"}, format="json").status_code == 200
    refused = read_only.post("/api/v1/teams/", {"name": "x"}, format="json")
    assert refused.status_code == 403 and "routing:write" in refused.json()["error"]["detail"]
    assert api_for(alpha.host, worker).post("/api/v1/teams/", {"name": "x"}, format="json").status_code == 403
    keyed = api_for(alpha.host, worker).put("/api/v1/presence/me", {"status": "online"}, format="json")
    assert keyed.status_code == 403 and "API key" in keyed.json()["error"]["detail"]

    _, agent = person("agent")
    _, viewer = person("viewer")
    assert "routing:read" in agent.get("/api/v1/me/").json()["scopes"]
    assert "routing:write" not in agent.get("/api/v1/me/").json()["scopes"]
    for client in (agent, viewer):
        assert client.get("/api/v1/routing-rules/").status_code == 200
        assert client.get("/api/v1/sla-events/").status_code == 200
        assert client.post("/api/v1/teams/", {"name": "x"}, format="json").status_code == 403
        assert client.post("/api/v1/routing-rules/", {"name": "x"}, format="json").status_code == 403
    assert agent.put("/api/v1/presence/me", {"status": "online"}, format="json").status_code == 200


# --- SLA --------------------------------------------------------------------------------------


def test_sla_events_with_filters(alpha: Any, owner_api: Any) -> None:
    inbox = _inbox(alpha)
    late = _waiting(alpha, inbox, "Still waiting")
    quick = _waiting(alpha, inbox, "Quick one")
    with _in(alpha):
        SLAEvent.objects.filter(conversation_id=late).update(due_at=timezone.now() - timedelta(minutes=1))
        routing.sla_check()
        routing.sla_met(conversation_id=quick, kind="first_response", at=timezone.now())
        support = Team.objects.get(name="Support").pk

    def ids(query: str) -> set[tuple[int, str]]:
        response = owner_api.get("/api/v1/sla-events/" + query)
        assert response.status_code == 200, response.content
        return {(e["conversation"], e["kind"]) for e in response.json()["results"]}

    everything = owner_api.get("/api/v1/sla-events/").json()["results"]
    assert len(everything) == 4 and everything[0]["due_at"] >= everything[-1]["due_at"]
    assert {e["state"] for e in everything} == {"breached", "met", "open"}
    assert ids("?breached=true") == {(late, "first_response"), (late, "resolution")}
    assert ids("?breached=false") == {(quick, "first_response"), (quick, "resolution")}
    assert ids("?state=met") == {(quick, "first_response")}
    assert ids("?state=open") == {(quick, "resolution")}
    assert ids("?kind=resolution&breached=true") == {(late, "resolution")}
    assert len(ids(f"?team={support}")) == 4 and ids("?team=99999") == set()
    since = (timezone.now() + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert ids(f"?since={since}") == {(quick, "resolution")}  # due in 24 h; the others are due by now
    for bad in ("?kind=lunch", "?since=yesterday", "?team=abc", "?state=late"):
        assert owner_api.get("/api/v1/sla-events/" + bad).status_code == 400, bad


# --- tenants ----------------------------------------------------------------------------------


def test_another_tenants_ids_are_not_found(alpha: Any, beta: Any, owner_api: Any) -> None:
    from apps.routing.models import Intent, RoutingRule

    with _in(beta):
        actor = _owner(beta)
        team = routing.team_save(actor=actor, name="canary-beta team")
        intent = routing.intent_save(actor=actor, name="canary-beta intent", keywords=["canary"])
        rule = routing.rule_save(actor=actor, name="canary-beta rule", team_id=team.pk)
    with _in(alpha):
        top = Conversation.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    with _in(beta):  # an id that alpha does not have
        inbox = conversations.inbox_create(actor=_owner(beta), name="canary-beta queue")
        conversation = 0
        while conversation <= top:
            conversation = conversations.conversation_start(inbox=inbox)[0].pk
    for path in (f"teams/{team.pk}/", f"intents/{intent.pk}/", f"routing-rules/{rule.pk}/"):
        url = f"/api/v1/{path}"
        assert owner_api.get(url).status_code == 404, url
        assert owner_api.patch(url, {"name": "mine now"}, format="json").status_code == 404, url
        assert owner_api.delete(url).status_code == 404, url
    owner = User.objects.get(email=alpha.owner_email).pk
    assign = owner_api.post(f"/api/v1/conversations/{conversation}/assign", {"user": owner}, format="json")
    assert assign.status_code == 404
    for path in ("teams/", "intents/", "routing-rules/", "queue/", "sla-events/", "presence/"):
        assert b"canary-beta" not in owner_api.get(f"/api/v1/{path}").content, path
    with _in(beta):
        assert Team.objects.filter(name="canary-beta team").exists()
        assert Intent.objects.filter(pk=intent.pk).exists() and RoutingRule.objects.filter(pk=rule.pk).exists()
