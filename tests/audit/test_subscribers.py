"""The audit trail subscribes to the domain events staff must account for: the entry is
written when the event is delivered, with the event's type as its action and the person,
key or part of the platform that caused it."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django_tenants.utils import schema_context

from apps.audit.models import AuditEvent
from apps.audit.services import audit_event_record


def test_a_takeover_through_the_api_is_audited_from_its_event(
    alpha: Any, beta: Any, api_for: Any, jwt_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.conversations import services as conversations
    from apps.conversations.models import Inbox

    with schema_context(alpha.schema):
        inbox = Inbox.objects.create(name="Audit API", channel="api")
        conversation, _ = conversations.conversation_start(inbox=inbox)
        conversations.message_post(conversation_id=conversation.pk, role="visitor", text="Hi", client_id="a1")
    api = api_for(alpha.host, jwt_for(alpha, alpha.owner_email))
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/v1/conversations/{conversation.pk}/take-over").status_code == 200
    found = api.get("/api/v1/audit-events/?action=conversation.assigned").json()["results"]
    (entry,) = [e for e in found if e["target_id"] == str(conversation.pk)]
    assert entry["actor"] == alpha.owner_email and entry["target_type"] == "conversations.conversation"
    assert entry["data"]["via"] == "takeover" and entry["data"]["conversation_id"] == conversation.pk
    assert entry["data"]["event"] and entry["ip_address"] == "127.0.0.1"
    # beta's trail has nothing of it.
    with schema_context(beta.schema):
        assert not AuditEvent.objects.filter(
            action="conversation.assigned", data__event=entry["data"]["event"]
        ).exists()


def test_an_entry_keeps_the_label_of_a_person_deleted_since(alpha: Any) -> None:
    with schema_context(alpha.schema):
        entry = audit_event_record(
            action="contact.created",
            actor_user_id=987654321,  # gone before the event was delivered
            actor_label="former@alpha.example",
            target_type="crm.contact",
            target_id="5",
            data={"contact_id": 5},
            ip="192.0.2.7",
        )
        assert entry.actor_id is None and entry.actor_label == "former@alpha.example"
        assert connection.schema_name == alpha.schema
