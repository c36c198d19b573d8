"""Constants and types shared by the test suites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PASSWORD = "correct-horse-battery-staple-42"


@dataclass
class TenantInfo:
    """A tenant created once per test session, with its canary rows."""

    slug: str
    schema: str
    host: str
    tenant_id: int
    owner_email: str
    api_key: str
    canary_key_name: str
    canary_invite_email: str
    canary_action: str


def keep_schema(call: Any, *args: Any, **kwargs: Any) -> Any:
    """A request through a test client, leaving the test's database connection in the schema
    it was in (the tenant middleware switches it to the request host's tenant)."""
    from django.db import connection

    tenant = connection.tenant  # type: ignore[attr-defined]
    try:
        return call(*args, **kwargs)
    finally:
        connection.set_tenant(tenant)  # type: ignore[attr-defined]
