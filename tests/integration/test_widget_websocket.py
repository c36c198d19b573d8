"""The widget WebSocket (`/ws/widget/`) through a real uvicorn process, the Redis channel
layer and a real Celery worker answering with the offline responder, driven by real
WebSocket clients (`websockets`).

Two visitors in two workspaces and a staff member: the AI's answer streams and arrives with
citations; the staff socket sees its own workspace only; a repeated client_id is stored once;
a visitor who drops and comes back resumes everything sent meanwhile; the server process is
restarted mid-conversation and nothing is lost or duplicated (checked by seq). A visitor who
claims a known contact's email gets none of its memory; one whose identity the site signed
does (docs/adr/0011-visitor-identity.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .conftest import PASSWORD, LiveStack, wait_for

pytestmark = pytest.mark.live

TIMEOUT = 10.0
ARTICLE = (
    "# Shipping\n\nStandard shipping takes 3 to 5 business days within the EU. "
    "Express shipping arrives the next business day when ordered before 2 pm."
)


@dataclass
class Workspace:
    slug: str
    key: str  # API key
    widget_key: str = ""
    owner: str = ""


@dataclass
class Visitor:
    stack: LiveStack
    workspace: Workspace
    token: str = ""
    conversation: str = ""
    ws: ClientConnection | None = None
    seen: dict[int, dict[str, Any]] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)

    def open(self, **hello: Any) -> dict[str, Any]:
        """Connect and say hello (with `hello`'s extra fields); the `session` frame. Error
        frames before it (a refused identity) are kept in `extra`."""
        host = self.stack.host(self.workspace.slug)
        query = f"?key={self.workspace.widget_key}" + (f"&token={self.token}" if self.token else "")
        sock = socket.create_connection(("127.0.0.1", self.stack.port), timeout=TIMEOUT)
        self.ws = connect(
            f"ws://{host}/ws/widget/{query}",
            sock=sock,
            origin=f"http://{host}",
            open_timeout=TIMEOUT,  # type: ignore[arg-type]
        )
        self.send({"type": "hello", **hello})
        session = self.until(lambda f: f["type"] != "error", limit=3)
        assert session["type"] == "session", session
        self.token = session["token"]
        self.conversation = session["conversation_id"]
        return session

    def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        self.ws.send(json.dumps(frame))

    def recv(self) -> dict[str, Any]:
        assert self.ws is not None
        frame = json.loads(self.ws.recv(timeout=TIMEOUT))
        if frame.get("type") == "message":
            assert frame["seq"] not in self.seen or self.seen[frame["seq"]]["text"] == frame["text"]
            self.seen[frame["seq"]] = frame
        else:
            self.extra.append(frame)
        return dict(frame)

    def until(self, predicate: Any, limit: int = 200) -> dict[str, Any]:
        for _ in range(limit):
            frame = self.recv()
            if predicate(frame):
                return frame
        raise AssertionError("the expected frame never came")

    def say(self, text: str, client_id: str | None = None) -> int:
        client_id = client_id or str(uuid.uuid4())
        self.send({"type": "message", "client_id": client_id, "text": text})
        ack = self.until(lambda f: f["type"] == "ack" and f["client_id"] == client_id)
        return int(ack["seq"])

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None


def _workspace(stack: LiveStack, slug: str) -> Workspace:
    owner = f"owner@{slug}.example"
    stack.create_tenant(slug, owner)
    workspace = Workspace(slug=slug, key=stack.create_api_key(slug), owner=owner)
    api = stack.api(slug, workspace.key)
    kb = api.post("/api/v1/knowledge-bases/", json={"name": "Help"}).json()["id"]
    source = api.post(
        f"/api/v1/knowledge-bases/{kb}/sources/", json={"type": "text", "title": "Shipping times", "text": ARTICLE}
    ).json()
    wait_for(
        lambda: api.get(f"/api/v1/knowledge-bases/{kb}/sources/{source['id']}/").json()["status"] == "ready" or None,
        timeout=60,
        what="the article to be ingested",
    )
    agent = api.post("/api/v1/agents/", json={"name": "Ava", "knowledge_bases": [kb]}).json()
    inbox = api.post("/api/v1/inboxes/", json={"name": "Site", "agent": agent["id"]}).json()
    workspace.widget_key = inbox["widget_key"]
    return workspace


def _staff_socket(stack: LiveStack, workspace: Workspace) -> ClientConnection:
    client = stack.login(workspace.slug, workspace.owner, PASSWORD)
    host = stack.host(workspace.slug)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=TIMEOUT)
    ws = connect(
        f"ws://{host}/ws/staff/",
        sock=sock,
        origin=f"http://{host}",  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        open_timeout=TIMEOUT,
    )
    assert json.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"
    return ws


def _staff_events(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    events = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            events.append(json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic()))))
        except TimeoutError:
            break
    return events


def test_two_workspaces_ai_reply_dedup_resume_and_restart(live_stack: LiveStack) -> None:
    one = _workspace(live_stack, "chat-one")
    two = _workspace(live_stack, "chat-two")
    staff = _staff_socket(live_stack, one)
    alice, bob = Visitor(live_stack, one), Visitor(live_stack, two)
    alice.open()
    bob.open()

    # The AI answers with a streamed reply and a cited final message.
    asked = alice.say("How long does standard shipping take?", client_id="a-1")
    assert asked == 1
    answer = alice.until(lambda f: f["type"] == "message" and f["role"] == "ai")
    assert answer["seq"] == 2 and "3 to 5 business days" in answer["text"]
    assert answer["citations"] and answer["citations"][0]["title"] == "Shipping times"
    assert any(f["type"] == "typing" for f in alice.extra)
    assert any(f["type"] == "delta" and f["reply_to"] == 1 for f in alice.extra)

    bob.say("Do you ship express?", client_id="b-1")
    bob.until(lambda f: f["type"] == "message" and f["role"] == "ai")

    # The staff socket of workspace one hears about Alice, never about Bob.
    events = _staff_events(staff, 1.0)
    conversation_ids = {e["conversation"]["id"] for e in events if isinstance(e.get("conversation"), dict)}
    assert int(alice.conversation) in conversation_ids, events
    assert all("chat-two" not in json.dumps(e) and "Do you ship express" not in json.dumps(e) for e in events)

    # A repeated client_id is acknowledged with the same seq and stored once.
    assert alice.say("How long does standard shipping take?", client_id="a-1") == 1

    # Alice drops; staff answers meanwhile (taking over); Alice comes back and resumes.
    last_seen = max(alice.seen)
    alice.close()
    api = live_stack.api(one.slug, one.key)
    conversation = alice.conversation
    reply = api.post(f"/api/v1/conversations/{conversation}/messages/", json={"text": "Hi, Sam here. Anything else?"})
    assert reply.status_code == 201, reply.text
    session = alice.open()
    assert session["conversation_id"] == conversation and session["handoff"] == "assigned"
    alice.send({"type": "resume", "after_seq": last_seen})
    staff_reply = alice.until(lambda f: f["type"] == "message" and f["role"] == "agent")
    assert staff_reply["text"] == "Hi, Sam here. Anything else?" and staff_reply["seq"] == last_seen + 1

    # The server restarts mid-conversation; a message sent just before is re-sent after.
    alice.send({"type": "message", "client_id": "a-restart", "text": "Is express available on Saturdays?"})
    live_stack.restart("uvicorn")
    with pytest.raises((ConnectionClosed, TimeoutError, OSError)):
        for _ in range(50):
            alice.recv()
    alice.ws = None
    alice.open()
    alice.send({"type": "resume", "after_seq": max(alice.seen)})
    seq = alice.say("Is express available on Saturdays?", client_id="a-restart")  # the outbox re-sends
    alice.send({"type": "resume", "after_seq": 0})
    time.sleep(1.0)
    while True:
        try:
            alice.recv()
        except TimeoutError:
            break
        if max(alice.seen) >= seq and len(alice.seen) >= seq:
            break
    messages = api.get(f"/api/v1/conversations/{conversation}/messages/").json()["results"]
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # gap-free, no duplicates
    assert [m["client_id"] for m in messages].count("a-restart") == 1
    assert [m["client_id"] for m in messages].count("a-1") == 1
    assert sorted(alice.seen) == [m["seq"] for m in messages if m["role"] != "note"]
    # Bob's conversation never shows Alice's messages.
    assert all("Saturdays" not in f["text"] for f in bob.seen.values())
    for visitor in (alice, bob):
        visitor.close()
    staff.close()


def test_a_long_resume_with_notes_in_between_delivers_every_visible_message_once(live_stack: LiveStack) -> None:
    """A visitor who comes back after more than 1,200 messages (private notes interleaved, which
    take a seq but are never sent) receives every visible one after `after_seq`, once, in order,
    across the server's read batches."""
    slug = "long-resume"
    owner = f"owner@{slug}.example"
    live_stack.create_tenant(slug, owner)
    api = live_stack.api(slug, live_stack.create_api_key(slug))
    inbox = api.post("/api/v1/inboxes/", json={"name": "People"}).json()  # no AI: nothing answers
    visitor = Visitor(live_stack, Workspace(slug=slug, key="", widget_key=inbox["widget_key"]))
    visitor.open()
    assert visitor.say("Hello, anyone?", client_id="first") == 1
    schema = slug.replace("-", "_")
    total = 1300
    inserted = live_stack.sql(
        f"""WITH rows AS (
              INSERT INTO "{schema}".conversations_message
                (conversation_id, seq, role, text, author_label, citations, audit, created_at)
              SELECT %s, n,
                     CASE WHEN n %% 3 = 0 THEN 'note' WHEN n %% 2 = 0 THEN 'agent' ELSE 'visitor' END,
                     'message ' || n, '', '[]', '{{}}', now()
              FROM generate_series(2, %s) AS n RETURNING 1)
            SELECT count(*) FROM rows""",
        (int(visitor.conversation), total + 1),
    )
    assert inserted == [(total,)]
    live_stack.sql(
        f'UPDATE "{schema}".conversations_conversation SET last_seq = %s WHERE id = %s RETURNING 1',
        (total + 1, int(visitor.conversation)),
    )
    visitor.close()

    visitor.open()
    visitor.send({"type": "resume", "after_seq": 1})
    expected = [n for n in range(2, total + 2) if n % 3 != 0]
    received = []
    while len(received) < len(expected):
        frame = visitor.recv()
        if frame["type"] == "message":
            received.append(frame["seq"])
    assert received == expected  # every visible one, in order, none twice, no note
    with pytest.raises(TimeoutError):
        assert visitor.ws is not None
        visitor.ws.recv(timeout=1.0)  # and nothing after
    visitor.close()


def test_a_claimed_email_gets_no_memory_a_signed_identity_does(live_stack: LiveStack) -> None:
    workspace = _workspace(live_stack, "who-is-it")
    api = live_stack.api(workspace.slug, workspace.key)
    known = api.post("/api/v1/contacts/", json={"name": "Known Person", "email": "known@who.example"}).json()
    memory = api.put(f"/api/v1/contacts/{known['id']}/memory", json={"key": "note", "value": "secret-note-5150"})
    assert memory.status_code == 200, memory.text
    before = api.get(f"/api/v1/contacts/{known['id']}/").json()

    # A visitor who only says they are that person.
    mallory = Visitor(live_stack, workspace)
    session = mallory.open(contact={"name": "Mallory", "email": "KNOWN@who.example", "phone": "+1 555 0100"})
    assert session["identity"] == "unverified"
    mallory.say("Hello", client_id="m-1")
    reply = mallory.until(lambda f: f["type"] == "message" and f["role"] == "ai")
    assert "Known" not in reply["text"] and "secret-note" not in reply["text"], reply
    assert "Mallory" in reply["text"]
    conversation = api.get(f"/api/v1/conversations/{mallory.conversation}/").json()
    assert conversation["contact"] != known["id"] and conversation["identity"] == "unverified"
    assert conversation["claims"]["email"] == "known@who.example"
    assert api.get(f"/api/v1/contacts/{known['id']}/").json() == before
    audit = [m["audit"] for m in api.get(f"/api/v1/conversations/{mallory.conversation}/messages/").json()["results"]]
    assert all("secret-note" not in json.dumps(a) for a in audit)
    mallory.close()

    # A wrong signature is refused and the chat goes on anonymous.
    inbox = api.get("/api/v1/inboxes/").json()["results"][0]
    secret = inbox["identity_secret"]
    forger = Visitor(live_stack, workspace)
    session = forger.open(identity={"email": "known@who.example", "hash": "0" * 64})
    assert session["identity"] == "anonymous"
    assert [f["code"] for f in forger.extra if f["type"] == "error"] == ["identity_invalid"]
    forger.close()

    # The site signs its signed-in user's email: the known contact and its memory.
    signed = hmac.new(secret.encode(), b"known@who.example", hashlib.sha256).hexdigest()
    owner = Visitor(live_stack, workspace)
    session = owner.open(identity={"email": "known@who.example", "hash": signed})
    assert session["identity"] == "verified"
    owner.say("Hello", client_id="k-1")
    greeting = owner.until(lambda f: f["type"] == "message" and f["role"] == "ai")
    assert "Known" in greeting["text"], greeting
    assert api.get(f"/api/v1/conversations/{owner.conversation}/").json()["contact"] == known["id"]
    owner.close()
