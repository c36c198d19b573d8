"""Live-stack fixtures: the platform running as real processes, driven from outside.

`live_stack` (session scope) builds, once per test session:
- a fresh PostgreSQL database `test_syntera_live_<pid>` on the server named by DATABASE_URL,
  migrated with `manage.py migrate_schemas` in a subprocess;
- a real ASGI server process (`python -m uvicorn syntera.asgi:application`) on a free port;
- real Celery worker processes (`celery -A syntera worker --pool solo`), one for the default,
  ingest and llm queues and one for the events queue (as in the Procfile), on Redis database
  14 of the Redis named by REDIS_URL, sending mail with the file backend into a temporary dir.

Nothing here uses pytest-django's database fixtures: the tests talk to the processes over
HTTP and WebSocket only, and read the database directly only to check what must not exist.
Every wait is bounded. On a failed test the tail of the server and worker logs is attached
to the report, and the log directory is kept (also with SYNTERA_LIVE_KEEP_LOGS=1).
"""

from __future__ import annotations

import contextlib
import email
import email.message
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Live-stack-horse-battery-staple-42"
START_TIMEOUT = 60.0
PROCESS_STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 120.0

T = TypeVar("T")

_CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_MAIL_SEPARATOR = "\n" + "-" * 79 + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def csrf_token(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, f"no csrfmiddlewaretoken in page: {html[:300]!r}"
    return match.group(1)


def wait_for(check: Callable[[], T | None], *, timeout: float, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # what it was started with

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def assert_running(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"{self.name} exited with code {code}:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=PROCESS_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=PROCESS_STOP_TIMEOUT)


@dataclass
class LiveStack:
    """Handle on the running stack, with helpers to drive it like its users do."""

    port: int
    database_url: str
    redis_url: str
    env: dict[str, str]
    mail_dir: Path
    work_dir: Path
    services: list[Service] = field(default_factory=list)

    # --- addresses ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def host(self, slug: str | None = None) -> str:
        """`acme` → `acme.localhost:<port>`; None → the public host `localhost:<port>`."""
        return f"{slug}.localhost:{self.port}" if slug else f"localhost:{self.port}"

    def url(self, slug: str | None, path: str = "/") -> str:
        return f"http://{self.host(slug)}{path}"

    # --- HTTP ---------------------------------------------------------------------------
    def http(self, host: str, **kwargs: Any) -> httpx.Client:
        """An httpx client connecting to 127.0.0.1:<port>, sending `Host: <host>`.

        `host` may be given with or without the port (`acme.localhost` / `acme.localhost:1234`).
        Redirects are not followed: tests assert where they point.
        """
        if ":" not in host:
            host = f"{host}:{self.port}"
        headers = {"Host": host, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=15.0, follow_redirects=False, **kwargs)

    def api(self, slug: str | None, token: str) -> httpx.Client:
        return self.http(self.host(slug), headers={"Authorization": f"Bearer {token}"})

    def login(self, slug: str, email_address: str, password: str = PASSWORD) -> httpx.Client:
        """Log in through the real login form; returns the client holding the session cookie."""
        client = self.http(self.host(slug))
        page = client.get("/login/")
        assert page.status_code == 200, page.text[:500]
        response = client.post(
            "/login/",
            data={"email": email_address, "password": password, "csrfmiddlewaretoken": csrf_token(page.text)},
        )
        assert response.status_code == 302, f"login failed ({response.status_code}): {response.text[:500]}"
        assert response.headers["location"] == "/dashboard/"
        assert client.cookies.get("sessionid"), "no session cookie after login"
        return client

    # --- commands -----------------------------------------------------------------------
    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `manage.py <args>` against the live database, as an operator would."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def create_tenant(self, slug: str, owner: str, password: str = PASSWORD, name: str | None = None) -> str:
        args = ["create_tenant", slug, "--owner", owner, "--password", password]
        if name:
            args += ["--name", name]
        return self.manage(*args).stdout

    def create_api_key(self, slug: str, name: str = "x", scopes: list[str] | None = None) -> str:
        args = ["create_api_key", "--tenant", slug, "--name", name]
        if scopes:
            args += ["--scopes", *scopes]
        key = self.manage(*args).stdout.strip()
        assert key.startswith("sk_live_") and "\n" not in key, f"unexpected create_api_key output: {key!r}"
        return key

    # --- direct reads -------------------------------------------------------------------
    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the live database directly (for checking what must NOT have been written)."""
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    # --- mail ---------------------------------------------------------------------------
    def messages(self) -> list[email.message.Message]:
        found: list[email.message.Message] = []
        for path in sorted(self.mail_dir.glob("*")):
            text = path.read_text(errors="replace")
            for chunk in text.split(_MAIL_SEPARATOR):
                if chunk.strip():
                    found.append(email.message_from_string(chunk.lstrip("\n")))
        return found

    def wait_for_mail(self, to: str, timeout: float = 30.0) -> email.message.Message:
        """The first message to `to` written by the file email backend, within `timeout`."""

        def find() -> email.message.Message | None:
            for service in self.services:
                service.assert_running()
            for message in self.messages():
                if to.lower() in str(message.get("To", "")).lower():
                    return message
            return None

        return wait_for(find, timeout=timeout, interval=0.2, what=f"an email to {to}")

    # --- diagnostics --------------------------------------------------------------------
    def restart(self, name: str) -> Service:
        """Stop a service and start it again with the same command (a deploy, a crash)."""
        old = self.service(name)
        old.stop()
        args = [str(a) for a in old.proc.args]  # type: ignore[union-attr]
        new = _start(name, args, old.env, self.work_dir, log_name=f"{name}-{time.monotonic_ns()}")
        self.services[self.services.index(old)] = new
        if name == "uvicorn":
            _wait_http_ready(self, new)
        return new

    @contextlib.contextmanager
    def paused(self, *names: str) -> Iterator[None]:
        """Stop these workers for the block (so only the test's own workers consume their
        queues) and start them again with the same commands afterwards."""
        stopped = [self.service(name) for name in names]
        for service in stopped:
            service.stop()
        try:
            yield
        finally:
            for old in stopped:
                args = [str(a) for a in old.proc.args]  # type: ignore[union-attr]
                new = _start(old.name, args, old.env, self.work_dir, log_name=f"{old.name}-{time.monotonic_ns()}")
                self.services[self.services.index(old)] = new
                _wait_worker_ready(new)

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.name == name)

    def assert_running(self) -> None:
        for service in self.services:
            service.assert_running()

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        return {service.name: service.tail(lines) for service in self.services}


def mail_body(message: email.message.Message) -> str:
    if message.is_multipart():
        parts = [p for p in message.walk() if p.get_content_type() == "text/plain"]
        message = parts[0]
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


# -------------------------------------------------------------------------------------------


_STACK: LiveStack | None = None


def _database_urls() -> tuple[str, str, str]:
    """(admin URL on the `postgres` database, live database URL, live database name)."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        pytest.skip("DATABASE_URL is not set: run through `python -m syntera.embedded run -- ...`")
    name = f"test_syntera_live_{os.getpid()}"
    return _with_path(base, "/postgres"), _with_path(base, f"/{name}"), name


def _redis_url() -> str:
    """Redis database 14 (or LIVE_REDIS_DB, so two live suites on one server keep their task
    queues apart) on the same server as REDIS_URL (host and port kept)."""
    base = os.environ.get("REDIS_URL")
    if not base:
        pytest.skip("REDIS_URL is not set: run through `python -m syntera.embedded run -- ...`")
    return _with_path(base, f"/{int(os.environ.get('LIVE_REDIS_DB', '14'))}")


def _start(name: str, args: list[str], env: dict[str, str], log_dir: Path, log_name: str | None = None) -> Service:
    log_path = log_dir / f"{log_name or name}.log"
    log = log_path.open("wb")
    try:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()  # the child holds its own descriptor
    return Service(name=name, proc=proc, log_path=log_path, env=env)


def _wait_http_ready(stack: LiveStack, server: Service) -> None:
    def healthy() -> bool:
        server.assert_running()
        try:
            response = httpx.get(f"{stack.base_url}/healthz", headers={"Host": f"127.0.0.1:{stack.port}"}, timeout=2)
        except httpx.TransportError:
            return False
        return response.status_code == 200 and response.json() == {"status": "ok"}

    wait_for(healthy, timeout=START_TIMEOUT, interval=0.2, what="uvicorn /healthz")
    ready = httpx.get(f"{stack.base_url}/readyz", headers={"Host": f"127.0.0.1:{stack.port}"}, timeout=10)
    assert ready.status_code == 200, f"/readyz: {ready.status_code} {ready.text}"


# The live stack's `llm` worker: threads, and fewer pooled connections than threads.
LLM_THREADS = 16
LLM_ENV = {"DATABASE_POOL_SIZE": "4"}


def _worker_args(name: str, queues: str, pool: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "syntera",
        "worker",
        "-Q",
        queues,
        *pool,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"{name}{os.getpid()}@%h",
    ]


def _wait_worker_ready(worker: Service) -> None:
    def ready() -> bool:
        worker.assert_running()
        return bool(re.search(r"\S+@\S+ ready\.", worker.log()))

    wait_for(ready, timeout=START_TIMEOUT, interval=0.2, what="the Celery worker to be ready")


@pytest.fixture(scope="session")
def live_stack(request: pytest.FixtureRequest) -> Iterator[LiveStack]:
    global _STACK
    admin_url, database_url, dbname = _database_urls()
    redis_url = _redis_url()
    # Our own directory (not pytest's basetemp, which a concurrent pytest run may prune):
    # logs and mail; removed after a clean session, kept (and named) after a failure.
    work_dir = Path(tempfile.mkdtemp(prefix="syntera-live-"))
    mail_dir = work_dir / "mail"
    mail_dir.mkdir()
    port = free_port()

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "syntera.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        # A fresh key space per session: rate-limit counters and host lookups of an earlier
        # run (other tenant ids, same slugs) can never leak into this one.
        "CACHE_KEY_PREFIX": f"live{os.getpid()}x{uuid.uuid4().hex[:6]}",
        # Every test logs in from 127.0.0.1: the production allowance (10 a minute per address)
        # would make the suite's outcome depend on its speed. The limit itself is tested in
        # process (apps/accounts/tests).
        "RATELIMIT_LOGIN": "1000/m",
        "RATELIMIT_LOGIN_ACCOUNT": "1000/m",
        "SITE_PORT": str(port),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
        "LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # Browsers report policy violations to the server's log (tests assert there are none).
        "CSP_REPORT_URI": "/csp-report/",
    }
    for key in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL", "CHANNEL_LAYER_URL", "SENTRY_DSN"):
        env.pop(key, None)

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')

    keep_logs = False
    stack = LiveStack(
        port=port, database_url=database_url, redis_url=redis_url, env=env, mail_dir=mail_dir, work_dir=work_dir
    )
    try:
        stack.manage("migrate_schemas", "-v", "0")
        python = sys.executable
        server = _start(
            "uvicorn",
            [python, "-m", "uvicorn", "syntera.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
            env,
            work_dir,
        )
        stack.services.append(server)
        # As in the Procfile: ingestion and the domain events have workers of their own, so an
        # ingestion never holds up an AI reply, and neither holds up the staff pages' events;
        # turns that wait on a remote model run on threads with pooled database connections.
        workers = [
            _start(name, _worker_args(name, queues, pool), {**env, **extra_env}, work_dir)
            for name, queues, pool, extra_env in (
                ("celery", "default,llm_local", ["--pool", "solo"], {}),
                ("llm", "llm", ["--pool", "threads", "--concurrency", str(LLM_THREADS)], LLM_ENV),
                ("ingest", "ingest", ["--pool", "solo"], {}),
                ("events", "events", ["--pool", "solo"], {}),
            )
        ]
        stack.services.extend(workers)
        _wait_http_ready(stack, server)
        for worker in workers:
            _wait_worker_ready(worker)
        _STACK = stack
        yield stack
    except BaseException:
        keep_logs = True
        raise
    finally:
        _STACK = None
        for service in stack.services:
            service.stop()
        if keep_logs or request.session.testsfailed or os.environ.get("SYNTERA_LIVE_KEEP_LOGS"):
            sys.stderr.write(f"\nlive stack logs and mail kept in {work_dir}\n")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Attach the server and worker logs to the report of a failed live test."""
    report: pytest.TestReport = yield
    if report.failed and _STACK is not None:
        with contextlib.suppress(Exception):
            for name, text in _STACK.log_tails().items():
                report.sections.append((f"live {name} log (tail)", text))
    return report
