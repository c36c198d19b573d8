"""The chat widget's demo page and the script it embeds: who may open the page, which
inbox's key it embeds on which host, and that the script is served where the snippet points.
The widget itself runs in a real browser in tests/integration/test_browser_widget.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from django_tenants.utils import schema_context

from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.conversations.models import Inbox
from apps.conversations.services import inbox_create
from apps.tenants.models import Tenant

SCRIPT = Path(__file__).resolve().parents[3] / "static" / "widget" / "syntera.js"


def _inbox(info: Any, **fields: Any) -> Inbox:
    owner = User.objects.get(email=info.owner_email)
    actor = Actor(tenant=Tenant.objects.get(pk=info.tenant_id), role=Role.OWNER, user=owner, label=owner.email)
    with schema_context(info.schema):
        return inbox_create(actor=actor, name=fields.pop("name", f"Website {info.slug}"), **fields)


def _demo(client: Any, inbox_id: int) -> Any:
    return client.get(f"/dashboard/inboxes/{inbox_id}/demo/")


def test_demo_page_embeds_the_snippet_of_this_inbox_on_this_host(alpha: Any, login: Any) -> None:
    inbox = _inbox(alpha, name="Shop <b>site</b>", allowed_origins=["https://shop.example"])
    response = _demo(login(alpha, alpha.owner_email), inbox.pk)
    assert response.status_code == 200
    html = response.content.decode()
    snippet = (
        f'<script src="http://alpha.localhost/static/widget/syntera.js" data-key="{inbox.widget_key}" async></script>'
    )
    # Embedded exactly as a customer pastes it, once...
    assert html.count(snippet) == 1
    # ...and shown as text to copy.
    shown = re.search(r'<textarea id="snippet"[^>]*>(.*?)</textarea>', html, re.S)
    assert shown and shown.group(1) == snippet.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert "Shop &lt;b&gt;site&lt;/b&gt;" in html and "<b>site</b>" not in html
    assert '<code class="origin">https://shop.example</code>' in html
    assert html.count("<script") == 2  # the page's copy button and the widget: nothing else


def test_any_member_may_open_it_anonymous_visitors_are_sent_to_log_in(
    alpha: Any, login: Any, make_member: Any, client_for: Any
) -> None:
    inbox = _inbox(alpha)
    viewer, password = make_member(alpha, Role.VIEWER)
    response = _demo(login(alpha, viewer.email, password), inbox.pk)
    assert response.status_code == 200 and inbox.widget_key in response.content.decode()

    anonymous = _demo(client_for(alpha.host), inbox.pk)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/login/?next=/dashboard/inboxes/{inbox.pk}/demo/"


def test_other_tenants_inboxes_and_non_web_inboxes_are_not_found(alpha: Any, beta: Any, login: Any) -> None:
    # A beta inbox whose id does not exist in alpha's schema (ids are per schema).
    with schema_context(alpha.schema):
        alpha_ids = set(Inbox.objects.values_list("pk", flat=True))
    beta_inbox = _inbox(beta)
    while beta_inbox.pk in alpha_ids:
        beta_inbox = _inbox(beta)
    owner = login(alpha, alpha.owner_email)
    response = _demo(owner, beta_inbox.pk)
    assert response.status_code == 404
    assert beta_inbox.widget_key not in response.content.decode()
    # The same id on beta's host, for beta's owner, is beta's inbox.
    beta_page = _demo(login(beta, beta.owner_email), beta_inbox.pk)
    assert beta_page.status_code == 200 and beta_inbox.widget_key in beta_page.content.decode()
    assert "http://beta.localhost/static/widget/syntera.js" in beta_page.content.decode()

    email_inbox = _inbox(alpha, channel="email")
    assert _demo(owner, email_inbox.pk).status_code == 404
    assert _demo(owner, 999_999).status_code == 404


def test_the_widget_script_is_served_where_the_snippet_points(alpha: Any, client_for: Any) -> None:
    for host in (alpha.host, "localhost"):
        response = client_for(host).get("/static/widget/syntera.js")
        assert response.status_code == 200, host
        assert response["Content-Type"].startswith(("text/javascript", "application/javascript"))
        body = b"".join(response.streaming_content).decode()
        assert body == SCRIPT.read_text()


def test_the_widget_script_never_parses_markup() -> None:
    """Server and visitor text reach the page only through textContent; the file has no HTML
    sinks at all, so that stays true as it changes."""
    source = SCRIPT.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, sink
    node = shutil.which("node")
    if node:  # a syntax error would otherwise only show in the browser suite
        subprocess.run([node, "--check", str(SCRIPT)], check=True, timeout=30)
