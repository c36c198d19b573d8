"""The processes the Procfile (`make run`) and docker-compose.yml start: every Celery queue is
consumed by exactly one kind of worker, and the slow kinds of work never share one: an
ingestion never holds up an AI reply, and neither holds up the staff pages' events. Under
Compose, web runs behind nginx with the repository's configuration (docs/deployment.md);
`docker compose up` itself is not run here (no Docker on the test machines)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from tests import nginx

ROOT = Path(__file__).resolve().parent.parent
APART = ("ingest", "llm", "events")  # each on workers of its own
# Turns that wait on a remote model run on threads; CPU-bound work on processes.
THREADED = {"llm"}


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def _celery_workers(commands: dict[str, list[str]]) -> dict[str, tuple[set[str], str | None, str]]:
    """{process: (queues, hostname, pool)} of the Celery worker commands."""
    found = {}
    for name, args in commands.items():
        while args and (args[0] == "env" or "=" in args[0]):
            args = args[1:]  # `env VAR=value celery ...`
        if args and "celery" in args[0] and "worker" in args:
            queues = set(str(_option(args, "-Q")).split(","))
            found[name] = (queues, _option(args, "--hostname"), _option(args, "--pool") or "prefork")
    return found


def _procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (line.partition(": ") for line in lines if line)}


def _compose() -> dict[str, list[str]]:
    """Each service's command, behind its own environment (as `env VAR=value ...`)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {
        name: ["env", *(f"{k}={v}" for k, v in (service.get("environment") or {}).items()), *service["command"]]
        for name, service in services.items()
        if "command" in service
    }


def test_the_threaded_workers_pool_their_database_connections() -> None:
    """A hundred threads must not mean a hundred PostgreSQL connections."""
    for source, commands in (("Procfile", _procfile()), ("docker-compose.yml", _compose())):
        for name, args in commands.items():
            if "threads" in args:
                value = next((a.partition("=")[2] for a in args if a.startswith("DATABASE_POOL_SIZE=")), "0")
                size = re.fullmatch(r"\$\{\w+:-(\d+)\}|(\d+)", value)
                assert size and int(size[1] or size[2]) > 0, f"{source}: {name} has no connection pool"


def test_every_queue_has_one_kind_of_worker_and_slow_work_never_shares_one() -> None:
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    for source, commands in (("Procfile", _procfile()), ("docker-compose.yml", _compose())):
        workers = _celery_workers(commands)
        consumed = [q for queues, _, _ in workers.values() for q in queues]
        assert sorted(consumed) == sorted(declared), f"{source}: each queue consumed once: {workers}"
        for queues, _, pool in workers.values():
            assert len(queues & set(APART)) <= 1, f"{source}: {sorted(queues)} share a worker"
            threaded = bool(queues & THREADED)
            assert (pool == "threads") == threaded, f"{source}: {sorted(queues)} on the {pool} pool"
            assert not threaded or queues <= THREADED, f"{source}: CPU-bound work on threads"
        hostnames = [hostname for _, hostname, _ in workers.values()]
        assert len(set(hostnames)) == len(hostnames), f"{source}: two workers with one name on a host"


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]
    return service


def test_compose_puts_every_web_replica_behind_nginx() -> None:
    """`docker compose up --scale web=3`: web publishes no host port (replicas would fight
    over it); nginx publishes it and finds every replica through Docker's DNS, with the
    repository's configuration."""
    web, balancer = _service("web"), _service("nginx")
    assert "ports" not in web, "web must not publish a fixed host port"
    assert balancer["ports"] == ["${WEB_PORT:-8000}:80"]
    assert balancer["image"].startswith("nginx:")
    assert "./deploy/nginx/syntera.conf.template:/etc/nginx/templates/default.conf.template:ro" in balancer["volumes"]
    env = balancer["environment"]
    assert set(nginx.VARIABLES) <= set(env), "every template variable is given"
    assert env["SYNTERA_LISTEN"] == "80" and env["SYNTERA_RESOLVER"] == "127.0.0.11"
    host, _, port = env["SYNTERA_WEB"].partition(":")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert host == "web" and f'"--port", "{port}"' in dockerfile, "nginx reaches web where uvicorn listens"
    # web believes nginx's X-Forwarded-For (its peers are on the project's private network).
    assert "172.16.0.0/12" in web["environment"]["TRUSTED_PROXIES"]


def test_the_configuration_compose_gives_nginx_is_accepted_by_nginx(tmp_path: Path) -> None:
    """The template rendered with docker-compose's values passes `nginx -t` (the official
    image includes it in its `http` block the same way). `web` is looked up when requests
    come, so the name need not resolve here."""
    binary = nginx.binary()
    if binary is None:
        pytest.skip("nginx is not installed (make nginx)")
    env = _service("nginx")["environment"]
    config = nginx.write_config(tmp_path, {name: env[name] for name in nginx.VARIABLES})
    result = nginx.check(binary, config)
    assert result.returncode == 0, result.stderr
    assert "resolver 127.0.0.11 valid=10s" in (tmp_path / "syntera.conf").read_text()


SOCKETS_PER_BOX = 10_000


def test_compose_gives_nginx_and_web_room_for_ten_thousand_sockets() -> None:
    """10,000 widget sockets through one nginx: 20,000 connections (client and upstream side),
    however unevenly its workers take them, and a descriptor for each in nginx and in the web
    processes. The official image's own main file allows 1,024 connections per worker (about
    a thousand sockets on two cores): Compose mounts the repository's instead."""
    balancer, web = _service("nginx"), _service("web")
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in balancer["volumes"]
    limits = nginx.capacity()
    assert limits.sockets >= SOCKETS_PER_BOX, "one worker may be handed every socket"
    assert limits.rlimit_nofile > limits.connections, "a descriptor for every connection, the logs and the listener"
    assert balancer["ulimits"]["nofile"] >= limits.rlimit_nofile
    # The web replicas share the sockets; one replica alone still takes them all.
    assert web["ulimits"]["nofile"] > SOCKETS_PER_BOX


def test_the_deployments_capacity_is_what_nginx_runs_with_here(tmp_path: Path) -> None:
    """The tests' and benchmarks' nginx take the deployment's limits, and nginx accepts them."""
    binary = nginx.binary()
    if binary is None:
        pytest.skip("nginx is not installed (make nginx)")
    values = {
        "SYNTERA_LISTEN": "127.0.0.1:1",
        "SYNTERA_WEB": nginx.GROUP,
        "SYNTERA_RESOLVER": "127.0.0.1",
        "SYNTERA_ACCESS_LOG": str(tmp_path / "access.log"),
    }
    config = nginx.write_config(tmp_path, values, servers=["127.0.0.1:2"], workers="auto")
    limits = nginx.capacity()
    text = config.read_text()
    assert f"worker_connections {limits.connections};" in text
    assert f"worker_rlimit_nofile {limits.rlimit_nofile};" in text
    result = nginx.check(binary, config)
    assert result.returncode == 0, result.stderr
