"""nginx in front of the web processes, configured with the file deployments use.

`deploy/nginx/syntera.conf.template` is what docker-compose.yml gives the official nginx image
(rendered by the image's envsubst when it starts). Here it is rendered the same way, put in a
main configuration like a distribution's `nginx.conf` (an `http` block including it) with the
capacity of the deployment's main file (`deploy/nginx/nginx.conf`: descriptors per worker and
connections per worker), and run with Debian's nginx in a directory of its own: pid, logs and
temporary files inside it, listening on 127.0.0.1 only, never the system's nginx service.
`make nginx` installs nginx when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "syntera.conf.template"
MAIN = ROOT / "deploy" / "nginx" / "nginx.conf"
VARIABLES = ("SYNTERA_LISTEN", "SYNTERA_WEB", "SYNTERA_RESOLVER", "SYNTERA_ACCESS_LOG")
# The upstream group a test's web processes form (SYNTERA_WEB names it).
GROUP = "syntera_web"

_LINE = re.compile(
    r'^(?P<client>\S+) \[(?P<time>[^]]+)\] "(?P<method>\S+) (?P<route>\S+)" (?P<status>\d+) \d+ '
    r"upstream=(?P<upstream>.*?) upstream_status=(?P<upstream_status>.*?) host=(?P<host>\S*) "
    r"upgrade=(?P<upgrade>\S*) "
)


def binary() -> str | None:
    """Debian's nginx, or None when it is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def render(values: dict[str, str]) -> str:
    """The template with its variables replaced, as the official image's envsubst does."""
    text = TEMPLATE.read_text()
    for name in VARIABLES:
        text = text.replace("${" + name + "}", values[name])
    assert "$SYNTERA_" not in text and "${SYNTERA_" not in text, "a template variable was left unset"
    return text


@dataclass(frozen=True)
class Capacity:
    """What the deployment's main configuration gives each nginx worker."""

    rlimit_nofile: int  # worker_rlimit_nofile: file descriptors
    connections: int  # worker_connections: client and upstream connections together

    @property
    def sockets(self) -> int:
        """Proxied sockets one worker can hold (each is two connections)."""
        return self.connections // 2


def capacity() -> Capacity:
    """`worker_rlimit_nofile` and `worker_connections` of `deploy/nginx/nginx.conf`."""
    text = MAIN.read_text()
    nofile = re.search(r"^\s*worker_rlimit_nofile\s+(\d+)\s*;", text, re.MULTILINE)
    connections = re.search(r"^\s*worker_connections\s+(\d+)\s*;", text, re.MULTILINE)
    assert nofile and connections, f"{MAIN} sets worker_rlimit_nofile and worker_connections"
    return Capacity(rlimit_nofile=int(nofile[1]), connections=int(connections[1]))


def write_config(directory: Path, values: dict[str, str], servers: list[str] | None = None, workers: str = "1") -> Path:
    """Write the main configuration and the rendered site file into `directory`; with
    `servers` ("127.0.0.1:8001", ...), an upstream group `GROUP` of them beside it. One worker
    by default: its round robin takes the web processes strictly in turn (the deployment's
    `auto` is one per core)."""
    directory.chmod(0o755)  # nginx's workers (an unprivileged user when started as root) use it
    (directory / "syntera.conf").write_text(render(values))
    group = ""
    if servers:
        group = f"upstream {GROUP} {{\n" + "".join(f"        server {s};\n" for s in servers) + "    }\n"
    limits = capacity()
    main = directory / "nginx.conf"
    main.write_text(
        f"""worker_processes {workers};
worker_rlimit_nofile {limits.rlimit_nofile};
pid "{directory}/nginx.pid";
error_log stderr notice;
events {{
    worker_connections {limits.connections};
}}
http {{
    client_body_temp_path "{directory}/client_body";
    proxy_temp_path "{directory}/proxy";
    fastcgi_temp_path "{directory}/fastcgi";
    uwsgi_temp_path "{directory}/uwsgi";
    scgi_temp_path "{directory}/scgi";
    {group}
    include "{directory}/syntera.conf";
}}
"""
    )
    return main


def write_balancer(directory: Path, listen: str, servers: list[str], workers: str = "1") -> Path:
    """`write_config` for the deployment's site in front of `servers`: listening on `listen`
    ("127.0.0.1:8080", with any `listen` parameters after it), the access log in `directory`."""
    values = {
        "SYNTERA_LISTEN": listen,
        "SYNTERA_WEB": GROUP,
        "SYNTERA_RESOLVER": "127.0.0.1",  # never asked: SYNTERA_WEB names the group
        "SYNTERA_ACCESS_LOG": str(directory / "access.log"),
    }
    return write_config(directory, values, servers=servers, workers=workers)


def command(nginx: str, config: Path, *extra: str) -> list[str]:
    """Run nginx in the foreground with `config` (its directory as the prefix)."""
    return [nginx, "-p", str(config.parent), "-c", str(config), "-e", "stderr", "-g", "daemon off;", *extra]


def check(nginx: str, config: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t`: does nginx accept the configuration?"""
    return subprocess.run(command(nginx, config, "-t"), capture_output=True, text=True, timeout=30, check=False)


@dataclass(frozen=True)
class Access:
    """One line of the access log (`log_format syntera`)."""

    method: str
    route: str
    status: int
    upstreams: tuple[str, ...]  # every web process tried, the one that answered last
    host: str
    upgrade: str

    @property
    def served_by(self) -> str:
        return self.upstreams[-1]


def access_log(path: Path) -> list[Access]:
    """The access log's lines, in the order nginx wrote them (a request's line is written
    when it ends: a socket's when it closes)."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        match = _LINE.match(line)
        assert match, f"not an access log line of ours: {line!r}"
        found.append(
            Access(
                method=match["method"],
                route=match["route"],
                status=int(match["status"]),
                upstreams=tuple(a.strip() for a in match["upstream"].split(",")),
                host=match["host"],
                upgrade=match["upgrade"],
            )
        )
    return found
