"""The routing pages driven the way staff use them: teams (members with capacity, hours,
SLA targets), intents with the "test a message" box, ordered routing rules, the queue with
Accept, SLA events, the conversation page's routing panel with manual assignment, and
presence (the nav toggle and the staff socket). Roles, bad form input, hostile text and
another tenant's ids too."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.conversations import services as conversations
from apps.conversations.models import Conversation, Inbox
from apps.events import dispatch
from apps.routing import presence
from apps.routing import services as routing
from apps.routing.models import Intent, RoutingRule, SLAEvent, Team
from apps.tenants.models import Tenant

HOSTILE = '<script>alert("x")</script>'


def _in(info: Any) -> Any:
    return tenant_context(Tenant.objects.get(schema_name=info.schema))


def _owner(info: Any) -> Actor:
    tenant = Tenant.objects.get(schema_name=info.schema)
    user = User.objects.get(email=info.owner_email)
    return Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email)


def _inbox(info: Any) -> Inbox:
    with _in(info):
        return conversations.inbox_create(actor=_owner(info), name="Web")


def _waiting(info: Any, inbox: Inbox, text: str, **fields: Any) -> int:
    with _in(info):
        conversation, _ = conversations.conversation_start(inbox=inbox)
        conversations.message_post(conversation_id=conversation.pk, role="visitor", text=text, client_id="v1")
        if fields:
            Conversation.objects.filter(pk=conversation.pk).update(**fields)
        conversations.conversation_escalate(conversation_id=conversation.pk, reason="asked for a person", epoch=None)
        dispatch.run()  # the hand-over's follow-up: SLA clocks, the visitor's place in the queue
        return int(conversation.pk)


def _team_post(staff: dict[int, int] | None = None, **fields: Any) -> dict[str, Any]:
    data = {
        "name": "Billing",
        "strategy": "least_busy",
        "timezone": "Europe/Amsterdam",
        "mon": "09:00-17:00, 18:00-20:00",
        "tue": "9:00-17:00",
        "holidays": "2026-12-25\n\n2026-12-26",
        "out_of_hours_message": "Back tomorrow.",
        "first_response_minutes": "10",
        "resolution_minutes": "600",
    }
    for user_id, capacity in (staff or {}).items():
        data[f"member_{user_id}"] = "on"
        data[f"capacity_{user_id}"] = str(capacity)
    data.update(fields)
    return data


@pytest.fixture
def owner_client(alpha: Any, login: Any) -> Any:
    return login(alpha, alpha.owner_email)


# --- teams ------------------------------------------------------------------------------------


def test_admin_creates_and_edits_a_team_with_members_hours_and_sla(
    alpha: Any, owner_client: Any, make_member: Any
) -> None:
    sam, _ = make_member(alpha, "agent")
    kim, _ = make_member(alpha, "agent")
    viewer, _ = make_member(alpha, "viewer")
    listing = owner_client.get("/dashboard/teams/").content.decode()
    assert "No teams yet." in listing and 'id="team-new-link"' in listing
    form = owner_client.get("/dashboard/teams/new/").content.decode()
    assert f'name="member_{sam.pk}"' in form and f'name="member_{viewer.pk}"' not in form  # staff only
    assert '<option value="Europe/Amsterdam"' in form

    created = owner_client.post("/dashboard/teams/new/", _team_post({sam.pk: 3, kim.pk: 7}))
    assert created.status_code == 302, created.content.decode()[:2000]
    with _in(alpha):
        team = Team.objects.get(name="Billing")
        assert team.strategy == "least_busy" and team.first_response_minutes == 10 and team.resolution_minutes == 600
        assert team.business_hours == {
            "timezone": "Europe/Amsterdam",
            "weekly": {"mon": [["09:00", "17:00"], ["18:00", "20:00"]], "tue": [["09:00", "17:00"]]},
            "holidays": ["2026-12-25", "2026-12-26"],
            "always_open": False,
        }
        assert dict(team.members.values_list("user_id", "capacity")) == {sam.pk: 3, kim.pk: 7}
        presence.set_status(alpha.schema, sam.pk, "online")
        presence.set_status(alpha.schema, kim.pk, "away")
    assert created["Location"] == f"/dashboard/teams/{team.pk}/"

    page = owner_client.get(created["Location"]).content.decode()
    members = page[page.index('id="team-members"') : page.index("</table>", page.index('id="team-members"'))]
    assert re.search(rf'data-user-id="{sam.pk}">.*?badge online', members, re.S)
    assert re.search(rf'data-user-id="{kim.pk}">.*?badge away', members, re.S)
    assert 'value="09:00-17:00, 18:00-20:00"' in page and "2026-12-25\n2026-12-26" in page
    assert "badge online" in owner_client.get("/dashboard/teams/").content.decode()

    edited = owner_client.post(
        created["Location"],
        _team_post({kim.pk: 2}, name="Billing desk", always_open="on", mon="", tue="", is_default="on"),
    )
    assert edited.status_code == 302
    with _in(alpha):
        team.refresh_from_db()
        assert team.name == "Billing desk" and team.is_default and team.business_hours["always_open"] is True
        assert dict(team.members.values_list("user_id", "capacity")) == {kim.pk: 2}
    assert owner_client.post(f"/dashboard/teams/{team.pk}/delete/").status_code == 302
    with _in(alpha):
        assert not Team.objects.filter(pk=team.pk).exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mon": "9-5"}, "“9-5” is not like 09:00-17:00."),
        ({"mon": "17:00-09:00"}, "Business hours: 17:00-09:00 on mon ends before it starts."),
        ({"tue": "09:00-25:00"}, "Business hours: &#x27;25:00&#x27; is not a time like 09:00."),
        ({"holidays": "2026-12-25\n25/12"}, "Line 2: “25/12” is not a date like 2026-12-25."),
        ({"mon": "", "tue": ""}, "Give the opening hours of at least one day, or tick “Open around the clock”."),
        ({"timezone": "Mars/Olympus"}, "Select a valid choice."),
        ({"always_open": "on"}, "Untick “Open around the clock” to use the opening hours below."),
        ({"first_response_minutes": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"name": "support"}, "Another team has this name."),
        ({"strategy": "random"}, "Select a valid choice."),
    ],
)
def test_bad_team_input_gets_clear_errors_and_saves_nothing(
    alpha: Any, owner_client: Any, fields: dict[str, str], message: str
) -> None:
    with _in(alpha):
        routing.team_save(actor=_owner(alpha), name="Support")
    response = owner_client.post("/dashboard/teams/new/", _team_post(**fields))
    assert response.status_code == 400
    assert message in response.content.decode()
    with _in(alpha):
        assert list(Team.objects.values_list("name", flat=True)) == ["Support"]


def test_capacity_and_members_are_checked(alpha: Any, owner_client: Any, make_member: Any) -> None:
    sam, _ = make_member(alpha, "agent")
    response = owner_client.post("/dashboard/teams/new/", _team_post({sam.pk: 0}))
    assert (
        response.status_code == 400 and "Ensure this value is greater than or equal to 1." in response.content.decode()
    )
    forged = owner_client.post("/dashboard/teams/new/", {**_team_post(), "member_99999": "on", "capacity_99999": "3"})
    assert forged.status_code == 302  # not a staff member: not a field, ignored
    with _in(alpha):
        assert not Team.objects.get(name="Billing").members.exists()


# --- roles ------------------------------------------------------------------------------------


def test_viewers_read_agents_accept_admins_configure(alpha: Any, login: Any, make_member: Any) -> None:
    inbox = _inbox(alpha)
    waiting = _waiting(alpha, inbox, "Hello?")
    with _in(alpha):
        team = routing.default_team()
        intent = routing.intent_save(actor=_owner(alpha), name="Refund", keywords=["refund"])
        rule = routing.rule_save(actor=_owner(alpha), name="Refunds", intent_id=intent.pk, team_id=team.pk)
    pages = [
        "/dashboard/queue/",
        "/dashboard/teams/",
        f"/dashboard/teams/{team.pk}/",
        "/dashboard/intents/",
        f"/dashboard/intents/{intent.pk}/",
        "/dashboard/routing/",
        f"/dashboard/routing/{rule.pk}/",
        "/dashboard/sla/",
    ]
    writes = [
        ("/dashboard/teams/new/", _team_post()),
        (f"/dashboard/teams/{team.pk}/", _team_post(name="Mine")),
        (f"/dashboard/teams/{team.pk}/delete/", {}),
        ("/dashboard/intents/", {"name": "Nope", "keywords": "x", "threshold": "0.5"}),
        (f"/dashboard/intents/{intent.pk}/", {"name": "Nope", "keywords": "x", "threshold": "0.5"}),
        (f"/dashboard/intents/{intent.pk}/delete/", {}),
        ("/dashboard/routing/", {"name": "Nope", "hours": "any", "target": f"team:{team.pk}"}),
        (f"/dashboard/routing/{rule.pk}/", {"name": "Nope", "hours": "any", "target": f"team:{team.pk}"}),
        (f"/dashboard/routing/{rule.pk}/move/", {"direction": "down"}),
        (f"/dashboard/routing/{rule.pk}/delete/", {}),
    ]
    for role in ("viewer", "agent"):
        client = login(alpha, make_member(alpha, role)[0].email)
        for path in pages:
            response = client.get(path)
            assert response.status_code == 200, (role, path)
            body = response.content.decode()
            assert 'id="team-form"' not in body and 'id="rule-create-form"' not in body, (role, path)
            assert 'id="intent-create-form"' not in body and 'id="team-new-link"' not in body, (role, path)
        assert client.get("/dashboard/teams/new/").status_code == 403
        for path, data in writes:
            assert client.post(path, data).status_code == 403, (role, path)
        queue = client.get("/dashboard/queue/").content.decode()
        assert (f'action="/dashboard/queue/{waiting}/accept/"' in queue) == (role == "agent")
        nav = client.get("/dashboard/").content.decode()
        assert ('id="presence-toggle"' in nav) == (role == "agent")
        assert client.post(f"/dashboard/queue/{waiting}/accept/").status_code == (403 if role == "viewer" else 302)
    with _in(alpha):
        assert Team.objects.get(pk=team.pk).name == "Support" and Intent.objects.get(pk=intent.pk).name == "Refund"
        assert RoutingRule.objects.get(pk=rule.pk).name == "Refunds"
        assert not Intent.objects.filter(name="Nope").exists()


# --- intents and rules ------------------------------------------------------------------------


def test_intents_page_creates_edits_and_tests_a_message(
    alpha: Any, owner_client: Any, login: Any, make_member: Any
) -> None:
    created = owner_client.post(
        "/dashboard/intents/",
        {
            "name": "Refund",
            "examples": "I want my money back\n\nrefund my order\n",
            "keywords": "refund, chargeback",
            "threshold": "0.6",
        },
    )
    assert created.status_code == 302
    with _in(alpha):
        intent = Intent.objects.get(name="Refund")
        assert intent.examples == ["I want my money back", "refund my order"]
        assert intent.keywords == ["refund", "chargeback"] and intent.threshold == 0.6

    viewer = login(alpha, make_member(alpha, "viewer")[0].email)
    tested = viewer.get("/dashboard/intents/", {"text": "Is a chargeback possible?"}).content.decode()
    assert re.search(r"Intent <strong>Refund</strong> with confidence <strong>0\.90</strong>", tested)
    nothing = viewer.get("/dashboard/intents/", {"text": "Lovely weather"}).content.decode()
    assert "No intent reaches its threshold for this message." in nothing
    empty = viewer.get("/dashboard/intents/", {"text": ""})
    assert empty.status_code == 400 and "This field is required." in empty.content.decode()

    for data, message in [
        ({"name": "", "keywords": "x", "threshold": "0.5"}, "This field is required."),
        ({"name": "refund", "keywords": "x", "threshold": "0.5"}, "Another intent has this name."),
        ({"name": "Empty", "threshold": "0.5"}, "Give at least one example or keyword"),
        ({"name": "Strict", "keywords": "x", "threshold": "2"}, "Ensure this value is less than or equal to 1.0."),
        ({"name": "Long", "examples": "x" * 501, "threshold": "0.5"}, "An example is at most 500 characters."),
    ]:
        response = owner_client.post("/dashboard/intents/", data)
        assert response.status_code == 400, data
        assert message in response.content.decode(), data
    edited = owner_client.post(
        f"/dashboard/intents/{intent.pk}/",
        {"name": "Refunds", "examples": "money back", "keywords": "", "threshold": "0.7"},
    )
    assert edited.status_code == 302
    with _in(alpha):
        intent.refresh_from_db()
        assert intent.name == "Refunds" and intent.keywords == [] and intent.examples == ["money back"]
    assert owner_client.post(f"/dashboard/intents/{intent.pk}/delete/").status_code == 302
    with _in(alpha):
        assert not Intent.objects.exists()


def test_rules_page_orders_edits_and_checks_rules(alpha: Any, beta: Any, owner_client: Any) -> None:
    with _in(alpha):
        team = routing.team_save(actor=_owner(alpha), name="VIP desk")
        intent = routing.intent_save(actor=_owner(alpha), name="Refund", keywords=["refund"])
    with _in(beta):
        foreign = routing.team_save(actor=_owner(beta), name="canary-beta team")
    first = {
        "name": "Refunds",
        "intent": str(intent.pk),
        "hours": "open",
        "target": f"team:{team.pk}",
        "is_active": "on",
    }
    second = {
        "name": "Gold",
        "contact_attribute": "plan",
        "contact_value": "gold",
        "hours": "any",
        "target": f"team:{team.pk}",
        "channel": "web",
        "is_active": "on",
    }
    assert owner_client.post("/dashboard/routing/", first).status_code == 302
    assert owner_client.post("/dashboard/routing/", second).status_code == 302
    page = owner_client.get("/dashboard/routing/").content.decode()
    assert "intent is Refund and during business hours" in page and "→ Team: VIP desk" in page
    assert "channel is web and contact plan is “gold”" in page
    with _in(alpha):
        refunds, gold = RoutingRule.objects.order_by("position")
    assert (refunds.name, gold.name) == ("Refunds", "Gold") and (refunds.position, gold.position) == (0, 1)

    assert owner_client.post(f"/dashboard/routing/{gold.pk}/move/", {"direction": "up"}).status_code == 302
    with _in(alpha):
        assert list(RoutingRule.objects.order_by("position").values_list("name", flat=True)) == ["Gold", "Refunds"]
    assert owner_client.post(f"/dashboard/routing/{gold.pk}/move/", {"direction": "sideways"}).status_code == 302
    page = owner_client.get("/dashboard/routing/").content.decode()
    assert page.index("Gold") < page.index("Refunds")

    for data, message in [
        ({**first, "target": ""}, "This field is required."),
        ({**first, "target": f"team:{foreign.pk + 1000}"}, "Select a valid choice."),
        ({**first, "contact_value": "gold"}, "Name the attribute the value is compared with."),
        ({**first, "language": "English"}, "Use a language code such as en or pt-BR."),
        ({**first, "intent": "99999"}, "Select a valid choice."),
    ]:
        response = owner_client.post("/dashboard/routing/", data)
        assert response.status_code == 400, data
        assert message in response.content.decode(), data
    edited = owner_client.post(
        f"/dashboard/routing/{refunds.pk}/", {**first, "name": "Refund requests", "is_active": ""}
    )
    assert edited.status_code == 302
    with _in(alpha):
        refunds.refresh_from_db()
        assert refunds.name == "Refund requests" and refunds.is_active is False
    assert owner_client.post(f"/dashboard/routing/{refunds.pk}/delete/").status_code == 302
    with _in(alpha):
        assert list(RoutingRule.objects.values_list("name", flat=True)) == ["Gold"]


# --- queue, SLA, conversation -----------------------------------------------------------------


def test_queue_shows_order_and_accept_has_one_winner(alpha: Any, login: Any, make_member: Any) -> None:
    inbox = _inbox(alpha)
    first = _waiting(alpha, inbox, "First in line")
    vip = _waiting(alpha, inbox, "VIP here", attributes={"vip": "yes"})
    sam_user, _ = make_member(alpha, "agent")
    sam, kim = login(alpha, sam_user.email), login(alpha, make_member(alpha, "agent")[0].email)
    page = sam.get("/dashboard/queue/").content.decode()
    assert [int(i) for i in re.findall(r'<tr data-conversation-id="(\d+)"', page)] == [vip, first]
    assert "VIP here" in page and "Support" in page and 'data-live-refresh="' in page
    assert "js/presence.js" in page

    accepted = sam.post(f"/dashboard/queue/{first}/accept/")
    assert accepted.status_code == 302 and accepted["Location"] == f"/dashboard/inbox/{first}/"
    late = kim.post(f"/dashboard/queue/{first}/accept/")
    assert late.status_code == 409 and "Another person owns this conversation" in late.content.decode()
    with _in(alpha):
        assert Conversation.objects.get(pk=first).assignee_id == sam_user.pk
    page = kim.get("/dashboard/queue/").content.decode()
    assert [int(i) for i in re.findall(r'<tr data-conversation-id="(\d+)"', page)] == [vip]
    assert kim.get("/dashboard/queue/?team=abc").status_code == 400


def test_sla_page_filters(alpha: Any, owner_client: Any) -> None:
    inbox = _inbox(alpha)
    late = _waiting(alpha, inbox, "Still waiting")
    quick = _waiting(alpha, inbox, "Quick one")
    with _in(alpha):
        SLAEvent.objects.filter(conversation_id=late, kind="first_response").update(
            due_at=timezone.now() - timedelta(minutes=1)
        )
        routing.sla_check()
        routing.sla_met(conversation_id=quick, kind="first_response", at=timezone.now())
        support = Team.objects.get(name="Support").pk

    def shown(query: str) -> list[str]:
        response = owner_client.get("/dashboard/sla/" + query)
        assert response.status_code == 200, query
        return re.findall(r'<tr data-event-id="\d+" class="(\w+)">', response.content.decode())

    assert sorted(shown("")) == ["breached", "met", "open", "open"]
    assert shown("?state=breached") == ["breached"]
    assert shown("?state=met&kind=first_response") == ["met"]
    assert shown("?state=open&kind=first_response") == []
    assert len(shown(f"?team={support}")) == 4
    for bad in ("?state=late", "?kind=lunch", "?team=abc", "?page=0"):
        assert owner_client.get("/dashboard/sla/" + bad).status_code == 400, bad


def test_conversation_page_shows_intent_team_and_assigns(alpha: Any, login: Any, make_member: Any) -> None:
    inbox = _inbox(alpha)
    conversation = _waiting(alpha, inbox, "I want a refund", intent="Refund", intent_confidence=0.873)
    sam_user, _ = make_member(alpha, "agent")
    kim_user, _ = make_member(alpha, "agent")
    sam, kim = login(alpha, sam_user.email), login(alpha, kim_user.email)
    owner = login(alpha, alpha.owner_email)
    url = f"/dashboard/inbox/{conversation}/"

    page = sam.get(url).content.decode()
    panel = page[page.index('id="conversation-routing"') :]
    assert "Refund" in panel and "(87% confidence)" in panel and "Support" in panel and "number 1 in the" in panel
    assert 'id="assign-form"' in panel and f'<option value="{kim_user.pk}">' in panel
    assigned = sam.post(url + "assign/", {"user": str(sam_user.pk)})
    assert assigned.status_code == 302 and assigned["Location"] == url
    assert _assignee(alpha, conversation) == sam_user.pk
    # Kim may not take Sam's conversation; the control is not offered and the POST says why.
    assert 'id="assign-form"' not in kim.get(url).content.decode()
    refused = kim.post(url + "assign/", {"user": str(kim_user.pk)}, follow=True)
    assert "Only admins reassign other people" in refused.content.decode()
    assert _assignee(alpha, conversation) == sam_user.pk
    # Sam hands it to Kim; the owner (an admin) gives it back to Sam.
    assert "Reassign to" in sam.get(url).content.decode()
    sam.post(url + "assign/", {"user": str(kim_user.pk)})
    assert _assignee(alpha, conversation) == kim_user.pk
    owner.post(url + "assign/", {"user": str(sam_user.pk)})
    assert _assignee(alpha, conversation) == sam_user.pk
    # Bad choices: a viewer, someone unknown, garbage.
    viewer_user, _ = make_member(alpha, "viewer")
    for value in (str(viewer_user.pk), "99999", "sam", ""):
        response = owner.post(url + "assign/", {"user": value}, follow=True)
        assert "Choose a staff member of this workspace" in response.content.decode(), value
    assert _assignee(alpha, conversation) == sam_user.pk
    viewer = login(alpha, viewer_user.email)
    assert 'id="assign-form"' not in viewer.get(url).content.decode()
    assert viewer.post(url + "assign/", {"user": str(viewer_user.pk)}).status_code == 403


def _assignee(info: Any, conversation_id: int) -> int | None:
    with _in(info):
        return Conversation.objects.get(pk=conversation_id).assignee_id


# --- escaping and tenants ---------------------------------------------------------------------


def test_hostile_names_are_escaped(alpha: Any, owner_client: Any) -> None:
    with _in(alpha):
        team = routing.team_save(actor=_owner(alpha), name=HOSTILE, out_of_hours_message=HOSTILE)
        intent = routing.intent_save(actor=_owner(alpha), name=HOSTILE[:80], examples=[HOSTILE], keywords=[HOSTILE])
        rule = routing.rule_save(
            actor=_owner(alpha),
            name=HOSTILE,
            intent_id=intent.pk,
            team_id=team.pk,
            contact_attribute="plan",
            contact_value=HOSTILE,
        )
    inbox = _inbox(alpha)
    conversation = _waiting(alpha, inbox, HOSTILE, intent=HOSTILE[:80], team_id=team.pk)
    for path in [
        "/dashboard/teams/",
        f"/dashboard/teams/{team.pk}/",
        "/dashboard/intents/",
        f"/dashboard/intents/{intent.pk}/",
        f"/dashboard/intents/?text={HOSTILE}",
        "/dashboard/routing/",
        f"/dashboard/routing/{rule.pk}/",
        "/dashboard/queue/",
        "/dashboard/sla/",
        f"/dashboard/inbox/{conversation}/",
        "/admin/routing/team/",
        f"/admin/routing/team/{team.pk}/change/",
        "/admin/routing/intent/",
        "/admin/routing/routingrule/",
        "/admin/routing/slaevent/",
    ]:
        response = owner_client.get(path)
        assert response.status_code == 200, path
        body = response.content.decode()
        assert "<script>alert" not in body, path
        assert "&lt;script&gt;alert(" in body, path


def test_another_tenants_ids_are_not_found(alpha: Any, beta: Any, owner_client: Any) -> None:
    with _in(alpha):
        top = max(
            [0]
            + [m.objects.order_by("-pk").values_list("pk", flat=True).first() or 0 for m in (Team, Intent, RoutingRule)]
            + [Conversation.objects.order_by("-pk").values_list("pk", flat=True).first() or 0]
        )
    with _in(beta):  # ids alpha does not have
        actor = _owner(beta)
        inbox = conversations.inbox_create(actor=actor, name="canary-beta queue")
        while True:
            team = routing.team_save(actor=actor, name=f"canary-beta team {timezone.now().timestamp()}")
            intent = routing.intent_save(actor=actor, name=f"canary-beta {team.pk}", keywords=["x"])
            rule = routing.rule_save(actor=actor, name="canary-beta rule", team_id=team.pk)
            conversation = conversations.conversation_start(inbox=inbox)[0]
            if min(team.pk, intent.pk, rule.pk, conversation.pk) > top:
                break
    for path in [
        f"/dashboard/teams/{team.pk}/",
        f"/dashboard/intents/{intent.pk}/",
        f"/dashboard/routing/{rule.pk}/",
    ]:
        assert owner_client.get(path).status_code == 404, path
        assert owner_client.post(path, {"name": "mine"}).status_code == 404, path
        assert owner_client.post(path + "delete/").status_code == 404, path
    assert owner_client.post(f"/dashboard/routing/{rule.pk}/move/", {"direction": "up"}).status_code == 404
    assert owner_client.post(f"/dashboard/queue/{conversation.pk}/accept/").status_code == 404
    assert owner_client.post(f"/dashboard/inbox/{conversation.pk}/assign/", {"user": "1"}).status_code == 404
    for path in ("/dashboard/teams/", "/dashboard/intents/", "/dashboard/routing/", "/dashboard/queue/"):
        assert b"canary-beta" not in owner_client.get(path).content, path
    with _in(beta):
        assert Team.objects.filter(pk=team.pk).exists() and RoutingRule.objects.filter(pk=rule.pk).exists()
        assert Conversation.objects.get(pk=conversation.pk).owner != "human"


# --- presence ---------------------------------------------------------------------------------


def test_presence_toggle_in_the_nav(alpha: Any, login: Any, make_member: Any, monkeypatch: Any) -> None:
    announced: list[tuple[str, int, str]] = []
    monkeypatch.setattr(presence, "announce", lambda *args: announced.append(args))
    user, _ = make_member(alpha, "agent")
    client = login(alpha, user.email)
    nav = client.get("/dashboard/teams/").content.decode()
    assert 'id="presence-toggle"' in nav and f'data-user-id="{user.pk}"' in nav
    assert 'value="/dashboard/teams/"' in nav  # back to the same page
    response = client.post("/dashboard/presence/", {"status": "away", "next": "/dashboard/teams/"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/teams/"
    with _in(alpha):
        assert presence.status_of(alpha.schema, user.pk) == "away"
    assert announced == [(alpha.schema, user.pk, "away")]
    assert 'data-status="away"' in client.get("/dashboard/").content.decode()
    bad = client.post("/dashboard/presence/", {"status": "asleep", "next": "https://evil.example/"})
    assert bad.status_code == 302 and bad["Location"] == "/dashboard/"  # never off-site
    with _in(alpha):
        assert presence.status_of(alpha.schema, user.pk) == "away"
    viewer = login(alpha, make_member(alpha, "viewer")[0].email)
    assert viewer.post("/dashboard/presence/", {"status": "online"}).status_code == 403


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    from django.db import connection

    schema = connection.schema_name
    async_to_sync(scenario)()
    connection.set_schema(schema)


async def _staff_socket(info: Any, client: Any) -> WebsocketCommunicator:
    from syntera.asgi import application

    comm = WebsocketCommunicator(
        application,
        "/ws/staff/",
        headers=[
            (b"host", info.host.encode()),
            (b"origin", f"http://{info.host}".encode()),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        ],
    )
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from(timeout=3))["type"] == "hello"
    return comm


async def _until(comm: WebsocketCommunicator, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(20):
        frame = await comm.receive_json_from(timeout=3)
        if check(frame):
            return frame
    raise AssertionError("the expected frame never came")


def test_presence_over_the_staff_socket(alpha: Any, login: Any, make_member: Any, monkeypatch: Any) -> None:
    """Online on connect (announced to colleagues, not to the socket itself), away by a
    presence frame and kept by pings, offline only when the person's last socket closes, and
    back with the chosen status on the next page."""
    from asgiref.sync import sync_to_async

    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    sam_user, _ = make_member(alpha, "agent")
    sam = login(alpha, sam_user.email)
    colleague = login(alpha, alpha.owner_email)
    viewer = login(alpha, make_member(alpha, "viewer")[0].email)

    def status() -> str:
        with _in(alpha):
            return presence.status_of(alpha.schema, sam_user.pk)

    def changed(state: str) -> Callable[[dict[str, Any]], bool]:
        return lambda f: f == {"type": "presence.changed", "user": sam_user.pk, "status": state}

    async def pong(ws: WebsocketCommunicator) -> None:
        await ws.send_json_to({"type": "ping"})
        await _until(ws, lambda f: f["type"] == "pong")

    async def scenario() -> None:
        watcher = await _staff_socket(alpha, colleague)
        first = await _staff_socket(alpha, sam)
        await _until(watcher, changed("online"))
        assert await sync_to_async(status)() == "online"
        # The socket's own arrival is not its first frame: the next one answers its ping.
        await first.send_json_to({"type": "ping"})
        assert await first.receive_json_from(timeout=3) == {"type": "pong"}

        await first.send_json_to({"type": "presence", "status": "away"})
        await _until(watcher, changed("away"))
        await pong(first)  # a heartbeat keeps the chosen status
        assert await sync_to_async(status)() == "away"

        second = await _staff_socket(alpha, sam)  # another tab: still away
        await pong(second)
        assert await sync_to_async(status)() == "away"
        await first.disconnect()
        await pong(second)
        assert await sync_to_async(status)() == "away"  # one socket left
        await second.send_json_to({"type": "presence", "status": "online"})
        await _until(watcher, changed("online"))
        await second.disconnect()
        await _until(watcher, changed("offline"))
        assert await sync_to_async(status)() == "offline"

        # The next page (a new socket after the last one closed) comes back as last chosen.
        third = await _staff_socket(alpha, sam)
        await _until(watcher, changed("online"))
        await third.send_json_to({"type": "presence", "status": "away"})
        await _until(watcher, changed("away"))
        await third.disconnect()
        await _until(watcher, changed("offline"))
        fourth = await _staff_socket(alpha, sam)
        await _until(watcher, changed("away"))
        await fourth.disconnect()

        for frame in (
            {"type": "presence"},
            {"type": "presence", "status": "offline"},
            {"type": "presence", "status": 1},
        ):
            await watcher.send_json_to(frame)
            assert (await _until(watcher, lambda f: f["type"] == "error"))["code"] == "invalid_frame"
        looker = await _staff_socket(alpha, viewer)  # viewers take no conversations
        await looker.send_json_to({"type": "presence", "status": "online"})
        assert (await _until(looker, lambda f: f["type"] == "error"))["code"] == "permission_denied"
        await looker.disconnect()
        await watcher.disconnect()

    run(scenario)
