"""Staff pages in a real browser (Debian chromium driven by Playwright) against the live server.

Drives: chromium → uvicorn → the public signup page (form, CSRF) → the confirmation email the
worker writes (file backend) → its link (password, one-time login link across hosts) → the
tenant dashboard (logout, login form, API keys page: create, read the shown key,
revoke) → the REST API with the key from the page (httpx) → the database, read directly to
check that a refused signup wrote nothing.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, LiveStack, mail_body

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_DIR = Path(os.environ.get("SYNTERA_SCREENSHOT_DIR", "/tmp"))

pytestmark = [
    pytest.mark.live,
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"{CHROMIUM} is missing (apt-get install chromium, or `make chromium`)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            timeout=60_000,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                # <slug>.localhost and localhost → the live server on IPv4 loopback.
                "--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP localhost 127.0.0.1",
            ],
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) whose page records every failed load and JS error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.problems = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on(
        "console", lambda msg: msg.type == "error" and page.problems.append(f"console error: {msg.text} {msg.location}")
    )
    page.on("requestfailed", lambda req: page.problems.append(f"request failed: {req.url} {req.failure}"))
    page.on(
        "response",
        lambda resp: (
            resp.status >= 400 and page.problems.append(f"HTTP {resp.status}: {resp.request.method} {resp.url}")
        ),
    )
    try:
        yield page
    finally:
        context.close()


def real_problems(page: Any) -> list[str]:
    """Failed loads and JS errors, minus favicon noise (a probe for /favicon.ico, or the icon
    fetch cancelled by a navigation)."""
    return [
        problem
        for problem in page.problems
        # the icon fetch is cancelled when a form navigates away first: harmless
        if "/favicon.ico" not in problem and not ("/favicon.svg" in problem and "ERR_ABORTED" in problem)
    ]


def fill_signup(page: Any, stack: LiveStack, *, company: str, slug: str, name: str, email: str) -> None:
    page.goto(stack.url(None, "/"))
    assert page.title() == "Start with Syntera"
    page.fill("#id_company_name", company)
    page.fill("#id_slug", slug)
    page.fill("#id_full_name", name)
    page.fill("#id_email", email)
    page.click("button:has-text('Create workspace')")


def confirm_signup(page: Any, stack: LiveStack, *, email: str) -> None:
    """Wait for the page that says a link was sent, take the link from the email the worker
    wrote, open it and choose the password: the workspace is created then, not before."""
    page.wait_for_url(stack.url(None, "/signup/sent/"))
    assert page.text_content("h1") == "Check your email"
    link = re.search(rf"http://localhost:{stack.port}/signup/confirm/[^/\s]+/", mail_body(stack.wait_for_mail(email)))
    assert link is not None
    page.goto(link.group(0))
    assert email in (page.text_content("main") or "")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-signup-confirm.png"), full_page=True)
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Confirm and create workspace')")


def test_signup_login_and_api_key_lifecycle_in_the_browser(live_stack: LiveStack, page: Any) -> None:
    """chromium → signup on the public host → dashboard on the tenant host → logout → login →
    API keys page (create; read `#new-key`) → httpx uses the key → revoke in the page → 401."""
    slug = f"brw-{uuid.uuid4().hex[:8]}"
    company = "Browser Widgets GmbH"
    email = f"owner@{slug}.example"
    dashboard_url = live_stack.url(slug, "/dashboard/")

    # --- signup on the public host, confirmed by the emailed link, lands on the new --------
    # --- workspace's dashboard, logged in ---------------------------------------------------
    fill_signup(page, live_stack, company=company, slug=slug, name="Bea Browser", email=email)
    assert live_stack.sql("SELECT count(*) FROM tenants_tenant WHERE slug = %s", (slug,)) == [(0,)]
    confirm_signup(page, live_stack, email=email)
    page.wait_for_url(dashboard_url)
    assert page.text_content("h1") == company
    assert page.text_content("#role") == "owner"
    assert email in (page.text_content("header .who") or "")

    # --- log out, log in again with email + password ---------------------------------------
    page.click("button:has-text('Log out')")
    page.wait_for_url(live_stack.url(slug, "/login/"))
    page.goto(dashboard_url)  # logged out: the dashboard sends us to the login form
    page.wait_for_url(live_stack.url(slug, "/login/?next=/dashboard/"))
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(dashboard_url)
    assert page.text_content("#role") == "owner"

    # --- create an API key in the page (no scopes ticked = every scope) --------------------
    page.click("header nav a:has-text('API keys')")
    page.wait_for_url(live_stack.url(slug, "/dashboard/api-keys/"))
    page.fill("#id_name", "browser")
    assert not any(box.is_checked() for box in page.query_selector_all("input[name=scopes]"))
    page.click("#key-form button[type=submit]")
    key = (page.text_content("#new-key") or "").strip()
    assert key.startswith("sk_live_"), key
    row = page.locator("#keys tr[data-name='browser']")
    assert row.locator(".status").text_content() == "active"
    assert "members:write" in (row.locator(".scopes").text_content() or "")
    assert key not in page.locator("#keys").inner_text()  # the table shows only the public id

    api = live_stack.api(slug, key)
    me = api.get("/api/v1/me/")
    assert me.status_code == 200, me.text
    assert me.json()["kind"] == "api_key" and me.json()["tenant"]["slug"] == slug
    assert me.json()["tenant"]["name"] == company
    # The key decides the tenant on the public host too.
    assert live_stack.api(None, key).get("/api/v1/me/").json()["tenant"]["slug"] == slug

    # --- the list shows it; revoke it in the page; the API refuses it at once -------------
    page.goto(live_stack.url(slug, "/dashboard/api-keys/"))
    assert page.locator("#keys tr[data-name='browser'] .status").text_content() == "active"
    page.click("#keys tr[data-name='browser'] button:has-text('Revoke')")
    page.wait_for_url(live_stack.url(slug, "/dashboard/api-keys/"))
    assert "revoked" in (page.text_content("ul.messages") or "")
    assert page.locator("#keys tr[data-name='browser'] .status").text_content() == "revoked"
    assert page.locator("#keys tr[data-name='browser'] button:has-text('Revoke')").count() == 0

    refused = api.get("/api/v1/me/")
    assert refused.status_code == 401, refused.text
    assert refused.headers.get("www-authenticate", "").startswith("Bearer")
    error = refused.json()["error"]
    assert error["code"] and isinstance(error["code"], str) and error["detail"]
    assert set(refused.json()) == {"error"}

    # --- the dashboard renders sensibly: screenshot for a human look -----------------------
    page.goto(dashboard_url)
    assert page.text_content("h1") == company
    assert page.locator("link[rel=stylesheet]").count() == 1
    # The stylesheet really applied (header bar is dark, not the browser default).
    assert page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor") == "rgb(16, 24, 40)"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-dashboard.png"), full_page=True)
    page.goto(live_stack.url(slug, "/dashboard/api-keys/"))
    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-api-keys.png"), full_page=True)
    assert real_problems(page) == []


def test_signup_with_a_taken_address_shows_an_error_and_creates_nothing(live_stack: LiveStack, page: Any) -> None:
    """chromium → public signup form twice with the same workspace address: the second shows
    the error on the page, stays on the public host, and the database holds one workspace."""
    slug = f"dup-{uuid.uuid4().hex[:8]}"
    fill_signup(page, live_stack, company="First Co", slug=slug, name="First", email=f"first@{slug}.example")
    confirm_signup(page, live_stack, email=f"first@{slug}.example")
    page.wait_for_url(live_stack.url(slug, "/dashboard/"))

    second = page.context.browser.new_context()
    try:
        other = second.new_page()
        other.set_default_timeout(15_000)
        fill_signup(other, live_stack, company="Second Co", slug=slug, name="Second", email=f"second@{slug}.example")
        other.wait_for_selector(".field-error")  # the form came back with an error
        assert "already taken" in (other.text_content(".field-error") or "")
        assert other.url == live_stack.url(None, "/")  # still on the public host
        # What was typed is kept.
        assert other.input_value("#id_company_name") == "Second Co"
        assert other.input_value("#id_email") == f"second@{slug}.example"
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        other.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-signup-error.png"), full_page=True)
    finally:
        second.close()

    rows = live_stack.sql("SELECT name FROM tenants_tenant WHERE slug = %s", (slug,))
    assert rows == [("First Co",)]
    assert live_stack.sql("SELECT count(*) FROM accounts_user WHERE email = %s", (f"second@{slug}.example",)) == [(0,)]
    assert live_stack.sql(
        "SELECT count(*) FROM accounts_pendingsignup WHERE email = %s", (f"second@{slug}.example",)
    ) == [(0,)]
    schemas = live_stack.sql(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (slug.replace("-", "_"),)
    )
    assert schemas == [(1,)]
    assert real_problems(page) == []


def test_upload_watch_progress_and_find_it_in_the_playground(live_stack: LiveStack, page: Any) -> None:
    """chromium → log in → create a knowledge base → upload a 400-page PDF → the progress bar
    moves (seen between 0 and 100) and reaches 100 % while the real worker ingests it → the
    search playground finds a sentence from page 399."""
    from apps.knowledge.tests.samples import pdf_bytes

    slug = f"kb-{uuid.uuid4().hex[:8]}"
    email = f"owner@{slug}.example"
    live_stack.create_tenant(slug, email)
    page.goto(live_stack.url(slug, "/login/"))
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.click("nav >> text=Knowledge")
    page.fill("#id_name", "Manuals")
    page.click("button:has-text('Create')")
    assert page.text_content("h1") == "Manuals"

    pages = [f"Manual page {n} explains part number {n * 7} of the espresso machine" for n in range(400)]
    pages[399] = "The descaling light blinks orange when the boiler needs citric acid"
    pdf = live_stack.work_dir / "manual.pdf"
    pdf.write_bytes(pdf_bytes(pages, title="Espresso manual"))
    page.set_input_files("#upload-form input[type=file]", str(pdf))
    page.click("#upload-form button[type=submit]")
    bar = page.locator("#sources tbody tr").first.locator("progress")
    seen: set[int] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen.add(int(bar.get_attribute("value") or 0))
        if 100 in seen:
            break
        page.wait_for_timeout(100)
    assert 100 in seen, seen
    assert any(0 < value < 100 for value in seen), f"the bar never moved: {sorted(seen)}"
    row = page.locator("#sources tbody tr").first
    assert row.locator(".badge").text_content() == "ready"
    assert int(row.locator(".chunks").text_content() or 0) >= 1

    page.click("text=Knowledge")
    page.wait_for_load_state()  # a click during the load would cancel the page's scripts
    page.click("text=Search playground")
    page.fill("#id_query", "why is the orange light blinking?")
    page.check("#search-form input[type=checkbox][name=knowledge_bases]")
    page.click("#search-form button[type=submit]")
    first = page.locator("#results li").first
    assert "citric acid" in (first.text_content() or "")
    assert "page 400" in (first.text_content() or "")
    assert real_problems(page) == []
