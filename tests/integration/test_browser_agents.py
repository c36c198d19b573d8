"""The agent test chat in a real browser (Debian chromium driven by Playwright) against the
live server.

Drives: chromium → uvicorn → the knowledge pages (create a base, add a text article; the real
Celery worker ingests it while the page polls) → the agents pages (create an agent on that
base) → the test chat page → its NDJSON turn endpoint streamed through uvicorn → the answer,
its citation link, the retrieved passages, the decision, prompt version, tokens and latency
rendered by static/js/test-chat.js → an off-topic question the agent abstains on → a batch
test from the same page, answered by the real worker while the run's page reloads until it
is done. Document titles and the agent's name carry markup that must show as text.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from . import test_browser
from .conftest import PASSWORD, LiveStack
from .test_browser import SCREENSHOT_DIR, real_problems

pytestmark = test_browser.pytestmark
browser = test_browser.browser  # the module-scoped chromium and the per-test page fixtures
page = test_browser.page

ARTICLE_TITLE = "Shipping & <i>returns</i>"
ARTICLE = (
    "# Shipping\n\nStandard shipping takes 3 to 5 business days within the EU. "
    "Express shipping arrives the next business day when ordered before 2 pm."
)
AGENT_NAME = "Ava <b>Bot</b>"


def test_test_chat_answers_with_citations_then_abstains(live_stack: LiveStack, page: Any) -> None:
    slug = f"agt-{uuid.uuid4().hex[:8]}"
    email = f"owner@{slug}.example"
    live_stack.create_tenant(slug, email)
    page.goto(live_stack.url(slug, "/login/"))
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(live_stack.url(slug, "/dashboard/"))

    # --- a knowledge base with one text article, ingested by the real worker ---------------
    page.click("header nav a:has-text('Knowledge')")
    page.fill("#id_name", "Help centre")
    page.click("#kb-form button[type=submit]")
    assert page.text_content("h1") == "Help centre"
    kb_path = re.sub(r"^https?://[^/]+", "", page.url)
    page.fill("#text-form [name=title]", ARTICLE_TITLE)
    page.fill("#text-form [name=text]", ARTICLE)
    page.click("#text-form button[type=submit]")
    page.wait_for_selector("#sources tbody tr .badge:text-is('ready')", timeout=120_000)

    # --- an agent on that base ----------------------------------------------------------------
    page.click("header nav a:has-text('Agents')")
    page.wait_for_url(live_stack.url(slug, "/dashboard/agents/"))
    page.fill("#id_name", AGENT_NAME)
    page.fill("#id_instructions", "Help {{ company_name }} customers with their orders.")
    page.check("#agent-create-form input[name=knowledge_bases]")
    page.click("#agent-create-form button[type=submit]")
    assert page.text_content("h1") == AGENT_NAME  # markup in the name shows as text
    assert page.text_content("#prompt-version") == "1"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-agent-settings.png"), full_page=True)
    page.click("#test-chat-link")
    assert page.text_content("h1") == f"Test chat: {AGENT_NAME}"
    assert page.locator("h1 b").count() == 0

    # --- a question the article answers: streamed answer, citation, passages, decision ------
    page.fill("#chat-input", "How long does standard shipping take?")
    page.click("#chat-send")
    answer = page.locator("#chat-log li.ai").nth(0)
    page.wait_for_selector("#chat-log li.ai[data-state=done]", timeout=90_000)
    assert answer.get_attribute("data-decision") == "answered"
    assert "3 to 5 business days" in (answer.locator(".bubble").text_content() or "")
    assert int(answer.get_attribute("data-deltas") or 0) >= 1  # the text arrived as delta lines
    assert answer.locator(".decision").text_content() == "answered"
    assert answer.locator(".reason").text_content() == "grounded in cited reference material"
    link = answer.locator(".citations a").first
    assert link.text_content() == ARTICLE_TITLE
    assert link.get_attribute("href") == kb_path
    chunk = answer.locator("table.chunks tr.chunk").first
    assert chunk.locator(".title").text_content() == ARTICLE_TITLE
    assert float(chunk.locator(".score").text_content() or "nan") > 0
    assert 0 < float(chunk.locator(".similarity").text_content() or "nan") <= 1
    assert answer.locator(".prompt-version").text_content() == "1"
    assert int(answer.locator(".tokens").text_content() or 0) > 0
    assert re.fullmatch(r"\d+ ms", answer.locator(".latency").text_content() or "")
    assert page.locator("#chat-log i, #chat-log b, #chat-log script").count() == 0

    # --- an off-topic question, with the first turn re-sent as history: abstention ----------
    page.fill("#chat-input", "Who won the football World Cup in 1998?")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-log li.ai:nth-child(4)[data-state=done]", timeout=90_000)
    second = page.locator("#chat-log li.ai").nth(1)
    assert second.get_attribute("data-decision") == "abstained"
    assert "couldn't find an answer" in (second.locator(".bubble").text_content() or "")
    assert second.locator(".citations").text_content() == "none"
    assert second.locator(".decision").text_content() == "abstained"
    assert "football" in (second.locator(".unknown-words").text_content() or "")  # staff see why
    assert page.locator("#chat-log li.user").count() == 2

    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-test-chat.png"), full_page=True)

    # The citation leads to the article's knowledge base page.
    test_path = re.sub(r"^https?://[^/]+", "", page.url)
    link.click()
    page.wait_for_url(live_stack.url(slug, kb_path))
    assert page.text_content("h1") == "Help centre"

    # --- a batch test from the test chat page: the real worker answers, the page follows ----
    page.goto(live_stack.url(slug, test_path))
    page.fill("#batch-questions", f"How long does standard shipping take? | {ARTICLE_TITLE}\nWho won the World Cup?")
    page.click("#batch-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/test/batch/\d+/$"))
    page.wait_for_selector("#batch-status:text-is('Done')", timeout=90_000)  # the page reloads until done
    rows = page.locator("#batch-results tr.result")
    assert rows.count() == 2
    assert [rows.nth(i).get_attribute("data-decision") for i in range(2)] == ["answered", "abstained"]
    assert "3 to 5 business days" in (rows.nth(0).locator(".answer").text_content() or "")
    assert rows.nth(0).locator(".sources a").text_content() == ARTICLE_TITLE  # markup shown as text
    assert rows.nth(0).locator(".expected .badge").text_content() == "cited"
    assert page.locator("#batch-matched .n").text_content() == "1 of 1"
    first_run, first_id = page.url, page.url.rstrip("/").rsplit("/", 1)[1]
    # Run again: the new run is compared with the first, question by question.
    page.click("#batch-again button[type=submit]")
    page.wait_for_url(lambda url: url != first_run and re.search(r"/test/batch/\d+/$", url) is not None)
    page.wait_for_selector("#batch-status:text-is('Done')", timeout=90_000)
    assert page.locator("#batch-compare-form select option:checked").get_attribute("value") == first_id
    second_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert page.locator("#batch-changes [data-change=same]").text_content() == "2 same answer"
    assert [c.get_attribute("data-change") for c in page.locator("#batch-results td.change").all()] == ["same"] * 2
    page.screenshot(path=str(SCREENSHOT_DIR / "syntera-screenshot-batch-test.png"), full_page=True)
    # Picking a run in the list compares with it (the first run's page: with the later run).
    page.goto(first_run)
    assert page.locator("#batch-changes").count() == 0
    with page.expect_navigation():
        page.select_option("#batch-compare-form select", value=second_id)
    assert "compare=" in page.url and page.locator("#batch-changes [data-change=same]").count() == 1
    page.goto(live_stack.url(slug, test_path))
    assert page.locator("#batches tbody tr").count() == 2
    assert real_problems(page) == []
