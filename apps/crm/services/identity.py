"""Identity: finding a contact by a vouched-for email or phone, the contact of a signed identity,
and merging a contact into another (docs/adr/0011-visitor-identity.md).
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.db import IntegrityError, transaction

from apps.accounts.services import Actor
from apps.audit.services import audit_action
from syntera.errors import ApplicationError

from ..models import Contact
from .common import _emit_updated, _require_staff, _snapshot
from .contacts import contact_create
from .memory import COLUMN_MAX, IDENTITY_FIELDS, MAX_FACTS, MULTI_KEYS, SINGLE_KEYS, TRUSTED_SOURCES, contact_remember


def _vouched(contact: Contact, key: str, value: str) -> bool:
    return any(
        f.get("key") == key and f.get("source") in TRUSTED_SOURCES and str(f.get("value", "")).lower() == value.lower()
        for f in contact.memory or []
    )


def contact_by_trusted(*, key: str, value: str, with_external_id: bool = True) -> Contact | None:
    """The oldest verified contact whose `key` (email or phone) is `value` on staff's or a
    verification's word, never on a visitor's. Only trusted callers look contacts up like
    this (an authenticated integrator, a signed identity). `with_external_id` False leaves
    out contacts a signed user id owns: their email is that user's own say-so."""
    if key not in ("email", "phone") or not value:
        return None
    lookup = {"email__iexact": value} if key == "email" else {"phone": value}
    candidates = Contact.objects.filter(verified=True, **lookup).order_by("pk")
    if not with_external_id:
        candidates = candidates.filter(external_id="")
    return next((c for c in candidates[:50] if _vouched(c, key, value)), None)


@transaction.atomic
def contact_for_signed_identity(*, tenant: Any, user_id: str = "", email: str = "", name: str = "") -> Contact:
    """The contact a host site's signed identity stands for, created (verified) on first
    sight. A signed user id is matched by `external_id` only; the email and name beside it
    are that user's profile, kept as conversation facts. A signed email (no user id) is
    matched to a contact whose email staff or a verification vouch for."""
    if user_id:
        contact = Contact.objects.filter(external_id=user_id).first()
        if contact is None:
            try:
                with transaction.atomic():
                    contact = contact_create(
                        actor=None, tenant=tenant, verified=True, external_id=user_id, system_label="widget"
                    )
            except (IntegrityError, ApplicationError):  # created meanwhile by another socket
                contact = Contact.objects.get(external_id=user_id)
        profile = [(k, v) for k, v in (("name", name), ("email", email)) if v]
    else:
        contact = contact_by_trusted(key="email", value=email, with_external_id=False)
        if contact is None:
            contact = contact_create(actor=None, tenant=tenant, verified=True, email=email, system_label="widget")
        profile = [("name", name)] if name else []
    if profile:
        with contextlib.suppress(ApplicationError):  # a value the CRM refuses is simply not kept
            contact_remember(tenant=tenant, contact=contact, facts=profile)
        contact.refresh_from_db()
    return contact


def _merged_memory(source: Contact, target: Contact) -> list[dict[str, Any]]:
    """The target's facts plus the source's: for a single-valued key the target's staff or
    verified fact wins, else the newer one; multi-valued facts are pooled."""
    facts = [dict(f) for f in target.memory or []]
    by_key = {str(f.get("key")): f for f in facts if f.get("key") in SINGLE_KEYS}
    for fact in source.memory or []:
        key = str(fact.get("key"))
        if key in SINGLE_KEYS:
            mine = by_key.get(key)
            if mine is None:
                facts.append(dict(fact))
            elif mine.get("source") not in TRUSTED_SOURCES and (
                fact.get("source") in TRUSTED_SOURCES or str(fact.get("updated_at")) > str(mine.get("updated_at"))
            ):
                mine.update(fact)
        elif not any(
            f.get("key") == key and str(f.get("value", "")).lower() == str(fact.get("value", "")).lower() for f in facts
        ):
            facts.append(dict(fact))
    if len(facts) > MAX_FACTS:
        multi = sorted((f for f in facts if f.get("key") in MULTI_KEYS), key=lambda f: str(f.get("updated_at")))
        for fact in multi[: len(facts) - MAX_FACTS]:
            facts.remove(fact)
    return facts


@transaction.atomic
def contact_merge(*, actor: Actor | None, source: Contact, target: Contact, tenant: Any = None) -> Contact:
    """Fold `source` into `target` and delete it: its conversations and leads move to the
    target, its facts join the target's (the target's staff facts win), its attributes fill
    gaps. Staff call it once they know who a visitor is; the widget calls it (actor None)
    when a visitor with an unverified contact proves who they are with a signed identity."""
    if actor is not None:
        _require_staff(actor)
    if source.pk == target.pk:
        raise ApplicationError(
            "A contact cannot be merged into itself.",
            code="invalid",
            status_code=400,
            fields={"into": ["Same contact."]},
        )
    locked = {c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=[source.pk, target.pk]).order_by("pk")}
    source, target = locked[source.pk], locked[target.pk]
    before = _snapshot(target)
    if source.external_id and target.external_id and source.external_id != target.external_id:
        raise ApplicationError(
            "Both contacts belong to different signed-in users of your site; they are not one person.",
            code="conflict",
            status_code=409,
        )
    target.memory = _merged_memory(source, target)
    for key in IDENTITY_FIELDS:
        value = next((str(f.get("value")) for f in target.memory if f.get("key") == key), "")
        setattr(target, key, value[: COLUMN_MAX[key]] or getattr(target, key))
    target.attributes = {**(source.attributes or {}), **(target.attributes or {})}
    external_id = target.external_id or source.external_id
    target.verified = target.verified or source.verified
    conversations = source.conversations.update(contact=target)  # type: ignore[attr-defined]
    leads = source.leads.update(contact=target)
    source_id = source.pk
    data = {
        "source_id": source_id,
        "source": str(source)[:200],
        "source_verified": source.verified,
        "conversations": conversations,
        "leads": leads,
    }
    source.delete()  # before the target takes over its external id
    target.external_id = external_id
    target.save()
    _emit_updated(target, before, actor=actor, system_label="widget", merged_from=source_id)
    audit_action(actor, "crm.contact_merged", target, data, tenant=tenant, system_label="widget")
    return target
