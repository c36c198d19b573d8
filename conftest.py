"""Shared fixtures: real PostgreSQL and Redis (started by `make test`), two tenants with
canary rows, and host-aware clients.

The canary pattern: every tenant gets rows whose names carry its slug ("canary-alpha");
isolation tests assert that nothing carrying another tenant's canary ever comes back.
Later subsystems add their own canary rows in `_seed_canaries`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

# In-process tests use their own Redis database and key space, so they never touch a running
# dev stack's data, and two test sessions on one Redis (a developer's and an editor's) never
# wipe each other's rate-limit counters or presence marks: clearing "the cache" between tests
# deletes this session's keys only. pytest-django has loaded the settings before this file
# runs, so the values are set on the settings themselves (caches and channel layers are built
# lazily from them) and in the environment (for processes the tests start).
REDIS_TEST_URL = urlunsplit(urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))._replace(path="/15"))
CACHE_PREFIX = f"test{os.getpid()}"
os.environ["REDIS_URL"] = REDIS_TEST_URL
os.environ["CACHE_KEY_PREFIX"] = CACHE_PREFIX
os.environ.setdefault("LOG_FORMAT", "text")
# Every event emitted anywhere in the suite (its live servers included) is checked against its
# JSON Schema and docs/subsystems/events.md (apps/events/validation.py).
os.environ["EVENTS_VALIDATE"] = "true"


def _use_test_redis() -> None:
    from django.conf import settings

    settings.REDIS_URL = REDIS_TEST_URL
    for alias, config in settings.CACHES.items():
        config["LOCATION"] = REDIS_TEST_URL
        config["KEY_PREFIX"] = CACHE_PREFIX + (":sessions" if alias == "sessions" else "")
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [REDIS_TEST_URL]
    # Groups too: every session's workspaces are called alpha and beta, and a frame another
    # session publishes to `staff.alpha` must not reach this session's sockets.
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = CACHE_PREFIX
    settings.CELERY_BROKER_URL = REDIS_TEST_URL
    # In-process consumer tests run the consumers' database calls on the test's own thread
    # and connection (inside its transaction); the live-server suite runs the pooled default.
    settings.CHANNELS_DB_SHARED_THREAD = True
    settings.EVENTS_VALIDATE = True


_use_test_redis()

from tests.support import PASSWORD, TenantInfo  # noqa: E402  (after the settings are adjusted)

pytest_plugins = ["tests.workspaces"]


def _seed_canaries(slug: str) -> TenantInfo:
    from apps.accounts.models import Role
    from apps.accounts.services import Actor, api_key_create, invitation_create, signup_company
    from apps.audit.services import audit_record

    result = signup_company(
        company_name=f"{slug.title()} Corp", slug=slug, email=f"owner@{slug}.example", password=PASSWORD
    )
    tenant = result.tenant
    actor = Actor(tenant=tenant, role=Role.OWNER, user=result.user, label=result.user.email)
    _key, raw = api_key_create(actor=actor, name=f"canary-{slug}")
    invitation_create(actor=actor, email=f"canary-{slug}@example.com", role=Role.AGENT)
    audit_record(tenant=tenant, action=f"canary.{slug}", actor_label=f"canary-{slug}")
    _seed_knowledge_canary(tenant, actor, slug)
    _seed_conversation_canaries(tenant, actor, slug)
    return TenantInfo(
        slug=slug,
        schema=tenant.schema_name,
        host=f"{slug}.localhost",
        tenant_id=tenant.pk,
        owner_email=result.user.email,
        api_key=raw,
        canary_key_name=f"canary-{slug}",
        canary_invite_email=f"canary-{slug}@example.com",
        canary_action=f"canary.{slug}",
    )


def _seed_knowledge_canary(tenant: Any, actor: Any, slug: str) -> None:
    """A knowledge base whose only chunk says `canary-<slug>`, ingested for real."""
    from django_tenants.utils import tenant_context

    from apps.knowledge import services

    with tenant_context(tenant):
        kb = services.knowledge_base_create(editor=actor, name=f"canary-{slug} knowledge")
        source = services.source_add_text(
            editor=actor,
            kb=kb,
            title=f"canary-{slug} article",
            text=f"# Canary\n\nThe secret canary word of this workspace is canary-{slug}. Shipping takes 3 days.",
        )
        source.refresh_from_db()
        services.ingest_source(source_id=source.pk, run=source.run)


def _seed_conversation_canaries(tenant: Any, actor: Any, slug: str) -> None:
    """An agent, a contact with memory, an inbox and a conversation, each named canary-<slug>."""
    from django_tenants.utils import tenant_context

    from apps.agents.services import agent_create
    from apps.conversations import services as conversations
    from apps.crm.services import contact_create, contact_memory_set

    with tenant_context(tenant):
        agent = agent_create(editor=actor, name=f"canary-{slug} agent", instructions=f"canary-{slug} instructions")
        contact = contact_create(actor=actor, name=f"canary-{slug} contact", email=f"contact@{slug}.example")
        contact_memory_set(actor=actor, contact=contact, key="note", value=f"canary-{slug} memory")
        inbox = conversations.inbox_create(actor=actor, name=f"canary-{slug} inbox", agent_id=agent.pk)
        conversation, _token = conversations.conversation_start(inbox=inbox, contact=contact)
        conversations.message_post(
            conversation_id=conversation.pk, role="agent", text=f"canary-{slug} message", actor=actor
        )


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> dict[str, TenantInfo]:
    """Migrate the test database, then create tenants `alpha` and `beta` once (committed)."""
    from django.conf import settings

    # Django's setting is the one switch: Celery reads it (its namespaced configuration), and
    # so does the code that runs a task inline when tasks cannot wait in a queue.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_db_blocker.unblock():
        return {slug: _seed_canaries(slug) for slug in ("alpha", "beta")}


@pytest.fixture(scope="session")
def tenants(django_db_setup: dict[str, TenantInfo]) -> dict[str, TenantInfo]:
    return django_db_setup


@pytest.fixture
def alpha(tenants: dict[str, TenantInfo], db: None) -> TenantInfo:
    return tenants["alpha"]


def _owner_in(info: TenantInfo) -> Iterator[Any]:
    from django_tenants.utils import get_tenant_model, tenant_context

    from apps.accounts.models import Role, User
    from apps.accounts.services import Actor

    tenant = get_tenant_model().objects.get(schema_name=info.schema)
    user = User.objects.get(email=info.owner_email)
    with tenant_context(tenant):
        yield Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email)


@pytest.fixture
def owner(alpha: TenantInfo) -> Iterator[Any]:
    """alpha's owner as an Actor, inside alpha's schema."""
    yield from _owner_in(alpha)


@pytest.fixture
def beta_owner(beta: TenantInfo) -> Iterator[Any]:
    """beta's owner as an Actor, inside beta's schema."""
    yield from _owner_in(beta)


@pytest.fixture
def beta(tenants: dict[str, TenantInfo], db: None) -> TenantInfo:
    return tenants["beta"]


@pytest.fixture(autouse=True)
def _clean_cache_and_schema() -> Any:
    """Each test starts with an empty cache (rate-limit counters, host lookups) in public."""
    from django.core.cache import cache
    from django.db import connection

    yield
    with contextlib.suppress(Exception):  # tests that stop Redis on purpose
        client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
        keys = list(client.scan_iter(match=f"*{CACHE_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    connection.set_schema_to_public()  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _eager_celery(settings: Any) -> Any:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    yield


@pytest.fixture
def client_for(db: None) -> Any:
    """`client_for("alpha.localhost")` → a Django test client talking to that host."""
    from django.test import Client

    def make(host: str, **extra: Any) -> Client:
        return Client(HTTP_HOST=host, **extra)

    return make


@pytest.fixture
def api_for(db: None) -> Any:
    """`api_for(host, token)` → a DRF APIClient with a Bearer token on that host."""
    from rest_framework.test import APIClient

    def make(host: str, token: str | None = None) -> APIClient:
        client = APIClient(HTTP_HOST=host)
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def make_member(db: None) -> Any:
    """`make_member(tenant_info, role)` → (user, password) with that role in the tenant."""
    from apps.accounts.models import Membership, User

    counter = {"n": 0}

    def make(info: TenantInfo, role: str, email: str | None = None) -> tuple[Any, str]:
        counter["n"] += 1
        email = email or f"{role}{counter['n']}@{info.slug}.example"
        user = User.objects.filter(email=email).first() or User.objects.create_user(email=email, password=PASSWORD)
        Membership.objects.create(user=user, tenant_id=info.tenant_id, role=role)
        return user, PASSWORD

    return make


@pytest.fixture
def login(client_for: Any) -> Any:
    """`login(info, email)` → a test client logged in through the real login form."""

    def do(info: TenantInfo, email: str, password: str = PASSWORD) -> Any:
        client = client_for(info.host)
        response = client.post("/login/", {"email": email, "password": password})
        assert response.status_code == 302, response.content[:500]
        return client

    return do


@pytest.fixture
def jwt_for(api_for: Any) -> Any:
    def get(info: TenantInfo, email: str, password: str = PASSWORD) -> str:
        response = api_for(info.host).post("/api/v1/auth/token/", {"email": email, "password": password}, format="json")
        assert response.status_code == 200, response.content
        return str(response.json()["access"])

    return get
