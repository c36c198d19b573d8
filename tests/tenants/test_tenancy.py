"""Tenant creation and host resolution against real PostgreSQL schemas and real Redis."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from apps.accounts.models import Membership
from apps.accounts.services import signup_company
from apps.audit.models import AuditEvent
from apps.tenants.models import Domain, Tenant
from syntera.errors import ApplicationError
from tests.support import PASSWORD


def _schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [name])
        return cursor.fetchone() is not None


def test_signup_creates_schema_domain_owner_and_audit(db: None) -> None:
    result = signup_company(company_name="Zeta Ltd", slug="zeta-ltd", email="Boss@Zeta.example", password=PASSWORD)
    tenant = result.tenant
    assert tenant.schema_name == "zeta_ltd"
    assert _schema_exists("zeta_ltd")
    assert Domain.objects.get(tenant=tenant).domain == "zeta-ltd.localhost"
    assert result.user.email == "boss@zeta.example"
    assert Membership.objects.get(tenant=tenant, user=result.user).role == "owner"
    with schema_context("zeta_ltd"):
        assert list(AuditEvent.objects.values_list("action", flat=True)) == ["tenant.created"]


@pytest.mark.parametrize(
    ("slug", "code"),
    [
        ("ab", "invalid_slug"),
        ("Has Spaces", "invalid_slug"),
        ("x" * 41, "invalid_slug"),
        ("-lead", "invalid_slug"),
        ("double--hyphen", "invalid_slug"),
        ("admin", "slug_reserved"),
        ("pg-catalog", "slug_reserved"),
        ("alpha", "slug_taken"),
        ("'; drop schema public; --", "invalid_slug"),
    ],
)
def test_signup_rejects_bad_slugs_and_leaves_nothing(alpha: Any, slug: str, code: str) -> None:
    before = Tenant.objects.count()
    with pytest.raises(ApplicationError) as err:
        signup_company(company_name="X", slug=slug, email="new@x.example", password=PASSWORD)
    assert err.value.code == code
    assert Tenant.objects.count() == before


def test_signup_with_weak_password_creates_no_schema(db: None) -> None:
    with pytest.raises(ApplicationError) as err:
        signup_company(company_name="Weak", slug="weakco", email="w@weak.example", password="123")
    assert err.value.code == "weak_password"
    assert not Tenant.objects.filter(slug="weakco").exists()
    assert not _schema_exists("weakco")


def test_existing_account_can_add_a_second_company_with_its_password(alpha: Any) -> None:
    with pytest.raises(ApplicationError):
        signup_company(company_name="Two", slug="second-co", email=alpha.owner_email, password="wrong-password-123")
    result = signup_company(company_name="Two", slug="second-co", email=alpha.owner_email, password=PASSWORD)
    assert Membership.objects.filter(user=result.user).count() == 2


def test_unknown_host_is_404_and_public_host_serves_signup(client_for: Any) -> None:
    assert client_for("nobody.localhost").get("/login/").status_code == 404
    assert client_for("evil.example.com").get("/").status_code in (400, 404)
    response = client_for("localhost").get("/")
    assert response.status_code == 200
    assert b"Create workspace" in response.content


class _CountingCursor:
    """Counts `SET search_path` statements really sent to PostgreSQL on the raw connection."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        raw = connection.connection
        base = raw.cursor_factory
        counter = self

        class Counting(base):  # type: ignore[misc, valid-type]
            def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                if "search_path" in str(query).lower():
                    counter.count += 1
                return super().execute(query, *args, **kwargs)

        raw.cursor_factory = Counting
        self._restore = (raw, base)

    def uninstall(self) -> None:
        raw, base = self._restore
        raw.cursor_factory = base


def test_a_warm_request_sets_search_path_at_most_once(alpha: Any, login: Any) -> None:
    client = login(alpha, alpha.owner_email)
    client.get("/dashboard/")  # warm the host cache
    connection.ensure_connection()
    counter = _CountingCursor()
    counter.install()
    try:
        response = client.get("/dashboard/members/")
    finally:
        counter.uninstall()
    assert response.status_code == 200
    assert counter.count <= 1, counter.count


def test_cache_keys_carry_the_schema(alpha: Any, beta: Any) -> None:
    from django.core.cache import cache

    with schema_context(alpha.schema):
        cache.set("same-key", "alpha-value")
    with schema_context(beta.schema):
        assert cache.get("same-key") is None
        cache.set("same-key", "beta-value")
    with schema_context(alpha.schema):
        assert cache.get("same-key") == "alpha-value"
