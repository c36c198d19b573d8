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


# --- Content-Security-Policy --------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|<[a-z][^>]*\sstyle\s*=", re.I)
INLINE_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def _directives(response: Any) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in header.split("; ")}


def assert_no_inline_code(page: str, url: str) -> None:
    for name, pattern in (
        ("inline script", INLINE_SCRIPT),
        ("inline style", INLINE_STYLE),
        ("inline event handler", INLINE_HANDLER),
        ("javascript: URL", JS_URL),
    ):
        found = pattern.search(page)
        assert not found, f"{url}: {name} {page[max(0, found.start() - 80) : found.end() + 80]!r}"


def _workspace_pages(info: Any) -> list[str]:
    """Every staff page of the workspace, with ids of its canary rows."""
    from django_tenants.utils import schema_context

    from apps.agents.models import Agent
    from apps.conversations.models import Conversation, Inbox
    from apps.crm.models import Contact
    from apps.knowledge.models import KnowledgeBase

    with schema_context(info.schema):
        agent = Agent.objects.first().pk
        conversation = Conversation.objects.first().pk
        inbox = Inbox.objects.first().pk
        contact = Contact.objects.first().pk
        kb = KnowledgeBase.objects.first().pk
    return [
        "/dashboard/",
        "/dashboard/inbox/",
        f"/dashboard/inbox/{conversation}/",
        "/dashboard/queue/",
        "/dashboard/knowledge/",
        f"/dashboard/knowledge/{kb}/",
        "/dashboard/knowledge/search/?q=canary",
        "/dashboard/agents/",
        f"/dashboard/agents/{agent}/",
        f"/dashboard/agents/{agent}/test/",
        "/dashboard/ai/",
        "/dashboard/contacts/",
        f"/dashboard/contacts/{contact}/",
        "/dashboard/inboxes/",
        f"/dashboard/inboxes/{inbox}/",
        f"/dashboard/inboxes/{inbox}/demo/",
        "/dashboard/teams/",
        "/dashboard/teams/new/",
        "/dashboard/intents/",
        "/dashboard/routing/",
        "/dashboard/sla/",
        "/dashboard/members/",
        "/dashboard/api-keys/",
        "/dashboard/audit/",
        "/account/",
        "/api/docs/",
        "/admin/",
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation}/change/",
        "/admin/audit/auditevent/",
    ]


def test_every_workspace_page_carries_the_policy_and_no_inline_code(alpha: Any, login: Any) -> None:
    owner = login(alpha, alpha.owner_email)
    for url in _workspace_pages(alpha):
        response = owner.get(url)
        assert response.status_code == 200, url
        directives = _directives(response)
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", url
        assert directives["object-src"] == "'none'" and directives["base-uri"] == "'self'", url
        assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'self'", url
        assert directives["connect-src"] == f"'self' ws://{alpha.host}", url
        assert_no_inline_code(response.content.decode(), url)
    # The Swagger UI's start-up script is a file of its own, allowed by script-src 'self'.
    script = owner.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_public_pages_carry_the_policy_and_their_forms_may_land_on_a_workspace(client_for: Any) -> None:
    from apps.accounts.models import User

    User.objects.create_superuser(email="op@syntera.example", password="operator-pass-1234")
    public = client_for("localhost:8000")
    for url in ("/", "/login/", "/api/docs/", "/admin/login/"):
        response = public.get(url)
        assert response.status_code == 200, url
        # Signup and "find your workspace" redirect to the workspace's host: form-action
        # governs that redirect too.
        assert _directives(response)["form-action"] == "'self' http://*.localhost:*", url
        assert_no_inline_code(response.content.decode(), url)
    assert public.login(email="op@syntera.example", password="operator-pass-1234")
    for url in ("/admin/", "/admin/tenants/tenant/", "/admin/tenants/tenant/add/", "/admin/accounts/user/"):
        response = public.get(url)
        assert response.status_code == 200, url
        assert_no_inline_code(response.content.decode(), url)


def test_error_pages_and_api_answers_carry_the_policy_too(alpha: Any, client_for: Any, api_for: Any) -> None:
    assert "script-src 'self'" in client_for(alpha.host).get("/no-such-page/")["Content-Security-Policy"]
    assert "script-src 'self'" in client_for("nowhere.localhost").get("/")["Content-Security-Policy"]
    assert "default-src 'self'" in api_for(alpha.host, alpha.api_key).get("/api/v1/me/")["Content-Security-Policy"]


def test_report_only_switch_and_report_uri(alpha: Any, client_for: Any, settings: Any) -> None:
    settings.CSP_REPORT_ONLY = True
    settings.CSP_REPORT_URI = "/csp-report/"
    response = client_for(alpha.host).get("/login/")
    assert "Content-Security-Policy" not in response
    policy = response["Content-Security-Policy-Report-Only"]
    assert "script-src 'self'" in policy and policy.endswith("; report-uri /csp-report/")


def test_violation_reports_are_logged_without_secrets_and_bad_ones_refused(
    alpha: Any, client_for: Any, caplog: Any, settings: Any
) -> None:
    import json

    client = client_for(alpha.host)
    token = "Zq8vR2mXc4TnP0wLs7YbK1eJh5GdA3fUo9iWkQyNxVt"
    legacy = {
        "csp-report": {
            "document-uri": f"http://{alpha.host}/invite/{token}/?email=jane@example.com",
            "violated-directive": "script-src-elem",
            "effective-directive": "script-src-elem",
            "blocked-uri": "inline",
            "line-number": 12,
        }
    }
    with caplog.at_level("WARNING", logger="syntera.csp"):
        answer = client.post("/csp-report/", json.dumps(legacy), content_type="application/csp-report")
        assert answer.status_code == 204
        modern = [
            {
                "type": "csp-violation",
                "body": {
                    "documentURL": f"http://{alpha.host}/dashboard/",
                    "effectiveDirective": "style-src-attr",
                    "blockedURL": "inline",
                },
            }
        ]
        assert (
            client.post("/csp-report/", json.dumps(modern), content_type="application/reports+json").status_code == 204
        )
    logged = [r.getMessage() for r in caplog.records if r.name == "syntera.csp"]
    assert logged == [
        f"content security policy violation: script-src-elem blocked inline on http://{alpha.host}/invite/[Filtered]/?email=[Filtered] (:12)",
        f"content security policy violation: style-src-attr blocked inline on http://{alpha.host}/dashboard/ (:)",
    ]
    assert client.post("/csp-report/", "{not json", content_type="application/csp-report").status_code == 400
    assert client.post("/csp-report/", "x" * 20_000, content_type="application/csp-report").status_code == 413
    assert client.get("/csp-report/").status_code == 405
    settings.RATELIMIT_PUBLIC = "2/m"
    statuses = [
        client.post("/csp-report/", "[]", content_type="application/reports+json", REMOTE_ADDR="10.9.8.7").status_code
        for _ in range(3)
    ]
    assert statuses == [204, 204, 429]
