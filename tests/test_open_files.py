"""A web process lifts its own open-file limit (syntera/asgi.py): each open WebSocket is a file
descriptor, and many systems start processes with a soft limit of 1,024 while allowing far
more, so uvicorn under `make run` (or a container whose runtime keeps the soft limit low)
refused sockets past about a thousand (docs/deployment.md, "Sockets per box")."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOW = 1024


def _limits_after_loading_the_application() -> tuple[int, int]:
    def low_soft_limit() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (LOW, hard))

    script = "import resource, syntera.asgi; print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "syntera.settings"},
        preexec_fn=low_soft_limit,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    soft, hard = (int(n) for n in done.stdout.split()[-2:])
    return soft, hard


def test_the_web_process_raises_its_soft_limit_to_the_hard_one() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= LOW:
        pytest.skip(f"the hard limit here is {hard}: nothing to raise")
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20  # the kernel's default ceiling
    assert _limits_after_loading_the_application() == (expected, hard)
