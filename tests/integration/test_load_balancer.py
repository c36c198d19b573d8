"""Two web processes behind nginx, round robin with no sticky sessions, on one PostgreSQL and
one Redis with the live stack's Celery workers (docs/deployment.md, docs/adr/0024-load-balancer.md).

nginx runs with the configuration deployments use (`deploy/nginx/syntera.conf.template`, through
`tests/nginx.py`); every HTTP request and WebSocket of these tests goes through it. Its access
log names the web process that served each request (`$upstream_addr`): a socket's line is
written when the socket closes, so the tests read it after closing theirs. With one nginx
worker the round robin takes the two processes strictly in turn: a request made right after a
socket opened goes to the other process, which is how a test knows, while the socket is
open, which process holds it (and the log confirms it afterwards).

- A visitor on one process and a staff member on the other see each other's messages live;
  login, the dashboard and the API work through nginx, their requests landing on both
  processes; the access log keeps no widget key or visitor token. nginx tells the
  application who the client is and which scheme it used, and a client cannot claim either.
- The process holding a visitor's socket is killed with SIGKILL: the visitor reconnects
  through nginx (to the other process), resumes with its token, gets what staff wrote
  meanwhile, re-sends what was not acknowledged; nothing lost, nothing duplicated.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests import nginx

from .conftest import PASSWORD, LiveStack, Service, _start, _wait_http_ready, csrf_token, free_port, wait_for
from .test_staff_inbox import _until, reply_from_page
from .test_widget_websocket import Visitor, Workspace, _staff_socket, _workspace

pytestmark = pytest.mark.live

SECOND = "uvicorn-b"


@dataclass
class Balanced:
    """The live stack seen through nginx, and what nginx logged."""

    stack: LiveStack  # the stack itself (its services, direct database reads)
    front: LiveStack  # the same stack with nginx's port: every helper's request goes through nginx
    web: dict[str, str]  # "127.0.0.1:<port>" -> the service listening there
    access_log: Path

    def accesses(self) -> list[nginx.Access]:
        return nginx.access_log(self.access_log)

    def web_process(self, address: str) -> Service:
        return self.stack.service(self.web[address])

    def other(self, address: str) -> str:
        (other,) = set(self.web) - {address}
        return other


def _wait_ready(stack: LiveStack, name: str, port: int) -> None:
    _wait_http_ready(dataclasses.replace(stack, port=port), stack.service(name))


@pytest.fixture(scope="module")
def balanced(live_stack: LiveStack) -> Iterator[Balanced]:
    binary = nginx.binary()
    if binary is None:
        pytest.skip("nginx is not installed (make nginx)")
    port_b = free_port()
    second = _start(
        SECOND,
        [sys.executable, "-m", "uvicorn", "syntera.asgi:application", "--host", "127.0.0.1", "--port", str(port_b)],
        live_stack.env,
        live_stack.work_dir,
    )
    # Our own directory: nginx's workers run as an unprivileged user and must reach it.
    directory = Path(tempfile.mkdtemp(prefix="syntera-nginx-"))
    port = free_port()
    access_log = directory / "access.log"
    web = {f"127.0.0.1:{live_stack.port}": "uvicorn", f"127.0.0.1:{port_b}": SECOND}
    config = nginx.write_balancer(directory, f"127.0.0.1:{port}", list(web))
    balancer = _start("nginx", nginx.command(binary, config), live_stack.env, directory)
    live_stack.services.extend([second, balancer])  # their logs go with a failed test's report
    try:
        _wait_ready(live_stack, SECOND, port_b)
        front = dataclasses.replace(live_stack, port=port)
        _wait_http_ready(front, balancer)
        yield Balanced(stack=live_stack, front=front, web=web, access_log=access_log)
    finally:
        for name in ("nginx", SECOND):  # as started, or as a test restarted it
            service = live_stack.service(name)
            live_stack.services.remove(service)
            service.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def workspace(balanced: Balanced) -> Workspace:
    """A workspace with knowledge and an AI agent, made through nginx with the API."""
    return _workspace(balanced.front, "behind-nginx")


def _sockets(lines: list[nginx.Access], route: str) -> list[nginx.Access]:
    return [line for line in lines if line.route == route and line.status == 101]


def _closed_sockets(balanced: Balanced, start: int, widget: int, staff: int) -> list[nginx.Access]:
    """This test's access log lines, once nginx has written those of its closed sockets."""

    def written() -> list[nginx.Access] | None:
        lines = balanced.accesses()[start:]
        done = len(_sockets(lines, "/ws/widget/")) >= widget and len(_sockets(lines, "/ws/staff/")) >= staff
        return lines if done else None

    return wait_for(written, timeout=10, what="nginx to log the closed sockets")


def _probe(balanced: Balanced) -> str:
    """A request through nginx; the web process that served it."""
    before = len(balanced.accesses())
    with balanced.front.http(balanced.front.host()) as client:
        assert client.get("/healthz").status_code == 200
    line = wait_for(lambda: balanced.accesses()[before:], timeout=5, what="the probe's log line")[-1]
    assert line.route == "/healthz"
    return line.served_by


def test_a_visitor_and_a_staff_member_on_different_web_processes_see_each_other_live(
    balanced: Balanced, workspace: Workspace
) -> None:
    front = balanced.front
    start = len(balanced.accesses())
    staff = _staff_socket(front, workspace)  # the login form, then the socket, through nginx
    visitor = Visitor(front, workspace)
    visitor.open()  # the next request: the other web process

    # The visitor writes; the AI answers (a Celery worker, through the Redis channel layer);
    # the staff member, on the other process, hears of the visitor's message live.
    question = "How long does standard shipping take?"
    assert visitor.say(question, client_id="lb-1") == 1
    answer = visitor.until(lambda f: f["type"] == "message" and f["role"] == "ai")
    assert answer["seq"] == 2 and "3 to 5 business days" in answer["text"]
    conversation = int(visitor.conversation)
    heard = _until(
        staff,
        lambda f: f["type"] == "message.created" and f["conversation"]["id"] == conversation,
        "the visitor's message on the staff socket",
    )
    assert heard["conversation"]["preview"] == question

    # The staff member replies from the conversation page (dashboard, through nginx): the
    # visitor, on the other process, gets it live.
    dashboard = front.login(workspace.slug, workspace.owner)
    page, reply = reply_from_page(dashboard, conversation, "Hi, Sam here: it ships today.")
    assert question in page and reply.status_code == 302, reply.text[:300]
    got = visitor.until(lambda f: f["type"] == "message" and f["role"] == "agent")
    assert (got["seq"], got["text"]) == (3, "Hi, Sam here: it ships today.")
    dashboard.close()
    visitor.close()
    staff.close()

    # nginx's log: the two sockets were held by different web processes, and the logged-in
    # staff member's pages were served by both (no stickiness; the session is shared).
    lines = _closed_sockets(balanced, start, widget=1, staff=1)
    (widget_socket,) = _sockets(lines, "/ws/widget/")
    (staff_socket,) = _sockets(lines, "/ws/staff/")
    assert {widget_socket.served_by, staff_socket.served_by} == set(balanced.web), lines
    assert widget_socket.upgrade == staff_socket.upgrade == "websocket"
    assert widget_socket.host == staff_socket.host == f"{workspace.slug}.localhost"
    pages = [line for line in lines if line.route in ("/login/", "/dashboard/")]
    assert {line.served_by for line in pages} == set(balanced.web), lines
    assert all(line.status in (200, 302) for line in pages), lines
    # The log names routes only: no widget key, visitor token or conversation path in it.
    logged = balanced.access_log.read_text()
    assert workspace.widget_key not in logged and visitor.token not in logged
    assert f"/inbox/{conversation}/" not in logged and "/ws/widget/?" not in logged


def test_nginx_tells_the_application_who_the_client_is_and_a_client_cannot(
    balanced: Balanced, workspace: Workspace
) -> None:
    """X-Forwarded-For carries the client's own address (appended by nginx to what the client
    wrote), and X-Forwarded-Proto the scheme nginx was reached on, whatever the client wrote.
    The client connects from a second loopback address, so nginx's view of it differs from
    the address nginx itself connects to the web process from."""
    front = balanced.front
    lying = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with front.http(
        front.host(workspace.slug),
        headers={"Authorization": f"Bearer {workspace.key}", **lying},
        transport=transport,
    ) as api:
        created = api.post("/api/v1/knowledge-bases/", json={"name": "Through the proxy"})
        assert created.status_code == 201, created.text
        events = api.get("/api/v1/audit-events/").json()["results"]
    target = ("knowledge.knowledgebase", str(created.json()["id"]))
    recorded = {e["ip_address"] for e in events if (e["target_type"], e["target_id"]) == target}
    assert recorded == {"127.0.0.2"}, events

    # Believed, "https" would make the login form demand an HTTPS Referer and refuse the post;
    # nginx sends its own scheme (http), so the form works.
    with front.http(front.host(workspace.slug), headers=lying) as browser:
        page = browser.get("/login/")
        posted = browser.post(
            "/login/",
            data={"email": workspace.owner, "password": PASSWORD, "csrfmiddlewaretoken": csrf_token(page.text)},
        )
        assert posted.status_code == 302 and posted.headers["location"] == "/dashboard/", posted.text[:300]


def test_a_web_process_killed_under_a_connected_visitor(balanced: Balanced, workspace: Workspace) -> None:
    front, stack = balanced.front, balanced.stack
    api = front.api(workspace.slug, workspace.key)
    inbox = api.post("/api/v1/inboxes/", json={"name": "People"}).json()  # no AI: staff answer
    people = dataclasses.replace(workspace, widget_key=inbox["widget_key"])
    start = len(balanced.accesses())
    staff = _staff_socket(front, people)
    visitor = Visitor(front, people)
    visitor.open()
    # The staff socket and the probe are on one process, the visitor's socket on the other.
    visitor_on = balanced.other(_probe(balanced))
    frames: Counter[int] = Counter()  # message frames per seq, over both of the visitor's sockets

    def receive(until: Any) -> dict[str, Any]:
        while True:
            frame = visitor.recv()
            if frame["type"] == "message":
                frames[frame["seq"]] += 1
            if until(frame):
                return frame

    conversation = visitor.conversation
    visitor.send({"type": "message", "client_id": "k-1", "text": "My parcel has not arrived."})
    assert receive(lambda f: f["type"] == "ack")["seq"] == 1
    _until(staff, lambda f: f["type"] == "message.created", "the first message on the staff socket")

    # A message leaves just before the process holding the socket dies: stored or not, it was
    # not acknowledged, so the widget will send it again.
    visitor.send({"type": "message", "client_id": "k-2", "text": "Order 4711, sent last Monday."})
    killed = balanced.web_process(visitor_on)
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait(timeout=10)
    try:
        with pytest.raises(ConnectionClosed):
            for _ in range(20):
                receive(lambda f: False)
        visitor.ws = None

        # Meanwhile staff answer through nginx (the dead process is skipped).
        during = api.post(f"/api/v1/conversations/{conversation}/messages/", json={"text": "Checking order 4711 now."})
        assert during.status_code == 201, during.text

        # The visitor comes back through nginx, to the surviving process, and resumes.
        session = visitor.open()
        assert session["conversation_id"] == conversation
        visitor.send({"type": "resume", "after_seq": max(frames)})
        visitor.send({"type": "message", "client_id": "k-2", "text": "Order 4711, sent last Monday."})
        ack = receive(lambda f: f["type"] == "ack" and f["client_id"] == "k-2")
        messages = api.get(f"/api/v1/conversations/{conversation}/messages/").json()["results"]
        visible = [m["seq"] for m in messages if m["role"] != "note"]
        while set(frames) != set(visible):
            receive(lambda f: f["type"] == "message")
        missed = [m for m in messages if m["text"] == "Checking order 4711 now."]
        assert len(missed) == 1 and missed[0]["seq"] in frames

        # Nothing lost, nothing twice: a gap-free transcript with each message once, and the
        # visitor shown each of them once over its two sockets.
        assert visible == list(range(1, len(visible) + 1)), messages
        assert [m["client_id"] for m in messages].count("k-2") == 1
        assert ack["seq"] == next(m["seq"] for m in messages if m["client_id"] == "k-2")
        assert all(count == 1 for count in frames.values()), frames
        _until(
            staff,
            lambda f: (
                f["type"] == "message.created" and f["conversation"]["preview"] == "Order 4711, sent last Monday."
            ),
            "the re-sent message on the staff socket",
        )
        visitor.close()
        staff.close()

        # nginx's log: the visitor's first socket was on the killed process, its second on the
        # survivor (after nginx found the killed one refusing, if it tried it first).
        lines = _closed_sockets(balanced, start, widget=2, staff=1)
        first, second = _sockets(lines, "/ws/widget/")
        (staff_socket,) = _sockets(lines, "/ws/staff/")
        assert first.served_by == visitor_on, lines
        assert second.served_by == staff_socket.served_by == balanced.other(visitor_on), lines
    finally:
        if killed.proc.poll() is not None:
            port = int(visitor_on.rpartition(":")[2])
            stack.restart(killed.name)
            if killed.name == SECOND:
                _wait_ready(stack, SECOND, port)
