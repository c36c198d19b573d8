"""The production settings (`syntera.settings.production`), loaded the way a deployment loads
them: in a fresh process with only its three keys given. Cookies are Secure, HttpOnly and
SameSite, HSTS covers the workspaces' subdomains, plain HTTP is redirected, and every
response carries the Content-Security-Policy (docs/adr/0016-content-security-policy.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from cryptography.fernet import Fernet

FIELD_KEY = Fernet.generate_key().decode()
PROBE = r"""
import json, os
from unittest import mock
import django
django.setup()
from django.conf import settings
from django.test import Client

names = [
    "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SAMESITE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "SECURE_CONTENT_TYPE_NOSNIFF", "X_FRAME_OPTIONS",
    "CSRF_TRUSTED_ORIGINS", "CSP_REPORT_ONLY", "MIDDLEWARE",
]
out = {name: getattr(settings, name) for name in names}
# Through the whole middleware stack as configured (the host lookup answered "public host"
# so that no database is needed): a plain request, and one that came through the TLS proxy.
with mock.patch("apps.tenants.middleware.tenant_for_host", return_value=None):
    client = Client(HTTP_HOST="localhost")
    plain = client.get("/healthz")
    proxied = client.get("/healthz", HTTP_X_FORWARDED_PROTO="https")
out["plain"] = [plain.status_code, plain.get("Location", "")]
out["proxied"] = [proxied.status_code, dict(proxied.headers)]
print(json.dumps(out, default=list))
"""


def _production(**env: str) -> dict[str, Any]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SESSION_", "CSRF_", "CSP_"))}
    environment.update(
        DJANGO_SETTINGS_MODULE="syntera.settings.production",
        SECRET_KEY="x" * 50,
        JWT_SIGNING_KEY="j" * 50,
        FIELD_ENCRYPTION_KEYS=FIELD_KEY,
        **env,
    )
    environment.pop("DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=environment, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_production_cookies_hsts_redirect_and_policy() -> None:
    found = _production()
    assert found["DEBUG"] is False
    # Cookies: over HTTPS only, out of reach of page scripts (the session), not sent on
    # cross-site subrequests.
    assert found["SESSION_COOKIE_SECURE"] is True and found["CSRF_COOKIE_SECURE"] is True
    assert found["SESSION_COOKIE_HTTPONLY"] is True
    assert found["SESSION_COOKIE_SAMESITE"] == "Lax" and found["CSRF_COOKIE_SAMESITE"] == "Lax"
    # HSTS for a year, the workspaces' subdomains included; plain HTTP redirected.
    assert found["SECURE_HSTS_SECONDS"] >= 31_536_000 and found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert found["SECURE_SSL_REDIRECT"] is True
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert found["SECURE_CONTENT_TYPE_NOSNIFF"] is True and found["X_FRAME_OPTIONS"] == "DENY"
    assert not any("*" in origin for origin in found["CSRF_TRUSTED_ORIGINS"])
    # The policy is enforced, by a middleware that sees every response.
    assert found["CSP_REPORT_ONLY"] is False
    middleware = found["MIDDLEWARE"]
    policy = middleware.index("syntera.csp.ContentSecurityPolicyMiddleware")
    assert policy < middleware.index("apps.tenants.middleware.TenantHostMiddleware")  # unknown hosts too

    assert found["plain"] == [301, "https://localhost/healthz"]
    status, headers = found["proxied"]
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    policy = headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "connect-src 'self' wss://localhost",  # the sockets over TLS
        "form-action 'self' https://*.localhost:*",
    ):
        assert directive in policy.split("; "), (directive, policy)
    assert "Content-Security-Policy-Report-Only" not in headers


def test_report_only_is_a_setting_of_its_own() -> None:
    found = _production(CSP_REPORT_ONLY="true", CSP_REPORT_URI="/csp-report/")
    _, headers = found["proxied"]
    assert "Content-Security-Policy" not in headers
    assert headers["Content-Security-Policy-Report-Only"].endswith("; report-uri /csp-report/")
