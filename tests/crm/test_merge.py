"""Staff verify a visitor by merging their unverified contact into a known one
(docs/adr/0011-visitor-identity.md): through the API as an integrator or staff member does,
with the conversations and leads moving, the known contact's staff facts winning, an audit
record, and another workspace's ids out of reach."""

from __future__ import annotations

from typing import Any

import pytest

from apps.conversations.models import Conversation
from apps.crm.models import Contact, Lead
from tests.support import keep_schema as _keep_schema


@pytest.fixture
def visitor(owner: Any) -> dict[str, Any]:
    """A widget visitor who claimed a name, an email and a phone and left a lead: their
    conversation, their unverified contact and the lead."""
    from apps.conversations import services as conversations
    from apps.crm.services.contacts import lead_capture

    inbox = conversations.inbox_create(actor=owner, name="Site")
    conversation, _token = conversations.conversation_start(inbox=inbox)
    conversation = conversations.conversation_claim(
        conversation_id=conversation.pk,
        fields={"name": "Dana D.", "email": "dana@visitor.example", "phone": "+49 30 1234567"},
    )
    contact = conversation.contact
    assert contact is not None and not contact.verified
    lead = lead_capture(tenant=owner.tenant, contact=contact, need="40 office chairs", origin="ai")
    return {"conversation": conversation, "contact": contact, "lead": lead}


@pytest.fixture
def known(owner: Any) -> Contact:
    from apps.crm.services.contacts import contact_create
    from apps.crm.services.memory import contact_memory_set, contact_remember

    contact = contact_create(actor=owner, name="Dana Diaz", email="dana@known.example")
    contact_memory_set(actor=owner, contact=contact, key="note", value="key account")
    contact_remember(tenant=owner.tenant, contact=contact, facts=[("company", "Old Corp")])
    contact.refresh_from_db()
    return contact


def test_staff_merge_an_unverified_contact_into_a_known_one(
    alpha: Any,
    api_for: Any,
    owner: Any,
    visitor: dict[str, Any],
    known: Contact,
) -> None:
    from apps.audit.models import AuditEvent

    api = api_for(alpha.host, alpha.api_key)
    source = visitor["contact"]
    listed = _keep_schema(api.get, f"/api/v1/contacts/{source.pk}/").json()
    assert listed["verified"] is False and listed["external_id"] == ""
    response = _keep_schema(api.post, f"/api/v1/contacts/{source.pk}/merge/", {"into": known.pk}, format="json")
    assert response.status_code == 200, response.content
    merged = response.json()
    assert merged["id"] == known.pk and merged["verified"] is True
    facts = {f["key"]: (f["value"], f["source"]) for f in merged["memory"]}
    # The known contact's staff facts win; what it lacked comes from the visitor's claims.
    assert facts["name"] == ("Dana Diaz", "staff") and facts["email"] == ("dana@known.example", "staff")
    assert facts["note"] == ("key account", "staff") and facts["phone"][0] == "+49 30 1234567"
    assert facts["company"] == ("Old Corp", "conversation")
    assert (merged["name"], merged["email"], merged["phone"]) == ("Dana Diaz", "dana@known.example", "+49 30 1234567")
    assert not Contact.objects.filter(pk=source.pk).exists()
    assert Conversation.objects.get(pk=visitor["conversation"].pk).contact_id == known.pk
    assert Lead.objects.get(pk=visitor["lead"].pk).contact_id == known.pk
    event = AuditEvent.objects.get(action="crm.contact_merged")
    assert event.target_id == str(known.pk) and event.data["source_id"] == source.pk
    assert event.data["conversations"] == 1 and event.data["leads"] == 1
    assert _keep_schema(api.get, f"/api/v1/contacts/{source.pk}/").status_code == 404


def test_merge_refuses_bad_targets_and_other_workspaces_ids(
    alpha: Any,
    beta: Any,
    api_for: Any,
    owner: Any,
    visitor: dict[str, Any],
    known: Contact,
) -> None:
    from django_tenants.utils import get_tenant_model, tenant_context

    from apps.accounts.models import Role, User
    from apps.accounts.services import Actor
    from apps.crm.services.contacts import contact_create

    api = api_for(alpha.host, alpha.api_key)
    source = visitor["contact"]
    url = f"/api/v1/contacts/{source.pk}/merge/"
    for body, status, code in (
        ({}, 400, "invalid"),
        ({"into": "dana"}, 400, "invalid"),
        ({"into": source.pk}, 400, "invalid"),
        ({"into": 2**40}, 404, "not_found"),
    ):
        response = _keep_schema(api.post, url, body, format="json")
        assert response.status_code == status and response.json()["error"]["code"] == code, (body, response.content)

    # Another workspace's contacts: neither the source nor the target can be named.
    alpha_ids = set(Contact.objects.values_list("pk", flat=True))
    beta_tenant = get_tenant_model().objects.get(schema_name=beta.schema)
    beta_owner = User.objects.get(email=beta.owner_email)
    with tenant_context(beta_tenant):
        actor = Actor(tenant=beta_tenant, role=Role.OWNER, user=beta_owner, label=beta_owner.email)
        foreign = contact_create(actor=actor, name="canary-beta merge")
        while foreign.pk in alpha_ids:
            foreign = contact_create(actor=actor, name="canary-beta merge")
    assert _keep_schema(api.post, url, {"into": foreign.pk}, format="json").status_code == 404
    response = _keep_schema(api.post, f"/api/v1/contacts/{foreign.pk}/merge/", {"into": known.pk}, format="json")
    assert response.status_code == 404
    with tenant_context(beta_tenant):
        assert Contact.objects.filter(pk=foreign.pk, name="canary-beta merge").exists()

    # Two different signed-in users are never one contact.
    one = Contact.objects.create(verified=True, external_id="u-1")
    two = Contact.objects.create(verified=True, external_id="u-2")
    clash = _keep_schema(api.post, f"/api/v1/contacts/{one.pk}/merge/", {"into": two.pk}, format="json")
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "conflict"
    assert Contact.objects.filter(pk__in=[one.pk, two.pk, source.pk]).count() == 3


def test_merging_needs_the_crm_write_scope_or_an_agent_role(
    alpha: Any,
    api_for: Any,
    make_member: Any,
    jwt_for: Any,
    owner: Any,
    visitor: dict[str, Any],
    known: Contact,
) -> None:
    from apps.accounts.services import api_key_create

    source = visitor["contact"]
    url = f"/api/v1/contacts/{source.pk}/merge/"
    viewer, _ = make_member(alpha, "viewer")
    as_viewer = api_for(alpha.host, _keep_schema(jwt_for, alpha, viewer.email))
    assert _keep_schema(as_viewer.post, url, {"into": known.pk}, format="json").status_code == 403
    _key, raw = api_key_create(actor=owner, name="reader", scopes=["crm:read"])
    reader = api_for(alpha.host, raw)
    assert _keep_schema(reader.post, url, {"into": known.pk}, format="json").status_code == 403
    assert Contact.objects.filter(pk=source.pk).exists()
    agent, _ = make_member(alpha, "agent")
    as_agent = api_for(alpha.host, _keep_schema(jwt_for, alpha, agent.email))
    assert _keep_schema(as_agent.post, url, {"into": known.pk}, format="json").status_code == 200


def test_staff_mark_a_contact_verified(alpha: Any, api_for: Any, visitor: dict[str, Any]) -> None:
    """A visitor staff have confirmed (they called back) and who has no other record: the
    contact itself becomes verified, its identity facts trusted."""
    from apps.audit.models import AuditEvent

    api = api_for(alpha.host, alpha.api_key)
    source = visitor["contact"]
    response = _keep_schema(api.patch, f"/api/v1/contacts/{source.pk}/", {"verified": True}, format="json")
    assert response.status_code == 200 and response.json()["verified"] is True
    sources = {f["key"]: f["source"] for f in response.json()["memory"]}
    assert sources == {"name": "verified", "email": "verified", "phone": "verified"}
    assert AuditEvent.objects.filter(action="crm.contact_verified", target_id=str(source.pk)).exists()
