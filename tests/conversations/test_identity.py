"""Who the visitor is (docs/adr/0011-visitor-identity.md), through the widget socket in-process.

A visitor's own words about themselves (the `contact` of `hello`, what they write) are claims:
kept on the conversation, held by an unverified contact of their own, shown to the AI as
claims and never matched to an existing contact. Only a signed identity from the host site
(`hello`'s `identity`, an HMAC with the inbox's secret) attaches the conversation to a known
contact and unlocks its memory.

Every test here uses the seeded canary contact (`contact@alpha.example`, memory
"canary-alpha memory", a staff-entered name) as the contact a visitor tries to become.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from apps.conversations import services
from apps.conversations.models import Conversation
from apps.crm.models import Contact, Lead
from tests.conversations.test_consumers import _same_connection, connect, frames, hello, run  # noqa: F401  (autouse fixture)
from tests.support import keep_schema as _keep_schema

CANARY_EMAIL = "contact@alpha.example"
CANARY_WORDS = ("canary-alpha memory", "canary-alpha contact", "canary-alpha")


def sign(secret: str, value: str) -> str:
    """What the host site's server computes: hex HMAC-SHA256 of the user id (or email)."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


def _canary() -> Contact:
    return Contact.objects.get(email=CANARY_EMAIL)


def _snapshot(contact: Contact) -> tuple[Any, ...]:
    contact.refresh_from_db()
    return (contact.name, contact.email, contact.phone, contact.company, contact.memory, contact.attributes)


def _no_canary(text: str) -> bool:
    return not any(word in text for word in CANARY_WORDS)


def _prompt_text(requests: list[Any]) -> str:
    return json.dumps(
        [[m.get("content") for m in r.messages] + [r.contact_facts, getattr(r, "claims", {})] for r in requests]
    )


def _secret(api: Any, inbox_id: int) -> str:
    body = _keep_schema(api.get, f"/api/v1/inboxes/{inbox_id}/").json()
    secret = body["identity_secret"]
    assert isinstance(secret, str) and len(secret) >= 32, body
    return secret


def _reply(conversation_id: int, seq: int) -> str:
    """Run the AI's turn for the visitor message `seq` the way the worker does; its text."""
    from django.db import connection

    from apps.conversations.stores import get_store

    conversation = Conversation.objects.get(pk=conversation_id)
    outcome = services.ai_reply(conversation_id=conversation_id, trigger_seq=seq, epoch=conversation.epoch)
    assert outcome.startswith("replied"), outcome
    stored = get_store().after(schema=connection.schema_name, conversation_id=conversation_id, after_seq=seq)
    return next(m.text for m in stored if m.role == "ai")


async def _say(comm: Any, client_id: str, text: str) -> int:
    await comm.send_to(text_data=json.dumps({"type": "message", "client_id": client_id, "text": text}))
    ack, _message = await frames(comm, 2)
    assert ack["type"] == "ack", ack
    return int(ack["seq"])


# --- claims ----------------------------------------------------------------------------------


def test_a_claimed_email_in_hello_never_unlocks_the_existing_contact(
    alpha: Any, inbox: Any, settings: Any, prompts: list[Any]
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    canary = _canary()
    before = _snapshot(canary)
    got: dict[str, Any] = {}

    async def scenario() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        claimed = {"name": "Mallory", "email": "Contact@Alpha.example", "phone": "+1 555 0100"}
        session = await hello(comm, contact=claimed)
        got["id"] = int(session["conversation_id"])
        got["identity"] = session.get("identity")
        got["seq"] = await _say(comm, "c1", "Hello")
        await comm.disconnect()

    run(scenario)
    assert _snapshot(canary) == before  # name, phone, memory: untouched
    conversation = Conversation.objects.select_related("contact").get(pk=got["id"])
    assert conversation.contact_id != canary.pk
    assert got["identity"] == "unverified"
    assert conversation.claims == {"name": "Mallory", "email": "contact@alpha.example", "phone": "+1 555 0100"}
    own = conversation.contact
    assert own is not None and own.verified is False
    assert {f["key"]: f["value"] for f in own.memory} == {
        "name": "Mallory",
        "email": "contact@alpha.example",
        "phone": "+1 555 0100",
    }
    # The AI greets the visitor by the name they gave, and knows nothing of the canary.
    reply = _reply(got["id"], got["seq"])
    assert _no_canary(reply) and "Mallory" in reply, reply
    text = _prompt_text(prompts)
    assert _no_canary(text), text
    system = prompts[-1].messages[0]["content"]
    assert "unverified" in system.lower() and "contact@alpha.example" in system
    assert prompts[-1].contact_facts == {}
    assert _snapshot(canary) == before


def test_an_email_in_the_visitors_text_never_unlocks_the_existing_contact(
    alpha: Any, inbox: Any, owner: Any, settings: Any, prompts: list[Any]
) -> None:
    """While a person has the conversation, what the visitor says about themselves still
    reaches their own contact, as claims; after the hand-back the AI knows only those."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    canary = _canary()
    before = _snapshot(canary)
    got: dict[str, Any] = {}

    async def opened() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        got["session"] = await hello(comm)
        await comm.disconnect()

    run(opened)
    conversation = Conversation.objects.get(pk=got["session"]["conversation_id"])
    services.conversation_take_over(actor=owner, conversation=conversation)

    async def claim() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key, token=got["session"]["token"])
        await hello(comm)
        await _say(comm, "t1", "Hi, I'm Mallory, my email is contact@alpha.example and my phone is +1 555 0100")
        await comm.disconnect()

    run(claim)
    conversation.refresh_from_db()
    assert conversation.contact_id != canary.pk and _snapshot(canary) == before
    assert conversation.claims["email"] == "contact@alpha.example"
    services.conversation_hand_back(actor=owner, conversation=conversation)

    async def greet() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key, token=got["session"]["token"])
        await hello(comm)
        got["seq"] = await _say(comm, "t2", "Hello")
        await comm.disconnect()

    run(greet)
    reply = _reply(conversation.pk, got["seq"])
    assert _no_canary(reply) and _no_canary(_prompt_text(prompts)), reply
    assert _snapshot(canary) == before


def _visit(alpha: Any, inbox: Any, got: dict[str, Any], *messages: tuple[str, str], **hello_extra: Any) -> list[int]:
    """One widget connection: hello (resuming `got["token"]` when set), then each message;
    the acknowledged seqs. Keeps the session in `got`."""
    seqs: list[int] = []

    async def scenario() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key, token=got.get("token", ""))
        session = await hello(comm, **hello_extra)
        got.update(session=session, token=session["token"], id=int(session["conversation_id"]))
        for client_id, text in messages:
            seqs.append(await _say(comm, client_id, text))
        await comm.disconnect()

    run(scenario)
    return seqs


def test_the_automatic_lead_capture_never_files_the_lead_under_the_existing_contact(
    alpha: Any, inbox: Any, settings: Any, prompts: list[Any]
) -> None:
    """The AI records a visitor who leaves an address as a lead (capture_lead is enabled): the
    lead goes to an unverified contact of this visitor, never to the contact with that email."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    canary = _canary()
    before = _snapshot(canary)
    canary_leads = list(canary.leads.values_list("pk", flat=True))
    got: dict[str, Any] = {}
    (question,) = _visit(alpha, inbox, got, ("l1", "How long does standard shipping take?"))
    _reply(got["id"], question)
    (address,) = _visit(alpha, inbox, got, ("l2", "Please email me at contact@alpha.example"))
    _reply(got["id"], address)
    lead = Lead.objects.select_related("contact").get(contact__conversations=got["id"])
    assert lead.contact_id != canary.pk and lead.contact.verified is False
    assert lead.need == "How long does standard shipping take?"
    assert list(canary.leads.values_list("pk", flat=True)) == canary_leads
    (greeting,) = _visit(alpha, inbox, got, ("l3", "Hello"))
    reply = _reply(got["id"], greeting)
    assert _no_canary(reply) and _no_canary(_prompt_text(prompts)), reply
    assert _snapshot(canary) == before


# --- signed identities -----------------------------------------------------------------------


@pytest.fixture
def api(alpha: Any, api_for: Any) -> Any:
    return api_for(alpha.host, alpha.api_key)


def test_a_signed_email_attaches_the_known_contact_and_unlocks_its_memory(
    alpha: Any, inbox: Any, api: Any, settings: Any, prompts: list[Any]
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    canary = _canary()
    secret = _secret(api, inbox.pk)
    got: dict[str, Any] = {}
    identity = {"email": CANARY_EMAIL, "hash": sign(secret, CANARY_EMAIL)}
    (seq,) = _visit(alpha, inbox, got, ("s1", "Hello"), identity=identity)
    assert got["session"]["identity"] == "verified"
    conversation = Conversation.objects.get(pk=got["id"])
    assert conversation.contact_id == canary.pk
    _reply(got["id"], seq)
    assert "canary-alpha memory" in _prompt_text(prompts)
    assert prompts[-1].contact_facts["note"] == "canary-alpha memory"


def test_a_signed_user_id_finds_or_creates_one_verified_contact(
    alpha: Any, inbox: Any, api: Any, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    secret = _secret(api, inbox.pk)
    identity = {"user_id": "u-42", "email": "dana@shop.example", "name": "Dana", "hash": sign(secret, "u-42")}
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    _visit(alpha, inbox, first, identity=identity)
    _visit(alpha, inbox, second, identity=identity)
    assert first["id"] != second["id"]
    one, two = Conversation.objects.select_related("contact").filter(pk__in=[first["id"], second["id"]])
    assert one.contact_id == two.contact_id and one.contact is not None
    contact = one.contact
    assert (contact.verified, contact.external_id, contact.name, contact.email) == (
        True,
        "u-42",
        "Dana",
        "dana@shop.example",
    )
    assert Contact.objects.filter(external_id="u-42").count() == 1
    # The email beside a signed user id is the user's own profile; it never makes this
    # contact the one a signed *email* finds.
    email_only = {"email": "dana@shop.example", "hash": sign(secret, "dana@shop.example")}
    third: dict[str, Any] = {}
    _visit(alpha, inbox, third, identity=email_only)
    assert Conversation.objects.get(pk=third["id"]).contact_id != contact.pk


def _flip_last(digest: str) -> str:
    return digest[:-1] + ("0" if digest[-1] != "0" else "1")


def _bad_identity(alpha: Any, inbox: Any, identity: Any, code: str = "identity_invalid") -> dict[str, Any]:
    """hello with a bad identity: an error frame with `code`, then a session that goes on
    without it."""
    got: dict[str, Any] = {}

    async def scenario() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        await comm.send_to(text_data=json.dumps({"type": "hello", "identity": identity}))
        error, session = await frames(comm, 2)
        assert (error["type"], error["code"]) == ("error", code), error
        assert session["type"] == "session" and session["identity"] == "anonymous", session
        got["id"] = int(session["conversation_id"])
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "b1", "text": "still here"}))
        assert (await frames(comm, 2))[0]["type"] == "ack"
        await comm.disconnect()

    run(scenario)
    return got


def test_a_wrong_or_foreign_signature_is_refused_and_the_chat_goes_on_anonymous(
    alpha: Any, beta: Any, inbox: Any, owner: Any, api: Any, api_for: Any, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    canary = _canary()
    before = _snapshot(canary)
    secret = _secret(api, inbox.pk)
    other_inbox = services.inbox_create(actor=owner, name="Other site", allowed_origins=["https://shop.example"])
    other_secret = _secret(api, other_inbox.pk)
    beta_api = api_for(beta.host, beta.api_key)
    beta_inbox = _keep_schema(beta_api.get, "/api/v1/inboxes/").json()["results"][0]["id"]
    beta_secret = _secret(beta_api, beta_inbox)
    assert len({secret, other_secret, beta_secret}) == 3
    for wrong in (
        sign(secret, "someone-else@alpha.example"),  # signs another value
        sign(other_secret, CANARY_EMAIL),  # another inbox's secret
        sign(beta_secret, CANARY_EMAIL),  # another workspace's secret
        _flip_last(sign(secret, CANARY_EMAIL)).upper(),
        "0" * 64,
    ):
        got = _bad_identity(alpha, inbox, {"email": CANARY_EMAIL, "hash": wrong})
        assert Conversation.objects.get(pk=got["id"]).contact_id is None
    for malformed in (
        "contact@alpha.example",
        {"email": CANARY_EMAIL},
        {"hash": sign(secret, "")},
        {"email": "not an address", "hash": sign(secret, "not an address")},
        {"user_id": "u" * 300, "hash": sign(secret, "u" * 300)},
        {"user_id": 42, "hash": sign(secret, "42")},
        {"email": CANARY_EMAIL, "hash": sign(secret, CANARY_EMAIL), "name": {"$gt": ""}},
    ):
        got = _bad_identity(alpha, inbox, malformed)
        assert Conversation.objects.get(pk=got["id"]).contact_id is None
    assert _snapshot(canary) == before


def test_an_inbox_that_requires_a_verified_identity_opens_no_session_without_one(
    alpha: Any, inbox: Any, api: Any, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    patched = _keep_schema(api.patch, f"/api/v1/inboxes/{inbox.pk}/", {"identity_required": True}, format="json")
    assert patched.status_code == 200 and patched.json()["settings"]["identity_required"] is True
    secret = _secret(api, inbox.pk)
    count = Conversation.objects.count()

    async def scenario() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        await comm.send_to(text_data=json.dumps({"type": "hello", "contact": {"email": CANARY_EMAIL}}))
        (refused,) = await frames(comm, 1)
        assert (refused["type"], refused["code"]) == ("error", "identity_required"), refused
        await comm.send_to(text_data=json.dumps({"type": "hello", "identity": {"email": "x@y.example", "hash": "0"}}))
        invalid, required = await frames(comm, 2)
        assert (invalid["code"], required["code"]) == ("identity_invalid", "identity_required")
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "r1", "text": "let me in"}))
        assert (await frames(comm, 1))[0]["code"] == "no_session"
        identity = {"user_id": "u-7", "hash": sign(secret, "u-7")}
        await comm.send_to(text_data=json.dumps({"type": "hello", "identity": identity}))
        (session,) = await frames(comm, 1)
        assert session["type"] == "session" and session["identity"] == "verified"
        await comm.disconnect()

    run(scenario)
    assert Conversation.objects.count() == count + 1


def test_a_token_does_not_carry_one_signed_in_users_conversation_to_another(
    alpha: Any, inbox: Any, api: Any, settings: Any
) -> None:
    """A shared browser: user A's conversation token, then user B signs in on the host site.
    B gets a conversation of their own; A's stays A's."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    secret = _secret(api, inbox.pk)
    got: dict[str, Any] = {}
    _visit(alpha, inbox, got, ("a1", "my order 123"), identity={"user_id": "a", "hash": sign(secret, "a")})
    first = got["id"]
    _visit(alpha, inbox, got, identity={"user_id": "b", "hash": sign(secret, "b")})
    assert got["id"] != first and got["session"]["last_seq"] == 0
    # The same user again (or a page without the identity) resumes as before.
    _visit(alpha, inbox, got, identity={"user_id": "b", "hash": sign(secret, "b")})
    second = got["id"]
    _visit(alpha, inbox, got)
    assert got["id"] == second


def test_signing_in_mid_conversation_brings_the_visitors_claims_along(
    alpha: Any, inbox: Any, api: Any, settings: Any
) -> None:
    """A visitor who filled in the pre-chat form and then signs in on the host site: the
    conversation moves to their verified contact, and the unverified one (with its lead)
    is folded into it; staff-entered facts of the verified contact win."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    canary = _canary()
    secret = _secret(api, inbox.pk)
    got: dict[str, Any] = {}
    _visit(alpha, inbox, got, contact={"name": "Not The Canary", "phone": "+1 555 0199"})
    unverified = Conversation.objects.get(pk=got["id"]).contact
    assert unverified is not None and not unverified.verified
    _visit(alpha, inbox, got, identity={"email": CANARY_EMAIL, "hash": sign(secret, CANARY_EMAIL)})
    conversation = Conversation.objects.get(pk=got["id"])
    assert conversation.contact_id == canary.pk and got["session"]["identity"] == "verified"
    assert not Contact.objects.filter(pk=unverified.pk).exists()
    canary.refresh_from_db()
    assert canary.name == "canary-alpha contact" and canary.phone == "+1 555 0199"


# --- integrator paths -------------------------------------------------------------------------


def test_an_authenticated_integrator_names_the_contact_but_the_visitors_text_stays_a_claim(
    alpha: Any, inbox: Any, owner: Any, api: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """POST /api/v1/conversations/ with `contact` is the integrator (an API key) speaking for
    its visitor: trusted, so it finds the contact whose email staff entered. What the visitor
    then writes through the same API is still only a claim."""
    canary = _canary()
    api_inbox = _keep_schema(
        api.post, "/api/v1/inboxes/", {"name": "App", "channel": "api", "agent": inbox.agent_id}, format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=True):
        started = _keep_schema(
            api.post,
            "/api/v1/conversations/",
            {"inbox": api_inbox["id"], "contact": {"email": CANARY_EMAIL, "name": "Canary"}},
            format="json",
        )
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["contact"] == canary.pk and body["identity"] == "verified" and body["claims"] == {}
    assert _canary().name == "canary-alpha contact"  # the staff-entered name stands

    other = _keep_schema(
        api.post, "/api/v1/conversations/", {"inbox": api_inbox["id"], "text": "hi"}, format="json"
    ).json()
    assert other["contact"] is None and other["identity"] == "anonymous"
    url = f"/api/v1/conversations/{other['id']}/"
    conversation = Conversation.objects.get(pk=other["id"])
    services.conversation_take_over(actor=owner, conversation=conversation)
    said = _keep_schema(
        api.post,
        f"{url}messages/",
        {"role": "visitor", "text": f"I am {CANARY_EMAIL}"},
        format="json",
    )
    assert said.status_code == 201, said.content
    after = _keep_schema(api.get, url).json()
    assert after["contact"] not in (None, canary.pk)
    assert after["identity"] == "unverified" and after["claims"] == {"email": CANARY_EMAIL}
