"""Request context for logs, Prometheus metrics, health/readiness and Sentry scrubbing.

See docs/subsystems/operations.md.
"""

from __future__ import annotations

import contextvars
import hmac
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from syntera.scrubbing import scrub_breadcrumb, scrub_event, scrub_urls

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
tenant_var: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="-")
user_var: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="-")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ContextFilter(logging.Filter):
    """Adds request id, tenant schema and user id to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.tenant = tenant_var.get()
        record.user = user_var.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Keeps one-time tokens (invitation, reset, login and confirmation links, widget keys and
    visitor tokens) out of every log line, access logs included: secret-looking path segments
    and query values of any URL or path in the line are redacted (syntera/scrubbing.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = scrub_urls(message, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        request = getattr(record, "request", None)
        if request is not None:  # django.request's lines carry the request (path and query)
            record.request = scrub_urls(str(request), "[redacted]")
        return True


class RequestContextMiddleware:
    """Assigns a request id (honouring a sane incoming `X-Request-ID`) and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        # Set, not reset: Django logs the response (e.g. "Not Found") after the middleware
        # chain returns, and that line must still carry the request's context. Every
        # request overwrites all three at its start.
        request_id_var.set(request_id)
        tenant_var.set("-")
        user_var.set("-")
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


HTTP_REQUESTS = Counter("syntera_http_requests_total", "HTTP requests served", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "syntera_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class MetricsMiddleware:
    """Counts requests by route pattern (never the raw path: bounded label cardinality)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match and match.route else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        return response


def _client_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    auth = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(auth.encode(), f"Bearer {token}".encode()):
        return True
    if auth:  # a wrong token: guesses are limited per client address, like bad API keys
        from syntera.errors import check_rate

        check_rate(request, group="metrics-token-failures", rate=settings.RATELIMIT_API_AUTH_FAILURES)
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _client_allowed(request):
        return JsonResponse(
            {"error": {"code": "permission_denied", "detail": "Metrics need the metrics token.", "fields": {}}},
            status=403,
        )
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def _check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=1) as conn:
        conn.ensure_connection(max_retries=1, timeout=1)


READINESS_CHECKS: dict[str, Callable[[], None]] = {
    "postgres": _check_postgres,
    "redis": _check_redis,
    "celery_broker": _check_broker,
}


def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: every dependency answers. 503 names each one that does not."""
    components: dict[str, Any] = {}
    failing: list[str] = []
    for name, check in READINESS_CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            components[name] = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}
        except Exception as exc:  # any failure means not ready
            components[name] = {"status": "down", "error": type(exc).__name__}
            failing.append(name)
    body: dict[str, Any] = {"status": "ok" if not failing else "unavailable", "components": components}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)


# --- Sentry -----------------------------------------------------------------------------
# What may leave is decided in syntera/scrubbing.py; these are the SDK's hooks.


def sentry_before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Errors and messages: request bodies, cookies and the environment dropped; URLs, query
    strings, headers, breadcrumbs, exception messages, frame variables, log entries, extras
    and contexts scrubbed (tokens, emails, phone numbers, free text)."""
    return scrub_event(event)


def sentry_before_send_transaction(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Transactions: the same, plus the transaction's name (a raw path when no route matched)
    and every span's description and data (SQL literals, URLs, parameters)."""
    return scrub_event(event)


def sentry_before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Breadcrumbs as they are recorded: HTTP (URL, query), log (message rebuilt from scrubbed
    arguments, extras), SQL (literals)."""
    return scrub_breadcrumb(crumb, hint)


def sentry_integrations() -> list[Any]:
    """The integrations, listed on purpose: with auto-enabling off, an installed library (the
    OpenAI, PyMongo or Hugging Face SDKs) never starts recording on its own. Besides these, the
    SDK's defaults run (logging, stdlib HTTP, threading, excepthook, dedupe, atexit, modules,
    argv); Channels is covered by `with_sentry` around the ASGI application."""
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.httpx import HttpxIntegration
    from sentry_sdk.integrations.redis import RedisIntegration

    return [DjangoIntegration(), CeleryIntegration(), RedisIntegration(), HttpxIntegration()]


def init_sentry(transport: Any = None) -> None:
    """Start the SDK when SENTRY_DSN is set. `transport` replaces the HTTP transport (tests)."""
    if not settings.SENTRY_DSN:
        return
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.SENTRY_DSN,
        environment=settings.SENTRY_ENVIRONMENT,
        integrations=sentry_integrations(),
        auto_enabling_integrations=False,
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        send_default_pii=False,
        before_send=sentry_before_send,  # type: ignore[arg-type]
        before_send_transaction=sentry_before_send_transaction,  # type: ignore[arg-type]
        before_breadcrumb=sentry_before_breadcrumb,  # type: ignore[arg-type]
        max_request_body_size="never",
        include_source_context=False,  # source lines hold string literals; the release has the code
        # No sentry-trace/baggage headers on outbound requests: they go to customers' webhooks,
        # crawled sites and model servers, and baggage carries the transaction's name.
        trace_propagation_targets=[],
        transport=transport,
    )


def with_sentry(application: Any) -> Any:
    """The ASGI application wrapped so WebSocket errors and transactions reach Sentry (through
    the same hooks), when SENTRY_DSN is set."""
    if not settings.SENTRY_DSN:
        return application
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

    return SentryAsgiMiddleware(application)
