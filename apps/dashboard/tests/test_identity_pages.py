"""Visitor identity in the dashboard, driven the way staff use it (docs/adr/0011-visitor-identity.md):
the inbox page's identity secret (admins only, rotatable, audited) and the integration it
documents; the inbox API's view of the same secret; and verification by staff, merging a
visitor's unverified contact into the known one from the conversation page and the contact
page, or marking a new person verified. Roles, bad input and another workspace's ids too."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from django_tenants.utils import schema_context

from apps.accounts.models import Role, User
from apps.accounts.services import Actor, api_key_create
from apps.audit.models import AuditEvent
from apps.conversations import services as conversations
from apps.conversations.identity import identity_secret
from apps.conversations.models import Conversation, Inbox
from apps.crm import services as crm
from apps.crm.models import Contact
from apps.tenants.models import Tenant

CANARY_EMAIL = "contact@alpha.example"


def _actor(info: Any) -> Actor:
    tenant = Tenant.objects.get(schema_name=info.schema)
    user = User.objects.get(email=info.owner_email)
    return Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email)


@pytest.fixture
def owner_client(alpha: Any, login: Any) -> Any:
    return login(alpha, alpha.owner_email)


@pytest.fixture
def web_inbox(alpha: Any) -> Inbox:
    with schema_context(alpha.schema):
        return conversations.inbox_create(actor=_actor(alpha), name="Shop site")


def _secret(info: Any, inbox_id: int) -> str:
    with schema_context(info.schema):
        return identity_secret(Inbox.objects.get(pk=inbox_id))


def _claimed(info: Any, inbox: Inbox, **claims: str) -> tuple[int, int]:
    """A widget conversation whose visitor claimed these details: (conversation, their contact)."""
    with schema_context(info.schema):
        conversation, _ = conversations.conversation_start(inbox=inbox)
        conversation = conversations.conversation_claim(conversation_id=conversation.pk, fields=claims)
        assert conversation.contact_id is not None
        return int(conversation.pk), int(conversation.contact_id)


def test_admins_see_and_rotate_the_identity_secret_others_do_not(
    alpha: Any, owner_client: Any, web_inbox: Inbox, login: Any, make_member: Any, api_for: Any
) -> None:
    secret = _secret(alpha, web_inbox.pk)
    assert secret.startswith("is_") and len(secret) > 40
    page = owner_client.get(f"/dashboard/inboxes/{web_inbox.pk}/").content.decode()
    assert f'<code id="identity-secret">{secret}</code>' in page
    assert "data-user-hash=&quot;{{ syntera_hash }}&quot;" in page  # the snippet for signed-in users
    assert "hmac.new(IDENTITY_SECRET.encode()" in page and "Syntera.logout()" in page
    for role in ("agent", "viewer"):
        other = login(alpha, make_member(alpha, role)[0].email)
        seen = other.get(f"/dashboard/inboxes/{web_inbox.pk}/").content.decode()
        assert secret not in seen and "Only owners and admins see the identity secret." in seen
        url = f"/dashboard/inboxes/{web_inbox.pk}/rotate-identity-secret/"
        assert other.post(url, {"confirm": "1"}).status_code == 403
    assert _secret(alpha, web_inbox.pk) == secret
    with schema_context(alpha.schema):
        encrypted = Inbox.objects.get(pk=web_inbox.pk).identity_secret_encrypted
    admin_page = owner_client.get(f"/admin/conversations/inbox/{web_inbox.pk}/change/")
    assert admin_page.status_code == 200 and web_inbox.widget_key in admin_page.content.decode()
    assert secret not in admin_page.content.decode() and encrypted not in admin_page.content.decode()

    # The API shows it to those who may manage inboxes only.
    assert (
        api_for(alpha.host, alpha.api_key).get(f"/api/v1/inboxes/{web_inbox.pk}/").json()["identity_secret"] == secret
    )
    with schema_context(alpha.schema):
        _key, reader = api_key_create(actor=_actor(alpha), name="reader", scopes=["inboxes:read"])
    read_only = api_for(alpha.host, reader)
    assert read_only.get(f"/api/v1/inboxes/{web_inbox.pk}/").json()["identity_secret"] is None
    listed = read_only.get("/api/v1/inboxes/").json()["results"]
    assert all(i["identity_secret"] is None for i in listed)
    assert read_only.post(f"/api/v1/inboxes/{web_inbox.pk}/rotate-identity-secret").status_code == 403

    # Rotating needs the admin's confirmation, is audited, and old signatures stop verifying.
    url = f"/dashboard/inboxes/{web_inbox.pk}/rotate-identity-secret/"
    assert owner_client.post(url, {}).status_code == 400
    assert _secret(alpha, web_inbox.pk) == secret
    assert owner_client.post(url, {"confirm": "1"}).status_code == 302
    rotated = _secret(alpha, web_inbox.pk)
    assert rotated != secret and rotated in owner_client.get(f"/dashboard/inboxes/{web_inbox.pk}/").content.decode()
    by_api = api_for(alpha.host, alpha.api_key).post(f"/api/v1/inboxes/{web_inbox.pk}/rotate-identity-secret")
    assert by_api.status_code == 200 and by_api.json()["identity_secret"] not in (secret, rotated)
    with schema_context(alpha.schema):
        events = AuditEvent.objects.filter(action="conversations.inbox_identity_secret_rotated")
        assert events.filter(target_id=str(web_inbox.pk)).count() == 2
        from apps.conversations.identity import verify_identity
        from syntera.errors import ApplicationError

        stale = {"user_id": "u-1", "hash": hmac.new(secret.encode(), b"u-1", hashlib.sha256).hexdigest()}
        with pytest.raises(ApplicationError):
            verify_identity(inbox=Inbox.objects.get(pk=web_inbox.pk), raw=stale)


def test_an_admin_requires_a_signed_identity_from_the_settings_form(
    alpha: Any, owner_client: Any, web_inbox: Inbox
) -> None:
    form = {
        "name": "Shop site",
        "title": "Chat",
        "color": "#112233",
        "text_color": "#ffffff",
        "position": "right",
        "identity_required": "on",
    }
    assert owner_client.post(f"/dashboard/inboxes/{web_inbox.pk}/", form).status_code == 302
    with schema_context(alpha.schema):
        assert Inbox.objects.get(pk=web_inbox.pk).settings["identity_required"] is True
    page = owner_client.get(f"/dashboard/inboxes/{web_inbox.pk}/").content.decode()
    assert "this inbox requires it: without a valid identity the chat does not open" in page
    del form["identity_required"]
    assert owner_client.post(f"/dashboard/inboxes/{web_inbox.pk}/", form).status_code == 302
    with schema_context(alpha.schema):
        assert Inbox.objects.get(pk=web_inbox.pk).settings["identity_required"] is False


def test_staff_merge_a_visitor_into_the_known_contact_from_the_conversation_page(
    alpha: Any, owner_client: Any, web_inbox: Inbox, login: Any, make_member: Any
) -> None:
    conversation_id, contact_id = _claimed(alpha, web_inbox, name="Mallory", email=CANARY_EMAIL)
    with schema_context(alpha.schema):
        canary = Contact.objects.get(email=CANARY_EMAIL, verified=True)
    page = owner_client.get(f"/dashboard/inbox/{conversation_id}/").content.decode()
    assert 'id="conv-identity">unverified<' in page and 'id="conversation-identity"' in page
    assert f'data-contact-id="{canary.pk}"' in page  # suggested: same email
    assert "canary-alpha memory" not in page
    url = f"/dashboard/inbox/{conversation_id}/action/"
    viewer = login(alpha, make_member(alpha, "viewer")[0].email)
    assert viewer.post(url, {"action": "merge", "into": str(canary.pk), "confirm": "on"}).status_code == 403
    for bad, error in (
        ({"into": str(canary.pk)}, "Check who the visitor is first"),
        ({"into": "nobody@nowhere.example", "confirm": "on"}, "No contact has this number or email address."),
        ({"into": str(contact_id), "confirm": "on"}, "That is this contact"),
        ({"into": "x" * 300, "confirm": "on"}, "at most 254 characters"),
    ):
        refused = owner_client.post(url, {"action": "merge", **bad})
        assert refused.status_code == 400 and error in refused.content.decode(), bad
    with schema_context(alpha.schema):
        assert Conversation.objects.get(pk=conversation_id).contact_id == contact_id
    merged = owner_client.post(url, {"action": "merge", "into": CANARY_EMAIL, "confirm": "on"})
    assert merged.status_code == 302
    with schema_context(alpha.schema):
        assert Conversation.objects.get(pk=conversation_id).contact_id == canary.pk
        assert not Contact.objects.filter(pk=contact_id).exists()
        event = AuditEvent.objects.get(action="crm.contact_merged", data__source_id=contact_id)
        assert event.actor_label == alpha.owner_email
    page = owner_client.get(f"/dashboard/inbox/{conversation_id}/").content.decode()
    assert 'id="conv-identity">verified<' in page and 'id="conversation-identity"' not in page


def test_staff_merge_or_verify_from_the_contact_page(
    alpha: Any, beta: Any, owner_client: Any, web_inbox: Inbox
) -> None:
    _conversation_id, source_id = _claimed(alpha, web_inbox, name="Dana D.", phone="+49 30 1234567")
    with schema_context(alpha.schema):
        known = crm.contact_create(actor=_actor(alpha), name="Dana Diaz", phone="+49 30 1234567")
    page = owner_client.get(f"/dashboard/contacts/{source_id}/").content.decode()
    assert 'id="contact-verified">unverified<' in page and f'data-contact-id="{known.pk}"' in page
    with schema_context(beta.schema):
        beta_actor = _actor(beta)
        foreign = crm.contact_create(actor=beta_actor, name="canary-beta stranger")
        with schema_context(alpha.schema):
            alpha_ids = set(Contact.objects.values_list("pk", flat=True))
        while foreign.pk in alpha_ids:
            foreign = crm.contact_create(actor=beta_actor, name="canary-beta stranger")
    url = f"/dashboard/contacts/{source_id}/"
    refused = owner_client.post(url, {"form": "merge", "into": str(foreign.pk), "confirm": "on"})
    assert refused.status_code == 400 and "No contact has this number" in refused.content.decode()
    assert (
        owner_client.post(f"/dashboard/contacts/{foreign.pk}/", {"form": "merge", "into": str(known.pk)}).status_code
        == 404
    )
    merged = owner_client.post(url, {"form": "merge", "into": str(known.pk), "confirm": "on"})
    assert merged.status_code == 302 and merged["Location"] == f"/dashboard/contacts/{known.pk}/"
    assert owner_client.get(url).status_code == 404
    with schema_context(beta.schema):
        assert Contact.objects.filter(pk=foreign.pk, name="canary-beta stranger").exists()

    # A new person staff have checked: marked verified, their facts now vouched for.
    _conversation_id, newcomer = _claimed(alpha, web_inbox, name="Ola", email="ola@example.no")
    assert owner_client.post(f"/dashboard/contacts/{newcomer}/", {"form": "verify"}).status_code == 302
    with schema_context(alpha.schema):
        contact = Contact.objects.get(pk=newcomer)
        assert contact.verified and {f["source"] for f in contact.memory} == {"verified"}
    page = owner_client.get(f"/dashboard/contacts/{newcomer}/").content.decode()
    assert 'id="contact-verified">verified<' in page and 'id="verification"' not in page
