"""One error type and one error shape for every edge.

API errors are `{"error": {"code", "detail", "fields"}}` with the right status (see
docs/api.md). Services raise `ApplicationError`; the DRF exception handler, the rate-limit
middleware and the JSON 404/500 handlers all render the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.crypto import salted_hmac
from django.views.decorators.csrf import csrf_exempt
from django_ratelimit.core import get_usage
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A failure the caller can understand and act on."""

    def __init__(
        self,
        detail: str,
        *,
        code: str = "invalid",
        status_code: int = 400,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.status_code = status_code
        self.fields = fields or {}
        self.headers = headers or {}


class RateLimited(ApplicationError):
    def __init__(self, retry_after: int) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(
            f"Too many requests. Try again in {retry_after} seconds.",
            code="rate_limited",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


def error_body(code: str, detail: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "detail": detail, "fields": fields or {}}}


def error_response(exc: ApplicationError) -> JsonResponse:
    response = JsonResponse(error_body(exc.code, exc.detail, exc.fields), status=exc.status_code)
    for key, value in exc.headers.items():
        response[key] = value
    return response


def account_key(account: str) -> str:
    """The rate-limit key of an account (an email or a user id): a keyed hash, so the cache
    never holds an address in clear, and the same account however it is typed."""
    return salted_hmac("syntera.ratelimit.account", account.strip().lower()[:254]).hexdigest()


def check_rate(request: HttpRequest, *, group: str, rate: str, key: str = "ip", account: object = None) -> None:
    """Count one hit against `group`; raise `RateLimited` (429 + Retry-After) over `rate`.

    The counter is per client address (`key="ip"`), or per `account` when one is given: the
    email or user id a credential is tried for, whether or not such an account exists (the
    answer is the same either way). A missing or empty account counts nothing.

    Counters live in the public cache namespace, so one client address (or account) gets one
    allowance across every tenant host. A cache outage lets the request through rather than
    locking everyone out; it is logged.
    """
    from django_tenants.utils import schema_context

    counted: Any = key
    if account is not None:
        if not isinstance(account, str) or not account.strip():
            return
        digest = account_key(account)

        def counted(_group: str, _request: HttpRequest) -> str:
            return digest

    try:
        with schema_context("public"):
            usage = get_usage(request, group=group, key=counted, rate=rate, increment=True)
    except Exception:  # the cache is down: fail open, loudly
        logger.warning("rate limit cache unavailable", exc_info=True)
        return
    if usage and usage["should_limit"] and usage["limit"]:
        raise RateLimited(usage["time_left"])


def check_password_rate(request: HttpRequest, *, account: object) -> None:
    """A password is tried for `account` (a login, a password change, an invitation or a
    signup that proves an existing account): one allowance per client address
    (`RATELIMIT_LOGIN`) and one per account (`RATELIMIT_LOGIN_ACCOUNT`), shared by every such
    form and endpoint on every host."""
    check_rate(request, group="login", rate=settings.RATELIMIT_LOGIN)
    check_account_rate(request, account=account)


def check_account_rate(request: HttpRequest, *, account: object) -> None:
    """The per-account half of `check_password_rate`, for forms limited per address already."""
    check_rate(request, group="login-account", rate=settings.RATELIMIT_LOGIN_ACCOUNT, account=account)


def check_password_reset_rate(request: HttpRequest, *, account: object) -> None:
    """A password-reset email is asked for, or a reset link tried, for `account` (an email,
    or the account id a link carries): per address and per account, so a mailbox cannot be
    flooded and a link cannot be guessed at from many addresses."""
    check_rate(request, group="password-reset", rate=settings.RATELIMIT_PASSWORD_RESET)
    check_rate(request, group="password-reset-account", rate=settings.RATELIMIT_PASSWORD_RESET_ACCOUNT, account=account)


def flatten_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub, msgs in flatten_errors(value).items():
                    out[f"{key}.{sub}"] = msgs
            elif isinstance(value, list):
                out[str(key)] = [str(v) for v in value if not isinstance(v, dict | list)] or [str(value)]
            else:
                out[str(key)] = [str(value)]
        return out
    return {}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler rendering every error in the brief's shape."""
    from rest_framework.views import exception_handler  # late: rest_framework.views imports our auth classes

    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.detail, exc.fields), status=exc.status_code, headers=exc.headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        return Response(
            error_body("server_error", "Something went wrong on our side."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail) if isinstance(exc.detail, dict) else {}
        if isinstance(exc.detail, list):
            fields = {"non_field_errors": [str(d) for d in exc.detail]}
        response.data = error_body("invalid", "The request is not valid.", fields)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        response.data = error_body(str(code), str(detail))
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait:
            response["Retry-After"] = str(int(wait))
    return response


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


class RateLimitMiddleware:
    """Renders `ApplicationError` raised by page views (rate limits included)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, ApplicationError):
            return None
        if _wants_json(request):
            return error_response(exc)
        response = render(request, "error.html", {"code": exc.code, "detail": exc.detail}, status=exc.status_code)
        for key, value in exc.headers.items():
            response[key] = value
        return response


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return render(request, "error.html", {"code": "not_found", "detail": "Page not found."}, status=404)


@csrf_exempt
def api_not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    detail = "The form expired or came from another site. Reload the page and try again."
    if _wants_json(request):
        return JsonResponse(error_body("csrf_failed", detail), status=403)
    return render(request, "error.html", {"code": "csrf_failed", "detail": detail}, status=403)


def handler500(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
    return HttpResponse("Something went wrong on our side.", status=500, content_type="text/plain")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)
    return render(request, "error.html", {"code": "permission_denied", "detail": "Permission denied."}, status=403)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("bad_request", "Bad request."), status=400)
    return HttpResponse("Bad request.", status=400, content_type="text/plain")


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "detail", "fields"],
            "properties": {
                "code": {"type": "string"},
                "detail": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            },
        }
    },
}

_ERROR_STATUSES = {
    "400": "Invalid input",
    "401": "Missing or invalid credentials",
    "403": "Not allowed (role, scope or tenant)",
    "404": "Not found",
    "405": "Method not allowed",
    "406": "Not acceptable",
    "409": "Conflicts with the current state (e.g. another person owns the conversation)",
    "415": "Unsupported media type",
    "429": "Rate limited; see Retry-After",
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular hook: document the shared error shape on every operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = _ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in _ERROR_STATUSES.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
    return result


__all__ = [
    "ApplicationError",
    "RateLimited",
    "check_account_rate",
    "check_password_rate",
    "check_password_reset_rate",
    "check_rate",
    "settings",
]
