"""The default connection, typed as django-tenants' schema-aware wrapper."""

from collections.abc import Iterator
from typing import Any, cast

from django.db import connection as _connection

connection: Any = cast(Any, _connection)


def release_connection() -> None:
    """Give the database connection back to the pool while this thread waits on something
    slow (an AI turn on its remote model), when the process pools its connections
    (DATABASE_POOL_SIZE) and no transaction is open; the next query borrows one again, in
    the same schema. Without a pool the connection stays, as Django keeps it."""
    if _connection.settings_dict.get("OPTIONS", {}).get("pool") and not _connection.in_atomic_block:
        _connection.close()


def in_each_workspace() -> Iterator[Any]:
    """Every active workspace, each yielded with the connection in its schema (the beat sweeps)."""
    from django_tenants.utils import get_tenant_model, tenant_context

    for tenant in get_tenant_model().objects.exclude(schema_name="public").filter(is_active=True):
        with tenant_context(tenant):
            yield tenant
