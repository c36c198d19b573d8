"""Every kind of page under the Content-Security-Policy in a real browser (Debian chromium
driven by Playwright) against the live stack: nothing the policy blocks is on any page, and
what used to be inline still works.

Drives: chromium → uvicorn → the public signup form (its redirect to the new workspace's host
is allowed by form-action) → the dashboard's pages (home, inbox and a conversation with the
staff WebSocket live, knowledge, agents with the performance chart, the test chat streaming an
answer, contacts, inboxes, routing, members, API keys, audit, account) → the widget demo page
with the widget chatting (answer from the real Celery worker) → the API docs (Swagger UI) →
the workspace admin and the operators' admin → confirm dialogs (cancelled, then accepted) and
a select that submits its form. Every page's violations are collected by a
`securitypolicyviolation` listener installed before any page script, and by the console.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from . import test_browser
from .conftest import PASSWORD, LiveStack, mail_body, wait_for
from .test_browser import real_problems

pytestmark = test_browser.pytestmark
browser = test_browser.browser  # the module-scoped chromium

# Runs before any script of every document (Playwright's init scripts are not subject to the
# page's policy): records each violation the browser reports.
WATCH_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push([e.effectiveDirective, e.blockedURI, e.sourceFile + ":" + e.lineNumber, e.sample].join(" "));
}, true);
"""

ARTICLE = (
    "# Shipping\n\nStandard shipping takes 3 to 5 business days within the EU. "
    "Express shipping arrives the next business day when ordered before 2 pm."
)

SETUP = """
import json
from django_tenants.utils import tenant_context
from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.agents import services as agents
from apps.agents.batch import batch_start
from apps.conversations import services as conversations
from apps.crm.services import contact_create
from apps.knowledge import services as knowledge
from apps.tenants.models import Tenant

tenant = Tenant.objects.get(slug=ARGS["slug"])
owner = User.objects.get(email=ARGS["email"])
actor = Actor(tenant=tenant, role=Role.OWNER, user=owner, label=owner.email)
User.objects.create_superuser(email=ARGS["operator"], password=ARGS["password"])
with tenant_context(tenant):
    kb = knowledge.knowledge_base_create(editor=actor, name="Help centre")
    knowledge.source_add_text(editor=actor, kb=kb, title="Shipping", text=ARGS["article"])  # the worker ingests it
    agent = agents.agent_create(editor=actor, name="Ava", knowledge_bases=[kb.pk])
    spare = agents.agent_create(editor=actor, name="Spare agent")
    for decision in ("answered", "answered", "abstained", "escalate"):
        agents.agent_stats_record(
            agent=agent, channel="web", decision=decision, unanswered=False,
            prompt_tokens=10, completion_tokens=5, latency_ms=20,
        )
    inbox = conversations.inbox_create(actor=actor, name="Website", agent_id=agent.pk)
    contact = contact_create(actor=actor, name="Sam Visitor", email="sam@visitor.example")
    conversation, _ = conversations.conversation_start(inbox=inbox, contact=contact)
    conversations.message_post(conversation_id=conversation.pk, role="visitor", text="Where is my parcel?", client_id="v1")
    runs = [batch_start(editor=actor, agent=agent, questions=[{"question": "Do you gift wrap?"}]) for _ in range(3)]
print(json.dumps({
    "kb": kb.pk, "agent": agent.pk, "spare": spare.pk, "inbox": inbox.pk, "contact": contact.pk,
    "conversation": conversation.pk, "runs": [run.pk for run in runs],
}))
"""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    page.problems = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on(
        "console", lambda msg: msg.type == "error" and page.problems.append(f"console error: {msg.text} {msg.location}")
    )
    page.on("requestfailed", lambda req: page.problems.append(f"request failed: {req.url} {req.failure}"))
    try:
        yield page
    finally:
        context.close()


def visit(page: Any, url: str, *, ready: str | None = None) -> None:
    """Open `url`, wait until its scripts have done their work (`ready`, a selector), and
    assert that the policy was sent and nothing broke it."""
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self';" in policy and "style-src 'self';" in policy and "unsafe" not in policy, (url, policy)
    if ready:
        page.wait_for_selector(ready, state="attached")
    page.wait_for_timeout(250)  # deferred scripts and their first fetches
    assert_clean(page, url)


def assert_clean(page: Any, where: str) -> None:
    violations = page.evaluate("window.__csp || []")
    assert violations == [], (where, violations)
    # (A fetch still in flight when the test navigates away is cancelled: ERR_ABORTED.)
    problems = [p for p in real_problems(page) if "net::ERR_ABORTED" not in p]
    assert problems == [], (where, problems)


def test_every_page_runs_under_the_policy_and_inline_behaviour_still_works(live_stack: LiveStack, page: Any) -> None:
    server_log_start = len(live_stack.services[0].log())
    slug = f"csp-{uuid.uuid4().hex[:8]}"
    email = f"owner@{slug}.example"
    operator = f"operator-{slug}@syntera.example"

    # --- signup on the public host: its redirect to the workspace is allowed by form-action --
    visit(page, live_stack.url(None, "/"), ready="#id_company_name")
    page.fill("#id_company_name", "Policy Widgets Ltd")
    page.fill("#id_slug", slug)
    page.fill("#id_full_name", "Pia Policy")
    page.fill("#id_email", email)
    page.click("button:has-text('Create workspace')")
    page.wait_for_url(live_stack.url(None, "/signup/sent/"))
    assert_clean(page, "signup → sent")
    link = re.search(
        rf"http://localhost:{live_stack.port}/signup/confirm/[^/\s]+/", mail_body(live_stack.wait_for_mail(email))
    )
    assert link is not None
    visit(page, link.group(0), ready="#id_password")
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Confirm and create workspace')")
    page.wait_for_url(live_stack.url(slug, "/dashboard/"))
    assert_clean(page, "signup confirmation → dashboard")

    args = {"slug": slug, "email": email, "operator": operator, "password": PASSWORD, "article": ARTICLE}
    ids = json.loads(live_stack.manage("shell", "-c", f"ARGS = {args!r}\n{SETUP}").stdout.strip().splitlines()[-1])
    schema = slug.replace("-", "_")

    def runs_done() -> bool:
        rows = live_stack.sql(f'SELECT status FROM "{schema}".agents_batchtest')
        sources = live_stack.sql(f'SELECT status FROM "{schema}".knowledge_source')
        return [r[0] for r in rows] == ["done"] * 3 and sources == [("ready",)]

    wait_for(runs_done, timeout=180, interval=0.5, what="the worker to ingest the article and run the batch tests")

    def url(path: str) -> str:
        return live_stack.url(slug, path)

    # --- the dashboard, page by page ---------------------------------------------------------
    visit(page, url("/dashboard/"), ready="#role")
    visit(page, url("/dashboard/inbox/"), ready="#inbox-list[data-socket='open']")  # the staff socket is allowed
    visit(page, url(f"/dashboard/inbox/{ids['conversation']}/"), ready="[data-socket='open']")
    visit(page, url("/dashboard/queue/"))
    visit(page, url("/dashboard/knowledge/"))
    visit(page, url(f"/dashboard/knowledge/{ids['kb']}/"), ready="#sources")
    visit(page, url("/dashboard/knowledge/search/?q=shipping"))
    visit(page, url("/dashboard/agents/"))
    visit(page, url(f"/dashboard/agents/{ids['agent']}/"), ready=".perf-chart")
    # The performance bars are SVG rectangles now (no inline style): today's bar has height.
    bar = page.locator(".perf-chart svg.perf-day").last.locator("rect.perf-answered")
    assert bar.bounding_box()["height"] > 10  # type: ignore[index]
    visit(page, url("/dashboard/ai/"))
    visit(page, url("/dashboard/contacts/"))
    visit(page, url(f"/dashboard/contacts/{ids['contact']}/"))
    visit(page, url("/dashboard/inboxes/"))
    visit(page, url(f"/dashboard/inboxes/{ids['inbox']}/"))
    for path in ("/dashboard/teams/", "/dashboard/teams/new/", "/dashboard/intents/", "/dashboard/routing/"):
        visit(page, url(path))
    visit(page, url("/dashboard/sla/"))
    visit(page, url("/dashboard/members/"))
    visit(page, url("/dashboard/api-keys/"))
    visit(page, url("/dashboard/audit/"))
    visit(page, url("/account/"))

    # --- the test chat streams an answer (fetch to the same origin) ----------------------------
    visit(page, url(f"/dashboard/agents/{ids['agent']}/test/"), ready="#chat-input")
    page.fill("#chat-input", "How long does standard shipping take?")
    page.click("#chat-send")
    page.wait_for_selector("#chat-log li.ai[data-state=done]", timeout=90_000)
    assert "3 to 5 business days" in (page.locator("#chat-log li.ai .bubble").first.text_content() or "")
    assert_clean(page, "test chat")

    # --- a select that submits its form (data-autosubmit) --------------------------------------
    first, _, last = ids["runs"]
    visit(page, url(f"/dashboard/agents/{ids['agent']}/test/batch/{last}/"), ready="#batch-compare select")
    page.select_option("#batch-compare select[name=compare]", str(first))
    page.wait_for_url(re.compile(rf"\?compare={first}$"))
    assert page.locator("#batch-changes").is_visible()
    assert_clean(page, "batch compare")

    # --- confirm dialogs (data-confirm): cancelled, nothing happens; accepted, it is done ------
    spare_url = url(f"/dashboard/agents/{ids['spare']}/")
    visit(page, spare_url, ready="#agent-delete-form")
    asked: list[str] = []

    def answer(accept: bool) -> Any:
        def handle(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return handle

    page.once("dialog", answer(False))
    page.click("#agent-delete-form button[type=submit]")
    page.wait_for_timeout(500)
    assert asked == ["Delete this agent and its prompt versions?"] and page.url == spare_url
    assert live_stack.sql(f'SELECT count(*) FROM "{schema}".agents_agent WHERE id = %s', (ids["spare"],)) == [(1,)]
    page.once("dialog", answer(True))
    page.click("#agent-delete-form button[type=submit]")
    page.wait_for_url(url("/dashboard/agents/"))
    assert len(asked) == 2
    assert live_stack.sql(f'SELECT count(*) FROM "{schema}".agents_agent WHERE id = %s', (ids["spare"],)) == [(0,)]
    assert_clean(page, "confirm dialogs")

    # --- the widget demo page: its script is a file; the widget styles itself and chats -------
    visit(page, url(f"/dashboard/inboxes/{ids['inbox']}/demo/"), ready="#demo-open:not([disabled])")
    page.click("#copy-snippet")  # answered by the page's script (the clipboard answers later)
    page.wait_for_selector("#copy-status:not(:empty)")
    assert page.text_content("#copy-status") in ("Copied.", "Press Ctrl+C to copy.")
    page.click("#demo-open")  # the page's own script drives the widget
    launcher = page.locator("#syn-launcher")
    assert launcher.evaluate("el => getComputedStyle(el).position") == "fixed"  # its stylesheet applies
    page.fill("#syn-input", "How long does standard shipping take?")
    page.press("#syn-input", "Enter")
    page.wait_for_selector("#syn-log li.msg.visitor[data-seq='1'][data-state='sent']")
    reply = page.locator("#syn-log li.msg.ai[data-seq]").first
    reply.wait_for(timeout=90_000)
    assert "3 to 5 business days" in (reply.locator(".bubble").text_content() or "")
    assert_clean(page, "widget demo")

    # --- API docs: Swagger UI, its start-up script served as a file ---------------------------
    visit(page, url("/api/docs/"), ready=".swagger-ui .info .title")
    assert "Syntera API" in (page.text_content(".swagger-ui .info .title") or "")

    # --- the workspace admin -------------------------------------------------------------------
    visit(page, url("/admin/"))
    visit(page, url("/admin/conversations/conversation/"))
    visit(page, url(f"/admin/conversations/conversation/{ids['conversation']}/change/"), ready="#transcript")
    assert page.locator("#transcript td.text").first.evaluate("el => getComputedStyle(el).whiteSpace") == "pre-wrap"

    # --- the operators' admin on the public host ---------------------------------------------
    visit(page, live_stack.url(None, "/admin/login/"), ready="#id_username")
    page.fill("#id_username", operator)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(live_stack.url(None, "/admin/"))
    assert_clean(page, "operator admin login")
    for path in ("/admin/tenants/tenant/", "/admin/tenants/tenant/add/", "/admin/accounts/user/"):
        visit(page, live_stack.url(None, path))
    visit(page, live_stack.url(None, "/api/docs/"), ready=".swagger-ui .info .title")

    # Nothing was reported to the server either (CSP_REPORT_URI points the browser at it).
    assert "content security policy violation" not in live_stack.services[0].log()[server_log_start:]
