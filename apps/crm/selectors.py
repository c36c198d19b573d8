"""Reads from the CRM."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Contact, Lead


def contact_list(*, search: str = "") -> QuerySet[Contact]:
    qs = Contact.objects.all()
    if search:
        qs = qs.filter(
            Q(name__icontains=search)
            | Q(email__icontains=search)
            | Q(company__icontains=search)
            | Q(phone__icontains=search)
        )
    return qs


def merge_candidates(*, contact: Contact | None, claims: dict[str, str] | None = None, limit: int = 5) -> list[Contact]:
    """Verified contacts that share an email or phone with `contact`'s facts or the visitor's
    `claims`: what staff may merge an unverified contact into once they have checked who the
    visitor is. A suggestion, never applied by itself."""
    values: dict[str, set[str]] = {"email": set(), "phone": set()}
    for fact in (contact.memory if contact is not None else None) or []:
        if fact.get("key") in values and fact.get("value"):
            values[str(fact["key"])].add(str(fact["value"]))
    for key, value in (claims or {}).items():
        if key in values and value:
            values[key].add(str(value))
    query = Q()
    for email in values["email"]:
        query |= Q(email__iexact=email)
    for phone in values["phone"]:
        query |= Q(phone=phone)
    if not query:
        return []
    found = Contact.objects.filter(query, verified=True)
    if contact is not None:
        found = found.exclude(pk=contact.pk)
    return list(found.order_by("pk")[:limit])


def contact_for_reference(reference: str) -> list[Contact]:
    """The contacts a staff member means by `reference`: a contact number (as in its page's
    address) or an email address. Several when an email is shared."""
    reference = reference.strip()
    if reference.isdigit() and len(reference) <= 18:
        return list(Contact.objects.filter(pk=int(reference)))
    if "@" in reference:
        return list(Contact.objects.filter(email__iexact=reference[:254]).order_by("pk")[:10])
    return []


def lead_list() -> QuerySet[Lead]:
    return Lead.objects.select_related("contact")
