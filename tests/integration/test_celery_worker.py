"""Invitations end to end through a real Celery worker process.

Drives: `manage.py create_tenant` and `manage.py create_api_key` (subprocesses) → the REST API
on uvicorn with the API key → `invitation_create` enqueues `accounts.send_invitation_email`
on commit → Redis broker → the Celery worker process (tenant schema carried in the task
headers) → Django's file email backend → the invitee follows the link from the email in an
HTTP client (accept page, CSRF form) → session on the tenant host → the API again.
"""

from __future__ import annotations

import re

import pytest

from .conftest import PASSWORD, LiveStack, csrf_token, mail_body, wait_for

pytestmark = pytest.mark.live

SLUG = "celery-co"
INVITEE = "new.agent@celery-co.example"


def test_invitation_email_is_sent_by_the_worker_and_the_link_admits_the_invitee(live_stack: LiveStack) -> None:
    """API key → POST /api/v1/invitations/ (uvicorn) → Redis → Celery worker → email file →
    accept page (GET + CSRF POST) → logged in on the dashboard → member list via the API."""
    live_stack.create_tenant(SLUG, f"owner@{SLUG}.example", PASSWORD, name="Celery Co")
    key = live_stack.create_api_key(SLUG, name="integration")
    api = live_stack.api(SLUG, key)

    response = api.post("/api/v1/invitations/", json={"email": INVITEE, "role": "agent"})
    assert response.status_code == 201, response.text
    invitation = response.json()
    assert invitation["email"] == INVITEE and invitation["role"] == "agent" and invitation["status"] == "pending"

    # The web process only enqueued the email; the worker process writes it.
    message = live_stack.wait_for_mail(INVITEE, timeout=30)
    worker = live_stack.service("celery")
    wait_for(
        lambda: re.search(r"Task accounts\.send_invitation_email\[[0-9a-f-]+\] succeeded", worker.log()),
        timeout=10,
        what="the worker to log the task's success",
    )
    assert "Celery Co" in str(message["Subject"])
    body = mail_body(message)
    host = live_stack.host(SLUG)
    match = re.search(rf"http://{re.escape(host)}/invite/([A-Za-z0-9_-]+)/", body)
    assert match, f"no invitation link for {host} in:\n{body}"
    assert "as agent" in body
    path = f"/invite/{match.group(1)}/"

    invitee = live_stack.http(host)
    page = invitee.get(path)
    assert page.status_code == 200, page.text[:500]
    assert INVITEE in page.text and "Choose a password" in page.text
    accepted = invitee.post(
        path, data={"full_name": "Nia Agent", "password": PASSWORD, "csrfmiddlewaretoken": csrf_token(page.text)}
    )
    assert accepted.status_code == 302, accepted.text[:1000]
    assert accepted.headers["location"] == "/dashboard/"
    dashboard = invitee.get("/dashboard/")
    assert dashboard.status_code == 200
    assert "Celery Co" in dashboard.text and INVITEE in dashboard.text
    assert '<strong id="role">agent</strong>' in dashboard.text
    # The invitee's session works on the API too (session auth on the tenant host).
    me = invitee.get("/api/v1/me/")
    assert me.status_code == 200 and me.json()["role"] == "agent" and me.json()["tenant"]["slug"] == SLUG

    members = api.get("/api/v1/members/")
    assert members.status_code == 200
    by_email = {m["email"]: m for m in members.json()["results"]}
    assert by_email[INVITEE]["role"] == "agent" and by_email[INVITEE]["full_name"] == "Nia Agent"
    assert by_email[f"owner@{SLUG}.example"]["role"] == "owner"

    status = api.get(f"/api/v1/invitations/{invitation['id']}/")
    assert status.status_code == 200 and status.json()["status"] == "accepted"
    assert status.json()["accepted_at"]

    # The link is single-use, for everyone.
    assert live_stack.http(host).get(path).status_code == 410
    assert invitee.get(path).status_code == 410
    # Exactly one email went out.
    assert len([m for m in live_stack.messages() if INVITEE in str(m.get("To", ""))]) == 1
