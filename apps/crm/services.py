"""Writes to the CRM: contacts, their memory, leads. Every change is audited.

Contact memory is a list of facts (see `Contact`). `contact_remember` is what the AI calls
with facts it extracted from a conversation; staff edit with `contact_memory_set` and erase
with `contact_memory_erase` (one key, or everything). Identity fields (name, email, phone,
company) are mirrored on the contact's columns so lists and search can use them.

A fact's `source` says who vouches for it: `staff`, `verified` (a signed identity, an
authenticated integrator, or staff verifying the contact) or `conversation` (what a visitor
said). Staff and verified facts are never overwritten from a conversation, and only they
let a trusted path find a contact by email or phone. Nothing a visitor says ever selects an
existing contact: `lead_capture` files under the visitor's own contact or a new unverified
one; `contact_merge` is how staff fold such a contact into a known one
(docs/adr/0011-visitor-identity.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from apps.events import types as events
from apps.events.services import emit
from syntera.errors import ApplicationError

from .models import Contact, Lead

SINGLE_KEYS = ("name", "email", "phone", "company", "language")
MULTI_KEYS = ("preference", "open_issue", "note")
MEMORY_KEYS = SINGLE_KEYS + MULTI_KEYS
MAX_FACTS = 50
MAX_VALUE = 300
IDENTITY_FIELDS = ("name", "email", "phone", "company")
TRUSTED_SOURCES = ("staff", "verified")
# The identity columns' lengths: a longer value is cut to fit (the fact keeps MAX_VALUE).
COLUMN_MAX = {"name": 200, "email": 254, "phone": 40, "company": 200}


def _snapshot(contact: Contact) -> dict[str, Any]:
    """What `contact.updated` compares (its `changed` names these keys)."""
    return {key: getattr(contact, key) for key in events.CONTACT_FIELDS}


def _emit_updated(
    contact: Contact, before: dict[str, Any], *, actor: Actor | None, system_label: str, merged_from: int | None = None
) -> None:
    changed = [key for key, value in _snapshot(contact).items() if before[key] != value]
    if merged_from is not None:
        changed.append("memory")
    if changed:
        emit(
            events.contact_updated(
                contact_id=contact.pk, changed=changed, verified=contact.verified, merged_from=merged_from
            ),
            actor=actor,
            system_label=system_label,
        )


def _require_staff(actor: Actor) -> None:
    if not actor.has_role(Role.AGENT):
        raise ApplicationError("Your role cannot change contacts.", code="permission_denied", status_code=403)


def _clean_value(value: Any) -> str:
    text = " ".join(str(value or "").split())
    if not text:
        raise ApplicationError("A memory value cannot be empty.", code="invalid", status_code=400)
    return text[:MAX_VALUE]


def _apply_fact(contact: Contact, key: str, value: str, source: str) -> bool:
    """Add or replace one fact; True when memory changed."""
    if key not in MEMORY_KEYS:
        raise ApplicationError(
            f"Unknown memory key {key!r}. Known keys: {', '.join(MEMORY_KEYS)}.", code="invalid", status_code=400
        )
    facts: list[dict[str, Any]] = list(contact.memory or [])
    now = timezone.now().isoformat()
    if key in SINGLE_KEYS:
        for fact in facts:
            if fact.get("key") == key:
                if fact.get("value") == value:
                    return False
                fact.update(value=value, source=source, updated_at=now)
                break
        else:
            facts.append({"key": key, "value": value, "source": source, "updated_at": now})
    else:
        if any(f.get("key") == key and str(f.get("value", "")).lower() == value.lower() for f in facts):
            return False
        facts.append({"key": key, "value": value, "source": source, "updated_at": now})
    if len(facts) > MAX_FACTS:
        # Oldest multi-valued facts go first; identity facts are kept.
        multi = sorted((f for f in facts if f.get("key") in MULTI_KEYS), key=lambda f: str(f.get("updated_at")))
        for fact in multi[: len(facts) - MAX_FACTS]:
            facts.remove(fact)
    contact.memory = facts
    if key in IDENTITY_FIELDS:
        setattr(contact, key, value[: COLUMN_MAX[key]])
    return True


def _trusted_keys(contact: Contact) -> set[str]:
    """Single-valued keys whose fact staff or a verification vouches for."""
    return {
        str(f.get("key"))
        for f in contact.memory or []
        if f.get("source") in TRUSTED_SOURCES and f.get("key") in SINGLE_KEYS
    }


def _external_id_taken(external_id: str, contact_id: int | None) -> ApplicationError | None:
    others = Contact.objects.filter(external_id=external_id)
    if contact_id is not None:
        others = others.exclude(pk=contact_id)
    if external_id and others.exists():
        return ApplicationError(
            "Another contact has this external id.",
            code="conflict",
            status_code=409,
            fields={"external_id": ["Already used by another contact."]},
        )
    return None


@transaction.atomic
def contact_create(*, actor: Actor | None, tenant: Any = None, verified: bool | None = None, **fields: Any) -> Contact:
    """A contact. Made by staff or an integrator (`actor`) it is verified and its facts are
    staff facts; made by the platform (`actor` None) it is verified only when the caller
    says so (`verified`), its facts then `verified`, else `conversation`."""
    if actor is not None:
        _require_staff(actor)
    verified = actor is not None if verified is None else verified
    external_id = str(fields.get("external_id") or "")
    if (taken := _external_id_taken(external_id, None)) is not None:
        raise taken
    contact = Contact.objects.create(
        verified=verified,
        external_id=external_id,
        **{k: v for k, v in fields.items() if k in (*IDENTITY_FIELDS, "attributes") and v is not None},
    )
    source = "staff" if actor else ("verified" if verified else "conversation")
    for key in IDENTITY_FIELDS:
        if getattr(contact, key):
            _apply_fact(contact, key, getattr(contact, key), source)
    contact.save()
    emit(
        events.contact_created(contact_id=contact.pk, verified=verified, source=source),
        actor=actor,
        system_label=str(fields.get("system_label") or "visitor"),
    )
    return contact


@transaction.atomic
def contact_update(*, actor: Actor, contact: Contact, **fields: Any) -> Contact:
    """Change a contact's identity, attributes, external id; `verified` True is staff
    confirming who the contact is (its identity facts become trusted), False withdraws it
    (the AI then reads the contact's facts as claims)."""
    _require_staff(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    before = _snapshot(contact)
    for key, value in fields.items():
        if key == "attributes":
            contact.attributes = value
        elif key == "external_id" and value is not None:
            if (taken := _external_id_taken(str(value), contact.pk)) is not None:
                raise taken
            contact.external_id = str(value)
        elif key == "verified" and value is not None:
            _set_verified(contact, bool(value))
        elif key in IDENTITY_FIELDS and value is not None:
            if value:
                _apply_fact(contact, key, _clean_value(value), "staff")
            else:
                contact.memory = [f for f in contact.memory if f.get("key") != key]
                setattr(contact, key, "")
    contact.save()
    _emit_updated(contact, before, actor=actor, system_label="staff")
    audit_action(actor, "crm.contact_updated", contact, {"fields": sorted(fields)})
    if "verified" in fields and fields["verified"] is not None:
        action = "crm.contact_verified" if fields["verified"] else "crm.contact_unverified"
        audit_action(actor, action, contact, {})
    return contact


def _set_verified(contact: Contact, verified: bool) -> None:
    contact.verified = verified
    if verified:
        for fact in contact.memory or []:
            if fact.get("key") in ("name", "email", "phone") and fact.get("source") == "conversation":
                fact["source"] = "verified"


def contact_delete(*, actor: Actor, contact: Contact) -> None:
    _require_staff(actor)
    audit_action(actor, "crm.contact_deleted", None, {"contact_id": contact.pk})
    contact.delete()


@transaction.atomic
def contact_remember(*, tenant: Any, contact: Contact, facts: Iterable[tuple[str, str]]) -> list[str]:
    """Store facts the AI extracted from a conversation; returns the keys that changed.
    Facts staff entered or a verification vouched for are not overwritten."""
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    before = _snapshot(contact)
    changed: list[str] = []
    trusted = _trusted_keys(contact)
    for key, value in facts:
        if key in trusted:
            continue
        if _apply_fact(contact, key, _clean_value(value), "conversation"):
            changed.append(key)
    if changed:
        contact.save()
        _emit_updated(contact, before, actor=None, system_label="ai")
        audit_action(None, "crm.memory_learned", contact, {"keys": changed}, tenant=tenant, system_label="ai")
    return changed


@transaction.atomic
def contact_memory_set(*, actor: Actor, contact: Contact, key: str, value: str) -> Contact:
    _require_staff(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    before = _snapshot(contact)
    _apply_fact(contact, key, _clean_value(value), "staff")
    contact.save()
    _emit_updated(contact, before, actor=actor, system_label="staff")
    audit_action(actor, "crm.memory_set", contact, {"key": key})
    return contact


@transaction.atomic
def contact_memory_erase(
    *, actor: Actor, contact: Contact, key: str | None = None, value: str | None = None
) -> Contact:
    """Erase one fact (key and value), one key's facts, or (key None) the whole memory.
    Identity columns mirrored from erased facts are cleared too: erasing means the AI no
    longer knows it."""
    _require_staff(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    before = _snapshot(contact)
    erased = [
        f for f in contact.memory if (key is None or f.get("key") == key) and (value is None or f.get("value") == value)
    ]
    contact.memory = [f for f in contact.memory if f not in erased]
    for fact in erased:
        if fact.get("key") in IDENTITY_FIELDS:
            setattr(contact, str(fact["key"]), "")
    contact.save()
    _emit_updated(contact, before, actor=actor, system_label="staff")
    audit_action(actor, "crm.memory_erased", contact, {"key": key or "*", "facts": len(erased)})
    return contact


def contact_facts(contact: Contact | None) -> dict[str, str]:
    """The memory as a flat mapping for prompts (multi-valued keys joined with '; ')."""
    if contact is None:
        return {}
    out: dict[str, list[str]] = {}
    for fact in contact.memory or []:
        out.setdefault(str(fact.get("key")), []).append(str(fact.get("value")))
    return {k: "; ".join(v) for k, v in out.items()}


@transaction.atomic
def lead_capture(
    *,
    tenant: Any,
    contact: Contact | None,
    name: str = "",
    email: str = "",
    phone: str = "",
    company: str = "",
    need: str = "",
    origin: str = "ai",
    actor: Actor | None = None,
) -> Lead:
    """Record a lead under `contact` (the conversation's own), or, without one, under a new
    unverified contact holding what the visitor gave. An email or phone number never selects
    an existing contact: it is the visitor's claim, and staff merge the contact into a known
    one once they know who it is (`contact_merge`)."""
    if not (email or phone or contact is not None):
        raise ApplicationError("A lead needs an email address or a phone number.", code="invalid", status_code=400)
    if contact is None:
        contact = contact_create(actor=None, tenant=tenant, verified=False)
    facts = [(k, v) for k, v in (("name", name), ("email", email), ("phone", phone), ("company", company)) if v]
    if facts:
        contact_remember(tenant=tenant, contact=contact, facts=facts)
    # Locked: the lead's event is ordered with its contact's others.
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    lead = Lead.objects.create(contact=contact, need=(need or "")[:2000], origin=origin)
    emit(events.lead_created(lead_id=lead.pk, contact_id=contact.pk, origin=origin), actor=actor, system_label="ai")
    return lead


# --- identity: trusted lookups, signed identities, merging -------------------------------------


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
