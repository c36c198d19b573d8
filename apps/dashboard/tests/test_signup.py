"""Signup and email ownership, driven through the pages: an address counts as a person's only
once they follow a link sent to it; nothing on a page tells whether an account exists."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Invitation, Membership, PendingSignup, User
from apps.tenants.models import Tenant
from tests.support import PASSWORD

CONFIRM_LINK = re.compile(r"http://localhost:8000(/signup/confirm/[^/\s]+/)")
CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')


@pytest.fixture
def signup(client_for: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """`signup(email, slug)` → (the response to the form, the emailed confirmation path or None)."""

    def do(email: str, slug: str, company: str = "Gamma GmbH", **extra: str) -> tuple[Any, str | None]:
        sent_before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for("localhost").post(
                "/", {"company_name": company, "slug": slug, "full_name": "Gi", "email": email, **extra}
            )
        mails = [m for m in mailoutbox[sent_before:] if email.lower() in [to.lower() for to in m.to]]
        link = CONFIRM_LINK.search(mails[-1].body) if mails else None
        return response, link.group(1) if link else None

    return do


def _owner_login(client_for: Any, response: Any, host: str) -> Any:
    """Follow the one-time login link the confirmation redirects to; returns the landed page."""
    assert response.status_code == 302, response.content[:2000]
    assert response["Location"].startswith(f"http://{host}/login/link/?token=")
    return client_for(host).get(response["Location"].split(host, 1)[1], follow=True)


def test_signup_creates_nothing_until_the_emailed_link_is_followed(
    client_for: Any, signup: Any, mailoutbox: Any
) -> None:
    response, link = signup("G@Gamma.example", "gamma")
    assert response.status_code == 302 and response["Location"] == "/signup/sent/"
    assert link is not None, [m.body for m in mailoutbox]
    assert "Confirm" in mailoutbox[-1].subject
    # Nothing exists yet: no account to squat with, no workspace.
    assert not User.objects.filter(email="g@gamma.example").exists()
    assert not Tenant.objects.filter(slug="gamma").exists()
    sent = client_for("localhost").get("/signup/sent/")
    assert sent.status_code == 200 and b"Check your email" in sent.content

    page = client_for("localhost").get(link)
    assert page.status_code == 200 and b"Choose a password" in page.content and b"gamma" in page.content
    weak = client_for("localhost").post(link, {"company_name": "Gamma GmbH", "slug": "gamma", "password": "short"})
    assert weak.status_code == 400 and not Tenant.objects.filter(slug="gamma").exists()
    done = client_for("localhost").post(link, {"company_name": "Gamma GmbH", "slug": "gamma", "password": PASSWORD})
    landed = _owner_login(client_for, done, "gamma.localhost")
    assert landed.redirect_chain[-1][0] == "/dashboard/"
    assert b"Gamma GmbH" in landed.content and b"owner" in landed.content
    user = User.objects.get(email="g@gamma.example")
    assert user.email_verified_at is not None and user.full_name == "Gi"
    assert Membership.objects.get(user=user, tenant__slug="gamma").role == "owner"
    assert client_for("gamma.localhost").post("/login/", {"email": user.email, "password": PASSWORD}).status_code == 302


def test_signup_never_tells_whether_an_account_exists(
    alpha: Any, client_for: Any, signup: Any, mailoutbox: Any
) -> None:
    # A prober may post a password too (the form once took one): it changes nothing.
    fresh, fresh_link = signup("nobody-yet@example.com", "fresh-co", password="a-guessed-password-1")
    known, known_link = signup(alpha.owner_email, "known-co", password="a-guessed-password-1")
    assert (fresh.status_code, fresh["Location"]) == (known.status_code, known["Location"]) == (302, "/signup/sent/")
    assert fresh.content == known.content
    assert set(fresh.cookies) == set(known.cookies)
    # The owner learns it from the email only, with a link to add the workspace to the account.
    assert fresh_link and known_link
    to_owner = next(m for m in mailoutbox if alpha.owner_email in m.to)
    assert "already has a Syntera account" in to_owner.body and "your password" in to_owner.body
    to_new = next(m for m in mailoutbox if "nobody-yet@example.com" in m.to)
    assert "already has" not in to_new.body and "choose a password" in to_new.body
    assert not User.objects.filter(email="nobody-yet@example.com").exists()


def test_an_existing_owner_adds_a_second_workspace_through_the_emailed_link(
    alpha: Any, beta: Any, client_for: Any, signup: Any
) -> None:
    _response, link = signup(alpha.owner_email, "alpha-two", company="Alpha Two")
    assert link is not None
    page = client_for("localhost").get(link)
    assert page.status_code == 200 and b"password of your Syntera account" in page.content
    form = {"company_name": "Alpha Two", "slug": "alpha-two"}
    wrong = client_for("localhost").post(link, {**form, "password": "not-the-password-1"})
    assert wrong.status_code == 400 and b"Wrong password" in wrong.content
    assert not Tenant.objects.filter(slug="alpha-two").exists()
    assert User.objects.get(email=alpha.owner_email).check_password(PASSWORD)  # unchanged by the attempt
    done = client_for("localhost").post(link, {**form, "password": PASSWORD})
    landed = _owner_login(client_for, done, "alpha-two.localhost")
    assert landed.redirect_chain[-1][0] == "/dashboard/"
    owner = User.objects.get(email=alpha.owner_email)
    assert set(owner.memberships.values_list("tenant__slug", flat=True)) == {"alpha", "alpha-two"}
    # the other tenant is untouched, and the new one has its own owner only
    assert not Membership.objects.filter(tenant__slug="alpha-two").exclude(user=owner).exists()
    assert Membership.objects.filter(tenant_id=beta.tenant_id, user=owner).count() == 0


def test_forged_expired_and_used_confirmation_links_are_refused(client_for: Any, signup: Any) -> None:
    public = client_for("localhost")
    form = {"company_name": "Late Co", "slug": "late-co", "password": PASSWORD}
    forged = public.get("/signup/confirm/not-a-real-token/")
    assert forged.status_code == 404 and b"not valid" in forged.content
    assert public.post("/signup/confirm/not-a-real-token/", form).status_code == 404

    _r, expired_link = signup("late@late.example", "late-co", company="Late Co")
    assert expired_link is not None
    PendingSignup.objects.filter(email="late@late.example").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert public.get(expired_link).status_code == 410
    response = public.post(expired_link, form)
    assert response.status_code == 410 and b"expired" in response.content
    assert not Tenant.objects.filter(slug="late-co").exists() and not User.objects.filter(email="late@late.example")

    _r, link = signup("once@once.example", "once-co", company="Once Co")
    assert link is not None
    first = public.post(link, {"company_name": "Once Co", "slug": "once-co", "password": PASSWORD})
    assert first.status_code == 302
    again = client_for("localhost").post(link, {"company_name": "Once Co", "slug": "once-two", "password": PASSWORD})
    assert again.status_code == 410 and b"already been used" in again.content
    assert not Tenant.objects.filter(slug="once-two").exists()
    # The link belongs to the public host: a tenant host does not serve it.
    assert client_for("once-co.localhost").get(link).status_code == 404


def test_an_address_taken_meanwhile_is_chosen_again_on_the_confirmation_page(
    client_for: Any, signup: Any, make_member: Any
) -> None:
    _r, link = signup("late2@example.com", "race-co", company="Race Co")
    _r2, other = signup("early@example.com", "race-co", company="Early Co")
    assert link and other
    client_for("localhost").post(other, {"company_name": "Early Co", "slug": "race-co", "password": PASSWORD})
    taken = client_for("localhost").post(link, {"company_name": "Race Co", "slug": "race-co", "password": PASSWORD})
    assert taken.status_code == 400 and b"already taken" in taken.content
    done = client_for("localhost").post(link, {"company_name": "Race Co", "slug": "race-two", "password": PASSWORD})
    assert done.status_code == 302
    assert Tenant.objects.get(slug="race-two").name == "Race Co"


def test_a_pending_signup_never_blocks_the_real_owner_from_an_invitation(
    alpha: Any, login: Any, client_for: Any, signup: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Someone signs up with another person's address; that person is then invited to alpha and
    joins with a password of their own choosing. The squatter's link gets them nothing more."""
    victim = "victim@example.com"
    _r, squatter_link = signup(victim, "squat-co", company="Squat Co")
    assert squatter_link is not None  # it went to the victim's mailbox, not to the squatter
    owner = login(alpha, alpha.owner_email)
    with django_capture_on_commit_callbacks(execute=True):
        owner.post("/dashboard/members/", {"email": victim, "role": "agent"})
    invite = re.search(r"http://alpha\.localhost:8000(/invite/[^/]+/)", mailoutbox[-1].body)
    assert invite is not None
    page = client_for(alpha.host).get(invite.group(1))
    assert b"Choose a password" in page.content
    accepted = client_for(alpha.host).post(invite.group(1), {"full_name": "Vic", "password": PASSWORD})
    assert accepted.status_code == 302
    user = User.objects.get(email=victim)
    assert user.email_verified_at is not None
    assert Membership.objects.get(user=user, tenant_id=alpha.tenant_id).role == "agent"


def test_an_unverified_account_is_claimed_by_the_invited_owner_of_the_address(
    alpha: Any, client_for: Any, api_for: Any
) -> None:
    """An account made for an address nobody proved (as signup once did) holds a squatter's
    password. The invitation link proves the address: its owner sets their own password, the
    squatter's password and session stop working, and the account counts as verified."""
    from apps.accounts.services import Actor, invitation_create, signup_company

    squatter_session = client_for("squat-two.localhost")
    User.objects.create_user(email="real@example.com", password="squatters-password-1")  # unverified
    squatted = signup_company(
        company_name="Squat Two", slug="squat-two", email="real@example.com", password="squatters-password-1"
    )
    User.objects.filter(pk=squatted.user.pk).update(email_verified_at=None)
    assert (
        squatter_session.post("/login/", {"email": "real@example.com", "password": "squatters-password-1"}).status_code
        == 302
    )
    assert squatter_session.get("/dashboard/").status_code == 200
    squatter_jwt = api_for("squat-two.localhost").post(
        "/api/v1/auth/token/", {"email": "real@example.com", "password": "squatters-password-1"}, format="json"
    )
    assert api_for("squat-two.localhost", squatter_jwt.json()["access"]).get("/api/v1/me/").status_code == 200

    owner = Membership.objects.get(tenant_id=alpha.tenant_id, user__email=alpha.owner_email)
    _inv, token = invitation_create(actor=Actor.for_membership(owner), email="real@example.com", role="viewer")
    page = client_for(alpha.host).get(f"/invite/{token}/")
    assert b"Choose a password" in page.content and b"existing Syntera account" not in page.content
    accepted = client_for(alpha.host).post(f"/invite/{token}/", {"password": "the-real-owners-password-2"})
    assert accepted.status_code == 302
    user = User.objects.get(email="real@example.com")
    assert user.email_verified_at is not None and user.check_password("the-real-owners-password-2")
    assert (
        client_for("squat-two.localhost")
        .post("/login/", {"email": "real@example.com", "password": "squatters-password-1"})
        .status_code
        == 400
    )
    assert squatter_session.get("/dashboard/").status_code == 302  # logged out: the password changed
    # ...and the JWTs issued to the squatter stop working too, refresh token included.
    assert api_for("squat-two.localhost", squatter_jwt.json()["access"]).get("/api/v1/me/").status_code == 401
    refreshed = api_for("squat-two.localhost").post(
        "/api/v1/auth/token/refresh/", {"refresh": squatter_jwt.json()["refresh"]}, format="json"
    )
    assert refreshed.status_code == 401 and refreshed.json()["error"]["code"] == "token_not_valid"
    assert Membership.objects.filter(user=user, tenant_id=alpha.tenant_id, role="viewer").exists()


def test_a_verified_account_still_proves_its_password_to_accept(alpha: Any, beta: Any, client_for: Any) -> None:
    from apps.accounts.services import Actor, invitation_create

    owner = Membership.objects.get(tenant_id=alpha.tenant_id, user__email=alpha.owner_email)
    _inv, token = invitation_create(actor=Actor.for_membership(owner), email=beta.owner_email, role="viewer")
    assert b"existing Syntera account" in client_for(alpha.host).get(f"/invite/{token}/").content
    refused = client_for(alpha.host).post(f"/invite/{token}/", {"password": "someone-elses-choice-3"})
    assert refused.status_code == 400
    assert User.objects.get(email=beta.owner_email).check_password(PASSWORD)
    assert not Invitation.objects.get(token_hash__isnull=False, pk=_inv.pk).accepted_at


def test_password_reset_never_tells_whether_an_account_exists_and_verifies_the_address(
    alpha: Any, beta: Any, client_for: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    User.objects.filter(email=alpha.owner_email).update(email_verified_at=None)
    answers = []
    for email in (alpha.owner_email, "no-such-person@example.com", beta.owner_email):
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(alpha.host).post("/password-reset/", {"email": email})
        answers.append((response.status_code, response["Location"], response.content))
    assert answers[0] == answers[1] == answers[2]
    assert [m.to for m in mailoutbox] == [[alpha.owner_email]]
    link = re.search(r"http://alpha\.localhost(/password-reset/[^/]+/[^/]+/)", mailoutbox[0].body)
    assert link is not None
    client = client_for(alpha.host)
    form = client.get(link.group(1), follow=True)
    new_password = "reset-by-the-owner-of-the-box-9"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done.status_code == 302
    assert User.objects.get(email=alpha.owner_email).email_verified_at is not None


def test_the_signup_pages_say_where_emails_go_while_debug_is_on(client_for: Any, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    settings.DEBUG = True
    for path in ("/", "/signup/sent/"):
        page = client_for("localhost").get(path).content.decode()
        assert "printed" in page and "make run" in page, path
    settings.DEBUG = False
    assert b"make run" not in client_for("localhost").get("/signup/sent/").content


def test_operator_created_and_demo_owners_log_in_as_before(db: None, client_for: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    call_command("create_tenant", "ops-made", "--owner", "boss@ops.example", "--password", PASSWORD, stdout=StringIO())
    assert (
        client_for("ops-made.localhost")
        .post("/login/", {"email": "boss@ops.example", "password": PASSWORD})
        .status_code
        == 302
    )
    assert User.objects.get(email="boss@ops.example").email_verified_at is not None  # the operator vouches


def test_operators_see_pending_signups_and_who_is_verified_in_the_public_admin(client_for: Any, signup: Any) -> None:
    signup("waiting@example.com", "waiting-co", company="Waiting Co")
    User.objects.create_superuser(email="ops@syntera.example", password=PASSWORD)
    client = client_for("localhost")
    assert client.login(email="ops@syntera.example", password=PASSWORD)
    listing = client.get("/admin/accounts/pendingsignup/")
    assert listing.status_code == 200 and b"waiting@example.com" in listing.content and b"pending" in listing.content
    pending = PendingSignup.objects.get(email="waiting@example.com")
    detail = client.get(f"/admin/accounts/pendingsignup/{pending.pk}/change/")
    assert detail.status_code == 200 and pending.token_hash.encode() not in detail.content
    user = User.objects.get(email="ops@syntera.example")
    assert b"email_verified_at" in client.get(f"/admin/accounts/user/{user.pk}/change/").content
