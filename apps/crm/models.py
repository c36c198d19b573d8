"""CRM records in the tenant's schema: contacts (the people who talk to a tenant, with the
durable facts the AI remembers about them) and leads (a contact's captured need)."""

from __future__ import annotations

from django.db import models


class Contact(models.Model):
    """A person known to the tenant. `memory` holds durable facts learnt in conversations or
    entered by staff: a list of `{"key", "value", "source", "updated_at"}`, single-valued keys
    (name, email, phone, company, language) at most once, multi-valued keys (preference,
    open_issue, note) any number of times. Staff see, edit and erase it.

    `verified`: who this is was established by staff, an authenticated integrator or a signed
    identity from the host site. An unverified contact was made from a visitor's own claims
    and holds only what that visitor said; the AI reads it as claims, never as memory, and no
    claim ever leads to another contact (docs/adr/0011-visitor-identity.md). `external_id`
    is the host site's user id of a signed identity."""

    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True, db_index=True)
    phone = models.CharField(max_length=40, blank=True, db_index=True)
    company = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    memory = models.JSONField(default=list, blank=True)
    verified = models.BooleanField(default=False)
    external_id = models.CharField(max_length=128, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=~models.Q(external_id=""), name="contact_external_id_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or f"Contact {self.pk}"


class Lead(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        QUALIFIED = "qualified", "Qualified"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="leads")
    need = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    origin = models.CharField(max_length=40, blank=True, help_text="What captured it: ai, api, staff.")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Lead {self.pk} ({self.contact})"
