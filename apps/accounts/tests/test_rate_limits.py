"""Every place a credential is tried is rate limited per client address and per account.

Each entry point is driven the way its user reaches it (a form post, an API call, a link),
first from one address with different accounts, then for one account from many addresses.
Over a limit the answer is 429 with Retry-After (pages say so in words, the API in the error
JSON), and it is the same whether the account exists or not.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from apps.accounts.models import Membership, User
from apps.accounts.services.actors import Actor
from apps.accounts.services.invitations import invitation_create
from tests.support import PASSWORD

HIGH = "1000/h"


@dataclass
class Ctx:
    alpha: Any
    beta: Any
    client_for: Callable[..., Client]
    api_for: Callable[..., Any]
    login: Callable[..., Client]
    make_member: Callable[..., Any]

    def client(self, host: str, ip: str) -> Client:
        return self.client_for(host, REMOTE_ADDR=ip)


@pytest.fixture
def ctx(alpha: Any, beta: Any, client_for: Any, api_for: Any, login: Any, make_member: Any) -> Ctx:
    return Ctx(alpha, beta, client_for, api_for, login, make_member)


def _invitation(ctx: Ctx, email: str) -> str:
    owner = Membership.objects.get(tenant_id=ctx.alpha.tenant_id, user__email=ctx.alpha.owner_email)
    return invitation_create(actor=Actor.for_membership(owner), email=email, role="viewer")[1]


def _user(email: str) -> User | None:
    return User.objects.filter(email__iexact=email).first()


def _staff(email: str) -> User:
    return _user(email) or User.objects.create_superuser(email=email, password=PASSWORD)


# Each attempt: (ctx, client address, account) -> response. The account is an email (or, for
# a password-reset link, the account the link names); it may or may not exist.


def dashboard_login(ctx: Ctx, ip: str, account: str) -> Any:
    return ctx.client(ctx.alpha.host, ip).post("/login/", {"email": account, "password": "wrong-guess-1"})


def api_token(ctx: Ctx, ip: str, account: str) -> Any:
    client = ctx.api_for(ctx.alpha.host)
    return client.post(
        "/api/v1/auth/token/", {"email": account, "password": "wrong-guess-1"}, format="json", REMOTE_ADDR=ip
    )


def operator_admin_login(ctx: Ctx, ip: str, account: str) -> Any:
    return ctx.client("localhost", ip).post(
        "/admin/login/?next=/admin/", {"username": account, "password": "wrong-guess-1"}
    )


def signup(ctx: Ctx, ip: str, account: str) -> Any:
    form = {"company_name": "Squat", "slug": "alpha", "email": account, "password": "wrong-guess-1"}
    return ctx.client("localhost", ip).post("/", form)


def password_reset(ctx: Ctx, ip: str, account: str) -> Any:
    return ctx.client(ctx.alpha.host, ip).post("/password-reset/", {"email": account})


def password_reset_link(ctx: Ctx, ip: str, account: str) -> Any:
    user = _user(account)
    pk = user.pk if user else 10**9 + zlib.crc32(account.lower().encode())  # an id nobody has
    uid = base64.urlsafe_b64encode(str(pk).encode()).decode().rstrip("=")
    return ctx.client(ctx.alpha.host, ip).get(f"/password-reset/{uid}/{'x' * 20}-guess/")


def invitation_accept(ctx: Ctx, ip: str, account: str) -> Any:
    token = _invitation(ctx, account)  # a password too short to set, and not the account's
    return ctx.client(ctx.alpha.host, ip).post(f"/invite/{token}/", {"password": "x"})


def account_password_change(ctx: Ctx, ip: str, account: str) -> Any:
    user = _user(account)
    if user is None:
        user, _ = ctx.make_member(ctx.alpha, "viewer", email=account)
    client = ctx.client(ctx.alpha.host, ip)
    client.force_login(user)
    form = {"form": "password", "old_password": "wrong-guess-1", "new_password1": "x", "new_password2": "x"}
    return client.post("/account/", form)


def operator_password_change(ctx: Ctx, ip: str, account: str) -> Any:
    client = ctx.client("localhost", ip)
    client.force_login(_staff(account))
    form = {"old_password": "wrong-guess-1", "new_password1": "x", "new_password2": "x"}
    return client.post("/admin/password_change/", form)


def tenant_admin_password_change(ctx: Ctx, ip: str, account: str) -> Any:
    user = _user(account)
    if user is None or not Membership.objects.filter(user=user, tenant_id=ctx.alpha.tenant_id).exists():
        user, _ = ctx.make_member(ctx.alpha, "admin", email=account)
    client = ctx.client(ctx.alpha.host, ip)
    client.force_login(user)
    form = {"old_password": "wrong-guess-1", "new_password1": "x", "new_password2": "x"}
    return client.post("/admin/password_change/", form)


def login_link(ctx: Ctx, ip: str, account: str) -> Any:
    return ctx.client(ctx.alpha.host, ip).get(f"/login/link/?token=guess-{account}")


def token_refresh(ctx: Ctx, ip: str, account: str) -> Any:
    client = ctx.api_for(ctx.alpha.host)
    return client.post("/api/v1/auth/token/refresh/", {"refresh": f"guess.{account}"}, format="json", REMOTE_ADDR=ip)


def metrics_token(ctx: Ctx, ip: str, account: str) -> Any:
    return ctx.client("localhost", ip).get("/metrics", HTTP_AUTHORIZATION=f"Bearer guess-{account}")


# entry point, per-address setting, per-account setting (None: nothing names an account)
ENTRY_POINTS = [
    (dashboard_login, "RATELIMIT_LOGIN", "RATELIMIT_LOGIN_ACCOUNT"),
    (api_token, "RATELIMIT_LOGIN", "RATELIMIT_LOGIN_ACCOUNT"),
    (operator_admin_login, "RATELIMIT_LOGIN", "RATELIMIT_LOGIN_ACCOUNT"),
    (signup, "RATELIMIT_SIGNUP", "RATELIMIT_LOGIN_ACCOUNT"),
    (password_reset, "RATELIMIT_PASSWORD_RESET", "RATELIMIT_PASSWORD_RESET_ACCOUNT"),
    (password_reset_link, "RATELIMIT_PASSWORD_RESET", "RATELIMIT_PASSWORD_RESET_ACCOUNT"),
    (invitation_accept, "RATELIMIT_PUBLIC", "RATELIMIT_LOGIN_ACCOUNT"),
    (account_password_change, "RATELIMIT_LOGIN", "RATELIMIT_LOGIN_ACCOUNT"),
    (operator_password_change, "RATELIMIT_LOGIN", "RATELIMIT_LOGIN_ACCOUNT"),
    (tenant_admin_password_change, "RATELIMIT_LOGIN", "RATELIMIT_LOGIN_ACCOUNT"),
    (login_link, "RATELIMIT_PUBLIC", None),
    (token_refresh, "RATELIMIT_PUBLIC", None),
    (metrics_token, "RATELIMIT_API_AUTH_FAILURES", None),
]
PER_ACCOUNT = [(attempt, ip, acc) for attempt, ip, acc in ENTRY_POINTS if acc]


def _ids(entry: Any) -> str:
    return str(entry[0].__name__) if isinstance(entry, tuple) else str(entry)


def _assert_limited(response: Any) -> None:
    assert response.status_code == 429, (response.status_code, response.content[:300])
    assert 1 <= int(response["Retry-After"]) <= 3600
    if response["Content-Type"].startswith("application/json"):
        assert response.json()["error"]["code"] == "rate_limited"
    else:  # a page says it in words
        assert b"Too many requests" in response.content and b"Try again in" in response.content


def _settings(settings: Any, *, ip: str | None, account: str | None) -> None:
    for _, ip_setting, account_setting in ENTRY_POINTS:
        setattr(settings, ip_setting, HIGH)
        if account_setting:
            setattr(settings, account_setting, HIGH)
    if ip:
        setattr(settings, ip, "2/h")
    if account:
        setattr(settings, account, "2/h")


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=_ids)
def test_one_address_is_limited_whatever_accounts_it_tries(entry: Any, ctx: Ctx, settings: Any) -> None:
    attempt, ip_setting, _ = entry
    _settings(settings, ip=ip_setting, account=None)
    settings.METRICS_TOKEN = "the-real-metrics-token"
    for n in range(2):
        assert attempt(ctx, "203.0.113.7", f"person{n}@example.com").status_code != 429
    _assert_limited(attempt(ctx, "203.0.113.7", "person9@example.com"))
    # another address still gets through
    assert attempt(ctx, "203.0.113.8", "person9@example.com").status_code != 429


@pytest.mark.parametrize("entry", PER_ACCOUNT, ids=_ids)
def test_one_account_is_limited_from_any_number_of_addresses(entry: Any, ctx: Ctx, settings: Any) -> None:
    attempt, _, account_setting = entry
    _settings(settings, ip=None, account=account_setting)
    existing, unknown = ctx.alpha.owner_email, "nobody-here@example.com"
    if attempt is invitation_accept:  # an account that is not a member yet
        existing = ctx.beta.owner_email
    if attempt in (operator_password_change, tenant_admin_password_change, account_password_change):
        existing, unknown = "staff-one@example.com", "staff-two@example.com"  # a logged-in person
    answers = {}
    for account in (existing, unknown):
        for n in range(2):
            assert attempt(ctx, f"198.51.100.{n + 1}", account).status_code != 429
        limited = attempt(ctx, "198.51.100.99", account.upper())  # however it is typed
        _assert_limited(limited)
        answers[account] = (limited.status_code, limited["Content-Type"], len(limited.content) // 50)
        # another account from the same addresses still gets through
        assert attempt(ctx, "198.51.100.1", f"other-{account}").status_code != 429
    # the same refusal whether the account exists or not
    assert answers[existing] == answers[unknown]


def test_accounts_are_counted_under_a_keyed_hash_never_in_clear(ctx: Ctx, settings: Any) -> None:
    from syntera.errors import account_key

    _settings(settings, ip=None, account="RATELIMIT_LOGIN_ACCOUNT")
    dashboard_login(ctx, "192.0.2.1", "Secret.Person@Example.com")
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    keys = list(client.scan_iter(count=1000))
    stored = b" ".join([*keys, *(client.get(k) or b"" for k in keys if client.type(k) == b"string")])
    assert keys and b"secret.person" not in stored.lower()
    assert account_key("Secret.Person@Example.com ") == account_key("secret.person@example.com")
    import hashlib

    assert account_key("secret.person@example.com") not in {
        hashlib.sha256(b"secret.person@example.com").hexdigest(),
        hashlib.md5(b"secret.person@example.com").hexdigest(),
    }


def test_the_tenant_admin_login_is_the_limited_dashboard_login(ctx: Ctx, settings: Any) -> None:
    """The workspace admin site has no password form of its own: its login sends people to
    the dashboard's, which is limited, and a password posted to it logs nobody in."""
    response = ctx.client(ctx.alpha.host, "192.0.2.9").post(
        "/admin/login/", {"username": ctx.alpha.owner_email, "password": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    assert "_auth_user_id" not in ctx.client(ctx.alpha.host, "192.0.2.9").session


def test_a_person_can_still_log_in_below_the_limits(ctx: Ctx, settings: Any) -> None:
    settings.RATELIMIT_LOGIN_ACCOUNT = "3/h"
    client = ctx.client(ctx.alpha.host, "192.0.2.20")
    client.post("/login/", {"email": ctx.alpha.owner_email, "password": "typo"})
    assert client.post("/login/", {"email": ctx.alpha.owner_email, "password": PASSWORD}).status_code == 302


def test_an_operator_still_logs_in_through_the_limited_admin_form(ctx: Ctx) -> None:
    _staff("ops-login@example.com")
    client = ctx.client("localhost", "192.0.2.30")
    response = client.post("/admin/login/?next=/admin/", {"username": "ops-login@example.com", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_operator_password_change_keeps_the_admins_own_checks(ctx: Ctx) -> None:
    assert ctx.client("localhost", "192.0.2.31").get("/admin/password_change/").status_code == 302  # logged out
    client = ctx.client("localhost", "192.0.2.31")
    client.force_login(_staff("ops-change@example.com"))
    new = "a-fresh-operator-passphrase-31"
    form = {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    assert client.post("/admin/password_change/", form).status_code == 302
    assert _staff("ops-change@example.com").check_password(new)
