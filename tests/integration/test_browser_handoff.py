"""A visitor asks for a person and gets one: the handoff end to end, in a real browser (Debian
chromium driven by Playwright) on each side, against the live stack.

Drives: a customer's page on another origin (a local `http.server`) with the widget from the
tenant's host → the visitor's question, answered by the offline responder from an article of
the customer's site (the real Celery worker) → the visitor asks for a human → the runtime's
escalation trigger → routing puts the conversation in the queue and tells the visitor their
place ("You're number 1 in the queue…"), with the AI's handoff summary as a note for staff →
a staff member (role agent, invited) in the dashboard: the inbox lists the conversation and
its page shows the summary → the conversation becomes theirs → their reply reaches the visitor
live, signed with their name, with the "joined" status → staff resolve it from the page → the
widget asks for a rating at once → 4 stars and a comment → the rating read back through the
REST API with an API key, and on the staff page.

Two ways to the staff member: online when the visitor asks (the inbox's staff socket marks
them online and routing assigns the conversation to them), or nobody online (it waits in the
queue, the widget keeps saying so, and the staff member logs in later and presses "Take
over"). Screenshots of both pages go to /tmp when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import test_browser
from .conftest import PASSWORD, LiveStack
from .test_browser import SCREENSHOT_DIR
from .test_browser_widget import customer_site, open_page, transcript

pytestmark = test_browser.pytestmark
browser = test_browser.browser  # the module-scoped chromium

ARTICLE_HTML = """<!doctype html>
<html><head><title>Shipping times</title></head>
<body><main><h1>Shipping</h1>
<p>Standard shipping takes 3 to 5 business days within the EU.
Express shipping arrives the next business day when ordered before 2 pm.</p>
</main></body></html>
"""
QUESTION = "How long does standard shipping take?"
ASK_FOR_A_HUMAN = "Thanks. Could I talk to a real person, please?"
STAFF_NAME = "Sam Rivera"
REPLY = "Hi, Sam here. Your parcel left our warehouse this morning."
COMMENT = "Sam sorted it <quickly>"

# Runs in `manage.py shell` against the live database. The article is fetched from the
# customer's site on 127.0.0.1, which the live worker refuses (its KNOWLEDGE_URL_ALLOWLIST is
# empty), so this one source is ingested here, in-process, with that address allowed. The
# staff member joins the workspace through an invitation, as people do.
SETUP = """
import json
from django.test import override_settings
from django_tenants.utils import tenant_context
from apps.accounts.models import Role, User
from apps.accounts.services import Actor, invitation_accept, invitation_create
from apps.agents.services import agent_create
from apps.conversations.services import inbox_create
from apps.knowledge import services as knowledge
from apps.knowledge.models import Source
from apps.tenants.models import Tenant

tenant = Tenant.objects.get(slug=ARGS["slug"])
owner = User.objects.get(email=ARGS["owner"])
actor = Actor(tenant=tenant, role=Role.OWNER, user=owner, label=owner.email)
_, token = invitation_create(actor=actor, email=ARGS["staff"], role=Role.AGENT)
invitation_accept(token=token, tenant=tenant, password=ARGS["password"], full_name=ARGS["staff_name"])
with tenant_context(tenant), override_settings(KNOWLEDGE_URL_ALLOWLIST=["127.0.0.1/32"]):
    kb = knowledge.knowledge_base_create(editor=actor, name="Help centre")
    source = Source.objects.create(knowledge_base=kb, type="url", title="Shipping times", url=ARGS["article"], run=1)
    outcome = knowledge.ingest_source(source_id=source.pk, run=1)
    assert outcome == "ready", (outcome, Source.objects.get(pk=source.pk).error)
    agent = agent_create(editor=actor, name="Ava", knowledge_bases=[kb.pk], variables={"company_name": "Shop"})
    inbox = inbox_create(actor=actor, name="Website", agent_id=agent.pk, allowed_origins=[ARGS["origin"]])
print(json.dumps({"key": inbox.widget_key}))
"""

CUSTOMER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Customer shop</title><link rel="icon" href="data:,">
<script>window.addEventListener("syntera:ready", function (e) {{ window.__ready = e.detail; }});</script>
</head><body><h1>Customer shop</h1>
<script src="{script}" data-key="{key}" async></script>
</body></html>
"""


@dataclass
class Shop:
    stack: LiveStack
    slug: str
    owner: str
    staff: str
    page_url: str

    @property
    def schema(self) -> str:
        return self.slug.replace("-", "_")


@pytest.fixture(scope="module")
def shop(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("handoff-site")
    (root / "shipping.html").write_text(ARTICLE_HTML)
    with customer_site(root) as port:
        slug = f"hand-{uuid.uuid4().hex[:8]}"
        owner, staff = f"owner@{slug}.example", f"sam@{slug}.example"
        live_stack.create_tenant(slug, owner)
        origin = f"http://127.0.0.1:{port}"
        args = {
            "slug": slug,
            "owner": owner,
            "staff": staff,
            "staff_name": STAFF_NAME,
            "password": PASSWORD,
            "article": f"{origin}/shipping.html",
            "origin": origin,
        }
        output = live_stack.manage("shell", "-c", f"ARGS = {args!r}\n{SETUP}").stdout
        key = json.loads(output.strip().splitlines()[-1])["key"]
        script = live_stack.url(slug, "/static/widget/syntera.js")
        (root / "index.html").write_text(CUSTOMER_PAGE.format(script=script, key=key))
        yield Shop(stack=live_stack, slug=slug, owner=owner, staff=staff, page_url=f"{origin}/index.html")


def _watch(page: Any) -> Any:
    page.problems = []
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(f"console error: {msg.text}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and page.problems.append(f"HTTP {r.status}: {r.request.method} {r.url}"),
    )
    return page


@contextlib.contextmanager
def screenshots_on_failure(name: str, pages: dict[str, Any]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        for label, page in pages.items():
            with contextlib.suppress(Exception):
                path = Path(SCREENSHOT_DIR) / f"syntera-failure-{name}-{label}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"screenshot: {path}")
        raise


def _staff_logs_in(context: Any, shop: Shop) -> Any:
    """The staff member on the inbox page, its live socket open (which marks them online)."""
    staff = _watch(context.new_page())
    staff.goto(shop.stack.url(shop.slug, "/login/?next=/dashboard/inbox/"))
    staff.fill("#id_email", shop.staff)
    staff.fill("#id_password", PASSWORD)
    staff.click("button:has-text('Log in')")
    staff.wait_for_url(shop.stack.url(shop.slug, "/dashboard/inbox/"))
    staff.wait_for_selector('#inbox-list[data-socket="open"]')
    return staff


def _visitor_asks_for_a_person(visitor: Any, shop: Shop, ask: str) -> int:
    """A question the help centre answers, then `ask`: the AI hands over and the visitor is
    told their place in the queue. Returns the conversation's id."""
    visitor.locator("#syn-launcher").click()
    visitor.fill("#syn-input", QUESTION)
    visitor.press("#syn-input", "Enter")
    answer = visitor.locator("#syn-log li.msg.ai[data-seq]").first
    answer.wait_for(timeout=90_000)
    assert "3 to 5 business days" in answer.locator(".bubble").text_content()
    assert answer.locator(".sources a").first.text_content() == "Shipping times"

    visitor.fill("#syn-input", ask)
    visitor.press("#syn-input", "Enter")
    queued = visitor.locator("#syn-log li.msg.system[data-seq]", has_text="You're number 1 in the queue")
    queued.wait_for(timeout=90_000)
    assert re.search(r"expected wait is about \d+ minutes?\.", queued.text_content() or "")
    handing_over = visitor.locator("#syn-log li.msg.ai[data-seq]").nth(1)
    assert "passing this conversation to a member of our team" in handing_over.text_content()
    visitor.wait_for_selector("#syn-handoff", state="visible")  # "Connecting you…" or "… joined …"

    rows = shop.stack.sql(
        f"SELECT c.id, c.attributes->>'escalation_reason' FROM \"{shop.schema}\".conversations_conversation c "
        f'JOIN "{shop.schema}".conversations_message m ON m.conversation_id = c.id WHERE m.text = %s',
        (ask,),
    )
    assert len(rows) == 1 and rows[0][1] == "the visitor asked for a human", rows
    return int(rows[0][0])


def _staff_accept(staff: Any, shop: Shop, conversation_id: int, ask: str) -> None:
    """Open the conversation from the inbox list; take it over unless routing already gave it
    to this person. Then it is theirs."""
    stack = shop.stack
    page_url = stack.url(shop.slug, f"/dashboard/inbox/{conversation_id}/")
    row = staff.locator(f'#conversations tr[data-conversation-id="{conversation_id}"]')
    row.wait_for()
    row.locator("a.title").click()
    staff.wait_for_url(page_url)
    staff.wait_for_selector('#conversation[data-socket="open"]')
    note = staff.locator("#transcript li.note", has_text="Handoff summary (AI)")
    assert note.count() == 1 and "the visitor asked for a human" in note.text_content()
    assert staff.locator("#transcript li.visitor", has_text=ask).count() == 1
    take_over = staff.locator("#take-over-form")
    if take_over.is_visible():
        take_over.locator("button:has-text('Take over')").click()
        staff.wait_for_url(page_url)
        staff.wait_for_selector('#conversation[data-socket="open"]')
    staff.wait_for_selector("#take-over-form", state="hidden")
    staff.wait_for_selector("#conv-owner:has-text('Human')")
    owner = stack.sql(
        f'SELECT c.owner, u.email FROM "{shop.schema}".conversations_conversation c '
        "JOIN public.accounts_user u ON u.id = c.assignee_id WHERE c.id = %s",
        (conversation_id,),
    )
    assert owner == [("human", shop.staff)]


def _reply_reaches_the_visitor(staff: Any, visitor: Any, reply: str) -> None:
    """The visitor has been told who joined; the reply shows live, signed with their name."""
    joined = visitor.locator("#syn-log li.msg.system", has_text=f"{STAFF_NAME} joined the conversation.")
    joined.wait_for()
    assert joined.count() == 1
    visitor.wait_for_selector("#syn-handoff:has-text('joined the conversation')")
    staff.fill("#composer textarea", reply)
    staff.press("#composer textarea", "Enter")
    staff.locator("#transcript li.agent", has_text=reply).wait_for()
    message = visitor.locator("#syn-log li.msg.agent[data-seq]", has_text=reply)
    message.wait_for()
    assert STAFF_NAME in (message.locator(".meta").text_content() or "")
    visitor.wait_for_selector(f"#syn-handoff:text('{STAFF_NAME} joined the conversation')")
    shown = transcript(visitor)
    assert [seq for seq, _, _ in shown] == sorted({seq for seq, _, _ in shown})
    roles = [role for _, role, _ in shown]
    assert roles[:4] == ["visitor", "ai", "visitor", "ai"] and roles[-1] == "agent"


@pytest.fixture
def contexts(browser: Any) -> Iterator[tuple[Any, Any]]:
    visitor = browser.new_context(viewport={"width": 1280, "height": 800})
    staff = browser.new_context(viewport={"width": 1280, "height": 900})
    for context in (visitor, staff):
        context.set_default_timeout(15_000)
    try:
        yield visitor, staff
    finally:
        visitor.close()
        staff.close()


def test_nobody_online_the_visitor_waits_in_the_queue_until_staff_take_over(
    shop: Shop, contexts: tuple[Any, Any]
) -> None:
    """No staff member is online when the visitor asks: the conversation waits in the queue
    (the widget says so and keeps saying so); the staff member logs in later and takes it over
    from the conversation page."""
    visitor_context, staff_context = contexts
    ask = "is there a human I can chat with?"
    pages: dict[str, Any] = {}
    with screenshots_on_failure("queue", pages):
        visitor = pages["visitor"] = open_page(visitor_context, shop.page_url)
        conversation_id = _visitor_asks_for_a_person(visitor, shop, ask)
        visitor.wait_for_selector("#syn-handoff:text('Connecting you with a person…')")
        state = f'SELECT owner, assignee_id FROM "{shop.schema}".conversations_conversation WHERE id = %s'
        assert shop.stack.sql(state, (conversation_id,)) == [("queue", None)]

        staff = pages["staff"] = _staff_logs_in(staff_context, shop)
        _staff_accept(staff, shop, conversation_id, ask)
        _reply_reaches_the_visitor(staff, visitor, "Hello, I'm here now. How can I help?")
        assert visitor.problems == [] and staff.problems == [], (visitor.problems, staff.problems)


def test_a_visitor_asks_for_a_person_gets_one_and_rates_the_conversation(shop: Shop, contexts: tuple[Any, Any]) -> None:
    """The staff member is online (the inbox open): the whole handoff, to the stored rating."""
    visitor_context, staff_context = contexts
    stack = shop.stack
    pages: dict[str, Any] = {}
    with screenshots_on_failure("handoff", pages):
        staff = pages["staff"] = _staff_logs_in(staff_context, shop)
        visitor = pages["visitor"] = open_page(visitor_context, shop.page_url)
        conversation_id = _visitor_asks_for_a_person(visitor, shop, ASK_FOR_A_HUMAN)
        _staff_accept(staff, shop, conversation_id, ASK_FOR_A_HUMAN)
        _reply_reaches_the_visitor(staff, visitor, REPLY)
        assert shop.staff not in (visitor.locator("#syn-log").text_content() or "")

        # --- the agent drafts a reply to the visitor's question for staff; nothing is sent ------
        staff.click("#composer-suggest")
        note = staff.locator("#suggestion-note")
        note.filter(has_text="check it before sending").wait_for(timeout=30_000)
        draft = staff.input_value("#composer textarea[name=text]")
        assert "3 to 5 business days" in draft and "[1]" not in draft
        assert staff.locator("#suggestion-sources a").first.text_content() == "Shipping times"
        staff.fill("#composer textarea[name=text]", "")
        assert visitor.locator("#syn-log li.msg", has_text="3 to 5 business days").count() == 1  # only the AI's

        # --- the visitor's verdict on the AI's message reaches the open transcript live ---------
        ai_message = visitor.locator("#syn-log li.msg.ai[data-seq]").first
        seq = ai_message.get_attribute("data-seq")
        ai_message.locator(".feedback button[aria-label='Not helpful']").click()
        ai_message.locator(".feedback[data-state='sent']").wait_for()
        verdict = staff.locator(f"#transcript li.msg.ai[data-seq='{seq}'] .visitor-feedback")
        verdict.wait_for()
        assert verdict.text_content() == "The visitor found this answer not helpful"

        # --- staff resolve it; the widget asks for a rating at once -------------------------
        staff.select_option("#status-form select[name=status]", "resolved")
        staff.locator("#status-form button:has-text('Change status')").click()
        staff.wait_for_url(stack.url(shop.slug, f"/dashboard/inbox/{conversation_id}/"))
        staff.wait_for_selector("#conv-status:text('resolved')")
        visitor.locator("#syn-log li.msg.system", has_text="This conversation was resolved").wait_for()
        rating = visitor.locator("#syn-rating")
        rating.wait_for(state="visible")
        rating.locator("label:has(input[value='4']) span").click()
        rating.locator("textarea[name=comment]").fill(COMMENT)
        rating.locator("#syn-rating-submit").click()
        visitor.wait_for_selector("#syn-rating-done:text('Thank you for your feedback!')")
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        visitor.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-handoff-visitor.png"))

        # --- the rating, through the API and on the staff page -------------------------------
        api_key = stack.create_api_key(shop.slug, name="handoff-check")
        with stack.api(shop.slug, api_key) as api:
            response = api.get(f"/api/v1/conversations/{conversation_id}/")
        assert response.status_code == 200, response.text[:500]
        body = response.json()
        assert (body["rating"], body["rating_comment"], body["status"]) == (4, COMMENT, "resolved")
        staff.reload()
        assert staff.locator("#conv-rating").text_content() == f"4/5 · “{COMMENT}”"
        staff.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-handoff-staff.png"))

        # --- the agent's page counts the turn the worker handed over ---------------------------
        staff.click("header nav a:has-text('Agents')")
        staff.click("#agents a:has-text('Ava')")
        staff.wait_for_selector("#performance #perf-escalated")
        assert int(staff.locator("#perf-turns .n").text_content() or 0) >= 1
        assert re.search(r"handed over \([1-9]", staff.locator("#perf-escalated").text_content() or "")
        assert staff.locator("#perf-channels tr[data-channel=web]").count() == 1
        assert staff.locator(".perf-chart .perf-day").count() == 30
        assert staff.locator(".perf-chart .perf-escalated").last.bounding_box()["height"] > 0  # type: ignore[index]

        assert visitor.problems == [] and staff.problems == [], (visitor.problems, staff.problems)
        stack.assert_running()
