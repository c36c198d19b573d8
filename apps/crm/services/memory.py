"""A contact's memory: a list of facts, each with the `source` that vouches for it. The AI adds
facts with `contact_remember` (never over staff or verified ones); staff set and erase them;
`contact_facts` flattens them for prompts. Identity facts are mirrored on the contact's columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.services import Actor
from apps.audit.services import audit_action
from syntera.errors import ApplicationError

from ..models import Contact
from .common import _emit_updated, _require_staff, _snapshot

SINGLE_KEYS = ("name", "email", "phone", "company", "language")
MULTI_KEYS = ("preference", "open_issue", "note")
MEMORY_KEYS = SINGLE_KEYS + MULTI_KEYS
MAX_FACTS = 50
MAX_VALUE = 300
IDENTITY_FIELDS = ("name", "email", "phone", "company")
TRUSTED_SOURCES = ("staff", "verified")
# The identity columns' lengths: a longer value is cut to fit (the fact keeps MAX_VALUE).
COLUMN_MAX = {"name": 200, "email": 254, "phone": 40, "company": 200}


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
