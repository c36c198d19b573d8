"""The processes the Procfile (`make run`) and docker-compose.yml start: every Celery queue is
consumed by exactly one kind of worker, and the slow kinds of work never share one: an
ingestion never holds up an AI reply, and neither holds up the staff pages' events."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
APART = ("ingest", "llm", "events")  # each on workers of its own


def _celery_workers(commands: dict[str, list[str]]) -> dict[str, tuple[set[str], str | None]]:
    """{process: (queues, hostname)} of the Celery worker commands."""
    found = {}
    for name, args in commands.items():
        if "worker" in args and "celery" in args[0]:
            queues = set(args[args.index("-Q") + 1].split(","))
            hostname = args[args.index("--hostname") + 1] if "--hostname" in args else None
            found[name] = (queues, hostname)
    return found


def _procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (line.partition(": ") for line in lines if line)}


def _compose() -> dict[str, list[str]]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: list(service["command"]) for name, service in services.items() if "command" in service}


def test_every_queue_has_one_kind_of_worker_and_slow_work_never_shares_one() -> None:
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    for source, commands in (("Procfile", _procfile()), ("docker-compose.yml", _compose())):
        workers = _celery_workers(commands)
        consumed = [q for queues, _ in workers.values() for q in queues]
        assert sorted(consumed) == sorted(declared), f"{source}: each queue consumed once: {workers}"
        for queues, _ in workers.values():
            assert len(queues & set(APART)) <= 1, f"{source}: {sorted(queues)} share a worker"
        hostnames = [hostname for _, hostname in workers.values()]
        assert len(set(hostnames)) == len(hostnames), f"{source}: two workers with one name on a host"
