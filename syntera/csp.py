"""Content-Security-Policy on every response, and a receiver for violation reports.

Django 5.2 has no CSP of its own; this is the one policy of docs/adr/0016-content-security-policy.md.
No inline script and no inline style: pages load first-party files from `static/` (behaviour
such as confirm dialogs is declared with `data-` attributes, see static/js/forms.js). No
page needs a nonce.
`CSP_REPORT_ONLY` sends the same policy as `Content-Security-Policy-Report-Only`, for a
deployment that wants to watch before it enforces; `CSP_REPORT_URI` names where browsers
send violations (`/csp-report/` is the built-in receiver, which logs them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from syntera.errors import check_rate
from syntera.scrubbing import scrub_url

logger = logging.getLogger(__name__)

HEADER = "Content-Security-Policy"
REPORT_ONLY_HEADER = "Content-Security-Policy-Report-Only"
MAX_REPORT_BYTES = 16 * 1024


def _host(request: HttpRequest) -> str | None:
    try:
        return request.get_host()
    except DisallowedHost:  # answered 400 already; the policy just names no socket origin
        return None


def _tenant_pages(request: HttpRequest) -> str:
    """Where the public host's forms may land: signup and "find your workspace" redirect to
    a workspace's host (form-action also governs the redirect that follows a submission).
    Any port: the redirect keeps the one the visitor used."""
    if getattr(request, "tenant", None) is not None or not settings.TENANT_BASE_DOMAIN:
        return ""
    return f" {request.scheme}://*.{settings.TENANT_BASE_DOMAIN}:*"


def policy_for(request: HttpRequest) -> str:
    """The policy of one response. `connect-src` names this host's WebSocket origin (the
    staff and widget sockets) besides 'self', for browsers that do not count ws: as 'self'."""
    host = _host(request)
    socket = f" {'wss' if request.is_secure() else 'ws'}://{host}" if host else ""
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src 'self'{socket}",
        "object-src 'none'",
        "base-uri 'self'",
        f"form-action 'self'{_tenant_pages(request)}",
        "frame-ancestors 'none'",
    ]
    if settings.CSP_REPORT_URI:
        directives.append(f"report-uri {settings.CSP_REPORT_URI}")
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    """Adds the policy to every response that does not carry one already."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        header = REPORT_ONLY_HEADER if settings.CSP_REPORT_ONLY else HEADER
        if header not in response:
            response[header] = policy_for(request)
        return response


@csrf_exempt
@require_POST
def csp_report(request: HttpRequest) -> HttpResponse:
    """Log one violation report (the legacy `application/csp-report` body or the Reporting
    API's list). URLs are logged without their secrets; anything else is ignored."""
    check_rate(request, group="csp-report", rate=settings.RATELIMIT_PUBLIC)
    if len(request.body) > MAX_REPORT_BYTES:
        return HttpResponse(status=413)
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, RecursionError):
        return HttpResponse(status=400)
    reports = payload if isinstance(payload, list) else [payload]
    for report in reports[:20]:
        if not isinstance(report, dict):
            continue
        body = report.get("csp-report") or report.get("body")
        if not isinstance(body, dict):
            continue

        def field(*names: str, body: dict[str, object] = body) -> str:
            return next((str(body[n])[:300] for n in names if body.get(n)), "")

        logger.warning(
            "content security policy violation: %s blocked %s on %s (%s:%s)",
            field("effective-directive", "effectiveDirective", "violated-directive"),
            scrub_url(field("blocked-uri", "blockedURL")),
            scrub_url(field("document-uri", "documentURL")),
            scrub_url(field("source-file", "sourceFile")),
            field("line-number", "lineNumber"),
        )
    return HttpResponse(status=204)
