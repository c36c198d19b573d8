"""Browser-facing defences of the HTML pages: which origins may post to a workspace's forms,
and the Content-Security-Policy every page carries (docs/adr/0016-content-security-policy.md).

Whether a browser actually runs the pages without a CSP violation is shown in
tests/integration/test_browser_csp.py."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client

FORM_REFUSED = b"came from another site"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _csrf_client(host: str) -> Client:
    return Client(HTTP_HOST=host, enforce_csrf_checks=True)


def test_a_page_of_another_workspace_cannot_post_to_this_ones_forms(alpha: Any, beta: Any) -> None:
    """Every workspace lives under the same parent domain, so a page on beta's host is same-site
    for alpha's host; with the right token in hand (a cookie set for the parent domain, say), only
    the Origin tells the two apart. A form post must come from the workspace's own origin."""
    served = f"{alpha.host}:8000"
    client = _csrf_client(served)
    page = client.get("/login/")
    token = CSRF_RE.search(page.content.decode())
    assert token, "the login form carries a CSRF token"
    form = {"email": alpha.owner_email, "password": "wrong password", "csrfmiddlewaretoken": token.group(1)}
    for origin in (f"http://{beta.host}:8000", "http://localhost:8000", f"https://{served}", "http://evil.example"):
        refused = client.post("/login/", form, HTTP_ORIGIN=origin)
        assert refused.status_code == 403 and FORM_REFUSED in refused.content, origin
    own = client.post("/login/", form, HTTP_ORIGIN=f"http://{served}")
    assert own.status_code == 400 and FORM_REFUSED not in own.content  # the form's own answer: wrong password
