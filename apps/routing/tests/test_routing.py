"""Escalation, the human queue and assignment as the product runs them: the visitor is told
what happens next, staff get a handoff summary, SLA clocks start, round robin and least busy
respect capacity, the queue is ordered by priority and waiting time, and ownership races have
exactly one winner with the AI's late reply never stored."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection as default_connection
from django_tenants.utils import schema_context

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.conversations import services as conversations
from apps.conversations.models import Conversation
from apps.conversations.stores import get_store
from apps.routing import presence
from apps.routing import services as routing
from apps.routing.models import SLAEvent, Team, TeamMember
from syntera.errors import ApplicationError


def _messages(conversation: Conversation) -> list[Any]:
    return get_store().after(schema=default_connection.schema_name, conversation_id=conversation.pk, after_seq=0)


def _staff(alpha: Any, make_member: Any, count: int, role: str = "agent") -> list[Actor]:
    from django_tenants.utils import get_tenant_model

    tenant = get_tenant_model().objects.get(schema_name=alpha.schema)
    people = []
    for i in range(count):
        user, _ = make_member(alpha, role, email=f"{role}{i}-{id(people)}@alpha.example")
        people.append(Actor(tenant=tenant, role=role, user=user, label=user.email))
    default_connection.set_schema(alpha.schema)
    return people


def _visit(inbox: Any, text: str) -> Conversation:
    conversation, _ = conversations.conversation_start(inbox=inbox)
    conversations.message_post(conversation_id=conversation.pk, role="visitor", text=text, client_id="v1")
    return Conversation.objects.get(pk=conversation.pk)


@pytest.fixture
def eager(django_capture_on_commit_callbacks: Any) -> Callable[[Callable[[], Any]], Any]:
    def run(fn: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn()

    return run


def test_asking_for_a_human_queues_with_position_summary_and_sla(inbox: Any, eager: Any, alpha: Any) -> None:
    conversation = eager(lambda: _visit(inbox, "How long does standard shipping take?"))
    eager(lambda: conversations.message_post(
        conversation_id=conversation.pk, role="visitor", text="Thanks, but can I talk to a real person?", client_id="v2"
    ))  # fmt: skip
    conversation.refresh_from_db()
    assert conversation.owner == "queue" and conversation.team is not None and conversation.queued_at
    assert conversation.attributes["escalation_reason"] == "the visitor asked for a human"
    roles_texts = [(m.role, m.text) for m in _messages(conversation)]
    notes = [t for r, t in roles_texts if r == "note"]
    assert notes and notes[0].startswith("Handoff summary (AI): Reason: the visitor asked for a human.")
    assert "shipping" in notes[0].lower()  # the summary covers what was asked before
    system = [t for r, t in roles_texts if r == "system"]
    assert any("You're number 1 in the queue" in t and "minute" in t for t in system), system
    assert set(SLAEvent.objects.filter(conversation=conversation).values_list("kind", flat=True)) == {
        "first_response",
        "resolution",
    }


def test_out_of_hours_message_and_email_offer(inbox: Any, eager: Any) -> None:
    team = routing.default_team()
    team.business_hours = {"timezone": "UTC", "weekly": {}, "holidays": []}  # never open
    team.out_of_hours_message = "We're closed."
    team.save()
    conversation = eager(lambda: _visit(inbox, "I want to speak to a human"))
    system = [m.text for m in _messages(conversation) if m.role == "system"]
    assert any(t.startswith("We're closed.") and "email" in t for t in system), system
    # The visitor leaves an address: it reaches the conversation's contact for the follow-up.
    eager(lambda: conversations.message_post(
        conversation_id=conversation.pk, role="visitor", text="Sure, it's ola@example.no", client_id="mail"
    ))  # fmt: skip
    conversation.refresh_from_db()
    assert conversation.contact is not None and conversation.contact.email == "ola@example.no"


def test_round_robin_is_fair_and_respects_capacity(inbox: Any, eager: Any, alpha: Any, make_member: Any) -> None:
    staff = _staff(alpha, make_member, 3)
    team = routing.default_team()
    team.strategy = Team.Strategy.ROUND_ROBIN
    team.save()
    for actor in staff:
        TeamMember.objects.create(team=team, user=actor.user, capacity=4)
        presence.set_status(alpha.schema, actor.user.pk, "online")
    conversations_ = [eager(lambda: _visit(inbox, "agent please")) for _ in range(13)]
    for c in conversations_:
        c.refresh_from_db()
    assigned = [c.assignee_id for c in conversations_ if c.owner == "human"]
    assert len(assigned) == 12 and conversations_[-1].owner == "queue"
    assert {u: assigned.count(u) for u in set(assigned)} == {a.user.pk: 4 for a in staff}
    assert assigned[:3] == sorted(a.user.pk for a in staff)  # strict rotation
    # Someone frees a slot: the waiting conversation is assigned on the next sweep.
    eager(
        lambda: conversations.conversation_set_status(actor=staff[0], conversation=conversations_[0], status="resolved")
    )
    assert routing.assign_waiting() == 1
    conversations_[-1].refresh_from_db()
    assert conversations_[-1].assignee_id == staff[0].user.pk


def test_least_busy_and_presence(inbox: Any, eager: Any, alpha: Any, make_member: Any) -> None:
    busy, free, away = _staff(alpha, make_member, 3)
    team = routing.default_team()
    team.strategy = Team.Strategy.LEAST_BUSY
    team.save()
    for actor in (busy, free, away):
        TeamMember.objects.create(team=team, user=actor.user, capacity=10)
    presence.set_status(alpha.schema, busy.user.pk, "online")
    presence.set_status(alpha.schema, away.user.pk, "away")
    early = [eager(lambda: _visit(inbox, "human please")) for _ in range(2)]
    for c in early:
        c.refresh_from_db()
    assert [c.assignee_id for c in early] == [busy.user.pk, busy.user.pk]  # the only one online
    presence.set_status(alpha.schema, free.user.pk, "online")
    later = [eager(lambda: _visit(inbox, "human please")) for _ in range(3)]
    for c in later:
        c.refresh_from_db()
    # free has 0, busy 2: free takes the next two, then they are level and the lower id goes first.
    assert [c.assignee_id for c in later[:2]] == [free.user.pk, free.user.pk]
    assert later[2].assignee_id == min(busy.user.pk, free.user.pk)
    assert presence.status_of(alpha.schema, away.user.pk) == "away"
    assert not Conversation.objects.filter(assignee=away.user).exists()


def test_queue_is_ordered_by_priority_then_waiting_time(inbox: Any, eager: Any) -> None:
    from apps.crm.models import Contact

    routing.default_team()  # nobody online: everything waits
    first = eager(lambda: _visit(inbox, "talk to a human"))
    second = eager(lambda: _visit(inbox, "talk to a human"))
    vip_conversation, _ = conversations.conversation_start(
        inbox=inbox, contact=Contact.objects.create(name="Big", attributes={"vip": "true"})
    )
    eager(lambda: conversations.message_post(
        conversation_id=vip_conversation.pk, role="visitor", text="talk to a human", client_id="x"
    ))  # fmt: skip
    waiting = [c.pk for c in routing.assignment.queue() if c.inbox_id == inbox.pk]
    assert waiting == [vip_conversation.pk, first.pk, second.pk]
    second.refresh_from_db()
    assert routing.queue_position(second) == 3


def test_only_the_owner_replies_and_takeovers_are_explicit(
    inbox: Any, eager: Any, alpha: Any, make_member: Any
) -> None:
    sam, kim = _staff(alpha, make_member, 2)
    conversation = eager(lambda: _visit(inbox, "hello there, my order is late"))
    conversations.conversation_take_over(actor=sam, conversation=conversation)
    with pytest.raises(ApplicationError) as refused:
        conversations.message_post(conversation_id=conversation.pk, role="agent", text="Kim here", actor=kim)
    assert refused.value.code == "not_owner"
    with pytest.raises(ApplicationError):
        conversations.conversation_take_over(actor=kim, conversation=conversation)
    # A private note is fine for anyone on the team.
    conversations.message_post(conversation_id=conversation.pk, role="note", text="kim: check the courier", actor=kim)
    conversations.message_post(conversation_id=conversation.pk, role="agent", text="Sam here", actor=sam)
    conversation.refresh_from_db()
    assert conversation.first_response_at is not None
    assert SLAEvent.objects.filter(conversation=conversation, kind="first_response").count() in (0, 1)


def _take_over_once_computed(monkeypatch: Any, person: Actor, conversation: Conversation) -> None:
    """`person` takes the conversation over once the AI's turn is computed, before it is stored."""
    from apps.agents import runtime

    real = runtime.run_turn

    def turn(**kwargs: Any) -> Iterator[Any]:
        for event in real(**kwargs):
            if isinstance(event, runtime.TurnResult):
                conversations.conversation_take_over(actor=person, conversation=conversation)
            yield event

    monkeypatch.setattr(runtime, "run_turn", turn)


def test_ai_reply_racing_a_takeover_is_discarded(inbox: Any, alpha: Any, make_member: Any, monkeypatch: Any) -> None:
    """The AI is still writing when a person takes over: its text is never stored."""
    (sam,) = _staff(alpha, make_member, 1)
    conversation = _visit(inbox, "How long does standard shipping take?")  # AI reply not run (no commit)
    _take_over_once_computed(monkeypatch, sam, conversation)
    outcome = conversations.ai_reply(conversation_id=conversation.pk, trigger_seq=1, epoch=conversation.epoch)
    assert outcome == "discarded: ownership changed"
    assert [m.role for m in _messages(conversation)] == ["visitor", "system"]  # "... joined", no AI text


def test_two_people_taking_over_at_once_exactly_one_wins(alpha: Any) -> None:
    """Two threads, each on its own connection, race for the conversation's row lock. The
    rows they race for are committed (by a setup thread) and removed afterwards."""
    from apps.accounts.models import Membership, User
    from apps.audit.models import AuditEvent
    from apps.conversations.models import Inbox
    from apps.tenants.models import Tenant

    schema = alpha.schema
    made: dict[str, Any] = {}

    def setup() -> None:
        tenant = Tenant.objects.get(schema_name=schema)
        people = []
        for name in ("racer-sam", "racer-kim"):
            user = User.objects.create_user(email=f"{name}@alpha.example", password="x" * 20)
            Membership.objects.create(tenant=tenant, user=user, role=Role.AGENT)
            people.append(Actor(tenant=tenant, role=Role.AGENT, user=user, label=user.email))
        with schema_context(schema):
            race_inbox = Inbox.objects.create(name="race")
            conversation, _ = conversations.conversation_start(inbox=race_inbox)
        made.update(people=people, inbox=race_inbox.pk, conversation=conversation.pk)

    def teardown() -> None:
        with schema_context(schema):
            AuditEvent.objects.filter(actor__email__startswith="racer-").delete()
            Conversation.objects.filter(pk=made["conversation"]).delete()
            Inbox.objects.filter(pk=made["inbox"]).delete()
            # In the tenant's schema: deleting a user cascades to tenant tables (team members).
            User.objects.filter(email__startswith="racer-").delete()

    _in_thread(setup)
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def race(actor: Actor) -> None:
        with schema_context(schema):
            barrier.wait(timeout=10)
            try:
                conversations.conversation_take_over(actor=actor, conversation=Conversation(pk=made["conversation"]))
                results[actor.label] = "won"
            except ApplicationError as exc:
                results[actor.label] = exc.code

    try:
        threads = [threading.Thread(target=_closing(race), args=(a,)) for a in made["people"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(results.values()) == ["not_owner", "won"], results
        with schema_context(schema):
            winner = Conversation.objects.get(pk=made["conversation"])
        assert winner.owner == "human" and winner.assignee.email == next(k for k, v in results.items() if v == "won")
    finally:
        _in_thread(teardown)


def _closing(fn: Callable[..., None]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        from django.db import connection

        try:
            fn(*args)
        finally:
            connection.close()

    return run


def _in_thread(fn: Callable[[], None]) -> None:
    """Run `fn` on a thread with its own connection (autocommit: its writes are committed)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised on the test's thread
            errors.append(exc)

    thread = threading.Thread(target=_closing(run))
    thread.start()
    thread.join(timeout=30)
    if errors:
        raise errors[0]


def test_sla_breaches_are_recorded_by_the_sweep(inbox: Any, eager: Any, alpha: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.audit.models import AuditEvent
    from apps.routing.tasks import sweep

    conversation = eager(lambda: _visit(inbox, "I need a human"))
    SLAEvent.objects.filter(conversation=conversation).update(due_at=timezone.now() - timedelta(minutes=1))
    assert eager(sweep)["breached"] >= 2
    default_connection.set_schema(alpha.schema)
    events = SLAEvent.objects.filter(conversation=conversation)
    assert all(e.breached_at for e in events)
    # Each breach is the event `sla.breached`, audited from it (its subscriber, after commit).
    audited = AuditEvent.objects.filter(action="sla.breached", target_id=str(conversation.pk))
    assert sorted(e.data["kind"] for e in audited) == ["first_response", "resolution"]
    assert sweep()["breached"] == 0  # recorded once


def test_snoozed_conversations_wake_up(inbox: Any, owner: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.routing.tasks import sweep

    conversation, _ = conversations.conversation_start(inbox=inbox)
    conversations.conversation_set_status(
        actor=owner, conversation=conversation, status="snoozed", snoozed_until=timezone.now() + timedelta(hours=1)
    )
    assert sweep()["woken"] == 0
    Conversation.objects.filter(pk=conversation.pk).update(snoozed_until=timezone.now() - timedelta(seconds=1))
    assert sweep()["woken"] == 1
    default_connection.set_schema(owner.tenant.schema_name)
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.snoozed_until is None


# --- routing decides, conversations acts ---------------------------------------------------------


def test_a_hand_over_is_stored_with_the_reply_that_announces_it_or_not_at_all(
    inbox: Any, alpha: Any, make_member: Any, monkeypatch: Any
) -> None:
    """The AI decides to hand over: its reply, the queueing and the hand-over events commit in
    one transaction. When a person took over while the turn was computed, neither is kept."""
    from apps.events.models import OutboxEvent

    asked = _visit(inbox, "Can I talk to a real person please?")
    assert conversations.ai_reply(conversation_id=asked.pk, trigger_seq=1, epoch=asked.epoch) == "replied: escalate"
    asked.refresh_from_db()
    assert asked.owner == "queue" and asked.team is not None
    types = list(OutboxEvent.objects.filter(stream=f"conversation:{asked.pk}").values_list("type", "data"))
    ai_at = next(i for i, (t, d) in enumerate(types) if t == "message.created" and d["role"] == "ai")
    assert [t for t, _ in types[ai_at:]][:3] == ["message.created", "handoff.requested", "conversation.queued"]

    (sam,) = _staff(alpha, make_member, 1)
    raced = _visit(inbox, "Can I talk to a real person please?")
    _take_over_once_computed(monkeypatch, sam, raced)
    assert conversations.ai_reply(conversation_id=raced.pk, trigger_seq=1, epoch=raced.epoch).startswith("discarded")
    raced.refresh_from_db()
    assert raced.owner == "human" and raced.queued_at is None
    emitted = set(OutboxEvent.objects.filter(stream=f"conversation:{raced.pk}").values_list("type", flat=True))
    assert not emitted & {"handoff.requested", "conversation.queued"}


def test_sla_targets_are_met_from_the_events_of_each_hand_over(
    inbox: Any, eager: Any, alpha: Any, make_member: Any
) -> None:
    """A person's reply meets the first-response target of the hand-over it answers, also the
    second time the conversation is handed over; a resolve meets the resolution target."""
    (sam,) = _staff(alpha, make_member, 1)
    conversation = eager(lambda: _visit(inbox, "I need a human"))
    first = SLAEvent.objects.get(conversation=conversation, kind="first_response")
    assert first.met_at is None
    eager(lambda: conversations.conversation_take_over(actor=sam, conversation=conversation))
    eager(lambda: conversations.message_post(conversation_id=conversation.pk, role="agent", text="Hi", actor=sam))
    first.refresh_from_db()
    assert first.met_at is not None and first.breached_at is None

    eager(lambda: conversations.conversation_hand_back(actor=sam, conversation=conversation))
    eager(lambda: conversations.message_post(
        conversation_id=conversation.pk, role="visitor", text="A human again please", client_id="v2"
    ))  # fmt: skip
    second = SLAEvent.objects.get(conversation=conversation, kind="first_response")
    assert second.met_at is None  # a new target for the new hand-over
    eager(lambda: conversations.conversation_take_over(actor=sam, conversation=conversation))
    eager(lambda: conversations.message_post(conversation_id=conversation.pk, role="agent", text="Back", actor=sam))
    second.refresh_from_db()
    assert second.met_at is not None
    eager(lambda: conversations.conversation_set_status(actor=sam, conversation=conversation, status="resolved"))
    assert SLAEvent.objects.get(conversation=conversation, kind="resolution").met_at is not None


def test_the_sweep_waits_for_a_reply_still_on_its_way_to_the_sla(
    inbox: Any, eager: Any, alpha: Any, make_member: Any
) -> None:
    """A person replied before the target but the reply's event is not delivered yet: the sweep
    does not call it a breach, and once delivered the target is met."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.events import dispatch

    (sam,) = _staff(alpha, make_member, 1)
    conversation = eager(lambda: _visit(inbox, "I need a human"))
    conversations.conversation_take_over(actor=sam, conversation=conversation)
    conversations.message_post(conversation_id=conversation.pk, role="agent", text="Hi", actor=sam)  # not delivered
    SLAEvent.objects.filter(conversation=conversation).update(due_at=timezone.now() - timedelta(seconds=1))
    assert routing.sla_check() == 0
    dispatch.run()
    met = SLAEvent.objects.get(conversation=conversation, kind="first_response")
    assert met.met_at is not None and met.breached_at is None
    assert routing.sla_check() == 1  # the resolution target, nothing on its way, is breached


def test_conversations_work_without_a_routing_policy(inbox: Any, eager: Any, settings: Any, owner: Actor) -> None:
    """With no routing policy configured, the inbox's AI answers every first message and a
    hand-over keeps the conversation's team and priority: conversations needs routing for
    nothing but its decisions."""
    from apps.conversations.policy import NoRouting, current

    settings.CONVERSATIONS_ROUTING_POLICY = ""
    assert isinstance(current(), NoRouting)
    intent = routing.intent_save(actor=owner, name="refunds", keywords=["refund"])
    routing.rule_save(actor=owner, name="refunds to a team", intent_id=intent.pk, team_id=routing.default_team().pk)
    routed = eager(lambda: _visit(inbox, "I want a refund"))
    routed.refresh_from_db()
    assert routed.owner == "ai" and routed.intent == ""  # no rule applied: the AI answered
    asked = eager(lambda: _visit(inbox, "Can I talk to a real person please?"))
    asked.refresh_from_db()
    assert asked.owner == "queue" and asked.team_id is None and asked.priority == 0


def test_a_rule_giving_the_first_message_to_another_agent_tells_staff(inbox: Any, eager: Any, owner: Actor) -> None:
    from apps.agents.services import agent_create
    from apps.events.models import OutboxEvent

    billing = agent_create(editor=owner, name="Billing bot", knowledge_bases=[])
    routing.rule_save(actor=owner, name="Everything to billing", agent_id=billing.pk)
    conversation = eager(lambda: _visit(inbox, "hello, a question about my invoice"))
    assert conversation.agent_id == billing.pk and conversation.owner == Conversation.Owner.AI
    emitted = OutboxEvent.objects.filter(stream=f"conversation:{conversation.pk}").order_by("id")
    updates = [data for type_, data in emitted.values_list("type", "data") if type_ == "conversation.updated"]
    assert updates == [{"conversation_id": conversation.pk, "changed": ["agent"], "status": "open"}]
    # A second message changes nothing routing decides: no further update.
    eager(lambda: conversations.message_post(conversation_id=conversation.pk, role="visitor", text="hi?"))
    assert emitted.filter(type="conversation.updated").count() == 1
