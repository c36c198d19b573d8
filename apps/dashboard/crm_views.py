"""Dashboard pages for the CRM: contacts (search, create), a contact's identity, the facts
the AI remembers about them (edit, add, erase one key or everything) and their leads.

A contact made from a visitor's own claims is unverified: staff verify it by merging it into
the known contact it turns out to be (suggested by shared email or phone), or, when it is a
new person they have checked, by marking it verified (docs/adr/0011-visitor-identity.md).

Staff with the agent role and up change contacts (the `crm:write` scope); viewers read.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.crm import selectors, services
from apps.crm.models import Contact
from syntera.errors import ApplicationError

from .forms import add_application_error
from .views import member_required

KEY_LABELS = {
    "name": "Name",
    "email": "Email",
    "phone": "Phone",
    "company": "Company",
    "language": "Language",
    "preference": "Preference",
    "open_issue": "Open issue",
    "note": "Note",
}
SOURCE_LABELS = {"staff": "staff", "verified": "verified", "conversation": "ai"}


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_membership(request.membership, ip=request.META.get("REMOTE_ADDR"))  # type: ignore[attr-defined]


def _can_edit(request: HttpRequest) -> bool:
    return bool(request.membership.has_role(Role.AGENT))  # type: ignore[attr-defined]


def _refuse(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "error.html",
        {"code": "permission_denied", "detail": "Viewers cannot change contacts."},
        status=403,
    )


class ContactForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    email = forms.EmailField(max_length=254, required=False)
    phone = forms.RegexField(
        r"^\+?[0-9 ().-]{5,30}$",
        max_length=40,
        required=False,
        error_messages={"invalid": "Enter a phone number: digits, spaces, + ( ) . - (5 to 30)."},
    )
    company = forms.CharField(max_length=200, required=False)
    external_id = forms.RegexField(
        r"^[^\x00-\x1f\x7f]{1,128}$",
        max_length=128,
        required=False,
        label="External id",
        help_text="Your site's user id for this person: a visitor whose identity your site signs with it is "
        "this contact.",
        error_messages={"invalid": "At most 128 printable characters."},
    )


class MergeForm(forms.Form):
    """Fold an (unverified) contact into a known one: staff name it and say they checked."""

    into = forms.CharField(
        max_length=254,
        label="Merge into",
        help_text="The known contact's number (as in its page's address) or email address.",
    )
    confirm = forms.BooleanField(
        label="I have checked that this visitor is that person",
        error_messages={"required": "Check who the visitor is first, then tick the box."},
    )

    def __init__(self, *args: Any, source: Contact | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source = source
        self.target: Contact | None = None

    def clean_into(self) -> str:
        reference = str(self.cleaned_data.get("into") or "")
        found = selectors.contact_for_reference(reference)
        others = [c for c in found if self.source is None or c.pk != self.source.pk]
        if not found:
            raise forms.ValidationError("No contact has this number or email address.")
        if not others:
            raise forms.ValidationError("That is this contact; choose the known contact to merge it into.")
        if len(others) > 1:
            raise forms.ValidationError("Several contacts have this email address; give the contact's number.")
        self.target = others[0]
        return reference


def merge_contact(request: HttpRequest, source: Contact, form: MergeForm) -> Contact | None:
    """Apply a valid MergeForm (the contact and conversation pages): the merged contact, or
    None with the service's refusal added to the form."""
    assert form.target is not None
    try:
        merged = services.contact_merge(actor=_actor(request), source=source, target=form.target)
    except ApplicationError as exc:
        form.add_error(None, exc.detail)
        return None
    messages.success(request, f"{source} was merged into {merged}: their conversations and leads are now here.")
    return merged


class MemoryFactForm(forms.Form):
    key = forms.ChoiceField(choices=[(k, KEY_LABELS.get(k, k)) for k in services.MEMORY_KEYS])
    value = forms.CharField(max_length=services.MAX_VALUE)


@member_required()
def contacts(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    form = ContactForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if not _can_edit(request):
            return _refuse(request)
        status = 400
        if form.is_valid():
            fields = {k: v for k, v in form.cleaned_data.items() if v}
            if not fields:
                form.add_error(None, "Give the contact at least a name, an email address or a phone number.")
            else:
                try:
                    contact = services.contact_create(actor=_actor(request), **fields)
                except ApplicationError as exc:
                    add_application_error(form, exc)
                else:
                    messages.success(request, f"Contact {contact} created.")
                    return redirect("dashboard-contact", contact_id=contact.pk)
    page = Paginator(selectors.contact_list(search=query), 50).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "query": query, "can_edit": _can_edit(request)}
    return render(request, "dashboard/contact_list.html", context, status=status)


def _facts(contact: Contact) -> list[dict[str, Any]]:
    """Memory facts for the page. Single-valued keys are edited in place (setting the key
    replaces its value); multi-valued ones are added to and erased by key."""
    counts: dict[str, int] = {}
    for fact in contact.memory or []:
        counts[str(fact.get("key"))] = counts.get(str(fact.get("key")), 0) + 1
    return [
        {
            "key": str(fact.get("key", "")),
            "label": KEY_LABELS.get(str(fact.get("key")), str(fact.get("key"))),
            "value": str(fact.get("value", "")),
            "source": SOURCE_LABELS.get(str(fact.get("source")), "ai"),
            "updated_at": str(fact.get("updated_at", ""))[:16].replace("T", " "),
            "editable": fact.get("key") in services.SINGLE_KEYS,
            "count": counts[str(fact.get("key"))],
        }
        for fact in contact.memory or []
    ]


def _contact_post(
    request: HttpRequest, contact: Contact, identity: ContactForm, memory: MemoryFactForm
) -> tuple[bool, str]:
    """Apply one of the contact page's forms: (done, error for the memory section). A form's
    own errors stay on that form; the caller redirects when done."""
    which = request.POST.get("form")
    actor = _actor(request)
    try:
        if which == "identity":
            if not identity.is_valid():
                return False, ""
            changed = {k: v for k, v in identity.cleaned_data.items() if v != getattr(contact, k)}
            if changed:
                services.contact_update(actor=actor, contact=contact, **changed)
            messages.success(request, "Contact saved." if changed else "Nothing changed.")
        elif which == "memory":
            if not memory.is_valid():
                return False, ""
            key, value = memory.cleaned_data["key"], memory.cleaned_data["value"]
            services.contact_memory_set(actor=actor, contact=contact, key=key, value=value)
            messages.success(request, f"{KEY_LABELS.get(key, key)} saved.")
        elif which == "erase":
            key = request.POST.get("key", "")
            if key not in services.MEMORY_KEYS:
                return False, "Choose a memory key to erase."
            services.contact_memory_erase(actor=actor, contact=contact, key=key)
            messages.success(request, f"The AI no longer remembers this contact's {KEY_LABELS[key].lower()}.")
        elif which == "erase_all":
            services.contact_memory_erase(actor=actor, contact=contact, key=None)
            messages.success(request, "Everything the AI remembered about this contact was erased.")
        elif which in ("verify", "unverify"):
            services.contact_update(actor=actor, contact=contact, verified=which == "verify")
            messages.success(
                request,
                "Contact marked verified: the AI now uses what it remembers about them."
                if which == "verify"
                else "Contact marked unverified: the AI reads its facts as the visitor's claims only.",
            )
        else:
            return False, "Unknown action."
    except ApplicationError as exc:
        form = identity if which == "identity" else memory
        if not form.is_bound:
            return False, exc.detail
        add_application_error(form, exc)
        return False, ""
    return True, ""


@member_required()
def contact_detail(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=contact_id)
    initial = {k: getattr(contact, k) for k in ("name", "email", "phone", "company", "external_id")}
    posted = request.method == "POST"
    which = request.POST.get("form") if posted else None
    identity = ContactForm(request.POST if which == "identity" else None, initial=initial)
    memory = MemoryFactForm(request.POST if which == "memory" else None)
    merge = MergeForm(request.POST if which == "merge" else None, source=contact)
    status, action_error = 200, ""
    if posted:
        if not _can_edit(request):
            return _refuse(request)
        if which == "merge":
            merged = merge_contact(request, contact, merge) if merge.is_valid() else None
            if merged is not None:
                return redirect("dashboard-contact", contact_id=merged.pk)
        else:
            done, action_error = _contact_post(request, contact, identity, memory)
            if done:
                return redirect("dashboard-contact", contact_id=contact.pk)
        status = 400
    context = {
        "merge_form": merge,
        "candidates": selectors.merge_candidates(contact=contact) if not contact.verified else [],
        "contact": contact,
        "identity": identity,
        "memory_form": memory,
        "action_error": action_error,
        "facts": _facts(contact),
        "leads": contact.leads.all()[:100],
        "can_edit": _can_edit(request),
    }
    return render(request, "dashboard/contact.html", context, status=status)


@require_POST
@member_required(Role.AGENT)
def contact_delete(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = get_object_or_404(Contact, pk=contact_id)
    services.contact_delete(actor=_actor(request), contact=contact)
    messages.success(request, f"Contact {contact} deleted with their leads.")
    return redirect("dashboard-contacts")
