"""Widget WebSocket under load: daphne against uvicorn, the same ASGI app, in the same run.

Set-up (all on this machine, loopback only):
- three tenants (`chata`, `chatb`, `chatc`) in the bench database, each with a help knowledge
  base ingested for real, an agent on it (the offline responder: no network), and a web
  inbox; committed, so the server processes see them;
- for each load point and each server: a fresh ASGI server process serving
  `syntera.asgi:application` with one worker (uvicorn: `--workers 1`, its `auto` WebSocket
  implementation, which is websockets' sans-I/O protocol when `websockets` is installed, and
  its `auto` loop, uvloop; daphne: Twisted on the asyncio reactor), both with a 1 MiB
  WebSocket message limit, a listen backlog of 2048 and no access log (uvicorn
  `--no-access-log`, daphne `-v 0`); the points alternate the servers (500: uvicorn, daphne;
  2,000: uvicorn, daphne; ...) so a change in the machine's other load hits both;
- several web processes behind nginx (SYNTERA_BENCH_CHAT_WEB=2, or "2,1" for both topologies
  at each point, alternating): that many server processes of the kind, and nginx in front with
  the deployment's configuration (`deploy/nginx/`, through `tests/nginx.py`: the template, the
  main file's connections and descriptors per worker, `worker_processes auto`), round robin
  with no sticky sessions; the load generator connects through nginx. Reported besides: the
  sockets each web process held (its established connections during the run, and nginx's
  access log afterwards), each one's CPU and nginx's, memory per socket (the RSS of the web
  processes and nginx after the ramp minus before it, over the sockets opened), and the
  PostgreSQL connections each process held (pg_stat_activity by application_name, which the
  harness sets per process). The figures go under `<server>-x<n>`. With any topology the
  connections to the benchmark's Redis database (CLIENT LIST, every process) are sampled too;
- opt-in experiments, `uvicorn-shared` and `daphne-shared` in SYNTERA_BENCH_CHAT_SERVERS: the
  same server and options with CHANNELS_DB_SHARED_THREAD=true, i.e. the consumers' database
  work on asgiref's one shared thread (Channels' default) instead of the product's thread
  pool: the configuration before the change, reported beside it;
- one Celery worker for the `llm` queue (prefork, concurrency 2, as the Procfile), writing to
  the same database and channel layer; Redis database 12 (`SYNTERA_BENCH_CHAT_REDIS_DB`) of
  the Redis named by REDIS_URL holds the broker, cache and channel layer of this bench only;
  DEBUG is off in the servers and the worker, as in production;
- the load generator `tests/bench/chat_load.py` as its own process (see its docstring for
  what it measures and checks; one process is enough: it uses about 5 % of a core at 5,000
  connections);
- server, worker and client RSS and CPU sampled once a second (psutil, else /proc), and, at
  the largest point, the server profiled with py-spy (sampling, non-blocking, 100 Hz) when it
  is installed (`pip install py-spy`): on-CPU stacks over the first half of the measured
  window, every thread's wall-clock stacks (`--idle`) over the second half; the summaries
  (CPU by thread, package and function; the share of each thread spent inside `tenant_db`
  and what it waits on there) go into the results.

Results: var/bench/chat_load.json (every figure, the machine, its load average before and after
each point, the commit and any local changes on the message path), the generator's own
reports var/bench/chat_load_<server>_<n>.json and the raw profiles
var/bench/chat_load_profile_<server>_<n>[_wall].txt (collapsed stacks).

Targets (issue): 5,000 connections held, ack p95 <= 100 ms, ack p95 at 5,000 <= 1.2 x p95 at
500, zero lost or duplicated messages. Only the last is asserted (acked messages missing from
the store, stored twice, gaps, or acked at another seq: guarantees of the protocol); the others
are recorded as met or not. Messages stored but never sent live on a connection that stayed
open (`missed_live`; resume delivers them) are reported, not asserted.

Run: make bench PYTEST_ARGS="-k chat_load"   (about 20 minutes on 2 cores; 40 with the
  two experiments)
  10,000 sockets behind nginx (docs/benchmarks.md, "10,000 sockets behind nginx"):
  SYNTERA_BENCH_CHAT_SERVERS=uvicorn SYNTERA_BENCH_CHAT_WEB=2 SYNTERA_BENCH_CHAT_POINTS=10000:1000
  SYNTERA_BENCH_CHAT_PROCESSES=2 make bench PYTEST_ARGS="-k chat_load"
  or: SYNTERA_BENCH_DB_NAME=test_syntera_bench_chat python -m pytest tests/bench/test_chat_load.py -s
Knobs: SYNTERA_BENCH_CHAT_POINTS ("500:500,2000:1000,5000:1000", connections:active),
SYNTERA_BENCH_CHAT_WORKSPACES (3, the visitors spread over them), SYNTERA_BENCH_CHAT_INTERVAL
(10 s between a visitor's messages), SYNTERA_BENCH_CHAT_TENANT_CAP (AI_TENANT_CONCURRENCY for
the run; unset: the default), SYNTERA_BENCH_CHAT_NOISY (the
first workspace's visitors write that many times as often; "0": connected and silent; the
fairness run compares the others' reply times at "10" and at "0"), SYNTERA_BENCH_CHAT_INGEST_DOCS
(0; 5000: another workspace queues that many documents for an ingest worker of its own at the
start of each point: reply times with and without),
SYNTERA_BENCH_CHAT_SERVERS ("uvicorn,daphne"; add uvicorn-shared,daphne-shared for the
experiments), SYNTERA_BENCH_CHAT_WEB ("1": web processes per server kind, nginx in front of
more than one; a list measures each), SYNTERA_BENCH_CHAT_WEB_DB_POOL (DATABASE_POOL_SIZE of each
web process; unset: none, as the Procfile), SYNTERA_BENCH_CHAT_WEB_DB_THREADS (CHANNELS_DB_THREADS
of each web process; unset: the default), SYNTERA_BENCH_CHAT_NGINX_WORKERS ("auto"),
SYNTERA_BENCH_CHAT_LLM ("offline"; "paced": the agents use the OpenAI provider
against the benchmark LLM, tests/standins/openai_server.py run as its own process, paced by
SYNTERA_BENCH_LLM_FIRST_TOKEN_MS (600), SYNTERA_BENCH_LLM_TOKENS_PER_S (40) and
SYNTERA_BENCH_LLM_ANSWER_TOKENS (120): about 3.6 s an answer), SYNTERA_BENCH_CHAT_LLM_POOL
(the Procfile's AI worker: "threads:100" with 20 pooled connections for the paced LLM's `llm`
queue, "prefork:2" for the offline responder's `llm_local`; "prefork:2" with the paced LLM is
the design before ADR 0022), SYNTERA_BENCH_CHAT_DURATION (60 s), SYNTERA_BENCH_CHAT_PROCESSES (1 client
process), SYNTERA_BENCH_CHAT_PROFILE (1), SYNTERA_BENCH_CHAT_KEEP_LOGS (keep the server and
worker logs).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests import nginx

from .helpers import ROOT, record, results_dir, table

pytestmark = [pytest.mark.timeout(3600)]

POINTS = [
    (int(c), int(a))
    for c, a in (
        p.split(":") for p in os.environ.get("SYNTERA_BENCH_CHAT_POINTS", "500:500,2000:1000,5000:1000").split(",")
    )
]
SERVERS = os.environ.get("SYNTERA_BENCH_CHAT_SERVERS", "uvicorn,daphne").split(",")
# Web processes per server kind: "1" is one server reached directly; "2" is two processes of
# that kind behind nginx with the deployment's configuration (no sticky sessions), the client
# connecting through nginx; "2,1" measures both topologies at each point, alternating.
WEBS = [int(n) for n in os.environ.get("SYNTERA_BENCH_CHAT_WEB", "1").split(",")]
# DATABASE_POOL_SIZE of each web process ("": none, as the Procfile: a connection per thread).
WEB_DATABASE_POOL = os.environ.get("SYNTERA_BENCH_CHAT_WEB_DB_POOL", "")
# CHANNELS_DB_THREADS of each web process ("": the product's default).
WEB_DATABASE_THREADS = os.environ.get("SYNTERA_BENCH_CHAT_WEB_DB_THREADS", "")
# nginx's worker_processes ("auto", as deployed: one per core).
BALANCER_WORKERS = os.environ.get("SYNTERA_BENCH_CHAT_NGINX_WORKERS", "auto")
DURATION = float(os.environ.get("SYNTERA_BENCH_CHAT_DURATION", "60"))
PROCESSES = int(os.environ.get("SYNTERA_BENCH_CHAT_PROCESSES", "1"))
PROFILE = os.environ.get("SYNTERA_BENCH_CHAT_PROFILE", "1") == "1"
REDIS_DB = int(os.environ.get("SYNTERA_BENCH_CHAT_REDIS_DB", "12"))
# "offline": the agents answer with the offline responder. "paced": with the OpenAI provider
# against the benchmark LLM (tests/standins/openai_server.py as its own process) answering at
# these paces.
LLM = os.environ.get("SYNTERA_BENCH_CHAT_LLM", "offline")
LLM_PACE = {
    "--first-token-ms": os.environ.get("SYNTERA_BENCH_LLM_FIRST_TOKEN_MS", "600"),
    "--tokens-per-second": os.environ.get("SYNTERA_BENCH_LLM_TOKENS_PER_S", "40"),
    "--answer-tokens": os.environ.get("SYNTERA_BENCH_LLM_ANSWER_TOKENS", "120"),
}
LLM_KEY = "sk-bench"
# The AI worker, as in the Procfile: the `llm` queue on threads for the paced LLM (a remote
# model), `llm_local` on the prefork processes for the offline responder.
AI_QUEUE = "llm" if LLM == "paced" else "llm_local"
LLM_POOL, _, _concurrency = os.environ.get(
    "SYNTERA_BENCH_CHAT_LLM_POOL", "threads:100" if LLM == "paced" else "prefork:2"
).partition(":")
LLM_CONCURRENCY = int(_concurrency or 2)
LLM_DATABASE_POOL = os.environ.get("SYNTERA_BENCH_CHAT_LLM_DB_POOL", "20")
INTERVAL = float(os.environ.get("SYNTERA_BENCH_CHAT_INTERVAL", "10"))  # seconds between a visitor's messages
# AI turns at once per workspace (AI_TENANT_CONCURRENCY) for the run; unset: the product's default.
TENANT_CAP = os.environ.get("SYNTERA_BENCH_CHAT_TENANT_CAP", "")
SETTLE = 30.0
RAMP_RATE = 250.0
WS_MAX_SIZE = 1024 * 1024
BACKLOG = 2048
PRODUCT_SERVERS = ("uvicorn", "daphne")  # the Procfile's candidates; others are experiments
# The workspaces the visitors are spread over; with SYNTERA_BENCH_CHAT_NOISY the first one's
# visitors write that many times as often (0: they stay connected and silent), the fairness
# run: the others' reply times with a noisy neighbour against with a silent one.
TENANT_SLUGS = tuple(f"chat{n}" for n in range(int(os.environ.get("SYNTERA_BENCH_CHAT_WORKSPACES", "3"))))
NOISY = os.environ.get("SYNTERA_BENCH_CHAT_NOISY", "")
# Documents another workspace ingests while each point runs (0: none), on an ingest worker of
# its own as in the Procfile: replies must not wait behind them.
INGEST_DOCS = int(os.environ.get("SYNTERA_BENCH_CHAT_INGEST_DOCS", "0"))
INGEST_SLUG = "chatingest"

# Runs in `manage.py shell` with the benchmark's environment: INGEST_DOCS text sources for the
# ingest worker, each queued on commit (batches of 500 per transaction).
QUEUE_INGESTION = """
from django.db import transaction
from django_tenants.utils import tenant_context
from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.knowledge import services
from apps.tenants.models import Tenant

tenant = Tenant.objects.get(slug=ARGS["slug"])
owner = User.objects.get(email=ARGS["email"])
actor = Actor(tenant=tenant, role=Role.OWNER, user=owner, label=owner.email)
with tenant_context(tenant):
    kb = services.knowledge_base_create(editor=actor, name=f"Import {ARGS['run']}")
    for start in range(0, ARGS["docs"], 500):
        with transaction.atomic():
            for n in range(start, min(start + 500, ARGS["docs"])):
                text = f"# Article {n}" + chr(10) * 2 + " ".join(f"Paragraph {p} of article {n} explains a policy in detail." for p in range(12))
                services.source_add_text(editor=actor, kb=kb, title=f"Article {n}", text=text)
print(kb.pk)
"""
START_TIMEOUT = 60.0

ARTICLES = {
    "Shipping times": "# Shipping\n\nStandard shipping takes 3 to 5 business days within the EU. "
    "Express shipping arrives the next business day when ordered before 2 pm.",
    "Returns policy": "# Returns\n\nYou can return any unused item within 30 days of delivery for a full refund. "
    "Print the prepaid return label from your account page and drop the parcel at any post office.",
    "Resetting your password": "# Password reset\n\nTo reset your password, open the login page and click "
    "'Forgot password'. We email you a reset link that stays valid for one hour.",
}


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def bench_env(database_url: str, redis_url: str, *, cache_prefix: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's servers and workers: its own database and Redis (every
    Redis use on that one URL), production's DEBUG off, eager tasks off; `extra` on top."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "syntera.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": cache_prefix,
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # Each visitor gets its own address (X-Forwarded-For, loopback values) so the per-
        # address message limit applies per visitor, as behind the production proxy.
        "WIDGET_TRUST_X_FORWARDED_FOR": "1",
        "HF_HUB_OFFLINE": "1",
        # As in production: with DEBUG on, every query is also kept in connection.queries.
        "DEBUG": "false",
        **extra,
    }
    for key in (
        "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL", "CHANNEL_LAYER_URL", "SENTRY_DSN",
        "OPENAI_API_KEY", "DATABASE_TEST_NAME",
    ):  # fmt: skip
        env.pop(key, None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- data --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inboxes(tenants: Any, django_db_blocker: Any) -> list[tuple[str, str]]:
    """(tenant host without port, widget key) for each bench tenant; committed."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    from apps.accounts.models import Role
    from apps.accounts.services import Actor, signup_company
    from apps.agents.services import agent_create
    from apps.conversations.services import inbox_create
    from apps.knowledge import services as knowledge
    from apps.knowledge.models import Source
    from tests.support import PASSWORD

    found = []
    with django_db_blocker.unblock():
        assert str(connection.settings_dict["NAME"]).startswith("test_"), "benchmark data only in a test database"
        if INGEST_DOCS:
            signup_company(
                company_name="Import Co", slug=INGEST_SLUG, email=f"owner@{INGEST_SLUG}.example", password=PASSWORD
            )
            connection.set_schema_to_public()  # type: ignore[attr-defined]
        for slug in TENANT_SLUGS:
            result = signup_company(
                company_name=f"{slug.title()} Shop", slug=slug, email=f"owner@{slug}.example", password=PASSWORD
            )
            actor = Actor(tenant=result.tenant, role=Role.OWNER, user=result.user, label=result.user.email)
            with tenant_context(result.tenant):
                kb = knowledge.knowledge_base_create(editor=actor, name="Help")
                for title, text in ARTICLES.items():
                    source = knowledge.source_add_text(editor=actor, kb=kb, title=title, text=text)
                    source.refresh_from_db()
                    if source.status != Source.Status.READY:
                        knowledge.ingest_source(source_id=source.pk, run=source.run)
                        source.refresh_from_db()
                    assert source.status == Source.Status.READY, (slug, title, source.status)
                provider = {"provider": "openai", "model": "gpt-4o-mini"} if LLM == "paced" else {}
                agent = agent_create(
                    editor=actor, name="Ava", knowledge_bases=[kb.pk], greeting="Hi! Ask me.", **provider
                )
                inbox = inbox_create(actor=actor, name="Website", agent_id=agent.pk, title="Help")
                found.append((f"{slug}.localhost", inbox.widget_key))
            connection.set_schema_to_public()  # type: ignore[attr-defined]
    return found


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def named(env: dict[str, str], name: str) -> dict[str, str]:
    """`env` with the process's name as its PostgreSQL application_name (pg_stat_activity
    then says which process holds which connection)."""
    parts = urlsplit(env["DATABASE_URL"])
    query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("application_name="))
    query = "&".join(filter(None, (query, f"application_name={name}")))
    return {**env, "DATABASE_URL": urlunsplit(parts._replace(query=query))}


def start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Proc(name=name, proc=proc, log_path=log_path)


def start_worker(
    name: str, queue: str, concurrency: int, env: dict[str, str], log_dir: Path, pool: str = "prefork"
) -> Proc:
    """A Celery worker process on `queue` (`pool`: prefork processes or threads, `concurrency`
    of them)."""
    args = [
        sys.executable, "-m", "celery", "-A", "syntera", "worker", "-Q", queue, "--pool", pool,
        "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        "--hostname", f"bench{name}{os.getpid()}@%h",
    ]  # fmt: skip
    return start(name, args, env, log_dir)


def start_llm(env: dict[str, str], log_dir: Path) -> Proc:
    """The benchmark LLM as its own process; sets OPENAI_BASE_URL / OPENAI_API_KEY in `env`
    for the server and the workers started after it."""
    args = [sys.executable, "-m", "tests.standins.openai_server", "--api-key", LLM_KEY]
    llm = start("llm-server", [*args, *(x for pair in LLM_PACE.items() for x in pair)], env, log_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        llm.check()
        first = llm.tail(1).strip()
        if first.startswith("http://"):
            env.update({"OPENAI_BASE_URL": first, "OPENAI_API_KEY": LLM_KEY})
            return llm
        time.sleep(0.1)
    llm.stop()
    raise AssertionError(f"the benchmark LLM did not start:\n{llm.tail()}")


@dataclass
class Balancer:
    """nginx in front of the web processes (tests/nginx.py: the deployment's template and
    limits), in a directory of its own."""

    proc: Proc
    port: int
    directory: Path

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def sockets_by_upstream(self) -> dict[str, int]:
        """Widget sockets per web process, from the access log (a socket's line is written
        when it closes)."""
        counts: Counter[str] = Counter()
        for line in nginx.access_log(self.access_log):
            if line.route == "/ws/widget/" and line.status == 101:
                counts[line.served_by] += 1
        return dict(counts)

    def refused(self) -> int:
        """Connections nginx could not take ("worker_connections are not enough")."""
        return self.proc.log_path.read_text(errors="replace").count("worker_connections are not enough")

    def stop(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_balancer(ports: list[int], env: dict[str, str], log_dir: Path) -> Balancer:
    binary = nginx.binary()
    if binary is None:
        pytest.skip("nginx is not installed (make nginx)")
    # Its own directory: nginx's workers run as an unprivileged user and must reach it.
    directory = Path(tempfile.mkdtemp(prefix="syntera-chat-nginx-"))
    port = free_port()
    servers = [f"127.0.0.1:{p}" for p in ports]
    config = nginx.write_balancer(directory, f"127.0.0.1:{port} backlog={BACKLOG}", servers, BALANCER_WORKERS)
    return Balancer(proc=start("nginx", nginx.command(binary, config), env, log_dir), port=port, directory=directory)


def sockets_held(servers: list[tuple[str, int, int]]) -> dict[str, int | None]:
    """Established TCP connections on each web process's port (name, pid, port): the sockets
    it holds (nginx closes the upstream connection of a plain request)."""
    import psutil

    held: dict[str, int | None] = {}
    for name, pid, port in servers:
        try:
            found = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            held[name] = None
            continue
        held[name] = sum(1 for c in found if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)
    return held


def queue_ingestion(env: dict[str, str], run: int) -> None:
    """INGEST_DOCS documents queued for the ingest worker in the ingestion workspace."""
    script = f"ARGS = {{'slug': {INGEST_SLUG!r}, 'email': 'owner@{INGEST_SLUG}.example', 'docs': {INGEST_DOCS}, "
    script += f"'run': {run}}}\n{QUEUE_INGESTION}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"[chat_load] {INGEST_DOCS} documents queued for ingestion in {time.monotonic() - started:.0f} s")


def server_command(kind: str, port: int) -> list[str]:
    python = sys.executable
    if kind == "uvicorn":
        return [
            python, "-m", "uvicorn", "syntera.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--proxy-headers", "--ws-max-size", str(WS_MAX_SIZE), "--backlog", str(BACKLOG),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    if kind == "daphne":
        return [
            python, "-m", "daphne", "-e", f"tcp:port={port}:interface=127.0.0.1:backlog={BACKLOG}",
            "--proxy-headers", "--websocket-max-message-size", str(WS_MAX_SIZE),
            "--websocket-max-frame-size", str(WS_MAX_SIZE), "-v", "0",
            "syntera.asgi:application",
        ]  # fmt: skip
    if kind.endswith("-shared"):
        # The same server and options; `run_point` sets CHANNELS_DB_SHARED_THREAD=true for it.
        return server_command(kind.removesuffix("-shared"), port)
    raise ValueError(kind)


def server_implementation(kind: str) -> dict[str, str]:
    """What each server actually runs with here (recorded with the figures)."""
    change = "CHANNELS_DB_SHARED_THREAD=true: the consumers' database calls on asgiref's one shared thread"
    if kind.startswith("uvicorn"):
        import uvicorn
        from uvicorn.loops.auto import auto_loop_factory  # noqa: F401
        from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

        try:
            import uvloop  # noqa: F401

            loop = "uvloop"
        except ImportError:
            loop = "asyncio"
        ws = getattr(AutoWebSocketsProtocol, "__module__", "none").rsplit(".", 1)[-1]
        info = {"version": uvicorn.__version__, "ws": ws, "loop": loop, "http": "httptools/h11 auto"}
        if kind.endswith("-shared"):
            info["change"] = change
        return info
    import daphne
    import twisted

    info = {
        "version": daphne.__version__,
        "ws": "autobahn",
        "loop": "twisted asyncioreactor",
        "twisted": twisted.__version__,
    }
    if kind.endswith("-shared"):
        info["change"] = change
    return info


def wait_http(port: int, proc: Proc) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        proc.check()
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Host": f"127.0.0.1:{port}"}, timeout=2)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{proc.name} did not answer /healthz in {START_TIMEOUT:.0f}s:\n{proc.tail()}")


def wait_worker(proc: Proc) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        proc.check()
        if " ready." in proc.log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"the Celery worker was not ready in {START_TIMEOUT:.0f}s:\n{proc.tail()}")


# --- sampling ----------------------------------------------------------------------------------


@dataclass
class Sampler:
    """Once a second: (time, cpu seconds, rss bytes) of each named process tree."""

    pids: dict[str, int]
    samples: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    llm_url: str = ""  # the benchmark LLM's base URL: its answers streaming at once, sampled too
    streams: list[tuple[float, int]] = field(default_factory=list)
    database_url: str = ""  # PostgreSQL connections to the benchmark's database, sampled too
    connections: list[tuple[float, int]] = field(default_factory=list)
    connections_by_name: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    redis_url: str = ""  # Redis connections on the benchmark's Redis database, sampled too
    redis_clients: list[tuple[float, int]] = field(default_factory=list)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        db = psycopg.connect(self.database_url, autocommit=True) if self.database_url else None
        try:
            self._sample(db)
        finally:
            if db is not None:
                db.close()

    def _sample(self, db: Any) -> None:
        while not self.stop_event.is_set():
            now = time.time()
            if db is not None:
                rows = db.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
                ).fetchall()
                by_name = {str(name or "?"): int(n) for name, n in rows}
                self.connections.append((now, sum(by_name.values())))
                self.connections_by_name.append((now, by_name))
            if self.redis_url:
                self.redis_clients.append((now, redis_clients(self.redis_url)))
            for name, pid in self.pids.items():
                sample = tree_usage(pid)
                if sample is not None:
                    self.samples.setdefault(name, []).append((now, *sample))
            if self.llm_url:
                try:
                    gauge = httpx.get(f"{self.llm_url}/standin/streams", headers={"Authorization": f"Bearer {LLM_KEY}"})
                    self.streams.append((now, int(gauge.json()["open"])))
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
            self.stop_event.wait(1.0)

    def streams_window(self, start_at: float, end_at: float) -> dict[str, Any]:
        """The benchmark LLM's answers streaming at once over [start_at, end_at]."""
        return _max_mean([n for at, n in self.streams if start_at <= at <= end_at])

    def connections_window(self, start_at: float, end_at: float) -> dict[str, Any]:
        """PostgreSQL connections to the benchmark's database (every process) over [start_at, end_at],
        and the most each process held (by application_name; "?" for the harness's own)."""
        found = _max_mean([n for at, n in self.connections if start_at <= at <= end_at])
        by_name: dict[str, int] = {}
        for at, counts in self.connections_by_name:
            if start_at <= at <= end_at:
                for name, n in counts.items():
                    by_name[name] = max(n, by_name.get(name, 0))
        return {**found, "max_by_process": dict(sorted(by_name.items()))} if found else found

    def redis_window(self, start_at: float, end_at: float) -> dict[str, Any]:
        """Connections to the benchmark's Redis database (every process) over [start_at, end_at]."""
        return _max_mean([n for at, n in self.redis_clients if start_at <= at <= end_at and n >= 0])

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join(timeout=5)

    def window(self, name: str, start_at: float, end_at: float) -> dict[str, Any]:
        """CPU % (100 = one core) and RSS over [start_at, end_at]."""
        rows = [s for s in self.samples.get(name, []) if start_at - 1.0 <= s[0] <= end_at + 1.0]
        if len(rows) < 2:
            return {"cpu_percent": None, "rss_mb_max": None, "rss_mb_start": None}
        first, last = rows[0], rows[-1]
        cpu = (last[1] - first[1]) / max(0.001, last[0] - first[0]) * 100
        return {
            "cpu_percent": round(cpu, 1),
            "rss_mb_start": round(first[2] / 2**20, 1),
            "rss_mb_max": round(max(r[2] for r in rows) / 2**20, 1),
        }

    def at(self, name: str, when: float) -> float | None:
        rows = self.samples.get(name, [])
        before = [r for r in rows if r[0] <= when]
        return round(before[-1][2] / 2**20, 1) if before else None


def redis_clients(url: str) -> int:
    """Clients connected to `url`'s Redis database (CLIENT LIST's `db`), -1 when unknown."""
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=5) as client:
            wanted = str(client.connection_pool.connection_kwargs.get("db", 0))
            return sum(1 for c in client.client_list() if str(c.get("db")) == wanted) - 1  # not this one
    except redis.RedisError:
        return -1


def _max_mean(rows: list[int]) -> dict[str, Any]:
    return {"max": max(rows), "mean": round(sum(rows) / len(rows), 1)} if rows else {}


def tree_usage(pid: int) -> tuple[float, int] | None:
    """(cpu seconds, rss bytes) of a process and its children: psutil, else /proc."""
    try:
        import psutil

        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
            cpu, rss = 0.0, 0
            for p in procs:
                try:
                    times = p.cpu_times()
                    cpu += times.user + times.system
                    rss += p.memory_info().rss
                except psutil.Error:
                    continue
            return cpu, rss
        except psutil.Error:
            return None
    except ImportError:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = (int(fields[11]) + int(fields[12])) / ticks
            rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            return cpu, rss
        except (OSError, IndexError, ValueError):
            return None


# --- profiling ---------------------------------------------------------------------------------


def profiler() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).is_file() else None


def record_profiles(pid: int, path: Path) -> None:
    """Over the measured window: first half on-CPU samples (where the server's CPU goes), then
    second half every thread's wall-clock stack (`--idle`: where a request waits)."""
    half = max(5, int(DURATION / 2) - 3)
    spy = str(profiler())
    common = ["record", "--pid", str(pid), "--nonblocking", "--threads", "--rate", "100", "--format", "raw"]
    for extra, out in (([], path), (["--idle"], path.with_name(path.stem + "_wall.txt"))):
        try:
            subprocess.run(
                [spy, *common, "--duration", str(half), *extra, "-o", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=half + 30,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return  # a sampler that cannot keep up with a loaded machine: no profile, the run goes on


def _stacks(path: Path) -> list[tuple[str, list[str], int]]:
    """(thread, frames outermost first, count) from py-spy's raw output with --threads."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = "?"
        if frames and frames[0].startswith("thread ("):
            thread = frames[0].split(":", 1)[-1].strip() or frames[0]
            thread = thread.rstrip("0123456789").rstrip("_-") or thread
            frames = frames[1:]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames:
            rows.append((thread, frames, int(count_text)))
    return rows


def summarize_wall(path: Path, top: int = 12) -> dict[str, Any]:
    """Wall-clock samples: per thread, the share spent inside `tenant_db` (the consumer's
    database work) and, within it, where the time goes."""
    per_thread: Counter[str] = Counter()
    in_db: Counter[str] = Counter()
    where: Counter[str] = Counter()
    for thread, frames, count in _stacks(path):
        per_thread[thread] += count
        positions = [
            n for n, f in enumerate(frames) if "apps/tenants/channels.py" in f and f.split(" (")[0].endswith("run")
        ]
        if not positions:
            continue
        in_db[thread] += count
        inner = frames[positions[0] + 1 :]
        ours = [f for f in inner if _is_ours(f)]
        label = _short(ours[-1]).split(" (")[0] if ours else "?"
        where[f"{label}: {_waiting_on(inner[-1]) if inner else '?'}"] += count
    busy = {t: round(100 * in_db[t] / n, 1) for t, n in per_thread.items() if in_db[t]}
    total_db = sum(in_db.values()) or 1
    wall = per_thread.get("MainThread") or 1  # samples of one thread = the recorded wall time
    return {
        "samples_per_thread": dict(per_thread.most_common(8)),
        "percent_of_thread_in_tenant_db": busy,
        # 1.0 = one thread always inside tenant_db (a single DB thread is then saturated).
        "threads_busy_in_tenant_db": round(sum(in_db.values()) / wall, 2),
        "tenant_db_time_percent": [(k, round(100 * v / total_db, 1)) for k, v in where.most_common(top)],
    }


def _is_ours(frame: str) -> bool:
    _name, where = _location(frame)
    return "site-packages/" not in where and any(top in where for top in ("apps/", "syntera/"))


def _waiting_on(leaf: str) -> str:
    """What a thread's innermost frame says it is doing."""
    _name, where = _location(leaf)
    if "psycopg" in where:
        return "PostgreSQL round trip"
    if "redis/" in where or "kombu/" in where:
        return "Redis round trip"
    if where.endswith("threading.py"):
        return "waiting for the event loop (async_to_sync)"
    return "Python"


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks (py-spy raw) -> sample shares: by package of the innermost frame,
    the hottest innermost functions, and the hottest functions anywhere on the stack."""
    leaf_pkg: Counter[str] = Counter()
    leaf_fn: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for thread, frames, count in _stacks(path):
        total += count
        threads[thread] += count
        leaf_pkg[_package(frames[-1])] += count
        leaf_fn[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            inclusive[name] += count
    if not total:
        return {"samples": 0}

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "by_thread_percent": shares(threads),
        "self_by_package_percent": shares(leaf_pkg),
        "self_by_function_percent": shares(leaf_fn),
        "inclusive_by_function_percent": shares(inclusive),
    }


def _location(frame: str) -> tuple[str, str]:
    name, _, where = frame.partition(" (")
    return name, where.rstrip(")").rsplit(":", 1)[0]


def _package(frame: str) -> str:
    _name, where = _location(frame)
    if "site-packages/" in where:
        return where.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/lib/python3" in where:
        return "stdlib:" + where.rsplit("/", 1)[-1]
    for top in ("apps/", "syntera/"):
        if top in where:
            return where[where.index(top) :].split("/")[0] + "/" + where[where.index(top) :].split("/")[1]
    return where or frame


def _short(frame: str) -> str:
    name, where = _location(frame)
    if "site-packages/" in where:
        where = where.split("site-packages/", 1)[1]
    elif "/lib/python3" in where:
        where = where.rsplit("/lib/", 1)[1]
    else:
        where = where.replace(str(ROOT) + "/", "")
    return f"{name} ({where})"


# --- one point ---------------------------------------------------------------------------------


def run_point(
    kind: str,
    connections: int,
    active: int,
    *,
    env: dict[str, str],
    inboxes: list[tuple[str, str]],
    worker: Proc,
    log_dir: Path,
    profile: bool,
    llm: Proc | None = None,
    web: int = 1,
) -> dict[str, Any]:
    """One point on `web` processes of `kind` (behind nginx when more than one)."""
    import redis

    label = topology(kind, web)
    # The AI replies still queued from the previous point would be answered during this one.
    redis.Redis.from_url(env["REDIS_URL"]).delete(AI_QUEUE, "ingest")
    if INGEST_DOCS:
        queue_ingestion(env, connections)
    server_env = {**env, "CHANNELS_DB_SHARED_THREAD": "true"} if kind.endswith("-shared") else env
    if WEB_DATABASE_POOL:
        server_env = {**server_env, "DATABASE_POOL_SIZE": WEB_DATABASE_POOL}
    if WEB_DATABASE_THREADS:
        server_env = {**server_env, "CHANNELS_DB_THREADS": WEB_DATABASE_THREADS}
    ports = [free_port() for _ in range(web)]
    servers = [
        start(f"{label}-{connections}-{n}", server_command(kind, port), named(server_env, f"web-{n}"), log_dir)
        for n, port in enumerate(ports)
    ]
    balancer = start_balancer(ports, env, log_dir) if web > 1 else None
    load_before = os.getloadavg()
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_http(port, server)
        if balancer is not None:
            wait_http(balancer.port, balancer.proc)
        time.sleep(1.0)  # let it finish importing before it is measured
        port = balancer.port if balancer is not None else ports[0]
        server_names = [f"web-{n}" for n in range(web)]
        held_by: dict[str, dict[str, int | None]] = {}
        listening = [(name, s.proc.pid, p) for name, s, p in zip(server_names, servers, ports, strict=True)]
        out = results_dir() / f"chat_load_{label}_{connections}.json"
        profile_path = results_dir() / f"chat_load_profile_{label}_{connections}.txt"
        client_args = [
            sys.executable, str(ROOT / "tests" / "bench" / "chat_load.py"),
            "--port", str(port), "--connections", str(connections), "--active", str(active),
            "--interval", str(INTERVAL), "--duration", str(DURATION), "--settle", str(SETTLE),
            "--ramp-rate", str(RAMP_RATE), "--processes", str(PROCESSES), "--out", str(out),
            "--ramp-timeout", "300", "--max-seconds", str(DURATION + SETTLE + 600),
        ]  # fmt: skip
        for n, (host, key) in enumerate(inboxes):
            client_args += ["--target", f"{host}:{port}={key}" + (f"@{NOISY}" if NOISY and n == 0 else "")]
        client = subprocess.Popen(
            client_args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        sampler = Sampler(
            pids={
                **{name: s.proc.pid for name, s in zip(server_names, servers, strict=True)},
                **({"nginx": balancer.proc.proc.pid} if balancer is not None else {}),
                "worker": worker.proc.pid,
                "client": client.pid,
                **({"llm": llm.proc.pid} if llm is not None else {}),
            },
            llm_url=env.get("OPENAI_BASE_URL", "") if LLM == "paced" else "",
            database_url=env["DATABASE_URL"],
            redis_url=env["REDIS_URL"],
        )
        sampler.start()
        spy: threading.Thread | None = None
        phases: dict[str, float] = {}
        assert client.stdout is not None
        for raw in client.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            phases[event["phase"]] = event["at"]
            if event["phase"] == "measure_start" and profile and profiler():
                spy = threading.Thread(target=record_profiles, args=(servers[0].proc.pid, profile_path), daemon=True)
                spy.start()
            if event["phase"] in ("measure_start", "measure_end"):
                held_by[event["phase"]] = sockets_held(listening)
        client.wait(timeout=60)
        stderr = client.stderr.read().decode(errors="replace") if client.stderr else ""
        sampler.stop()
        if spy is not None:
            spy.join(timeout=DURATION + 30)
        for server in servers:
            server.check()
        assert out.is_file(), f"the load generator wrote no report (exit {client.returncode}):\n{stderr[-3000:]}"
        result: dict[str, Any] = json.loads(out.read_text())
        if stderr.strip():
            result["client_stderr_tail"] = stderr[-2000:]
        p = result["phases"]
        window = (p.get("ramp_done", 0.0), p.get("measure_end", 0.0))
        idle_at, ramped_at = p.get("start", 0.0), p.get("ramp_done", 0.0) + 1.0
        sessions = result["connections"]["sessions"]
        per_process = {name: sampler.window(name, *window) for name in server_names}
        for name in server_names:
            per_process[name].update(
                {
                    "rss_mb_idle": sampler.at(name, idle_at),
                    "rss_mb_after_ramp": sampler.at(name, ramped_at),
                    "sockets_at_measure_start": held_by.get("measure_start", {}).get(name),
                    "sockets_at_measure_end": held_by.get("measure_end", {}).get(name),
                }
            )
        result["server"] = {
            "kind": kind,
            "web_processes": web,
            **_summed(per_process),
            "rss_mb_before_ramp": _sum_of(sampler.at(name, idle_at) for name in server_names),
            "rss_mb_after_ramp": _sum_of(sampler.at(name, ramped_at) for name in server_names),
        }
        before, after = result["server"]["rss_mb_before_ramp"], result["server"]["rss_mb_after_ramp"]
        if before and after and sessions:
            result["server"]["kib_per_connection"] = round((after - before) * 1024 / sessions)
        if web > 1:
            result["web_processes"] = per_process
        if balancer is not None:
            result["balancer"] = {
                **sampler.window("nginx", *window),
                "rss_mb_idle": sampler.at("nginx", idle_at),
                "rss_mb_after_ramp": sampler.at("nginx", ramped_at),
                "workers": BALANCER_WORKERS,
                "refused_worker_connections": balancer.refused(),
            }
        # Memory per socket: every process a socket lives in (the web processes, and nginx
        # when it is in front), after the ramp against before it, over the sockets opened.
        holders = [*server_names, *(["nginx"] if balancer is not None else [])]
        idle = _sum_of(sampler.at(name, idle_at) for name in holders)
        ramped = _sum_of(sampler.at(name, ramped_at) for name in holders)
        if idle and ramped and sessions:
            result["kib_per_socket"] = round((ramped - idle) * 1024 / sessions, 1)
        result["worker"] = sampler.window("worker", *window)
        result["database_connections"] = sampler.connections_window(*window)
        result["redis_connections"] = sampler.redis_window(p.get("start", 0.0), window[1])  # the ramp too
        if INGEST_DOCS:
            import psycopg

            with psycopg.connect(env["DATABASE_URL"]) as db:
                rows = db.execute(f"SELECT status, count(*) FROM {INGEST_SLUG}.knowledge_source GROUP BY status")
                result["ingestion_sources_by_status"] = dict(rows.fetchall())
        if LLM == "paced":
            result["llm_streams"] = sampler.streams_window(*window)
            streaming = result["llm_streams"].get("max") or 0
            start_mb, max_mb = sampler.at("worker", p.get("start", 0.0)), result["worker"]["rss_mb_max"]
            if streaming and start_mb and max_mb:  # the worker's growth from idle, per answer streaming
                result["worker"]["kib_per_turn_in_flight"] = round((max_mb - start_mb) * 1024 / streaming)
        result["client_process"] = sampler.window("client", *window)
        if llm is not None:
            result["llm_process"] = sampler.window("llm", *window)
        result["loadavg_before"] = [round(x, 2) for x in load_before]
        result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        wall_path = profile_path.with_name(profile_path.stem + "_wall.txt")
        if spy is not None and profile_path.is_file():
            result["profile"] = {
                "process": server_names[0],
                "cpu": {"file": str(profile_path), **summarize_profile(profile_path)},
                "wall": {"file": str(wall_path), **summarize_wall(wall_path)} if wall_path.is_file() else None,
            }
        elif profile:
            result["profile"] = {"skipped": "py-spy is not installed" if not profiler() else "py-spy wrote nothing"}
        for server in servers:
            server_log = server.tail(15)
            if "Traceback" in server_log or "ERROR" in server_log:
                result.setdefault("server_log_tail", {})[server.name] = server_log
        if balancer is not None:
            balancer.proc.stop()  # its workers write the access log lines of the sockets still open
            result["balancer"]["sockets_by_web_process"] = {
                server_names[ports.index(int(address.rpartition(":")[2]))]: n
                for address, n in balancer.sockets_by_upstream().items()
                if address.rpartition(":")[2].isdigit() and int(address.rpartition(":")[2]) in ports
            }
        return result
    finally:
        if balancer is not None:
            balancer.stop()
        for server in servers:
            server.stop()


def topology(kind: str, web: int) -> str:
    """The name a topology's figures go under: the server kind, with `-x<n>` for n web
    processes behind nginx."""
    return kind if web == 1 else f"{kind}-x{web}"


def _sum_of(values: Any) -> float | None:
    found = list(values)
    return None if not found or any(v is None for v in found) else round(sum(found), 1)


def _summed(windows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The web processes' windows as one: CPU and RSS added up."""
    return {key: _sum_of(w[key] for w in windows.values()) for key in ("cpu_percent", "rss_mb_start", "rss_mb_max")}


def headline(result: dict[str, Any]) -> dict[str, Any]:
    m, c, i = result["messages"], result["connections"], result["integrity"]
    return {
        "held": c["held"],
        "ack_p50": m["ack_ms"]["p50"],
        "ack_p95": m["ack_ms"]["p95"],
        "ack_p99": m["ack_ms"]["p99"],
        "ai_p50": m["ai_reply_ms"]["p50"],
        "ai_p95": m["ai_reply_ms"]["p95"],
        "msgs_per_s": m["per_second"],
        "errors": result["errors"]["total"],
        "lost": i["lost"],
        "duplicated": i["duplicated"] + i["live_duplicated"],
        "missed_live": i["live_missed"],
        "dropped": sum(result["connections"]["unexpected_closes"].values()),
        "reconnects": c["reconnected_for_check"],
        "rss_mb": result["server"]["rss_mb_max"],
        "kib_per_socket": result.get("kib_per_socket"),
        "cpu_percent": result["server"]["cpu_percent"],
        "db_connections": result.get("database_connections", {}).get("max"),
        "redis_connections": result.get("redis_connections", {}).get("max"),
    }


def spread(result: dict[str, Any]) -> dict[str, Any]:
    """How the sockets and the work were shared out over the web processes and nginx."""
    processes = result.get("web_processes", {})
    return {
        "sockets": {name: w["sockets_at_measure_end"] for name, w in processes.items()},
        "cpu_percent": {
            **{name: w["cpu_percent"] for name, w in processes.items()},
            "nginx": result.get("balancer", {}).get("cpu_percent"),
        },
        "db_connections": result.get("database_connections", {}).get("max_by_process"),
    }


def choose(by_server: dict[str, dict[int, dict[str, Any]]], pair: tuple[str, str] = PRODUCT_SERVERS) -> dict[str, Any]:
    """The faster of `pair`: more connections held at the largest point; then the lower ack
    p95 there (a difference under 10 % is a tie); then the lower ack p95 summed over all points;
    then less server CPU at the largest point."""
    top = max(POINTS)[0]
    rows = {kind: headline(points[top]) for kind, points in by_server.items() if top in points and kind in pair}
    if len(rows) < 2:
        return {"winner": next(iter(rows), None), "reason": "only one server measured"}
    (a, ra), (b, rb) = sorted(rows.items())
    if ra["held"] != rb["held"]:
        winner = a if ra["held"] > rb["held"] else b
        return {"winner": winner, "reason": f"holds more connections at {top}"}
    pa, pb = ra["ack_p95"] or float("inf"), rb["ack_p95"] or float("inf")
    if abs(pa - pb) > 0.1 * min(pa, pb):
        return {"winner": a if pa < pb else b, "reason": f"lower ack p95 at {top} ({min(pa, pb)} vs {max(pa, pb)} ms)"}
    sa = sum(headline(r)["ack_p95"] or 0 for r in by_server[a].values())
    sb = sum(headline(r)["ack_p95"] or 0 for r in by_server[b].values())
    if abs(sa - sb) > 0.1 * min(sa, sb):
        return {"winner": a if sa < sb else b, "reason": "lower ack p95 over all points"}
    ca, cb = ra["cpu_percent"] or 0, rb["cpu_percent"] or 0
    return {"winner": a if ca <= cb else b, "reason": f"ack latency within 10 %; less server CPU at {top}"}


def targets(points: dict[int, dict[str, Any]]) -> dict[str, Any]:
    low, high = min(points), max(points)
    h_low, h_high = headline(points[low]), headline(points[high])
    p95_low, p95_high = h_low["ack_p95"], h_high["ack_p95"]
    return {
        f"held_{high}": h_high["held"] >= high,
        "ack_p95_le_100ms_all_points": all((headline(r)["ack_p95"] or 1e9) <= 100 for r in points.values()),
        f"ack_p95_{high}_le_1.2x_{low}": bool(p95_low and p95_high and p95_high <= 1.2 * p95_low),
        "zero_lost_or_duplicated": all(
            headline(r)["lost"] == 0 and headline(r)["duplicated"] == 0 for r in points.values()
        ),
    }


# --- the benchmark -----------------------------------------------------------------------------


def test_chat_load(inboxes: list[tuple[str, str]]) -> None:
    from django.db import connection

    base_db = os.environ.get("DATABASE_URL")
    base_redis = os.environ.get("REDIS_URL")
    if not base_db or not base_redis:
        pytest.skip("DATABASE_URL / REDIS_URL not set: run through `make bench` (python -m syntera.embedded run)")
    database_url = _with_path(base_db, f"/{connection.settings_dict['NAME']}")
    redis_url = _with_path(base_redis, f"/{REDIS_DB}")
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # this bench's own database: broker, cache, layer
    env = bench_env(
        database_url,
        redis_url,
        cache_prefix=f"benchchat{uuid.uuid4().hex[:6]}",
        **({"AI_TENANT_CONCURRENCY": TENANT_CAP} if TENANT_CAP else {}),
    )
    log_dir = Path(tempfile.mkdtemp(prefix="syntera-chat-load-"))
    llm = start_llm(env, log_dir) if LLM == "paced" else None
    worker_env = {**env, "DATABASE_POOL_SIZE": LLM_DATABASE_POOL} if LLM_POOL == "threads" else env
    worker = start_worker("celery", AI_QUEUE, LLM_CONCURRENCY, named(worker_env, "ai-worker"), log_dir, pool=LLM_POOL)
    # The domain events' worker, as in the Procfile: the staff pages, the audit trail and the
    # statistics hear of every message through it.
    events_worker = start_worker("celery-events", "events", 1, named(env, "events-worker"), log_dir)
    ingest_worker = (
        start_worker("celery-ingest", "ingest", 1, named(env, "ingest-worker"), log_dir) if INGEST_DOCS else None
    )
    labels = {topology(kind, web): (kind, web) for web in WEBS for kind in SERVERS}
    by_server: dict[str, dict[int, dict[str, Any]]] = {label: {} for label in labels}
    started = time.time()
    try:
        wait_worker(worker)
        wait_worker(events_worker)
        if ingest_worker is not None:
            wait_worker(ingest_worker)
        largest = max(POINTS)[0]
        for connections, active in POINTS:
            for label, (kind, web) in labels.items():
                print(f"\n[chat_load] {label}: {connections} connections, {active} active, {DURATION:.0f} s")
                result = run_point(
                    kind,
                    connections,
                    active,
                    env=env,
                    inboxes=inboxes,
                    worker=worker,
                    llm=llm,
                    log_dir=log_dir,
                    profile=PROFILE and connections == largest,
                    web=web,
                )
                by_server[label][connections] = result
                print(json.dumps(headline(result)))
                if web > 1:
                    print(json.dumps(spread(result)))
                worker.check()
    finally:
        worker.stop()
        events_worker.stop()
        if ingest_worker is not None:
            ingest_worker.stop()
        if llm is not None:
            llm.stop()
    task_times = _task_times(worker.log_path)
    if os.environ.get("SYNTERA_BENCH_CHAT_KEEP_LOGS"):
        print(f"\n[chat_load] logs kept in {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)

    rows = []
    for kind, points in by_server.items():
        for connections, result in sorted(points.items()):
            h = headline(result)
            rows.append([kind, connections, result["config"]["active"], *h.values()])
    headers = ["server", "N", "active", *headline(next(iter(next(iter(by_server.values())).values()))).keys()]
    print("\n" + table(headers, rows))
    decision = choose(by_server)
    print(f"\n[chat_load] faster: {decision}")
    shared = choose(by_server, ("uvicorn-shared", "daphne-shared"))
    if shared["winner"] and shared["reason"] != "only one server measured":
        decision["with_the_shared_thread"] = shared
        print(f"[chat_load] faster with the shared thread: {shared}")
    record(
        "chat_load",
        {
            "what": "widget WebSocket load: daphne vs uvicorn, same ASGI app (tests/bench/test_chat_load.py)",
            "servers": {
                label: {"command": server_command(kind, 0), "web_processes": web, **server_implementation(kind)}
                for label, (kind, web) in labels.items()
            },
            "balancer": (
                {"nginx_workers": BALANCER_WORKERS, **dataclasses.asdict(nginx.capacity())} if max(WEBS) > 1 else None
            ),
            "web_database_pool": WEB_DATABASE_POOL or None,
            "web_database_threads": WEB_DATABASE_THREADS or None,
            "worker": (
                f"celery -Q {AI_QUEUE} --pool {LLM_POOL} --concurrency {LLM_CONCURRENCY}"
                + (f" (DATABASE_POOL_SIZE={LLM_DATABASE_POOL})" if LLM_POOL == "threads" else "")
                + "; -Q events --concurrency 1"
            ),
            "llm": {"kind": LLM, **({"pace": LLM_PACE} if LLM == "paced" else {})},
            "workspaces": len(TENANT_SLUGS),
            "noisy_workspace_rate": NOISY or None,
            "ingesting_documents": INGEST_DOCS,
            "ai_tenant_concurrency": TENANT_CAP or "default",
            "worker_task_seconds": task_times,
            "points": [{"connections": c, "active": a} for c, a in POINTS],
            "duration_s": DURATION,
            "interval_s": INTERVAL,
            "client_processes": PROCESSES,
            "seconds_total": round(time.time() - started),
            "code": _code_state(),
            "table": {"headers": headers, "rows": rows},
            "targets": {kind: targets(points) for kind, points in by_server.items() if points},
            "decision": decision,
            "results": {kind: {str(n): r for n, r in points.items()} for kind, points in by_server.items()},
        },
    )
    for kind, points in by_server.items():
        for connections, result in points.items():
            integrity = result["integrity"]
            assert integrity["lost"] == 0 and integrity["duplicated"] == 0, (kind, connections, integrity)
            assert integrity["ack_seq_mismatch"] == 0, (kind, connections, integrity)


def _code_state() -> dict[str, Any]:
    """The commit measured, and whether the files on the message path had local changes."""
    paths = ["apps/conversations", "apps/tenants/channels.py", "syntera"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head.stdout.strip(), "uncommitted_on_message_path": dirty.stdout.splitlines()[:20]}


def _task_times(log_path: Path) -> dict[str, Any]:
    """Run times of the worker's ai_reply tasks, from its log ("succeeded in 0.05s")."""
    import re

    values = []
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return {}
    for match in re.finditer(r"conversations\.ai_reply\[[^\]]+\] succeeded in ([0-9.]+)s", text):
        values.append(float(match.group(1)))
    failed = len(re.findall(r"conversations\.ai_reply\[[^\]]+\] raised", text))
    if not values:
        return {"n": 0, "failed": failed}
    values.sort()
    return {
        "n": len(values),
        "p50": round(values[len(values) // 2], 3),
        "p95": round(values[int(len(values) * 0.95) - 1], 3),
        "mean": round(sum(values) / len(values), 3),
        "failed": failed,
    }
