"""The staff inbox live, through a real uvicorn process, a real Celery worker and the Redis
channel layer, driven like its users drive it.

Staff: `manage.py create_tenant` → the real login form (httpx) → the inboxes page's form
creates a web-chat inbox → the staff WebSocket (`websockets` client) → the inbox's JSON
endpoints and the conversation page's reply form. Visitor: the widget WebSocket with the
inbox's key. What crosses between them goes through the conversation services, their
after-commit events on the Redis layer and the consumers in the uvicorn process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from .conftest import PASSWORD, LiveStack, csrf_token

pytestmark = pytest.mark.live

RECV_TIMEOUT = 10.0


@dataclass
class Workspace:
    slug: str
    client: httpx.Client  # logged in as the owner
    cookie: str
    widget_key: str


def _socket(stack: LiveStack, slug: str, path: str, cookie: str | None = None) -> ClientConnection:
    host = stack.host(slug)
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=RECV_TIMEOUT)
    try:
        return connect(
            f"ws://{host}{path}",
            sock=sock,
            origin=f"http://{host}",  # type: ignore[arg-type]
            additional_headers={"Cookie": cookie} if cookie else {},
            open_timeout=RECV_TIMEOUT,
            close_timeout=RECV_TIMEOUT,
        )
    except BaseException:
        sock.close()
        raise


def _recv(ws: ClientConnection, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
    frame = ws.recv(timeout=timeout)
    assert isinstance(frame, str), frame
    data = json.loads(frame)
    assert isinstance(data, dict)
    return data


def _until(ws: ClientConnection, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """The first frame passing `check`, within RECV_TIMEOUT (other frames are skipped)."""
    deadline = time.monotonic() + RECV_TIMEOUT
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {RECV_TIMEOUT:.0f}s; got {seen}")
        try:
            frame = _recv(ws, timeout=left)
        except TimeoutError:
            continue
        if check(frame):
            return frame
        seen.append(frame)


def _nothing_but_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every frame that arrives before the answer to a ping (sent now)."""
    ws.send(json.dumps({"type": "ping"}))
    frames = []
    while (frame := _recv(ws))["type"] != "pong":
        frames.append(frame)
    return frames


def reply_from_page(client: httpx.Client, conversation_id: int, text: str) -> tuple[str, httpx.Response]:
    """Open the conversation page and post its reply form as the agent: (the page, the answer)."""
    page = client.get(f"/dashboard/inbox/{conversation_id}/")
    assert page.status_code == 200, page.text[:300]
    reply = client.post(
        f"/dashboard/inbox/{conversation_id}/reply/",
        data={
            "csrfmiddlewaretoken": csrf_token(page.text),
            "role": "agent",
            "text": text,
            "client_id": uuid.uuid4().hex,
        },
    )
    return page.text, reply


@pytest.fixture(scope="module")
def workspace(live_stack: LiveStack) -> Iterator[Workspace]:
    slug = f"inbox-{uuid.uuid4().hex[:6]}"
    email = f"owner@{slug}.example"
    live_stack.create_tenant(slug, email, PASSWORD, name="Inbox Ltd")
    client = live_stack.login(slug, email)
    page = client.get("/dashboard/inboxes/")
    assert page.status_code == 200
    created = client.post(
        "/dashboard/inboxes/",
        data={
            "csrfmiddlewaretoken": csrf_token(page.text),
            "name": "Website",
            "agent": "",  # no AI agent: every conversation waits for a human
            "title": "Talk to us",
            "color": "#2563eb",
            "text_color": "#ffffff",
            "position": "right",
        },
    )
    assert created.status_code == 302, created.text[:500]
    settings_page = client.get(created.headers["location"]).text
    key = re.search(r"data-key=&quot;(wk_[A-Za-z0-9_-]+)&quot;", settings_page)
    assert key, settings_page[:500]
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    yield Workspace(slug=slug, client=client, cookie=cookie, widget_key=key.group(1))
    client.close()


def test_staff_see_visitor_messages_live_and_their_reply_reaches_the_visitor(
    live_stack: LiveStack, workspace: Workspace
) -> None:
    staff = _socket(live_stack, workspace.slug, "/ws/staff/", cookie=workspace.cookie)
    visitor = _socket(live_stack, workspace.slug, f"/ws/widget/?key={workspace.widget_key}")
    with staff, visitor:
        assert _recv(staff)["type"] == "hello"

        # The visitor opens the chat and writes: the staff socket hears of the conversation with
        # its first message (an opened widget nobody writes in is nothing for staff).
        visitor.send(json.dumps({"type": "hello"}))
        session = _until(visitor, lambda f: f["type"] == "session", "session frame")
        conversation_id = int(session["conversation_id"])
        assert session["handoff"] == "queued" and session["widget"]["title"] == "Talk to us"
        visitor.send(json.dumps({"type": "message", "client_id": "m1", "text": "Where is my <b>order</b>?"}))
        assert _until(visitor, lambda f: f["type"] == "ack", "ack") == {"type": "ack", "client_id": "m1", "seq": 1}
        created = _until(staff, lambda f: f["type"] != "presence.changed", "conversation.created")
        assert created["type"] == "conversation.created" and created["conversation"]["id"] == conversation_id
        event = _until(staff, lambda f: f["type"] == "message.created", "message.created")
        row = event["conversation"]
        assert row["id"] == conversation_id and row["preview"] == "Where is my <b>order</b>?"
        assert row["unread"] == 1 and row["last_seq"] == 1 and row["owner"] == "queue"

        # What the inbox page's script reads on that event.
        listed = workspace.client.get("/dashboard/inbox/conversations.json").json()["conversations"]
        assert [(c["id"], c["preview"], c["unread"]) for c in listed] == [
            (conversation_id, "Where is my <b>order</b>?", 1)
        ]
        assert workspace.client.get("/dashboard/inbox/conversations.json").text.count("\\u003cb\\u003e") == 1

        # Typing both ways.
        visitor.send(json.dumps({"type": "typing"}))
        typing = _until(staff, lambda f: f["type"] == "visitor.typing", "visitor.typing")
        assert typing["conversation"] == conversation_id
        staff.send(json.dumps({"type": "typing", "conversation": conversation_id}))
        assert _until(visitor, lambda f: f["type"] == "typing", "agent typing") == {"type": "typing", "role": "agent"}

        # The staff member replies through the conversation page's form.
        page, reply = reply_from_page(workspace.client, conversation_id, "It ships tomorrow.")
        assert "Where is my &lt;b&gt;order&lt;/b&gt;?" in page
        assert reply.status_code == 302 and reply.headers["location"] == f"/dashboard/inbox/{conversation_id}/"
        handoff = _until(visitor, lambda f: f["type"] == "handoff", "handoff frame")
        assert handoff == {"type": "handoff", "status": "assigned"}
        message = _until(visitor, lambda f: f["type"] == "message" and f["role"] != "visitor", "agent message")
        assert (message["role"], message["text"], message["seq"]) == ("agent", "It ships tomorrow.", 2)
        event = _until(staff, lambda f: f["type"] == "message.created", "message.created for the reply")
        assert event["conversation"]["owner"] == "human" and event["conversation"]["preview"] == "It ships tomorrow."

        # A private note: staff are told, the visitor is sent nothing.
        note = workspace.client.post(
            f"/dashboard/inbox/{conversation_id}/reply/",
            data={"csrfmiddlewaretoken": csrf_token(page), "role": "note", "text": "Check the warehouse"},
            headers={"Accept": "application/json"},
        )
        assert note.status_code == 200 and note.json()["message"]["seq"] == 3
        assert _until(staff, lambda f: f["type"] == "message.created", "note event")["conversation"]["last_seq"] == 3
        assert _nothing_but_pong(visitor) == []
        visitor.send(json.dumps({"type": "resume", "after_seq": 0}))
        replay = [f for f in _nothing_but_pong(visitor) if f["type"] == "message"]
        assert [(f["seq"], f["role"]) for f in replay] == [(1, "visitor"), (2, "agent")]

        # The conversation page's script reads the transcript (notes included) after a seq.
        after = workspace.client.get(f"/dashboard/inbox/{conversation_id}/messages.json?after=1").json()
        assert [(m["seq"], m["role"], m["text"]) for m in after["messages"]] == [
            (2, "agent", "It ships tomorrow."),
            (3, "note", "Check the warehouse"),
        ]
        assert after["conversation"]["unread"] == 1

        # Read over the socket: unread goes to zero and the inbox is told.
        staff.send(json.dumps({"type": "read", "conversation": conversation_id}))
        updated = _until(
            staff,
            lambda f: f["type"] == "conversation.updated" and f["conversation"]["unread"] == 0,
            "conversation.updated with unread 0",
        )
        assert updated["conversation"]["id"] == conversation_id
    live_stack.assert_running()


def test_another_workspaces_staff_hear_nothing(live_stack: LiveStack, workspace: Workspace) -> None:
    """A second workspace's staff socket gets no event of the first one's conversations, and
    its frames cannot touch them."""
    slug = f"other-{uuid.uuid4().hex[:6]}"
    live_stack.create_tenant(slug, f"owner@{slug}.example", PASSWORD)
    other = live_stack.login(slug, f"owner@{slug}.example")
    cookie = "; ".join(f"{name}={value}" for name, value in other.cookies.items())
    with (
        _socket(live_stack, slug, "/ws/staff/", cookie=cookie) as outsider,
        _socket(live_stack, workspace.slug, "/ws/staff/", cookie=workspace.cookie) as insider,
        _socket(live_stack, workspace.slug, f"/ws/widget/?key={workspace.widget_key}") as visitor,
    ):
        assert _recv(outsider)["type"] == "hello" and _recv(insider)["type"] == "hello"
        visitor.send(json.dumps({"type": "hello"}))
        conversation_id = int(_until(visitor, lambda f: f["type"] == "session", "session")["conversation_id"])
        visitor.send(json.dumps({"type": "message", "client_id": "x1", "text": "private to the first workspace"}))
        _until(visitor, lambda f: f["type"] == "message", "the visitor's own message")
        _until(insider, lambda f: f["type"] == "message.created", "message.created")
        # Same id in the other workspace's schema: no such conversation there.
        outsider.send(json.dumps({"type": "typing", "conversation": conversation_id}))
        error = _until(outsider, lambda f: f["type"] == "error", "error frame")
        assert error["code"] == "not_found"
        assert _nothing_but_pong(outsider) == []
        assert _nothing_but_pong(visitor) == []  # no "typing" reached the visitor
        foreign = other.get(f"/dashboard/inbox/{conversation_id}/messages.json")
        assert foreign.status_code == 404 and "private to the first workspace" not in foreign.text
    other.close()


# --- the pages' script in a real browser -------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium, or `make chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            timeout=60_000,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP localhost 127.0.0.1",
            ],
        )
        try:
            yield instance
        finally:
            instance.close()


@contextlib.contextmanager
def _staff_page(live_stack: LiveStack, workspace: Workspace, browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A fresh browser context logged in as the owner, on the inbox page; with the page's
    errors (script errors, console errors, HTTP 4xx/5xx) collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.request.method} {r.url}"))
    try:
        page.goto(live_stack.url(workspace.slug, "/login/?next=/dashboard/inbox/"))
        page.fill("#id_email", f"owner@{workspace.slug}.example")
        page.fill("#id_password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_url(live_stack.url(workspace.slug, "/dashboard/inbox/"))
        yield page, problems
    finally:
        context.close()


@pytest.mark.browser
def test_inbox_and_conversation_pages_update_live_in_the_browser(
    live_stack: LiveStack, workspace: Workspace, browser: Any
) -> None:
    """chromium → login form → /dashboard/inbox/ (static/js/inbox.js on the staff socket): a
    visitor's new conversation appears in the list; the conversation page shows the visitor's
    next message and typing live; a reply typed in the page reaches the visitor's socket (with
    "agent typing" first); a private note shows in the page and never reaches the visitor.
    Hostile text stays text."""
    with _staff_page(live_stack, workspace, browser) as (page, problems):
        page.wait_for_selector('#inbox-list[data-socket="open"]')

        hostile = '<img src=x onerror="window.pwned=1"> where is my parcel?'
        with _socket(live_stack, workspace.slug, f"/ws/widget/?key={workspace.widget_key}") as visitor:
            visitor.send(json.dumps({"type": "hello"}))
            conversation_id = int(_until(visitor, lambda f: f["type"] == "session", "session")["conversation_id"])
            visitor.send(json.dumps({"type": "message", "client_id": "b1", "text": hostile}))
            _until(visitor, lambda f: f["type"] == "message", "the visitor's own message")

            row = page.locator(f'#conversations tr[data-conversation-id="{conversation_id}"]')
            row.wait_for()
            assert row.locator(".preview").text_content() == hostile
            assert row.locator(".unread-count").text_content() == "1"
            assert page.locator("#conversations img").count() == 0

            row.locator("a.title").click()
            page.wait_for_url(live_stack.url(workspace.slug, f"/dashboard/inbox/{conversation_id}/"))
            page.wait_for_selector('#conversation[data-socket="open"]')
            assert page.locator('#transcript li[data-seq="1"] .bubble').text_content() == hostile
            # The inbox has no AI agent: the conversation waited for a person, and the one who
            # just came online (this page's socket) is given it.
            page.wait_for_selector("#transcript li[data-seq=\"2\"].system:has-text('joined the conversation')")

            visitor.send(json.dumps({"type": "typing"}))
            page.wait_for_selector("#visitor-typing:has-text('The visitor is typing')")
            visitor.send(json.dumps({"type": "message", "client_id": "b2", "text": "<b>still</b> waiting"}))
            page.wait_for_selector('#transcript li[data-seq="3"].visitor')
            assert page.locator('#transcript li[data-seq="3"] .bubble').text_content() == "<b>still</b> waiting"
            assert page.locator("#transcript b, #transcript img").count() == 0
            # The page marks the conversation read over the socket once it has seen it.
            page.wait_for_selector('#conversation[data-unread="0"]')

            page.fill("#composer textarea", "It left the warehouse today.")
            assert _until(visitor, lambda f: f["type"] == "typing", "agent typing") == {
                "type": "typing",
                "role": "agent",
            }
            page.press("#composer textarea", "Enter")
            reply = _until(visitor, lambda f: f["type"] == "message" and f["role"] == "agent", "the reply")
            assert reply["text"] == "It left the warehouse today." and reply["seq"] == 4
            page.wait_for_selector('#transcript li[data-seq="4"].agent')
            page.wait_for_selector("#conv-owner:has-text('Human')")
            assert page.input_value("#composer textarea") == ""

            page.check("#composer input[name=role][value=note]")
            assert page.text_content("#composer-send") == "Add note"
            page.fill("#composer textarea", "Customer is anxious")
            page.press("#composer textarea", "Enter")
            page.wait_for_selector('#transcript li[data-seq="5"].note')
            assert "not shown to the visitor" in (page.text_content('#transcript li[data-seq="5"]') or "")
            assert [f for f in _nothing_but_pong(visitor) if f["type"] in ("message", "typing")] == []
        assert page.evaluate("window.pwned") is None
        assert problems == [], problems


@pytest.mark.browser
def test_a_dashboard_page_opens_one_staff_socket(live_stack: LiveStack, workspace: Workspace, browser: Any) -> None:
    """chromium → login → the inbox list, a conversation and the queue: each page has several
    live scripts (presence.js for the nav's presence select and live regions, inbox.js for
    the list or the transcript) and opens exactly one staff socket (static/js/staff-socket.js),
    which they share: the presence select and the list both work over it."""
    opened: list[str] = []
    sent: list[str] = []  # what the page sent on its sockets

    def track(ws: Any) -> None:
        opened.append(ws.url)
        ws.on("framesent", lambda payload: sent.append(str(payload)))

    with _staff_page(live_stack, workspace, browser) as (page, problems):
        page.on("websocket", track)

        def staff_sockets_after_load(path: str, ready: str) -> list[str]:
            opened.clear()
            page.goto(live_stack.url(workspace.slug, path))
            page.wait_for_selector(ready)
            time.sleep(1.5)  # every script has run and connected by now
            return [url for url in opened if url.endswith("/ws/staff/")]

        assert page.locator("#presence-status").count() == 1  # presence.js is on the page too

        assert len(staff_sockets_after_load("/dashboard/inbox/", '#inbox-list[data-socket="open"]')) == 1
        # Both scripts hear the one socket: a visitor's conversation appears in the list, and
        # the presence select changes the person's status over it (no form post, no reload).
        with _socket(live_stack, workspace.slug, f"/ws/widget/?key={workspace.widget_key}") as visitor:
            visitor.send(json.dumps({"type": "hello"}))
            conversation_id = int(_until(visitor, lambda f: f["type"] == "session", "session")["conversation_id"])
            visitor.send(json.dumps({"type": "message", "client_id": "one-socket", "text": "Hello?"}))
            page.locator(f'#conversations tr[data-conversation-id="{conversation_id}"]').wait_for()
        page.select_option("#presence-status", "away")
        page.wait_for_selector('#presence-toggle[data-status="away"]')
        watcher = _socket(live_stack, workspace.slug, "/ws/staff/", cookie=workspace.cookie)
        try:
            assert _recv(watcher)["type"] == "hello"
            page.select_option("#presence-status", "online")
            changed = _until(watcher, lambda f: f["type"] == "presence.changed", "presence.changed")
            assert changed["status"] == "online"
        finally:
            watcher.close()
        assert {"type": "presence", "status": "online"} in [json.loads(frame) for frame in sent]

        path = f"/dashboard/inbox/{conversation_id}/"
        assert len(staff_sockets_after_load(path, '#conversation[data-socket="open"]')) == 1
        assert len(staff_sockets_after_load("/dashboard/queue/", "#routing-live-status:has-text('Live')")) == 1
        assert problems == [], problems
