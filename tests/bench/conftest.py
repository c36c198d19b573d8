"""Benchmark fixtures. Run with `make bench` (never part of `make test`).

- The benchmarks use their own test database (`test_syntera_bench`, or
  `SYNTERA_BENCH_DB_NAME`), so a `make test` running at the same time on the same
  PostgreSQL never collides with them. `DATABASE_TEST_NAME`, when set, still wins.
- `committed_tenant(slug)` gives a session-long context in one of the root conftest's
  tenants (alpha/beta) with the database unblocked and autocommit on: what a benchmark
  writes stays for the whole session (the test database is dropped at the end), and
  `transaction.on_commit` callbacks, such as the ingestion task, run right away (Celery is eager).
- The data directory is `SYNTERA_DATA_DIR`, default `../shared/data` next to the repository;
  a benchmark whose data is missing is skipped with the path it looked at.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

# Benchmarks that run every process against services of their own and never use the test
# database (tests/bench/test_faults.py starts its own PostgreSQL).
NO_TEST_DATABASE = ("test_faults.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every benchmark as a database test. pytest-django creates the test database only
    for sessions that collect such tests; without it the root conftest's tenants (and the
    benchmarks' data) would be written to the development database."""
    for item in items:
        path = item.nodeid.replace("\\", "/")
        if "tests/bench/" in path and not path.split("::")[0].endswith(NO_TEST_DATABASE):
            item.add_marker(pytest.mark.django_db)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    from django.conf import settings

    if not os.environ.get("DATABASE_TEST_NAME"):
        name = os.environ.get("SYNTERA_BENCH_DB_NAME", "test_syntera_bench")
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = name


@pytest.fixture(scope="session", autouse=True)
def _quiet_task_logs() -> None:
    """One INFO line per ingested source would bury the figures printed with `-s`."""
    for name in ("celery.app.trace", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)


def actor_for(schema: str, email: str) -> Any:
    from django_tenants.utils import get_tenant_model

    from apps.accounts.models import Role, User
    from apps.accounts.services import Actor

    tenant = get_tenant_model().objects.get(schema_name=schema)
    user = User.objects.get(email=email)
    return Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email)


@pytest.fixture(scope="session")
def committed_tenant(tenants: dict[str, Any], django_db_blocker: Any) -> Any:
    """`with committed_tenant("alpha") as actor:` → in alpha's schema, writes committed."""

    @contextlib.contextmanager
    def enter(slug: str) -> Iterator[Any]:
        from django.db import connection
        from django_tenants.utils import tenant_context

        info = tenants[slug]
        with django_db_blocker.unblock():
            database = connection.settings_dict["NAME"]
            assert str(database).startswith("test_"), f"refusing to write benchmark data to {database!r}"
            actor = actor_for(info.schema, info.owner_email)
            with tenant_context(actor.tenant):
                yield actor

    return enter
