"""Workspace addresses that can never be taken: reserved and system names, any schema that
already exists in PostgreSQL, and the slug of a deleted workspace. The same rules hold for
signup (service and page), the operator's public admin and `manage.py create_tenant`."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.accounts.services import signup_company
from apps.tenants.models import Tenant
from syntera.errors import ApplicationError
from tests.support import PASSWORD


def _tables(schema: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])
        return sorted(row[0] for row in cursor.fetchall())


def _admin_add(operator: Any, slug: str) -> Any:
    return operator.post(
        "/admin/tenants/tenant/add/",
        {
            "name": "Someone",
            "slug": slug,
            "is_active": "on",
            "domains-TOTAL_FORMS": "0",
            "domains-INITIAL_FORMS": "0",
        },
    )


def _refused_everywhere(slug: str, code: str, client_for: Any, operator: Any) -> None:
    before = Tenant.objects.count()
    with pytest.raises(ApplicationError) as err:
        signup_company(company_name="Someone", slug=slug, email="someone@new.example", password=PASSWORD)
    assert err.value.code == code
    page = client_for("localhost").post(
        "/",
        {"company_name": "Someone", "slug": slug, "email": "someone@new.example", "password": PASSWORD},
    )
    assert page.status_code == 400, page.content[:300]
    admin = _admin_add(operator, slug)
    assert admin.status_code == 200 and b"errorlist" in admin.content, admin.status_code
    with pytest.raises(CommandError):
        call_command("create_tenant", slug, "--owner", "someone@new.example")
    assert Tenant.objects.count() == before


def test_a_leftover_schema_without_a_tenant_row_blocks_its_slug(db: None, client_for: Any, operator: Any) -> None:
    """A tenant row deleted by hand (a shell, an old admin) leaves its schema and everything in
    it: the next signup with that slug must never adopt it."""
    from django_tenants.utils import schema_context

    from apps.crm.models import Contact

    old = signup_company(company_name="Old Co", slug="leftover-co", email="old@old.example", password=PASSWORD)
    with schema_context("leftover_co"):
        Contact.objects.create(name="the old customer's contact")
    Tenant.objects.filter(pk=old.tenant.pk).delete()  # the row goes, the schema stays
    tables = _tables("leftover_co")
    assert "crm_contact" in tables

    _refused_everywhere("leftover-co", "slug_taken", client_for, operator)
    with schema_context("leftover_co"):  # untouched, and adopted by nobody
        assert list(Contact.objects.values_list("name", flat=True)) == ["the old customer's contact"]
    assert _tables("leftover_co") == tables


@pytest.mark.parametrize("slug", ["public", "information-schema", "pg-toast", "pg-temp-3", "www", "api", "admin"])
def test_reserved_and_system_names_are_refused(db: None, client_for: Any, operator: Any, slug: str) -> None:
    _refused_everywhere(slug, "slug_reserved", client_for, operator)


def test_any_existing_postgresql_schema_is_refused(db: None, client_for: Any, operator: Any) -> None:
    """A schema made by an extension or a DBA (here `reporting`) is not a workspace's to take."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA reporting")
    _refused_everywhere("reporting", "slug_taken", client_for, operator)
    assert _tables("reporting") == []


def test_public_admin_cannot_hard_delete_a_workspace(alpha: Any, operator: Any) -> None:
    """Deleting the row from the admin used to leave the schema behind for the next signup with
    that slug to inherit. Deletion is a scheduled, audited operation instead (the admin's
    actions); the row itself is never deleted."""
    tenant = Tenant.objects.get(slug=alpha.slug)
    page = operator.get(f"/admin/tenants/tenant/{tenant.pk}/delete/")
    assert page.status_code == 403
    response = operator.post(f"/admin/tenants/tenant/{tenant.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    bulk = operator.post(
        "/admin/tenants/tenant/", {"action": "delete_selected", "_selected_action": [tenant.pk], "post": "yes"}
    )
    assert Tenant.objects.filter(pk=tenant.pk).exists(), bulk.status_code
    with pytest.raises(ApplicationError) as err:  # nor from code (a shell, a script)
        tenant.delete()
    assert err.value.code == "use_workspace_deletion"
    with pytest.raises(ApplicationError) as err:
        signup_company(company_name="Heir", slug=alpha.slug, email="heir@new.example", password=PASSWORD)
    assert err.value.code == "slug_taken"
