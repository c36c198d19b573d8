"""AI turns under load (docs/adr/0022-ai-turn-concurrency.md): which pool a turn runs on, the
cap on one workspace's turns at once, the circuit breaker when the model keeps failing, and
the streamed text joined into fewer frames.

The OpenAI provider is tested against a local server speaking the Chat Completions protocol
(tests/standins/openai_server.py), so the official SDK's request path really runs."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.agents.tests.conftest import on_standin
from apps.conversations import services, tasks
from apps.conversations.models import Conversation
from apps.conversations.services import ai as ai_module
from apps.conversations.stores import get_store
from syntera import slots
from tests.standins.openai_server import OpenAIStandIn

from .test_ai_turn_commit import reply, visit, written

ASK = "How long does standard shipping take?"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[dict[str, Any]]:
    """What is handed to the broker for `ai_reply` (apply_async's arguments), instead of sending;
    turns then run as in a worker (not inline, as tasks do in the other tests)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.ai_reply, "apply_async", lambda *args, **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def openai_inbox(inbox: Any, settings: Any, standin: OpenAIStandIn) -> Any:
    on_standin(inbox.agent, settings, standin)
    settings.OPENAI_MAX_RETRIES = 0
    return inbox


def _messages(conversation: Conversation) -> list[Any]:
    return get_store().after(schema=connection.schema_name, conversation_id=conversation.pk, after_seq=0)


# --- the pool a turn runs on ---------------------------------------------------------------------


@pytest.mark.parametrize("provider, queue", [("offline", "llm_local"), ("openai", "llm")])
def test_a_turn_goes_to_the_pool_its_provider_needs(
    inbox: Any, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any, provider: str, queue: str
) -> None:
    """A responder that computes here runs on processes; a remote model's turn on threads."""
    inbox.agent.provider = provider
    inbox.agent.save()
    with django_capture_on_commit_callbacks(execute=True):
        conversation = visit(inbox, ASK)
    assert [call["queue"] for call in sent] == [queue]
    assert sent[0]["args"] == (conversation.pk, 1, conversation.epoch)
    assert sent[0]["headers"] == {"_schema_name": connection.schema_name}


# --- one workspace's turns at once ---------------------------------------------------------------


def test_over_the_workspace_cap_a_turn_waits_its_turn_without_writing(
    inbox: Any, settings: Any, sent: list[dict[str, Any]]
) -> None:
    settings.AI_TENANT_CONCURRENCY = 1
    settings.AI_CONCURRENCY_RETRY_SECONDS = 2.0
    conversation = visit(inbox, ASK)
    name = f"ai:{connection.schema_name}"
    assert slots.acquire(name, limit=1, ttl=60, holder="another turn")
    try:
        before = written(conversation.pk)
        assert reply(conversation).startswith("deferred")
        assert written(conversation.pk) == before  # no reply, no usage, no statistics
        (again,) = sent
        assert again["args"] == (conversation.pk, 1, conversation.epoch) and again["queue"] == "llm_local"
        assert 2.0 <= again["countdown"] <= 4.0
        assert again["headers"] == {"_schema_name": connection.schema_name}
    finally:
        slots.release(name, holder="another turn")
    assert reply(conversation).startswith("replied")  # the slot is free: it runs
    assert [m.role for m in _messages(conversation)] == ["visitor", "ai"]
    assert slots.client().zcard(slots.key(name)) == 0  # and gives its slot back


def test_another_workspaces_turns_do_not_count_against_the_cap(
    inbox: Any, settings: Any, sent: list[dict[str, Any]]
) -> None:
    settings.AI_TENANT_CONCURRENCY = 1
    conversation = visit(inbox, ASK)
    other = "ai:some_other_workspace"
    assert slots.acquire(other, limit=1, ttl=60, holder="their turn")
    try:
        assert reply(conversation).startswith("replied") and not sent
    finally:
        slots.release(other, holder="their turn")


# --- the circuit breaker ---------------------------------------------------------------------------


def test_a_failing_model_opens_the_circuit_and_visitors_are_told_and_offered_a_person(
    openai_inbox: Any, settings: Any, standin: OpenAIStandIn
) -> None:
    settings.AI_BREAKER_FAILURES = 2
    settings.AI_BREAKER_OPEN_SECONDS = 1
    standin.fail(503, times=2)
    for _ in range(2):
        conversation = visit(openai_inbox, ASK)
        assert reply(conversation) == "replied: abstained"
        text = _messages(conversation)[-1].text
        assert "can't answer right now" in text and "member of the team?" in text
    assert len(standin.chat_requests) == 2

    # Open: nobody waits on the model; nothing reaches it.
    conversation = visit(openai_inbox, ASK)
    assert reply(conversation) == "replied: abstained"
    last = _messages(conversation)[-1]
    assert "can't answer right now" in last.text and last.audit["flags"]["circuit_open"] is True
    assert len(standin.chat_requests) == 2

    # The visitor takes up the offer: a person is brought in.
    services.message_post(conversation_id=conversation.pk, role="visitor", text="Yes please", client_id="v2")
    stored = Conversation.objects.get(pk=conversation.pk)
    assert services.ai_reply(conversation_id=conversation.pk, trigger_seq=3, epoch=stored.epoch).startswith("replied")
    assert Conversation.objects.get(pk=conversation.pk).owner == Conversation.Owner.QUEUE  # waiting for a person

    # Half-open after the pause: one trial call, which succeeds and closes the circuit.
    time.sleep(1.1)
    for _ in range(2):
        conversation = visit(openai_inbox, ASK)
        assert reply(conversation) == "replied: answered"
    assert len(standin.chat_requests) == 4


def test_a_refused_key_does_not_open_the_circuit(openai_inbox: Any, settings: Any, standin: OpenAIStandIn) -> None:
    """A configuration error is shown to staff; it is not an outage to wait out."""
    settings.AI_BREAKER_FAILURES = 1
    standin.fail(401, message="Incorrect API key provided.", code="invalid_api_key", type_="invalid_request_error")
    assert reply(visit(openai_inbox, ASK)) == "replied: abstained"
    assert reply(visit(openai_inbox, ASK)) == "replied: answered"
    assert len(standin.chat_requests) == 2


def test_one_workspaces_open_circuit_leaves_another_workspace_alone(
    openai_inbox: Any, settings: Any, standin: OpenAIStandIn
) -> None:
    from apps.agents.breaker import Breaker

    settings.AI_BREAKER_FAILURES = 1
    Breaker("some_other_workspace", "openai").failed()  # open over there
    assert reply(visit(openai_inbox, ASK)) == "replied: answered"


# --- the streamed text -----------------------------------------------------------------------------


def test_streamed_pieces_are_joined_into_fewer_frames(
    openai_inbox: Any, standin: OpenAIStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames: list[dict[str, Any]] = []
    monkeypatch.setattr(ai_module, "notify_frame", lambda conversation_id, frame: frames.append(frame))
    monkeypatch.setattr(ai_module, "DELTA_FLUSH_SECONDS", 0.05)
    answer = "Standard shipping takes 3 to 5 business days within the EU [1]. " + "More words here. " * 20
    standin.reply(answer, pace=0.005)
    conversation = visit(openai_inbox, ASK)
    assert reply(conversation) == "replied: answered"
    deltas = [f for f in frames if f["type"] == "delta"]
    pieces = len(answer.split())
    assert 1 < len(deltas) < pieces / 2  # joined, and still streamed in several frames
    assert all(f["reply_to"] == 1 for f in deltas)
    streamed = "".join(f["text"] for f in deltas)
    assert " ".join(streamed.split()) == " ".join(answer.split())


# --- a turn whose worker died --------------------------------------------------------------------


def _waited(conversation: Conversation, seconds: float) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=timezone.now() - timedelta(seconds=seconds))


def test_a_visitor_message_the_ai_never_answered_gets_its_turn_again_once(
    inbox: Any, settings: Any, sent: list[dict[str, Any]], owner: Any
) -> None:
    settings.AI_STALL_SECONDS = 60
    settings.AI_STALL_MAX_AGE = 3600
    stalled = visit(inbox, ASK)
    _waited(stalled, 90)
    recent = visit(inbox, ASK)  # its turn may still be running
    ancient = visit(inbox, ASK)
    _waited(ancient, 7200)  # left to the people watching the inbox
    answered = visit(inbox, ASK)
    reply(answered)
    _waited(answered, 90)
    taken = visit(inbox, ASK)
    services.conversation_take_over(actor=owner, conversation=Conversation.objects.get(pk=taken.pk))
    _waited(taken, 90)

    assert services.turns_requeue_stalled() == 1
    (again,) = sent
    assert again["args"] == (stalled.pk, 1, stalled.epoch) and again["queue"] == "llm_local"
    assert again["headers"] == {"_schema_name": connection.schema_name}
    assert services.turns_requeue_stalled() == 0  # once per message
    assert len(sent) == 1 and recent.pk != stalled.pk


def test_a_turn_run_twice_stores_one_reply_and_counts_once(inbox: Any) -> None:
    """The worker died after the commit, or the sweep sent a slow turn again: the second run
    finds the reply stored and writes nothing."""
    conversation = visit(inbox, ASK)
    assert reply(conversation).startswith("replied")
    after_first = written(conversation.pk)
    assert reply(conversation) == "skipped: already answered"
    assert written(conversation.pk) == after_first


def test_a_hanging_model_times_out_then_turns_stop_waiting_on_it(
    openai_inbox: Any, settings: Any, standin: OpenAIStandIn
) -> None:
    """The model accepts the request and never answers: each turn ends at the provider's read
    timeout with the visitor told; once the circuit opens, turns no longer wait on it at all,
    so a worker's threads do not pile up behind a dead endpoint."""
    settings.OPENAI_TIMEOUT = 1
    settings.AI_BREAKER_FAILURES = 2
    standin.reply("too late", delay=3.0, times=2)
    for _ in range(2):
        conversation = visit(openai_inbox, ASK)
        assert reply(conversation) == "replied: abstained"
        last = _messages(conversation)[-1]
        assert "can't answer right now" in last.text and "circuit_open" not in last.audit["flags"]
    asked = len(standin.chat_requests)
    conversation = visit(openai_inbox, ASK)
    assert reply(conversation) == "replied: abstained"
    assert _messages(conversation)[-1].audit["flags"]["circuit_open"] is True
    assert len(standin.chat_requests) == asked  # not even tried


# --- a turn a newer message superseded -------------------------------------------------------------


def test_a_superseded_turn_ends_without_reading_anything(
    inbox: Any, django_capture_on_commit_callbacks: Any, django_assert_num_queries: Any, sent: list[dict[str, Any]]
) -> None:
    """Two messages before the AI could answer the first: the first's turn ends at once (the
    AI answers the newest, for both), without a query: under load most queued turns are these."""
    with django_capture_on_commit_callbacks(execute=True):
        conversation = visit(inbox, ASK)
        services.message_post(conversation_id=conversation.pk, role="visitor", text="And returns?", client_id="v2")
    with django_assert_num_queries(0):
        assert reply(conversation) == "skipped: superseded"
    stored = Conversation.objects.get(pk=conversation.pk)
    assert services.ai_reply(conversation_id=conversation.pk, trigger_seq=2, epoch=stored.epoch).startswith("replied")


def test_another_workspaces_newer_message_supersedes_nothing_here(inbox: Any) -> None:
    from apps.conversations.services.superseding import note_visitor_message

    conversation = visit(inbox, ASK)
    note_visitor_message("some_other_workspace", conversation.pk, 99)  # same id, another workspace
    assert reply(conversation).startswith("replied")
