"""Ingestion survives a worker killed mid-job (kill -9): real uvicorn, real Celery workers
(one killed, one started with beat), real PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from .conftest import LiveStack, _start, _wait_worker_ready, _worker_args, wait_for

pytestmark = pytest.mark.live

PARAGRAPH = (
    "Paragraph {n}: our support team answers questions about orders, refunds, shipping times, "
    "warranty claims and account settings, and this sentence exists to give the embedder real work. "
)


def _worker(stack: LiveStack, name: str, *extra: str, env: dict[str, str] | None = None, pool: str = "solo") -> object:
    args = [*_worker_args(name, "default,ingest,llm_local", ["--pool", pool, "--concurrency", "1"]), *extra]
    service = _start(name, args, {**stack.env, **(env or {})}, stack.work_dir)
    _wait_worker_ready(service)
    return service


def test_killed_worker_leaves_the_job_to_be_picked_up_again(live_stack: LiveStack) -> None:
    """Upload a large text file → worker W1 starts embedding it → `kill -9` W1 mid-job → the
    source stays "processing" → W2 (with beat, short stall time) re-queues the stalled run and
    finishes it: ready, 100 %, every chunk exactly once, nothing lost."""
    slug = f"kill-{uuid.uuid4().hex[:6]}"
    live_stack.create_tenant(slug, f"owner@{slug}.example")
    api = live_stack.api(slug, live_stack.create_api_key(slug, "ingest"))
    with live_stack.paused("celery", "ingest"):  # only the workers of this test consume the queues
        first = _worker(live_stack, "w1")
        second = None
        try:
            kb = api.post("/api/v1/knowledge-bases/", json={"name": "Big"}).json()["id"]
            text = "\n\n".join(PARAGRAPH.format(n=n) for n in range(1500)).encode()
            created = api.post(
                f"/api/v1/knowledge-bases/{kb}/sources/", files={"file": ("big.txt", text, "text/plain")}
            )
            assert created.status_code == 201, created.text
            source_url = f"/api/v1/knowledge-bases/{kb}/sources/{created.json()['id']}/"

            def embedding_underway() -> dict[str, object] | None:
                body = api.get(source_url).json()
                return body if body["status"] == "processing" and body["progress"] >= 45 else None

            wait_for(embedding_underway, timeout=120, interval=0.1, what="the embedding to be under way")
            os.kill(first.proc.pid, signal.SIGKILL)  # type: ignore[attr-defined]
            first.proc.wait(timeout=10)  # type: ignore[attr-defined]
            stuck = api.get(source_url).json()
            assert stuck["status"] == "processing" and stuck["progress"] < 100

            schedule = str(live_stack.work_dir / "beat-schedule")
            second = _worker(
                live_stack,
                "w2",
                "--beat",
                "--schedule",
                schedule,
                env={"KNOWLEDGE_STALL_SECONDS": "3", "KNOWLEDGE_REQUEUE_INTERVAL": "1"},
            )

            def finished() -> dict[str, object] | None:
                body = api.get(source_url).json()
                return body if body["status"] in ("ready", "failed") else None

            done = wait_for(finished, timeout=240, interval=0.5, what="the re-queued ingestion to finish")
            assert (done["status"], done["progress"], done["error"]) == ("ready", 100, None)
            schema = slug.replace("-", "_")
            rows = live_stack.sql(
                f"SELECT count(*), count(DISTINCT (document_id, ordinal)), count(DISTINCT document_id), "
                f'count(*) FILTER (WHERE embedding IS NULL) FROM "{schema}".knowledge_chunk'
            )[0]
            assert rows[0] == done["chunk_count"] and rows[0] == rows[1]  # no duplicates
            assert rows[2] == 1 and rows[3] == 0  # one document, every chunk embedded
            hit = api.post(
                "/api/v1/knowledge/search", json={"query": "Paragraph 1499 warranty", "knowledge_bases": [kb]}
            )
            assert hit.status_code == 200 and hit.json()["results"]
        finally:
            for worker in (first, second):
                if worker is not None:
                    worker.stop()  # type: ignore[attr-defined]


# Runs in `manage.py shell`: the URL source on 127.0.0.1 is added with that address allowed
# (the live web server's allow-list is empty), and its task goes to the broker on commit.
ADD_URL_SOURCE = """
from django_tenants.utils import tenant_context
from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.knowledge import services
from apps.tenants.models import Tenant

tenant = Tenant.objects.get(slug=ARGS["slug"])
owner = User.objects.get(email=ARGS["email"])
actor = Actor(tenant=tenant, role=Role.OWNER, user=owner, label=owner.email)
with tenant_context(tenant):
    kb = services.knowledge_base_create(editor=actor, name="Slow site")
    source = services.source_add_url(editor=actor, kb=kb, url=ARGS["url"])
print(f"{kb.pk} {source.pk}")
"""


def test_a_trickling_site_is_stopped_by_the_tasks_soft_time_limit(live_stack: LiveStack) -> None:
    """A page that trickles a byte every 0.3 s, fetched with generous timeouts by a real
    prefork worker whose ingestion soft time limit is 3 s: the worker's time limit stops the
    run, and the source fails saying why, instead of holding the worker for minutes."""
    from tests.netlocal import local_site

    slug = f"slow-{uuid.uuid4().hex[:6]}"
    owner = f"owner@{slug}.example"
    live_stack.create_tenant(slug, owner)
    api = live_stack.api(slug, live_stack.create_api_key(slug, "slow"))
    limits = {
        "OUTBOUND_ALLOWLIST": "127.0.0.1/32",
        "KNOWLEDGE_FETCH_TIMEOUT": "30",
        "KNOWLEDGE_FETCH_DEADLINE": "120",
        "KNOWLEDGE_INGEST_SOFT_TIME_LIMIT": "3",
        "KNOWLEDGE_INGEST_TIME_LIMIT": "10",
    }
    with live_stack.paused("celery", "ingest"):
        worker = _worker(live_stack, "prefork", env=limits, pool="prefork")
        try:
            with local_site("127.0.0.1") as slow:
                slow.page("/", "<p>" + "slow " * 400 + "</p>", trickle_every=0.3)
                script = f"ARGS = {{'slug': {slug!r}, 'email': {owner!r}, 'url': {slow.url('/')!r}}}\n{ADD_URL_SOURCE}"
                env_before = dict(live_stack.env)
                # The time limits travel in the task's message, from the settings of the process
                # that queues it (here this shell; in production web and beat, set alike).
                live_stack.env.update(limits)
                try:
                    kb, source = live_stack.manage("shell", "-c", script).stdout.split()[-2:]
                finally:
                    live_stack.env.clear()
                    live_stack.env.update(env_before)
                source_url = f"/api/v1/knowledge-bases/{kb}/sources/{source}/"

                def failed() -> dict[str, object] | None:
                    body = api.get(source_url).json()
                    return body if body["status"] == "failed" else None

                done = wait_for(failed, timeout=90, interval=0.5, what="the time limit to stop the ingestion")
                assert slow.paths() == ["/"]  # fetched once, not retried
            assert "took longer than its 3-second time limit" in str(done["error"])
            assert "Soft time limit (3" in worker.log()  # type: ignore[attr-defined]
        finally:
            worker.stop()  # type: ignore[attr-defined]
