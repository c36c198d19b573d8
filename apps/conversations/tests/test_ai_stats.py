"""The agent's performance as conversations feed it: every AI reply stored for a visitor is
counted, by decision and channel, with tokens and time; test chats (dry runs) and replies
discarded before they were stored are not."""

from __future__ import annotations

from typing import Any

from apps.agents.providers import Turn
from apps.agents.runtime import TurnInput, answer_turn
from apps.agents.selectors import agent_performance
from apps.conversations import services


def test_ai_replies_stored_for_visitors_are_counted_on_the_agent(
    owner: Any, inbox: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    mail = services.inbox_create(actor=owner, name="Mail", channel="email", agent_id=inbox.agent_id)

    def ask(box: Any, text: str) -> Any:
        conversation, _ = services.conversation_start(inbox=box)
        with django_capture_on_commit_callbacks(execute=True):  # the AI's reply runs (eager Celery)
            services.message_post(conversation_id=conversation.pk, role="visitor", text=text)
        return conversation

    ask(inbox, "How do I reset my password?")
    ask(inbox, "Do you ship to Antarctica?")
    ask(mail, "I want to talk to a human")
    # Not counted: a test chat turn, and a reply a newer visitor message made stale.
    answer_turn(
        agent=inbox.agent,
        tenant=owner.tenant,
        conversation=TurnInput(turns=[Turn("user", "Can I return an item?")], channel="web", dry_run=True),
    )
    stale, _ = services.conversation_start(inbox=inbox)
    services.message_post(conversation_id=stale.pk, role="visitor", text="Can I return an item?")
    monkeypatch.setattr(services.ai, "_overtaken", lambda conversation, seq, epoch: "superseded")
    assert services.ai_reply(conversation_id=stale.pk, trigger_seq=1, epoch=stale.epoch) == "discarded: superseded"

    stats = agent_performance(inbox.agent, days=7)
    totals = stats["totals"]
    assert (totals["turns"], totals["answered"], totals["abstained"], totals["escalated"]) == (3, 1, 1, 1)
    assert totals["unanswered"] == 1  # Antarctica: the knowledge has nothing on it
    assert totals["answer_rate"] == round(1 / 3, 4) and totals["prompt_tokens"] > 0
    assert totals["avg_latency_ms"] is not None and totals["slowest_ms"] >= totals["avg_latency_ms"]
    assert [(c["channel"], c["turns"]) for c in stats["by_channel"]] == [("web", 2), ("email", 1)]
    assert len(stats["by_day"]) == 7 and stats["by_day"][-1]["turns"] == 3
    assert stats["by_day"][0]["turns"] == 0 and stats["by_day"][0]["answer_rate"] is None
