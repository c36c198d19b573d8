"""Inboxes and conversations through the API as an integrator uses them: inboxes with their
widget keys, an API-channel conversation the AI answers, staff replies taking over, private
notes, hand-back, status changes, and the bad inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def api(alpha: Any, api_for: Any, django_capture_on_commit_callbacks: Any) -> Iterator[Any]:
    """Alpha's API client; after-commit work (the AI's reply) runs when each request commits."""
    client = api_for(alpha.host, alpha.api_key)

    class Committing:
        def __getattr__(self, name: str) -> Any:
            method = getattr(client, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                with django_capture_on_commit_callbacks(execute=True):
                    return method(*args, **kwargs)

            return call

    yield Committing()


def test_inboxes_list_their_widget_keys(api: Any, inbox: Any) -> None:
    listed = api.get("/api/v1/inboxes/").json()["results"]
    mine = next(i for i in listed if i["id"] == inbox.pk)
    assert mine["widget_key"] == inbox.widget_key and mine["channel"] == "web"
    created = api.post(
        "/api/v1/inboxes/",
        {"name": "Shop", "allowed_origins": ["https://Shop.example/"], "color": "#112233", "agent": inbox.agent_id},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["settings"]["allowed_origins"] == ["https://shop.example"] and body["widget_key"].startswith("wk_")
    rotated = api.post(f"/api/v1/inboxes/{body['id']}/rotate-key").json()
    assert rotated["widget_key"] != body["widget_key"]
    patched = api.patch(f"/api/v1/inboxes/{body['id']}/", {"title": "Ask us", "is_active": False}, format="json")
    assert patched.json()["settings"]["title"] == "Ask us" and patched.json()["is_active"] is False
    for bad in (
        {"name": "x", "allowed_origins": ["javascript:alert(1)"]},
        {"name": "x", "allowed_origins": ["https://shop.example/path"]},
        {"name": "x", "color": "red"},
        {"name": "x", "agent": 999999},
        {"name": "x", "pre_chat_fields": ["password"]},
    ):
        assert api.post("/api/v1/inboxes/", bad, format="json").status_code == 400, bad
    assert api.delete(f"/api/v1/inboxes/{body['id']}/").status_code == 204
    assert api.delete(f"/api/v1/inboxes/{inbox.pk}/").status_code == 204  # no conversations yet


def test_api_channel_conversation_is_answered_and_taken_over(api: Any, inbox: Any) -> None:
    api_inbox = api.post(
        "/api/v1/inboxes/", {"name": "Integration", "channel": "api", "agent": inbox.agent_id}, format="json"
    ).json()
    started = api.post(
        "/api/v1/conversations/",
        {
            "inbox": api_inbox["id"],
            "contact": {"name": "Ola", "email": "ola@example.no"},
            "text": "How long does standard shipping take?",
            "client_id": "first",
        },
        format="json",
    )
    assert started.status_code == 201, started.content
    conversation = started.json()
    assert conversation["visitor_token"].startswith("vt_") and conversation["contact"]
    messages_url = f"/api/v1/conversations/{conversation['id']}/messages/"
    messages = api.get(messages_url).json()["results"]
    assert [m["role"] for m in messages] == ["visitor", "ai"]
    assert "3 to 5 business days" in messages[1]["text"] and messages[1]["citations"]
    assert messages[1]["audit"]["decision"] == "answered" and messages[1]["audit"]["reply_to"] == 1

    # Idempotent posting with a client_id.
    again = api.post(messages_url, {"role": "visitor", "text": "Thanks!", "client_id": "t1"}, format="json")
    repeat = api.post(messages_url, {"role": "visitor", "text": "Thanks!", "client_id": "t1"}, format="json")
    assert again.status_code == 201 and repeat.status_code == 200 and repeat.json()["seq"] == again.json()["seq"]

    # A staff reply takes over: the AI does not answer the next visitor message.
    reply = api.post(messages_url, {"text": "Hi Ola, I'm Sam from the team."}, format="json")
    assert reply.status_code == 201 and reply.json()["role"] == "agent"
    detail = api.get(f"/api/v1/conversations/{conversation['id']}/").json()
    assert detail["owner"] == "human"
    api.post(messages_url, {"role": "visitor", "text": "Can you ship express?"}, format="json")
    note = api.post(messages_url, {"role": "note", "text": "VIP, be quick"}, format="json")
    assert note.json()["role"] == "note"
    roles = [m["role"] for m in api.get(messages_url).json()["results"]]
    assert roles[-3:] == ["agent", "visitor", "note"]

    # While a person has it, the agent drafts a reply to the visitor's latest message for them.
    suggest_url = f"/api/v1/conversations/{conversation['id']}/suggested-reply"
    draft = api.post(suggest_url)
    assert draft.status_code == 200, draft.content
    body = draft.json()
    assert body["decision"] == "answered" and "shipping" in body["text"].lower() and "[1]" not in body["text"]
    assert body["citations"][0]["title"] == "Shipping times" and set(body["citations"][0]) == {
        "source_id",
        "title",
        "url",
        "chunk_id",
    }
    assert [m["role"] for m in api.get(messages_url).json()["results"]][-2:] == ["visitor", "note"]  # nothing sent

    # Hand back: the AI answers again.
    assert api.post(f"/api/v1/conversations/{conversation['id']}/hand-back").json()["owner"] == "ai"
    api.post(messages_url, {"role": "visitor", "text": "How long can I return an unused item?"}, format="json")
    last = api.get(messages_url).json()["results"][-1]
    assert last["role"] == "ai" and "30 days" in last["text"]

    # Paging backwards and forwards.
    seqs = [m["seq"] for m in api.get(messages_url).json()["results"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [m["seq"] for m in api.get(f"{messages_url}?before_seq=4&limit=2").json()["results"]] == [2, 3]
    assert [m["seq"] for m in api.get(f"{messages_url}?after_seq=5&limit=2").json()["results"]] == [6, 7]


def test_status_changes_and_filters(api: Any, inbox: Any) -> None:
    from apps.conversations.services import conversation_start, message_post

    conversation, _ = conversation_start(inbox=inbox)
    message_post(conversation_id=conversation.pk, role="visitor", text="Hello?", client_id="c1")
    url = f"/api/v1/conversations/{conversation.pk}/"
    assert api.patch(url, {"status": "snoozed"}, format="json").status_code == 400  # needs snoozed_until
    assert api.patch(url, {"status": "resolved", "tags": ["Billing", "billing", " vip "]}, format="json").json()[
        "tags"
    ] == ["billing", "vip"]
    resolved = api.get(f"/api/v1/conversations/?status=resolved&inbox={inbox.pk}").json()
    assert [c["id"] for c in resolved["results"]] == [conversation.pk]
    assert api.get(f"/api/v1/conversations/?status=open&inbox={inbox.pk}").json()["count"] == 0


def test_bad_inputs_and_other_tenants(api: Any, inbox: Any, beta: Any, api_for: Any) -> None:
    from apps.conversations.services import conversation_start

    conversation, _ = conversation_start(inbox=inbox)
    messages_url = f"/api/v1/conversations/{conversation.pk}/messages/"
    assert api.post("/api/v1/conversations/", {"inbox": inbox.pk, "text": "hi"}, format="json").status_code == 400
    assert api.post(messages_url, {"role": "visitor", "text": "spoof"}, format="json").status_code == 400
    assert api.post(messages_url, {"text": ""}, format="json").status_code == 400
    assert api.post(messages_url, {"text": "x" * 4001}, format="json").status_code == 400
    assert api.get(f"{messages_url}?after_seq=abc").status_code == 400
    other = api_for(beta.host, beta.api_key)
    assert other.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 404
    assert other.post(messages_url, {"text": "hello from beta"}, format="json").status_code == 404
    suggest_url = f"/api/v1/conversations/{conversation.pk}/suggested-reply"
    assert other.post(suggest_url).status_code == 404
    nothing = api.post(suggest_url)  # the visitor has not written yet
    assert nothing.status_code == 400 and nothing.json()["error"]["code"] == "nothing_to_answer"
    assert all(i["widget_key"] != inbox.widget_key for i in other.get("/api/v1/inboxes/").json()["results"])
