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


_SECRET_PATHS = re.compile(r"(/invite/|/password-reset/[^/\s]+/|[?&](?:token|key)=)[^/\s&\"']+")


class RedactSecretsFilter(logging.Filter):
    """Keeps one-time tokens (invitation links, reset links, login links) out of every log
    line, access logs included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_PATHS.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
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

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE_RE = re.compile(r"(?<![\w])\+?\d[\d\s().-]{7,}\d(?![\w])")
_TOKEN_RE = re.compile(
    r"(sk_(?:live|test)_[A-Za-z0-9_]+|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|Bearer\s+\S+)"
)
_SECRET_KEYS = re.compile(
    r"(pass|secret|token|key|auth|cookie|session|csrf|signature|text|body|message|content|email|phone)",
    re.IGNORECASE,
)
FILTERED = "[Filtered]"


def scrub_text(value: str) -> str:
    value = _TOKEN_RE.sub(FILTERED, value)
    value = _EMAIL_RE.sub(FILTERED, value)
    return _PHONE_RE.sub(FILTERED, value)


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 12:
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: (FILTERED if isinstance(k, str) and _SECRET_KEYS.search(k) else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def sentry_before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Remove emails, phone numbers, tokens and message bodies before an event leaves.

    Request bodies and cookies are dropped whole; every other string is pattern-scrubbed and
    values under sensitive keys (text, body, message, token, email, ...) are replaced.
    """
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        if "headers" in request:
            request["headers"] = _scrub(request["headers"])
        if "query_string" in request:
            request["query_string"] = FILTERED if request["query_string"] else ""
    if "user" in event:
        event["user"] = {"id": event["user"].get("id")} if isinstance(event["user"], dict) else {}
    for key in ("exception", "breadcrumbs", "extra", "contexts", "logentry", "message", "tags"):
        if key in event:
            event[key] = _scrub(event[key])
    return event


def init_sentry() -> None:
    if not settings.SENTRY_DSN:
        return
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=settings.SENTRY_DSN,
        environment=settings.SENTRY_ENVIRONMENT,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        send_default_pii=False,
        before_send=sentry_before_send,  # type: ignore[arg-type]
        max_request_body_size="never",
    )
