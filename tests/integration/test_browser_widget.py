"""The chat widget in a real browser (Debian chromium driven by Playwright), embedded on a
customer's site of another origin, against the live stack.

Drives: a customer's page served by a local `http.server` on its own port (another origin)
→ chromium loads static/widget/syntera.js from the tenant's host on the live uvicorn → the
widget WebSocket (origin checked against the inbox's allowed origins) → the real Celery worker
answers with the offline responder from an article fetched from the customer's site, streamed
as deltas, with a citation link → reload (token and resume from localStorage) → offline and
online again (outbox, re-send with the same client_id, one stored copy) → a resolved
conversation's rating → a phone-sized viewport and the keyboard → a site that is not allowed
→ a signed-in user whose identity the site signs, who signs out and another signs in.
Visitor and server text carry markup that must show as text.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from . import test_browser
from .conftest import PASSWORD, LiveStack, free_port, wait_for
from .test_browser import SCREENSHOT_DIR

pytestmark = test_browser.pytestmark
browser = test_browser.browser  # the module-scoped chromium

ARTICLE_TITLE = "Shipping <i>times</i>"
ARTICLE_HTML = """<!doctype html>
<html><head><title>Shipping &lt;i&gt;times&lt;/i&gt;</title></head>
<body><main><h1>Shipping</h1>
<p>Standard shipping takes 3 to 5 business days within the EU.
Express shipping arrives the next business day when ordered before 2 pm.</p>
<p>Every parcel is tracked; the tracking link is in the confirmation email.</p>
</main></body></html>
"""
TITLE = "Help & <b>support</b>"
GREETING = "Hi <i>there</i>! Ask me about shipping."
HOURS = "We answer in person Monday to Friday, 9:00-17:00."
COLOR = "#0e7c66"  # rgb(14, 124, 102)
QUESTION = "How long does standard shipping take?"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> <b>bold</b>?'
OFFLINE_TEXT = "Do you ship to Norway?"

# Runs in `manage.py shell` against the live database. The article is fetched from the
# customer's site on 127.0.0.1, which the live worker refuses (its KNOWLEDGE_URL_ALLOWLIST is
# empty), so this one source is ingested here, in-process, with that address allowed.
SETUP = """
import json
from django.test import override_settings
from django_tenants.utils import tenant_context
from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.agents.services import agent_create
from apps.conversations.identity import identity_secret
from apps.conversations.services import inbox_create
from apps.knowledge import services as knowledge
from apps.knowledge.models import Source
from apps.tenants.models import Tenant

tenant = Tenant.objects.get(slug=ARGS["slug"])
owner = User.objects.get(email=ARGS["email"])
actor = Actor(tenant=tenant, role=Role.OWNER, user=owner, label=owner.email)
with tenant_context(tenant), override_settings(KNOWLEDGE_URL_ALLOWLIST=["127.0.0.1/32"]):
    kb = knowledge.knowledge_base_create(editor=actor, name="Help centre")
    source = Source.objects.create(knowledge_base=kb, type="url", title=ARGS["article_title"], url=ARGS["article"], run=1)
    outcome = knowledge.ingest_source(source_id=source.pk, run=1)
    assert outcome == "ready", (outcome, Source.objects.get(pk=source.pk).error)
    agent = agent_create(editor=actor, name="Ava", knowledge_bases=[kb.pk], variables={"company_name": "Shop"})
    inbox = inbox_create(
        actor=actor, name="Website", agent_id=agent.pk, allowed_origins=[ARGS["origin"]],
        title=ARGS["title"], greeting=ARGS["greeting"], color=ARGS["color"], position="left",
        business_hours_message=ARGS["hours"],
    )
    # No AI agent: visitors wait for a person; the form asks who they are first.
    sales = inbox_create(
        actor=actor, name="Sales", allowed_origins=[ARGS["origin"]], title="Sales", pre_chat_fields=["name", "email"],
    )
    secret = identity_secret(inbox)
print(json.dumps({"key": inbox.widget_key, "inbox": inbox.pk, "sales_key": sales.widget_key, "secret": secret}))
"""

RESOLVE = """
from django_tenants.utils import tenant_context
from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.conversations.models import Conversation
from apps.conversations.services import conversation_set_status, token_hash
from apps.tenants.models import Tenant

tenant = Tenant.objects.get(slug=ARGS["slug"])
owner = User.objects.get(email=ARGS["email"])
actor = Actor(tenant=tenant, role=Role.OWNER, user=owner, label=owner.email)
with tenant_context(tenant):
    conversation = Conversation.objects.get(visitor_token_hash=token_hash(ARGS["token"]))
    conversation_set_status(actor=actor, conversation=conversation, status="resolved")
"""

CUSTOMER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Customer shop</title><link rel="icon" href="data:,">
<style>
  /* A page whose rules would wreck the widget if they reached it. */
  * {{ font-family: "Courier New", monospace !important; }}
  button {{ background: rgb(255, 255, 0) !important; width: 10px !important; }}
  li, p, section, textarea {{ display: none !important; }}
  syntera-widget {{ display: none !important; }}
</style>
<script>window.addEventListener("syntera:ready", function (e) {{ window.__ready = e.detail; }});</script>
</head><body>
<h1>Customer shop</h1>
<a href="#products" id="products">Products</a>
<button type="button" id="buy">Buy</button>
<script src="{script}" data-key="{key}"{identity} async></script>
</body></html>
"""


@dataclass
class Site:
    """The customer's site (another origin) with the widget embedded, and the tenant behind it."""

    stack: LiveStack
    slug: str
    email: str
    origin: str
    other_origin: str  # the same pages under a host name the inbox does not allow
    article_url: str
    key: str
    inbox_id: int
    sales_key: str
    secret: str = ""  # the inbox's identity secret

    def sign(self, value: str) -> str:
        return hmac.new(self.secret.encode(), value.encode(), hashlib.sha256).hexdigest()

    @property
    def schema(self) -> str:
        return self.slug.replace("-", "_")

    def page_url(self, origin: str | None = None, page: str = "index.html") -> str:
        return f"{origin or self.origin}/{page}"

    def shell(self, code: str, **extra: str) -> str:
        args = {
            **extra,
            "slug": self.slug,
            "email": self.email,
            "article": self.article_url,
            "article_title": ARTICLE_TITLE,
            "origin": self.origin,
            "title": TITLE,
            "greeting": GREETING,
            "color": COLOR,
            "hours": HOURS,
        }
        return self.stack.manage("shell", "-c", f"ARGS = {args!r}\n{code}").stdout


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def customer_site(root: Path) -> Iterator[int]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def site(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("customer-site")
    (root / "help").mkdir()
    (root / "help" / "shipping.html").write_text(ARTICLE_HTML)
    with customer_site(root) as port:
        slug = f"wid-{uuid.uuid4().hex[:8]}"
        email = f"owner@{slug}.example"
        live_stack.create_tenant(slug, email)
        origin = f"http://127.0.0.1:{port}"
        site = Site(
            stack=live_stack,
            slug=slug,
            email=email,
            origin=origin,
            other_origin=f"http://localhost:{port}",
            article_url=f"{origin}/help/shipping.html",
            key="",
            inbox_id=0,
            sales_key="",
        )
        created = json.loads(site.shell(SETUP).strip().splitlines()[-1])
        site.key, site.inbox_id, site.sales_key = created["key"], created["inbox"], created["sales_key"]
        site.secret = created["secret"]
        script = live_stack.url(slug, "/static/widget/syntera.js")
        (root / "index.html").write_text(CUSTOMER_PAGE.format(script=script, key=site.key, identity=""))
        (root / "sales.html").write_text(CUSTOMER_PAGE.format(script=script, key=site.sales_key, identity=""))
        # A page of the customer's signed-in user Ada: the site's server signed her user id.
        signed = f' data-user-id="u-ada" data-user-name="Ada" data-user-hash="{site.sign("u-ada")}"'
        (root / "member.html").write_text(CUSTOMER_PAGE.format(script=script, key=site.key, identity=signed))
        yield site


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


def open_page(context: Any, url: str) -> Any:
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(f"console error: {msg.text}"))
    page.goto(url)
    page.wait_for_function("window.__ready && window.__ready.key && window.Syntera")
    return page


def shadow(page: Any, expression: str) -> Any:
    """Evaluate `expression` with `root` bound to the widget's shadow root."""
    return page.evaluate(
        f"(() => {{ const root = document.querySelector('syntera-widget').shadowRoot; return {expression}; }})()"
    )


def transcript(page: Any) -> list[tuple[int, str, str]]:
    return [
        (int(li.get_attribute("data-seq")), li.get_attribute("class").split()[-1], li.locator(".bubble").text_content())
        for li in page.locator("#syn-log li.msg[data-seq]").all()
    ]


def outbox(page: Any, key: str) -> list[dict[str, str]]:
    state = page.evaluate(f"JSON.parse(localStorage.getItem('syntera:{key}') || '{{}}')")
    return list(state.get("outbox") or [])


def stored(site: Site, text: str) -> int:
    rows = site.stack.sql(f'SELECT count(*) FROM "{site.schema}".conversations_message WHERE text = %s', (text,))
    return int(rows[0][0])


def test_a_visitor_on_another_site_chats_reloads_goes_offline_and_rates(site: Site, context: Any) -> None:
    page = open_page(context, site.page_url())
    assert page.evaluate("window.__ready.key") == site.key
    # The page's rules do not reach into the widget, the widget's do not reach out.
    assert page.evaluate("getComputedStyle(document.getElementById('buy')).backgroundColor") == "rgb(255, 255, 0)"
    launcher = page.locator("#syn-launcher")
    assert launcher.is_visible()
    assert launcher.get_attribute("aria-expanded") == "false"
    assert page.locator("#syn-panel").is_hidden()

    # --- open: a session, the inbox's settings applied --------------------------------------
    launcher.click()
    panel = page.locator("#syn-panel")
    assert panel.is_visible()
    assert launcher.get_attribute("aria-expanded") == "true"
    page.wait_for_function(
        "document.querySelector('syntera-widget').shadowRoot.getElementById('syn-title').textContent === "
        + json.dumps(TITLE)
    )
    assert page.locator("#syn-greeting .bubble").text_content() == GREETING
    assert page.locator("#syn-hours").text_content() == HOURS
    assert page.locator("#syn-title b, #syn-greeting i").count() == 0
    assert launcher.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(14, 124, 102)"
    assert launcher.bounding_box()["x"] < 100  # position: left
    assert panel.bounding_box()["width"] < 500
    assert page.locator("#syn-log").get_attribute("role") == "log"
    assert page.locator("#syn-log").get_attribute("aria-live") == "polite"
    assert shadow(page, "root.activeElement && root.activeElement.id") == "syn-input"

    # --- a question the article answers: the answer streams in, with a citation link ------
    page.fill("#syn-input", QUESTION)
    page.press("#syn-input", "Enter")
    mine = page.locator("#syn-log li.msg.visitor").first
    page.wait_for_selector("#syn-log li.msg.visitor[data-seq='1'][data-state='sent']")
    assert mine.locator(".bubble").text_content() == QUESTION
    assert page.input_value("#syn-input") == ""
    answer = page.locator("#syn-log li.msg.ai[data-seq]").first
    answer.wait_for(timeout=90_000)
    assert int(answer.get_attribute("data-deltas") or 0) >= 1  # built from streamed deltas
    assert answer.get_attribute("data-state") == "sent"
    assert "3 to 5 business days" in answer.locator(".bubble").text_content()
    link = answer.locator(".sources a").first
    assert link.text_content() == ARTICLE_TITLE
    assert (link.get_attribute("href") or "").startswith(site.article_url)
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert link.get_attribute("target") == "_blank"
    assert page.locator("#syn-log li.msg.ai[data-state='streaming']").count() == 0
    # The visitor says the answer helped: the server confirms, the agent's stats count it.
    helpful = answer.locator(".feedback button[aria-label='Helpful']")
    helpful.click()
    answer.locator(".feedback[data-state='sent']").wait_for()
    assert helpful.get_attribute("aria-pressed") == "true"
    assert answer.locator(".feedback button[aria-label='Not helpful']").get_attribute("aria-pressed") == "false"
    verdicts = f'SELECT helpful, seq FROM "{site.schema}".conversations_answerfeedback'
    assert site.stack.sql(verdicts) == [(True, int(answer.get_attribute("data-seq") or 0))]
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-widget-answer.png"))

    # --- markup typed by the visitor shows as text ------------------------------------------
    page.fill("#syn-input", HOSTILE)
    page.press("#syn-input", "Enter")
    page.wait_for_selector("#syn-log li.msg.visitor[data-state='sent'] >> nth=1")
    assert page.locator("#syn-log li.msg.visitor .bubble").nth(1).text_content() == HOSTILE
    page.locator("#syn-log li.msg.ai[data-seq] >> nth=1").wait_for(timeout=90_000)
    assert page.locator("#syn-log script, #syn-log img, #syn-log b, #syn-log i").count() == 0
    assert page.evaluate("window.__pwned") is None

    before = transcript(page)
    seqs = [seq for seq, _, _ in before]
    assert seqs == sorted(set(seqs)) and seqs[0] == 1
    assert [role for _, role, _ in before][:2] == ["visitor", "ai"]

    # --- reload: the same conversation comes back, in order ---------------------------------
    token = page.evaluate(f"JSON.parse(localStorage.getItem('syntera:{site.key}')).token")
    assert token.startswith("vt_")
    page.reload()
    page.wait_for_function("window.__ready && window.Syntera")
    page.evaluate("window.Syntera.open()")
    wait_for(lambda: transcript(page) == before, timeout=15, what="the transcript after a reload")
    assert page.locator("#syn-log li.msg.ai[data-seq] .sources a").first.text_content() == ARTICLE_TITLE
    kept = page.locator("#syn-log li.msg.ai[data-seq] .feedback").first  # the verdict survives a reload
    assert kept.locator("button[aria-label='Helpful']").get_attribute("aria-pressed") == "true"
    assert page.evaluate(f"JSON.parse(localStorage.getItem('syntera:{site.key}')).token") == token
    assert site.stack.sql(f'SELECT count(*) FROM "{site.schema}".conversations_conversation')[0][0] == 1

    # --- offline: the message waits in the outbox; online: sent once, acknowledged once ------
    context.set_offline(True)
    page.wait_for_function("navigator.onLine === false")
    page.fill("#syn-input", OFFLINE_TEXT)
    page.press("#syn-input", "Enter")
    waiting = page.locator("#syn-log li.msg.visitor[data-state='sending']")
    assert waiting.count() == 1 and waiting.locator(".bubble").text_content() == OFFLINE_TEXT
    time.sleep(1.5)
    assert waiting.count() == 1 and not waiting.get_attribute("data-seq")
    assert [item["text"] for item in outbox(page, site.key)] == [OFFLINE_TEXT]
    assert stored(site, OFFLINE_TEXT) == 0
    context.set_offline(False)
    sent = page.locator(f"#syn-log li.msg.visitor[data-seq='{seqs[-1] + 1}']")
    sent.wait_for(timeout=30_000)
    assert sent.get_attribute("data-state") == "sent"
    assert sent.locator(".bubble").text_content() == OFFLINE_TEXT
    assert outbox(page, site.key) == []
    page.locator("#syn-log li.msg.ai[data-seq] >> nth=2").wait_for(timeout=90_000)
    mine_now = [text for _, role, text in transcript(page) if role == "visitor"]
    assert mine_now.count(OFFLINE_TEXT) == 1
    assert stored(site, OFFLINE_TEXT) == 1

    # --- an acknowledgement lost: the outbox still holds a stored message; after a reload the
    # widget sends it again with its client_id, the server stores nothing new, one bubble ----
    client_id = sent.get_attribute("data-client-id")
    assert client_id
    page.evaluate(
        """([key, item]) => {
            const state = JSON.parse(localStorage.getItem('syntera:' + key));
            state.outbox = [item];
            localStorage.setItem('syntera:' + key, JSON.stringify(state));
        }""",
        [site.key, {"client_id": client_id, "text": OFFLINE_TEXT}],
    )
    after_offline = transcript(page)
    page.reload()
    page.wait_for_function("window.__ready && window.Syntera")
    page.evaluate("window.Syntera.open()")
    wait_for(lambda: transcript(page) == after_offline, timeout=15, what="the transcript after a lost ack")
    wait_for(lambda: outbox(page, site.key) == [], timeout=10, what="the outbox to empty")
    assert page.locator("#syn-log li.msg.visitor[data-state='sending']").count() == 0
    assert stored(site, OFFLINE_TEXT) == 1
    final = transcript(page)
    assert [seq for seq, _, _ in final] == sorted({seq for seq, _, _ in final})

    # --- resolved by staff: the next session asks for a rating --------------------------------
    site.shell(RESOLVE, token=token)
    page.reload()
    page.wait_for_function("window.__ready && window.Syntera")
    page.evaluate("window.Syntera.open()")
    rating = page.locator("#syn-rating")
    rating.wait_for(state="visible")
    rating.locator("label:has(input[value='4']) span").click()
    rating.locator("textarea[name=comment]").fill("Quick <b>answer</b>")
    rating.locator("#syn-rating-submit").click()
    page.wait_for_selector("#syn-rating-done:text('Thank you for your feedback!')")
    rows = site.stack.sql(f'SELECT rating, rating_comment FROM "{site.schema}".conversations_conversation')
    assert rows == [(4, "Quick <b>answer</b>")]
    # The menu offers it again on demand.
    page.click("#syn-menu-button")
    assert page.locator("#syn-menu").is_visible()
    page.click("#syn-rate-action")
    assert rating.is_visible()

    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-widget-rating.png"))
    assert page.problems == []


def test_phone_width_and_keyboard(site: Site, browser: Any) -> None:
    phone = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    phone.set_default_timeout(15_000)
    try:
        page = open_page(phone, site.page_url())
        page.locator("#syn-launcher").tap()
        panel = page.locator("#syn-panel")
        panel.wait_for(state="visible")
        assert panel.bounding_box() == {"x": 0, "y": 0, "width": 375, "height": 667}
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-widget-phone.png"))
        assert page.locator("#syn-launcher").is_hidden()  # under the full-screen panel
        page.click("#syn-close")
        assert panel.is_hidden() and page.locator("#syn-launcher").is_visible()
        assert page.problems == []
    finally:
        phone.close()

    desktop = browser.new_context(viewport={"width": 1280, "height": 800})
    desktop.set_default_timeout(15_000)
    try:
        page = open_page(desktop, site.page_url())
        # Tab through the page to the launcher, open it with Enter.
        for _ in range(10):
            page.keyboard.press("Tab")
            if shadow(page, "root.activeElement && root.activeElement.id") == "syn-launcher":
                break
        else:
            raise AssertionError("Tab never reached the launcher")
        page.keyboard.press("Enter")
        page.locator("#syn-panel").wait_for(state="visible")
        assert shadow(page, "root.activeElement.id") == "syn-input"
        page.keyboard.type("Hello")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("there")
        assert page.input_value("#syn-input") == "Hello\nthere"
        page.keyboard.press("Enter")
        page.wait_for_selector("#syn-log li.msg.visitor[data-seq='1'][data-state='sent']")
        assert page.locator("#syn-log li.msg.visitor .bubble").first.text_content() == "Hello\nthere"
        # Escape closes and gives the focus back to the launcher.
        page.keyboard.press("Escape")
        page.locator("#syn-panel").wait_for(state="hidden")
        assert shadow(page, "root.activeElement && root.activeElement.id") == "syn-launcher"
        assert page.problems == []
    finally:
        desktop.close()


def test_a_site_the_inbox_does_not_allow_gets_no_chat(site: Site, context: Any) -> None:
    conversations = f'SELECT count(*) FROM "{site.schema}".conversations_conversation'
    before = site.stack.sql(conversations)
    sockets: list[Any] = []
    page = context.new_page()
    page.on("websocket", lambda socket: sockets.append(socket))
    page.goto(site.page_url(site.other_origin))
    page.wait_for_function("window.Syntera")
    page.evaluate("window.Syntera.open()")
    page.wait_for_selector("#syn-connection:text('Chat is not available on this site right now.')")
    time.sleep(2)  # no reconnect loop after a refusal
    assert len(sockets) == 1
    assert page.locator("#syn-send").is_disabled()
    assert site.stack.sql(conversations) == before


def test_pre_chat_form_then_waiting_for_a_person(site: Site, context: Any) -> None:
    """An inbox without an AI agent that asks for a name and email first: the answers reach
    the conversation, and the header says a person is being found."""
    page = open_page(context, site.page_url(page="sales.html"))
    page.locator("#syn-launcher").click()
    form = page.locator("#syn-prechat")
    form.wait_for(state="visible")
    assert page.locator("#syn-composer").is_hidden()
    assert [field.get_attribute("name") for field in form.locator("input").all()] == ["name", "email"]
    assert shadow(page, "root.activeElement && root.activeElement.name") == "name"
    page.fill("#syn-prechat input[name=name]", "Ada <b>Lovelace</b>")
    page.fill("#syn-prechat input[name=email]", "not an address")
    page.press("#syn-prechat input[name=email]", "Enter")
    assert form.is_visible()  # the browser's own validation keeps the form
    page.fill("#syn-prechat input[name=email]", "ada@example.com")
    page.press("#syn-prechat input[name=email]", "Enter")
    page.locator("#syn-composer").wait_for(state="visible")
    assert form.is_hidden()
    page.wait_for_selector("#syn-handoff:text('Connecting you with a person…')")
    page.fill("#syn-input", "I would like a quote.")
    page.press("#syn-input", "Enter")
    page.wait_for_selector("#syn-log li.msg.visitor[data-seq][data-state='sent']")
    rows = site.stack.sql(
        f'SELECT c.claims FROM "{site.schema}".conversations_conversation c '
        f'JOIN "{site.schema}".conversations_message m ON m.conversation_id = c.id WHERE m.text = %s',
        ("I would like a quote.",),
    )
    assert len(rows) == 1
    assert {k: rows[0][0].get(k) for k in ("name", "email")} == {
        "name": "Ada <b>Lovelace</b>",
        "email": "ada@example.com",
    }
    assert page.problems == []


def test_the_demo_page_shows_the_snippet_and_a_working_widget(site: Site, context: Any) -> None:
    """Staff open the inbox's demo page on the workspace's own host (allowed without being
    listed): the snippet to copy, and the widget it embeds, answering."""
    page = context.new_page()
    page.goto(site.stack.url(site.slug, "/login/"))
    page.fill("#id_email", site.email)
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(site.stack.url(site.slug, "/dashboard/"))
    page.goto(site.stack.url(site.slug, f"/dashboard/inboxes/{site.inbox_id}/demo/"))
    script = site.stack.url(site.slug, "/static/widget/syntera.js")
    assert page.input_value("#snippet") == f'<script src="{script}" data-key="{site.key}" async></script>'
    # (The page's Content-Security-Policy forbids eval, so no wait_for_function here.)
    page.wait_for_selector("#demo-open:not([disabled])")  # enabled once window.Syntera is there
    page.click("#demo-open")  # the page drives the widget through window.Syntera
    page.locator("#syn-title", has_text=TITLE).wait_for()
    page.fill("#syn-input", QUESTION)
    page.press("#syn-input", "Enter")
    page.wait_for_selector("#syn-log li.msg.visitor[data-seq='1'][data-state='sent']")
    page.locator("#syn-log li.msg.ai[data-seq]").first.wait_for(timeout=90_000)
    assert "3 to 5 business days" in page.locator("#syn-log li.msg.ai[data-seq] .bubble").first.text_content()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-widget-demo.png"))


def _contact_of(site: Site, token: str) -> tuple[str, bool] | None:
    """(external id, verified) of the contact of the conversation this visitor token opens."""
    rows = site.stack.sql(
        f'SELECT ct.external_id, ct.verified FROM "{site.schema}".conversations_conversation c '
        f'JOIN "{site.schema}".crm_contact ct ON ct.id = c.contact_id WHERE c.visitor_token_hash = %s',
        (hashlib.sha256(token.encode()).hexdigest(),),
    )
    return (str(rows[0][0]), bool(rows[0][1])) if rows else None


def _token(page: Any, key: str) -> str:
    state = page.evaluate(f"JSON.parse(localStorage.getItem('syntera:{key}') || '{{}}')")
    return str(state.get("token") or "")


def test_a_signed_in_user_is_verified_signs_out_and_another_signs_in(site: Site, context: Any) -> None:
    """The site puts its signed-in user on the snippet (data-user-*): the conversation is
    hers, verified. `Syntera.logout()` forgets it on this browser; `Syntera.identify()` with
    another user's signed id starts theirs. A hash the site did not make is refused and the
    chat goes on anonymously, with a warning for the site's developer."""
    page = open_page(context, site.page_url(page="member.html"))
    warnings: list[str] = []
    page.on("console", lambda msg: msg.type == "warning" and warnings.append(msg.text))
    page.locator("#syn-launcher").click()
    page.wait_for_function(f"JSON.parse(localStorage.getItem('syntera:{site.key}') || '{{}}').token")
    ada = _token(page, site.key)
    assert wait_for(lambda: _contact_of(site, ada), timeout=10, what="Ada's contact") == ("u-ada", True)
    page.fill("#syn-input", "Hello")
    page.press("#syn-input", "Enter")
    page.wait_for_selector("#syn-log li.msg.ai[data-seq] .bubble:text('Ada')", timeout=90_000)

    page.evaluate("Syntera.logout()")
    assert _token(page, site.key) != ada
    assert page.locator("#syn-log li.msg[data-seq]").count() == 0  # her transcript is gone from the page
    page.evaluate(f"Syntera.identify({{user_id: 'u-bob', hash: {json.dumps(site.sign('u-bob'))}}})")
    page.wait_for_function(
        f"(() => {{ const t = JSON.parse(localStorage.getItem('syntera:{site.key}') || '{{}}').token;"
        f" return t && t !== {json.dumps(ada)}; }})()"
    )
    bob = _token(page, site.key)
    assert wait_for(lambda: _contact_of(site, bob), timeout=10, what="Bob's contact") == ("u-bob", True)
    assert _contact_of(site, ada) == ("u-ada", True)

    forged = open_page(context, site.page_url(page="member.html"))
    forged.evaluate("Syntera.logout()")
    forged.on("console", lambda msg: msg.type == "warning" and warnings.append(msg.text))
    forged.evaluate(f"Syntera.identify({{user_id: 'u-ada', hash: {json.dumps(site.sign('u-mallory'))}}})")
    forged.locator("#syn-launcher").click()
    forged.fill("#syn-input", "Is this Ada's chat?")
    forged.press("#syn-input", "Enter")
    forged.wait_for_selector("#syn-log li.msg.visitor[data-seq][data-state='sent']")
    assert _contact_of(site, _token(forged, site.key)) is None
    assert any("does not match" in w for w in warnings), warnings
    assert page.problems == [] and forged.problems == []
