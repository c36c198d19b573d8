"""Who a widget visitor is: claims, signed identities, and the session a `hello` opens.
Decision: docs/adr/0011-visitor-identity.md; protocol: docs/subsystems/realtime.md.

- A **claim** is what the visitor says about themselves (the pre-chat form's `contact`,
  what they write). It is kept on the conversation (`Conversation.claims`) and held by an
  unverified contact of this visitor's own; the AI reads it as a claim. It never selects an
  existing contact, so it can never unlock another person's memory.
- A **signed identity** comes from the host site, which knows its signed-in user:
  `{"user_id"?, "email"?, "name"?, "hash"}` with `hash` = hex HMAC-SHA256 of the user id
  (or, without one, of the email) under the inbox's identity secret. A valid one attaches
  the conversation to that user's contact (found by external id, or by an email staff or a
  verification vouch for; created verified on first sight), which unlocks its memory. An
  invalid one is refused with an `identity_invalid` error frame and the chat goes on as
  anonymous, unless the inbox requires a verified identity.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from apps.tenants.db import connection
from syntera.crypto import DecryptionError, decrypt, encrypt
from syntera.errors import ApplicationError

from . import abuse
from .models import Conversation, Inbox

CLAIM_KEYS = ("name", "email", "phone")
MAX_NAME = 200
MAX_EMAIL = 254
MAX_USER_ID = 128
PHONE = re.compile(r"^\+?[0-9 ().-]{5,30}$")
HASH = re.compile(r"^[0-9a-fA-F]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def new_identity_secret() -> str:
    return "is_" + secrets.token_urlsafe(32)


def new_encrypted_identity_secret() -> str:
    return encrypt(new_identity_secret())


def identity_secret(inbox: Inbox) -> str:
    """The inbox's secret in clear, or "" when it cannot be read (encryption keys changed:
    rotating it makes a new one)."""
    if not inbox.identity_secret_encrypted:
        return ""
    try:
        return decrypt(inbox.identity_secret_encrypted)
    except DecryptionError:
        return ""


def identity_hash(secret: str, value: str) -> str:
    """What the host site's server computes for a signed-in user."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


def inbox_rotate_identity_secret(*, actor: Actor, inbox: Inbox) -> Inbox:
    """A new identity secret: hashes made with the old one stop verifying at once."""
    if not actor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins manage inboxes.", code="permission_denied", status_code=403)
    actor.require_scope("inboxes:write")
    inbox.identity_secret_encrypted = new_encrypted_identity_secret()
    inbox.save(update_fields=["identity_secret_encrypted"])
    audit_action(actor, "conversations.inbox_identity_secret_rotated", inbox, {})
    return inbox


# --- what a visitor sends ----------------------------------------------------------------------


def _text(value: Any, limit: int) -> str:
    return " ".join(_CONTROL.sub(" ", value).split())[:limit] if isinstance(value, str) else ""


def clean_claims(raw: Any) -> dict[str, str]:
    """The usable claims of a `contact` object: a name, a well-formed email (lower case), a
    phone number. Anything else is dropped, never an error (it was only a claim)."""
    if not isinstance(raw, dict):
        return {}
    claims: dict[str, str] = {}
    name = _text(raw.get("name"), MAX_NAME)
    if name:
        claims["name"] = name
    email = _text(raw.get("email"), MAX_EMAIL).lower()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            email = ""
    if email:
        claims["email"] = email
    phone = _text(raw.get("phone"), 40)
    if phone and PHONE.match(phone):
        claims["phone"] = phone
    return claims


@dataclass(frozen=True)
class SignedIdentity:
    user_id: str
    email: str  # lower case
    name: str


def _invalid(detail: str) -> ApplicationError:
    return ApplicationError(detail + " The chat goes on without it.", code="identity_invalid", status_code=400)


def verify_identity(*, inbox: Inbox, raw: Any) -> SignedIdentity:
    """The identity `raw` stands for if its hash verifies under this inbox's secret; else
    ApplicationError `identity_invalid` saying what is wrong (never which value would pass)."""
    if not isinstance(raw, dict):
        raise _invalid("identity is an object {user_id?, email?, name?, hash}.")
    user_id, email, name, given = (raw.get(k) for k in ("user_id", "email", "name", "hash"))
    for label, value in (("user_id", user_id), ("email", email), ("name", name)):
        if value is not None and not isinstance(value, str):
            raise _invalid(f"identity.{label} is a string.")
    user_id, email, name = user_id or "", email or "", name or ""
    if not user_id and not email:
        raise _invalid("identity needs a user_id or an email.")
    if len(user_id) > MAX_USER_ID or _CONTROL.search(user_id) or (user_id and not user_id.strip()):
        raise _invalid(f"identity.user_id is at most {MAX_USER_ID} printable characters.")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise _invalid("identity.email is not an email address.") from None
        if len(email) > MAX_EMAIL:
            raise _invalid("identity.email is too long.")
    if len(name) > MAX_NAME:
        raise _invalid(f"identity.name is at most {MAX_NAME} characters.")
    if not isinstance(given, str) or not HASH.match(given):
        raise _invalid("identity.hash is the hex HMAC-SHA256 of the user_id (or email) with the inbox's secret.")
    secret = identity_secret(inbox)
    expected = identity_hash(secret, user_id or email) if secret else ""
    if not secret or not hmac.compare_digest(expected, given.lower()):
        raise _invalid("The identity's hash does not match this inbox's identity secret.")
    return SignedIdentity(user_id=user_id, email=email.lower(), name=_text(name, MAX_NAME))


def identity_state(conversation: Conversation) -> str:
    """verified (a contact whose identity is established), unverified (claims only) or
    anonymous: what the widget's `session` frame and the API say."""
    contact = conversation.contact if conversation.contact_id else None
    if contact is not None and contact.verified:
        return "verified"
    if contact is not None or conversation.claims:
        return "unverified"
    return "anonymous"


# --- the session a hello opens --------------------------------------------------------------


@dataclass
class Session:
    conversation: Conversation | None  # None: refused (the errors say why)
    token: str
    errors: list[tuple[str, str]]  # (code, detail): error frames to send before `session`
    identity: str  # identity_state of the conversation


IDENTITY_REQUIRED = (
    "This chat is for signed-in users of this site; sign in and reload the page. (The inbox "
    "requires an identity signed by the site.)"
)


@transaction.atomic
def session_open(*, inbox: Inbox, token: str, ip: str | None, claims: dict[str, str], identity: Any) -> Session:
    """What a widget `hello` does: verify the identity (when one is sent), resume the
    token's conversation or start one, attach the signed-in user's contact, keep the
    pre-chat claims. A valid identity never resumes another signed-in user's conversation
    (a shared browser): it starts its own."""
    from . import services

    inbox = Inbox.objects.get(pk=inbox.pk)  # the current secret and settings
    errors: list[tuple[str, str]] = []
    signed = None
    if identity is not None:
        try:
            signed = verify_identity(inbox=inbox, raw=identity)
        except ApplicationError as exc:
            errors.append((exc.code, exc.detail))
    if signed is None and (inbox.settings or {}).get("identity_required"):
        errors.append(("identity_required", IDENTITY_REQUIRED))
        return Session(None, "", errors, "anonymous")
    contact = None
    if signed is not None:
        from apps.crm.services import contact_for_signed_identity

        contact = contact_for_signed_identity(
            tenant=connection.tenant, user_id=signed.user_id, email=signed.email, name=signed.name
        )
    conversation = services.visitor_conversation(inbox=inbox, token=token) if token else None
    if conversation is not None and contact is not None and conversation.contact_id not in (None, contact.pk):
        current = conversation.contact
        if current is not None and current.verified:
            conversation = None
    new = conversation is None
    if conversation is None:
        # A new conversation counts against the address's and the inbox's limits (abuse.py);
        # a visitor coming back with their token does not.
        if not abuse.session_allowed(str(connection.schema_name), inbox.pk, ip or "unknown"):
            errors.append(("rate_limited", "Too many new conversations from here; try again later."))
            return Session(None, "", errors, "anonymous")
        conversation, token = services.conversation_start(inbox=inbox, ip=ip)
    if contact is not None:
        conversation = services.conversation_verify(conversation_id=conversation.pk, contact=contact)
    if claims and (new or conversation.last_seq == 0):
        # The pre-chat form of a conversation the visitor opened but has not written in yet.
        conversation = services.conversation_claim(conversation_id=conversation.pk, fields=claims)
    conversation = Conversation.objects.select_related("contact").get(pk=conversation.pk)
    return Session(conversation, token, errors, identity_state(conversation))
