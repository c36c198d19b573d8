"""What leaves for Sentry: errors, transactions with their spans, and breadcrumbs are scrubbed
of one-time tokens (in URL paths and query strings, whatever the route), emails, phone
numbers and message text (docs/subsystems/operations.md, "Sentry").

The SDK runs for real (`sentry_sdk.init` through `init_sentry`, its Django, Celery, logging,
httpx and ASGI integrations, its event pipeline and serializer); only the transport is a
recorder, so the test reads exactly the envelopes that would be sent.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django_tenants.utils import schema_context
from sentry_sdk.transport import Transport

from apps.conversations import services as conversations
from apps.tenants.models import Tenant

# One-time tokens as the platform makes them (secrets.token_urlsafe, Django's reset tokens,
# django.core.signing), on today's routes and on routes that do not exist yet.
INVITE_TOKEN = "Zq8vR2mXc4TnP0wLs7YbK1eJh5GdA3fUo9iWkQyNxVt"
RESET_TOKEN = "cb8d6p-7f3e0c49d1b5ba8e2a8a12a5f2b4d7c1"
LOGIN_TOKEN = "Lk3nB8qWz0Xc5VmR7tY2uI9oP4aS6dF1gH"
CONFIRM_TOKEN = "eyJ1c2VyIjo0Mn0:1vQx2Z:Ab9Cd8Ef7Gh6Ij5Kl4Mn3Op2Qr1"
VISITOR_TOKEN = "vt_Hq2Wn5Ex8Rc1Tv4Yb7Um0Io3Pa6Sd"
API_KEY = "sk_live_0a1b2c3d4e5f_Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0"
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 0199"
MESSAGE_TEXT = "please refund my order to the other card"
SECRETS = {
    "invitation token": INVITE_TOKEN,
    "reset token": RESET_TOKEN,
    "login token": LOGIN_TOKEN,
    "confirmation token": CONFIRM_TOKEN,
    "confirmation token's signature": "Ab9Cd8Ef7Gh6Ij5Kl4Mn3Op2Qr1",
    "visitor token": VISITOR_TOKEN,
    "API key": API_KEY,
    "email": EMAIL,
    "phone": PHONE,
    "phone digits": "555 0199",
    "message text": "refund my order",
}


class RecordingTransport(Transport):
    """Stands in for the HTTP transport: keeps every envelope the SDK would send."""

    def __init__(self) -> None:
        super().__init__(None)
        self.envelopes: list[Any] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.envelopes.append(envelope)

    def payload(self) -> str:
        return b"\n".join(envelope.serialize() for envelope in self.envelopes).decode()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [
            json.loads(item.get_bytes()) for envelope in self.envelopes for item in envelope.items if item.type == kind
        ]


@pytest.fixture
def sentry(settings: Any) -> Iterator[Any]:
    import sentry_sdk

    from syntera.observability import init_sentry

    settings.SENTRY_DSN = "http://publickey@sentry.invalid/1"
    settings.SENTRY_TRACES_SAMPLE_RATE = 1.0
    transport = RecordingTransport()
    init_sentry(transport=transport)
    try:
        yield transport
    finally:
        sentry_sdk.flush(timeout=5)
        sentry_sdk.init(dsn=None)


def assert_nothing_secret(payload: str) -> None:
    leaked = [name for name, value in SECRETS.items() if value in payload]
    assert not leaked, f"{leaked} left for Sentry"
    assert "[Filtered]" in payload


class _Upstream(BaseHTTPRequestHandler):
    received_headers: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).received_headers.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    """A local HTTP server for httpx to call (its breadcrumbs and spans carry the URL)."""
    server = HTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def _failing_lookup(upstream: str) -> Any:
    """Stands in for a service that fails half-way through a request: it logs, calls out over
    HTTP with a token in the URL, holds private text in its locals, then raises."""

    def lookup(*args: Any, **kwargs: Any) -> Any:
        visitor_message = MESSAGE_TEXT  # noqa: F841  (a local: Sentry captures frame variables)
        contact = {"email": EMAIL, "phone": PHONE, "note": MESSAGE_TEXT}  # noqa: F841
        log = logging.getLogger("apps.accounts")
        log.info("sending the invitation link /invite/%s/ to %s", INVITE_TOKEN, EMAIL)
        log.info("visitor wrote: %s", MESSAGE_TEXT, extra={"conversation": 7, "visitor_text": MESSAGE_TEXT})
        httpx.get(f"{upstream}/password-reset/MQ/{RESET_TOKEN}/?token={LOGIN_TOKEN}&email={EMAIL}&page=2")
        raise RuntimeError(f"lookup failed for {EMAIL} (phone {PHONE}) with {API_KEY}")

    return lookup


def served(host: str, *requests: tuple[str, str, dict[str, Any]]) -> list[int]:
    """Send requests through the ASGI application as uvicorn serves it (`syntera.asgi`, wrapped
    by `with_sentry` as asgi.py does): Sentry records the request's URL, headers and its
    transaction in that layer, which Django's test client skips. Returns the status codes."""
    from syntera.asgi import application
    from syntera.observability import with_sentry

    app = with_sentry(application)

    async def send() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}") as client:
            return [(await client.request(method, path, **options)).status_code for method, path, options in requests]

    # Django closes the connection when a request ends; the test's transaction lives on it
    # (Django's test client disconnects the same handlers).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        return async_to_sync(send)()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_errors_from_views_leave_without_tokens_emails_phones_or_text(
    alpha: Any, sentry: Any, upstream: str, monkeypatch: Any
) -> None:
    from django.contrib.auth.views import PasswordResetConfirmView

    from apps.dashboard import views

    lookup = _failing_lookup(upstream)
    monkeypatch.setattr(views.services, "invitation_get_pending", lookup)
    monkeypatch.setattr(views.services, "login_link_consume", lookup)
    monkeypatch.setattr(PasswordResetConfirmView, "get_user", lambda self, uidb64: lookup())
    monkeypatch.setattr("apps.accounts.services.invitation_create", lookup)
    headers = {
        "Referer": f"http://{alpha.host}/invite/{INVITE_TOKEN}/?email={EMAIL}",
        "Authorization": f"Bearer {API_KEY}",
        "X-Visitor": VISITOR_TOKEN,
    }
    statuses = served(
        alpha.host,
        ("GET", f"/invite/{INVITE_TOKEN}/?email={EMAIL}", {"headers": headers}),
        ("GET", f"/login/link/?token={LOGIN_TOKEN}", {"headers": headers}),
        ("GET", f"/password-reset/MQ/{RESET_TOKEN}/", {"headers": headers}),
        (
            "POST",
            "/api/v1/invitations/",
            {
                "json": {"email": EMAIL, "role": "agent", "message": MESSAGE_TEXT},
                "headers": {"Authorization": f"Bearer {alpha.api_key}"},
            },
        ),
    )
    assert statuses == [500, 500, 500, 500]

    import sentry_sdk

    sentry_sdk.flush(timeout=5)
    errors = sentry.events("event")
    assert len(errors) == 4
    for event in errors:
        assert event["exception"]["values"][-1]["type"] == "RuntimeError"
        assert event["request"]["url"].startswith(f"http://{alpha.host}/")
        crumbs = event["breadcrumbs"]["values"]
        http = [c for c in crumbs if c.get("category") == "httplib"]
        assert http and http[-1]["data"]["url"] == f"{upstream}/password-reset/MQ/[Filtered]/"
        # (The console handler's own filter may have redacted the record first: either marker.)
        logged = [
            c["message"].replace("[redacted]", "[Filtered]") for c in crumbs if c.get("category") == "apps.accounts"
        ]
        assert logged == [
            "sending the invitation link /invite/[Filtered]/ to [Filtered]",
            "visitor wrote: [Filtered]",
        ]
        frame_vars = [f.get("vars", {}) for f in event["exception"]["values"][-1]["stacktrace"]["frames"]]
        assert any("visitor_message" in v for v in frame_vars)  # the frame is there, its text is not
    urls = {event["request"]["url"] for event in errors}
    assert urls == {
        f"http://{alpha.host}/invite/[Filtered]/",
        f"http://{alpha.host}/login/link/",
        f"http://{alpha.host}/password-reset/MQ/[Filtered]/",
        f"http://{alpha.host}/api/v1/invitations/",
    }
    assert {event["request"].get("query_string") for event in errors} >= {
        "email=[Filtered]",
        "token=[Filtered]",
    }
    assert_nothing_secret(sentry.payload())


def test_transactions_and_their_spans_leave_scrubbed(alpha: Any, sentry: Any, upstream: str) -> None:
    import sentry_sdk

    # Routes that do not exist (yet): the transaction is named after the raw path.
    statuses = served(
        alpha.host,
        ("GET", f"/confirm-email/{CONFIRM_TOKEN}/", {}),
        ("GET", f"/unsubscribe/{EMAIL}/{INVITE_TOKEN}?sig={LOGIN_TOKEN}&lang=en", {}),
        ("GET", f"/invite/{INVITE_TOKEN}/?email={EMAIL}", {}),
    )
    assert statuses == [404, 404, 404]

    with sentry_sdk.start_transaction(op="task", name=f"deliver /verify/{CONFIRM_TOKEN}/ to {EMAIL}"):
        with sentry_sdk.start_span(
            op="http.client", name=f"POST {upstream}/hooks/{VISITOR_TOKEN}?key={API_KEY}"
        ) as span:
            span.set_data("url", f"{upstream}/hooks/{VISITOR_TOKEN}")
            span.set_data("http.query", f"key={API_KEY}&page=3")
            span.set_data("db.params", [EMAIL, MESSAGE_TEXT, 42])
            span.set_data("message", MESSAGE_TEXT)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT '{EMAIL}', '{MESSAGE_TEXT}', %s", [PHONE])
        httpx.get(f"{upstream}/invite/{INVITE_TOKEN}/?token={LOGIN_TOKEN}")
        with schema_context(alpha.schema):
            # An ORM write with private text: a parameterised span, never its values.
            tenant = Tenant.objects.get(schema_name=alpha.schema)
            inbox = conversations.inbox_create(actor=_owner(alpha, tenant), name="Telemetry")
            conversation, _ = conversations.conversation_start(inbox=inbox)
            conversations.message_post(
                conversation_id=conversation.pk, role="visitor", text=MESSAGE_TEXT, client_id="t1"
            )
    sentry_sdk.flush(timeout=5)

    transactions = sentry.events("transaction")
    names = {t["transaction"] for t in transactions}
    # (named after the URL by the ASGI layer when no route matched)
    assert any(name.endswith(f"{alpha.host}:None/confirm-email/[Filtered]/") for name in names), names
    assert any(name.endswith("/unsubscribe/[Filtered]/[Filtered]") for name in names), names
    assert "/invite/{token}/" in names  # a route: named after its pattern
    invite = next(t for t in transactions if t["transaction"] == "/invite/{token}/")
    assert invite["request"]["url"] == f"http://{alpha.host}/invite/[Filtered]/"
    assert invite["request"]["query_string"] == "email=[Filtered]"
    assert "deliver /verify/[Filtered]/ to [Filtered]" in names
    task = next(t for t in transactions if t["transaction"].startswith("deliver"))
    spans = task["spans"]
    assert len(spans) > 3
    hook = next(s for s in spans if s["op"] == "http.client" and "/hooks/" in s["description"])
    assert hook["description"] == f"POST {upstream}/hooks/[Filtered]?key=[Filtered]"
    assert hook["data"]["url"] == f"{upstream}/hooks/[Filtered]"
    assert hook["data"]["http.query"] == "key=[Filtered]&page=3"
    assert hook["data"]["db.params"] == "[Filtered]" and hook["data"]["message"] == "[Filtered]"
    sql = next(s for s in spans if s["op"] == "db" and s["description"].startswith("SELECT '"))
    assert sql["description"] == "SELECT '[Filtered]', '[Filtered]', %s"
    outbound = [s for s in spans if s["op"] == "http.client" and "/invite/" in s["description"]]
    assert outbound and outbound[0]["description"] == f"GET {upstream}/invite/[Filtered]/"
    assert any(s["op"] == "db" and "INSERT" in s["description"] for s in spans)
    # Outbound requests carry no trace headers (baggage would name the transaction).
    assert _Upstream.received_headers and not any(
        {"baggage", "sentry-trace", "traceparent"} & set(headers) for headers in _Upstream.received_headers
    )
    assert_nothing_secret(sentry.payload())


def _owner(info: Any, tenant: Tenant) -> Any:
    from apps.accounts.models import Role, User
    from apps.accounts.services import Actor

    user = User.objects.get(email=info.owner_email)
    return Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email)


def test_websocket_errors_leave_without_the_widget_key_token_or_contact(
    alpha: Any, sentry: Any, monkeypatch: Any
) -> None:
    """Through the ASGI app as served (`syntera.asgi`, wrapped like asgi.py wraps it): a widget
    socket whose hello fails; the event carries the socket's URL and query string."""
    from syntera.asgi import application
    from syntera.observability import with_sentry

    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    with schema_context(alpha.schema):
        tenant = Tenant.objects.get(schema_name=alpha.schema)
        inbox = conversations.inbox_create(actor=_owner(alpha, tenant), name="Socket")

    async def failing_start(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"could not start a conversation for {EMAIL}")

    monkeypatch.setattr("apps.conversations.consumers._session", failing_start)

    async def scenario() -> None:
        comm = WebsocketCommunicator(
            with_sentry(application),
            f"/ws/widget/?key={inbox.widget_key}&token={VISITOR_TOKEN}",
            headers=[(b"host", alpha.host.encode()), (b"origin", f"http://{alpha.host}".encode())],
        )
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "hello", "contact": {"email": EMAIL, "phone": PHONE, "name": MESSAGE_TEXT}})
        assert (await comm.receive_json_from(timeout=3))["code"] == "server_error"
        await comm.disconnect()

    schema = connection.schema_name
    async_to_sync(scenario)()
    connection.set_schema(schema)
    import sentry_sdk

    sentry_sdk.flush(timeout=5)
    (event,) = sentry.events("event")
    assert event["logentry"]["message"] == "widget frame failed"
    assert event["request"]["url"] == f"ws://{alpha.host}/ws/widget/"
    assert event["request"]["query_string"] == "key=[Filtered]&token=[Filtered]"
    payload = sentry.payload()
    assert inbox.widget_key not in payload
    assert_nothing_secret(payload)


def test_celery_task_failures_leave_without_their_arguments(sentry: Any) -> None:
    from syntera.celery import app

    @app.task(name="tests.telemetry.fails")
    def fails(text: str, email: str, conversation_id: int) -> None:
        raise RuntimeError("delivery failed")

    fails.apply(args=[MESSAGE_TEXT, EMAIL, 42])
    import sentry_sdk

    sentry_sdk.flush(timeout=5)
    (event,) = sentry.events("event")
    assert event["exception"]["values"][-1]["value"] == "delivery failed"
    job = event["extra"]["celery-job"]
    assert job == {"task_name": "tests.telemetry.fails", "args": "[Filtered]", "kwargs": "[Filtered]"}
    assert_nothing_secret(sentry.payload())


def test_only_the_reviewed_integrations_are_enabled(sentry: Any) -> None:
    """Django, Celery, logging, httpx, Redis and the standard library's; Channels through the
    ASGI middleware. Nothing switched on just because its library is installed (the OpenAI,
    PyMongo or Hugging Face integrations would record prompts, documents or model inputs)."""
    import sentry_sdk

    enabled = set(sentry_sdk.get_client().integrations)
    assert {"django", "celery", "logging", "httpx", "redis", "stdlib", "threading"} <= enabled
    assert not enabled & {"openai", "pymongo", "huggingface_hub", "langchain", "anthropic", "sqlalchemy"}
    options = sentry_sdk.get_client().options
    assert options["send_default_pii"] is False and options["max_request_body_size"] == "never"


@pytest.mark.parametrize(
    "line",
    [
        f'"GET /invite/{INVITE_TOKEN}/ HTTP/1.1" 200',
        f'"GET /password-reset/MQ/{RESET_TOKEN}/ HTTP/1.1" 200',
        f'"GET /confirm-email/{CONFIRM_TOKEN}/ HTTP/1.1" 302',
        f'"GET /login/link/?token={LOGIN_TOKEN} HTTP/1.1" 302',
        f'"GET /ws/widget/?key=wk_Qa1Ws2Ed3Rf4Tg5Yh6&token={VISITOR_TOKEN} HTTP/1.1" 101',
        f"link sent: https://alpha.example/accept/{INVITE_TOKEN}",
    ],
)
def test_log_lines_lose_their_one_time_tokens(line: str) -> None:
    """The console log handler's filter (access logs included) redacts secret-looking path
    segments and query values on any route, not only today's."""
    from syntera.observability import RedactSecretsFilter

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s", (line,), None)
    assert RedactSecretsFilter().filter(record)
    message = record.getMessage()
    assert "[redacted]" in message
    assert not [name for name, value in SECRETS.items() if value in message]
    assert "wk_Qa1Ws2Ed3Rf4Tg5Yh6" not in message


def test_log_records_lose_the_tokens_of_the_request_they_carry(rf: Any) -> None:
    """django.request's error lines carry the request itself (the JSON formatter prints it)."""
    from syntera.observability import RedactSecretsFilter

    request = rf.get(f"/invite/{INVITE_TOKEN}/?email={EMAIL}")
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s", (request.path,), None
    )
    record.request = request
    assert RedactSecretsFilter().filter(record)
    assert record.getMessage() == "Internal Server Error: /invite/[redacted]/"
    assert INVITE_TOKEN not in str(record.request) and "/invite/[redacted]/" in str(record.request)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # Routes keep their own words and ids: telemetry stays useful.
        ("/dashboard/inbox/123/messages.json", "/dashboard/inbox/123/messages.json"),
        ("/api/v1/conversations/?status=open&page=2", "/api/v1/conversations/?status=open&page=2"),
        (
            "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
            "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        ),
        ("http://alpha.localhost:8000/password-reset/", "http://alpha.localhost:8000/password-reset/"),
        # Secrets, whatever the route is called.
        (f"/verify-email/{INVITE_TOKEN}", "/verify-email/[Filtered]"),
        (f"/r/{RESET_TOKEN}/done", "/r/[Filtered]/done"),
        (f"/contacts/{EMAIL}/", "/contacts/[Filtered]/"),
        ("/call/+14155550199", "/call/[Filtered]"),
        ("/api/v1/contacts/?q=where+is+my+parcel&page=3", "/api/v1/contacts/?q=[Filtered]&page=3"),
        (f"/hook?{INVITE_TOKEN}", "/hook?[Filtered]"),
        (
            f"https://user:{LOGIN_TOKEN}@hooks.example/in#{VISITOR_TOKEN}",
            "https://[Filtered]@hooks.example/in#[Filtered]",
        ),
    ],
)
def test_urls_keep_their_routes_and_lose_their_secrets(url: str, expected: str) -> None:
    from syntera.scrubbing import scrub_url

    assert scrub_url(url) == expected
