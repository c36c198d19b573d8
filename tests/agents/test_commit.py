"""Compute, then commit (docs/adr/0019-ai-turn-commit.md): computing a turn writes nothing,
whatever it wants written; dry runs (the test chat, staff drafts, batch tests, the API's
test turn, `manage.py eval_agent`) only spend the AI quota; and the commit refuses to run
outside the transaction that checked the reply still applies."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents.commit import turn_commit, turn_count
from apps.agents.effects import GapWanted, LeadWanted
from apps.agents.models import AgentDailyStats, KnowledgeGap, UsageCounter
from apps.agents.providers import Turn
from apps.agents.runtime import answer_turn
from apps.agents.runtime.turns import TurnInput
from apps.agents.tests.conftest import effects_result, write_statements
from apps.audit.models import AuditEvent
from apps.crm.models import Contact, Lead
from tests.support import keep_schema

# Unanswerable (a gap), with an address (a lead) and a name (memory, claims).
ASK = "Do you ship to Antarctica? I'm Ola Nordmann, email ola@example.no"


def test_computing_a_turn_writes_nothing_whatever_it_wants_written(agent: Any, owner: Any) -> None:
    known = Contact.objects.create(verified=True, name="Ola")
    with CaptureQueriesContext(connection) as queries:
        new_visitor = answer_turn(agent=agent, tenant=owner.tenant, conversation=TurnInput([Turn("user", ASK)]))
        contact = answer_turn(
            agent=agent, tenant=owner.tenant, conversation=TurnInput([Turn("user", ASK)], contact=known)
        )
    assert write_statements(queries) == []
    wanted = new_visitor.effects
    assert wanted.leads == (LeadWanted(need=ASK, name="Ola Nordmann", email="ola@example.no"),)
    assert wanted.gap == GapWanted(ASK, ("antarctica", "ola", "nordmann", "example"), "test")
    assert wanted.claims == {"email": "ola@example.no", "name": "Ola Nordmann"} and wanted.counted
    assert wanted.usage.requests == 1 and wanted.usage.completion_tokens > 0
    assert contact.effects.leads == () and dict(contact.effects.facts)["name"] == "Ola Nordmann"


def test_the_commit_runs_only_inside_the_checking_transaction(agent: Any, owner: Any) -> None:
    """On a connection in autocommit (no transaction open) each write would stand alone, so a
    failure halfway would leave half a turn: the commit refuses before writing anything."""
    result = effects_result(leads=(LeadWanted.cleaned(need="quote", email="a@b.example"),))
    refused: list[str] = []

    def outside_a_transaction() -> None:
        try:
            for step in (
                lambda: turn_commit(agent=agent, tenant=owner.tenant, result=result, contact=None),
                lambda: turn_count(agent=agent, channel="web", result=result),
            ):
                with pytest.raises(RuntimeError, match="inside the transaction") as error:
                    step()
                refused.append(str(error.value))
        finally:
            connection.close()  # the thread's own connection

    thread = threading.Thread(target=outside_a_transaction)
    thread.start()
    thread.join(timeout=30)
    assert len(refused) == 2 and not Lead.objects.exists()


def _kept() -> dict[str, Any]:
    """What a stored turn writes besides usage: CRM rows, gaps, the agent's statistics and the
    turn's audit records."""
    return {
        "contacts": list(Contact.objects.order_by("pk").values_list("pk", "memory", "name", "email")),
        "leads": list(Lead.objects.values_list("pk", flat=True)),
        "gaps": list(KnowledgeGap.objects.values_list("question", "count")),
        "stats": list(AgentDailyStats.objects.values_list("turns", flat=True)),
        "audit": list(AuditEvent.objects.filter(action__startswith="crm.").values_list("pk", flat=True)),
    }


def _requests() -> int:
    counter = UsageCounter.objects.first()
    return counter.requests if counter else 0


def test_dry_runs_write_nothing_of_the_turn_and_spend_the_quota(
    agent: Any,
    owner: Any,
    alpha: Any,
    api_for: Any,
    login: Any,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The test chat, the API's test turn, a staff draft, a batch test and eval_agent each
    answer a question that a stored turn would turn into a lead, memory and a gap: none of
    that is written; each turn counts once against the AI quota."""
    from apps.agents import batch
    from apps.conversations import services as conversations
    from apps.conversations.models import Conversation

    inbox = conversations.inbox_create(actor=owner, name="Web", agent_id=agent.pk)
    conversation, _ = conversations.conversation_start(inbox=inbox)
    conversations.message_post(conversation_id=conversation.pk, role="visitor", text=ASK, client_id="v1")
    state = Conversation.objects.filter(pk=conversation.pk).values("summary", "claims", "contact_id", "abstentions")
    before, conversation_before, spent = _kept(), list(state), _requests()

    # The dashboard's test chat (staff), streamed.
    body = json.dumps({"messages": [{"role": "user", "text": ASK}]})
    chat = keep_schema(
        login(alpha, alpha.owner_email).post, f"/dashboard/agents/{agent.pk}/test/turn", body, "application/json"
    )
    lines = [json.loads(line) for line in b"".join(chat.streaming_content).splitlines()]
    assert lines[-1]["type"] == "final" and lines[-1]["decision"] == "abstained"
    # The API's test turn (an integrator).
    api = api_for(alpha.host, alpha.api_key)
    tested = keep_schema(
        api.post, f"/api/v1/agents/{agent.pk}/test", {"messages": [{"role": "user", "text": ASK}]}, format="json"
    )
    assert tested.status_code == 200, tested.content
    # A suggested reply for staff.
    assert conversations.reply_suggestion(actor=owner, conversation=conversation)["decision"] == "abstained"
    # A batch test.
    with django_capture_on_commit_callbacks(execute=True):
        run = batch.batch_start(editor=owner, agent=agent, questions=[{"question": ASK}])
    run.refresh_from_db()
    assert run.status == "done" and run.results[0]["decision"] == "abstained"
    # The evaluation command.
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "u1", "question": ASK, "kind": "off_topic"}) + "\n")
    call_command("eval_agent", str(agent.pk), str(qa), tenant=alpha.slug, stdout=io.StringIO())
    connection.set_tenant(owner.tenant)

    assert _kept() == before
    assert list(state) == conversation_before
    assert _requests() == spent + 5
