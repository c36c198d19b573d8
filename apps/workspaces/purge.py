"""The steps of a workspace's purge, each removing one kind of its data wherever it lives:
vectors, transcripts, files, Redis keys, its schema, its public rows. Each is idempotent: run
again after a crash, it finds less or nothing to remove. `tenant_purge` (deletion.py) runs
them in order and records each one done. See docs/subsystems/tenancy.md ("Deleting a
workspace").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from apps.conversations.stores import get_store as conversation_store
from apps.knowledge.stores import get_store as vector_store
from apps.tenants.db import connection
from apps.tenants.models import Domain, Tenant, TenantDeletion
from apps.tenants.selectors import forget_host, tenant_domains
from syntera import realtime

logger = logging.getLogger(__name__)


def purge_vectors(tenant: Tenant) -> None:
    """The tenant's vectors in the configured vector store (Pinecone: its namespace)."""
    vector_store().drop_tenant(schema=tenant.schema_name)


def purge_transcripts(tenant: Tenant) -> None:
    """The tenant's transcripts in the configured conversation store (MongoDB: its database)."""
    conversation_store().drop_tenant(schema=tenant.schema_name)


def purge_files(tenant: Tenant) -> None:
    """Everything under the tenant's media path (`tenants/<schema>/`: uploads and exports)."""
    root = f"tenants/{tenant.schema_name}"

    def walk(path: str) -> None:
        if not default_storage.exists(path):
            return
        directories, files = default_storage.listdir(path)
        for name in files:
            default_storage.delete(f"{path}/{name}")
        for name in directories:
            walk(f"{path}/{name}")

    walk(root)
    if hasattr(default_storage, "path"):  # a local file system also keeps the empty directories
        import shutil

        shutil.rmtree(default_storage.path(root), ignore_errors=True)


def _cache_patterns(schema: str) -> list[str]:
    """Cache keys of the tenant: every entry written in its namespace (`django_tenants.cache`
    puts the schema first), and entries of any namespace whose key has the schema as one of
    its segments (`presence:<schema>:<user>`, and the like)."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    # Counted slots, circuit breakers and turn hints (`syntera.slots.key`): `<prefix>:slots:<kind>:<schema>...`.
    slotted = [f"{prefix}:slots:*:{schema}", f"{prefix}:slots:*:{schema}:*"]
    return [f"{schema}:{prefix}:*", f"*:{prefix}:*:{schema}:*", f"*:{prefix}:*:{schema}", *slotted]


def _channel_layer() -> tuple[str, dict[str, Any]]:
    """The default channel layer's backend and configuration."""
    layer: dict[str, Any] = dict(settings.CHANNEL_LAYERS.get("default") or {})
    return str(layer.get("BACKEND", "")), dict(layer.get("CONFIG") or {})


def _group_patterns(schema: str) -> list[str]:
    prefix = _channel_layer()[1].get("prefix", "asgi")
    kinds = realtime.TENANT_GROUP_KINDS
    return [f"{prefix}:group:{kind}.{schema}" for kind in kinds] + [
        f"{prefix}:group:{kind}.{schema}.*" for kind in kinds
    ]


def _channel_layer_clients() -> list[Any]:
    backend, config = _channel_layer()
    if "channels_redis" not in backend:
        return []
    from channels_redis.utils import decode_hosts

    clients = []
    for host in decode_hosts(config.get("hosts")):
        host = dict(host)
        if "address" in host:
            clients.append(redis.Redis.from_url(host.pop("address"), **host))
        elif "master_name" not in host:
            clients.append(redis.Redis(**host))
    return clients


def _delete_matching(client: Any, patterns: list[str]) -> int:
    deleted = 0
    for pattern in patterns:
        batch = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    return deleted


def purge_redis(tenant: Tenant) -> None:
    """Cache entries, rate counters and presence marks named with the schema, and its
    channel-layer groups."""
    from django.core.cache import caches

    schema = tenant.schema_name
    client = caches["default"]._cache.get_client(None, write=True)  # type: ignore[attr-defined]
    deleted = _delete_matching(client, _cache_patterns(schema))
    for client in _channel_layer_clients():
        deleted += _delete_matching(client, _group_patterns(schema))
    logger.info("purge of %s: %d Redis keys deleted", schema, deleted)


def drop_schema(tenant: Tenant) -> None:
    """DROP SCHEMA ... CASCADE: every tenant table goes, pgvector's chunk vectors and the
    PostgreSQL transcripts with them (the vector extension lives in public)."""
    schema = tenant.schema_name
    if not schema or schema == "public" or schema.startswith("pg_") or schema == "information_schema":
        raise ValueError(f"refusing to drop schema {schema!r}")
    with transaction.atomic(), connection.cursor() as cursor:
        # Deferred foreign-key checks still pending in this transaction would block the drop.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(schema)} CASCADE")


def _public_models() -> list[Any]:
    """Public-schema models that point at the tenant (memberships, invitations, API keys,
    domains, exports...), except the deletion requests, which are its history."""
    tenant_only = {app.split(".")[-1] for app in settings.TENANT_APPS} - {
        app.split(".")[-1] for app in settings.SHARED_APPS
    }
    models = []
    for relation in Tenant._meta.related_objects:
        model = relation.related_model
        if relation.one_to_many and model is not TenantDeletion and model._meta.app_label not in tenant_only:
            models.append((model, relation.field.name))
    # Domains last: the host keeps answering "deleted" until everything else is gone.
    return sorted(models, key=lambda pair: pair[0] is Domain)


def purge_rows(tenant: Tenant) -> None:
    hosts = tenant_domains(tenant)
    with transaction.atomic():
        for model, field in _public_models():
            model._base_manager.filter(**{field: tenant}).delete()
    for host in hosts:
        forget_host(host)


# In the order they run, after "mark" (deletion.py). Each step is looked up when it runs (so a
# test can make one fail).
STEPS: tuple[tuple[str, Callable[[Tenant], None]], ...] = (
    ("vectors", lambda tenant: purge_vectors(tenant)),
    ("transcripts", lambda tenant: purge_transcripts(tenant)),
    ("files", lambda tenant: purge_files(tenant)),
    ("redis", lambda tenant: purge_redis(tenant)),
    ("schema", lambda tenant: drop_schema(tenant)),
    ("rows", lambda tenant: purge_rows(tenant)),
)
