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


def lead_list() -> QuerySet[Lead]:
    return Lead.objects.select_related("contact")
