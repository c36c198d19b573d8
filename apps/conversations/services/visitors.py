"""A visitor's conversation: starting one, finding it again by its token, what the visitor says
about themselves (claims) and who a trusted party says they are (docs/adr/0011-visitor-identity.md),
and the removal of conversations nobody wrote in."""

from __future__ import annotations

import contextlib
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_action
from apps.tenants.db import connection
from syntera.errors import ApplicationError

from ..models import Conversation, Inbox
from ..stores import get_store
from .notify import current_schema, emit_updated, token_hash


def visitor_conversation(*, inbox: Inbox, token: str | None) -> Conversation | None:
    """The conversation this visitor token opens in this inbox, if any."""
    if not token:
        return None
    return Conversation.objects.filter(inbox=inbox, visitor_token_hash=token_hash(token)).order_by("-id").first()


@transaction.atomic
def conversation_start(
    *,
    inbox: Inbox,
    channel: str | None = None,
    contact: Any = None,
    ip: str | None = None,
    attributes: dict[str, str] | None = None,
) -> tuple[Conversation, str]:
    """A new conversation and the visitor token that opens it again (shown once)."""
    token = "vt_" + secrets.token_urlsafe(24)
    conversation = Conversation.objects.create(
        inbox=inbox,
        channel=channel or inbox.channel,
        contact=contact,
        visitor_token_hash=token_hash(token),
        owner=Conversation.Owner.AI if inbox.agent_id else Conversation.Owner.QUEUE,
        visitor_ip=ip,
        attributes=attributes or {},
    )
    # Staff hear of it with its first message (`message_post`): an opened widget that nobody
    # writes in is not a conversation for anyone, and is removed by `conversations_purge_empty`.
    return conversation, token


@transaction.atomic
def conversation_claim(*, conversation_id: int, fields: dict[str, str]) -> Conversation:
    """What the visitor says about themselves (the pre-chat form, their own messages): kept on
    the conversation as claims and remembered by the conversation's own contact, a new
    unverified one when it has none. A claim never selects an existing contact, so it never
    unlocks another person's memory (docs/adr/0011-visitor-identity.md)."""
    from apps.crm.services import contact_create, contact_remember

    from ..identity import clean_claims

    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    fields = clean_claims(fields)
    if not fields:
        return conversation
    contact = conversation.contact
    if contact is None:
        contact = contact_create(actor=None, tenant=connection.tenant, verified=False, system_label="visitor")
    with contextlib.suppress(ApplicationError):  # a value the CRM refuses is simply not remembered
        contact_remember(tenant=connection.tenant, contact=contact, facts=list(fields.items()))
    changed = ["claims"] if conversation.contact_id == contact.pk else ["claims", "contact"]
    conversation.contact = contact
    conversation.claims = {**(conversation.claims or {}), **fields}
    conversation.save(update_fields=["contact", "claims", "updated_at"])
    emit_updated(conversation, *changed)
    return conversation


@transaction.atomic
def conversation_verify(*, conversation_id: int, contact: Any) -> Conversation:
    """Attach the conversation to `contact`, whose identity a trusted party established (a
    signed identity, an authenticated integrator). The unverified contact the visitor had
    (their claims, their leads) is folded into it when no other conversation uses it."""
    from apps.crm.services import contact_merge

    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    previous = conversation.contact
    if previous is not None and previous.pk == contact.pk:
        return conversation
    if previous is not None and previous.verified:
        raise ApplicationError("This conversation belongs to another known contact.", code="conflict", status_code=409)
    if previous is not None and not previous.conversations.exclude(pk=conversation.pk).exists():
        contact_merge(actor=None, source=previous, target=contact, tenant=connection.tenant)
    conversation.contact = contact
    conversation.save(update_fields=["contact", "updated_at"])
    audit_action(
        None,
        "conversations.identity_verified",
        conversation,
        {"contact_id": contact.pk, "previous_contact_id": getattr(previous, "pk", None)},
        system_label="widget",
    )
    emit_updated(conversation, "contact")
    return conversation


@transaction.atomic
def conversation_identify(*, conversation_id: int, fields: dict[str, str]) -> Conversation:
    """An authenticated integrator says who the visitor is (the API's `contact` when it starts
    a conversation): trusted, so the conversation goes to the verified contact whose email
    (else phone) staff or a verification vouch for, or to a new verified contact. Only for
    callers who authenticated; what a visitor says about themselves is `conversation_claim`."""
    from apps.crm.services import contact_by_trusted, contact_create, contact_remember

    from ..identity import clean_claims

    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    fields = clean_claims(fields)
    if not fields:
        return conversation
    current = conversation.contact
    if current is not None and current.verified:
        with contextlib.suppress(ApplicationError):
            contact_remember(tenant=connection.tenant, contact=current, facts=list(fields.items()))
        return conversation
    contact = contact_by_trusted(key="email", value=fields.get("email", "")) or contact_by_trusted(
        key="phone", value=fields.get("phone", "")
    )
    if contact is None:
        contact = contact_create(actor=None, tenant=connection.tenant, verified=True, system_label="api", **fields)
    else:
        with contextlib.suppress(ApplicationError):
            contact_remember(tenant=connection.tenant, contact=contact, facts=list(fields.items()))
    return conversation_verify(conversation_id=conversation.pk, contact=contact)


def conversations_purge_empty() -> int:
    """Remove conversations nobody wrote in (nothing stored) older than
    EMPTY_CONVERSATION_TTL_HOURS: opened widgets, abandoned API starts. Returns how many."""
    from django.conf import settings

    cutoff = timezone.now() - timedelta(hours=settings.EMPTY_CONVERSATION_TTL_HOURS)
    empty = Conversation.objects.filter(last_seq=0, created_at__lt=cutoff)
    ids = list(empty.values_list("pk", flat=True)[:5000])
    if not ids:
        return 0
    store = get_store()
    for conversation_id in ids:
        store.delete_conversation(schema=current_schema(), conversation_id=conversation_id)
    deleted, _ = Conversation.objects.filter(pk__in=ids, last_seq=0).delete()
    return deleted
