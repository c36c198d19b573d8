"""Local stand-in servers for services that cannot be reached from here.

Each stand-in is a small server on 127.0.0.1 (a free port, background threads) that speaks
the documented wire protocol of the service it replaces, so the official SDK's real request
path runs in tests: URL building, headers, encoding, retries, response decoding. A stand-in is
used only where the real component is unavailable (see the brief's rule).

- `pinecone_server` (HTTP): Pinecone's control plane (describe/list indexes) and data plane
  (upsert, query with metadata filters, delete, fetch, list, describe_index_stats).
- `openai_server` (HTTP): OpenAI's `POST /v1/embeddings` and `POST /v1/chat/completions`
  (JSON and streamed server-sent events).
- `mongo_server` (MongoDB wire protocol over TCP: OP_MSG, and OP_QUERY for the handshake):
  the commands pymongo sends for the conversation store, executed on a mongomock engine.

`JSONServer` is the shared base: routing by method and path, JSON bodies with a size cap,
keep-alive HTTP/1.1, a request log for assertions, and injected failures (`fail_next`) to
exercise the SDKs' retry paths. A route may also answer with `Streamed`: a body produced
piece by piece (chunked transfer encoding, each piece flushed), after an optional delay, that
can drop the connection mid-way (`BreakConnection`) to exercise the SDKs' error paths.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class HTTPError(Exception):
    """Raised by a route to answer with `status` and a JSON `body`."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any  # decoded JSON, or None
    raw: bytes = b""


@dataclass
class Injected:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # only requests to this path; None = any


class BreakConnection(Exception):
    """Raised by a `Streamed` body's iterator: the server drops the connection at once,
    without the terminating chunk, as a crashed upstream or a cut network would."""


@dataclass
class Streamed:
    """A route's answer sent as it is produced. `delay` seconds pass before the status line
    (a slow upstream); each item of `chunks` is written and flushed as one HTTP chunk."""

    chunks: Iterable[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # after the delay, drop the connection without a status line (a hung upstream)


Route = Callable[[Request], Any]


class JSONServer:
    """Base for a stand-in: subclasses register routes in `routes()` and keep their state."""

    max_body_bytes = 10 * 1024 * 1024
    backlog = 128  # connections waiting to be accepted (a benchmark opens hundreds at once)
    keep_log = True  # every request kept in `requests` (a benchmark's are not)

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._injected: list[Injected] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()  # cuts short the delays of streamed answers on stop()

    # --- to override -------------------------------------------------------------------

    def routes(self) -> dict[tuple[str, str], Route]:
        """{(method, path): handler}; a path segment "{name}" matches one segment (read it
        with `param`). A handler returns a JSON payload (status 200) or (status, payload)."""
        raise NotImplementedError

    def authorize(self, request: Request) -> None:
        """Raise HTTPError for a request without valid credentials."""

    # --- control ----------------------------------------------------------------------

    def start(self) -> JSONServer:
        owner = self
        self._closing.clear()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def handle(self) -> None:
                # A client that closes a kept-alive connection mid-way (an SDK dropping an
                # error response unread, a timeout) is routine here, not a server fault.
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    super().handle()

            def _handle(self) -> None:
                owner._dispatch(self)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": self.backlog})
        self._server = server_class(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(
        self,
        status: int,
        body: Any = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` requests (to `path`, if given) with this error instead."""
        with self._lock:
            for _ in range(times):
                self._injected.append(Injected(status, body, dict(headers or {}), path))

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self._injected.clear()

    # --- plumbing ---------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        parts = path.strip("/").split("/")
        for (m, pattern), handler in self.routes().items():
            if m != method:
                continue
            pattern_parts = pattern.strip("/").split("/")
            if len(pattern_parts) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(pattern_parts, parts, strict=True):
                if want.startswith("{") and want.endswith("}"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return handler, params
        return None

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        length = int(headers.get("content-length") or 0)
        if length > self.max_body_bytes:
            handler.rfile.read(length)
            self._send(handler, 413, {"error": {"code": "PAYLOAD_TOO_LARGE", "message": "Request too large."}})
            return
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        request = Request(handler.command, split.path, parse_qs(split.query), headers, None, raw)
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise HTTPError(400, {"error": {"code": "INVALID_ARGUMENT", "message": "Malformed JSON."}}) from exc
            request.body = body
            with self._lock:
                if self.keep_log:
                    self.requests.append(request)
                injected = next(
                    (i for i in self._injected if i.path is None or i.path == request.path),
                    None,
                )
                if injected is not None:
                    self._injected.remove(injected)
            if injected is not None:
                raise HTTPError(injected.status, injected.body, injected.headers)
            self.authorize(request)
            found = self._match(request.method, request.path)
            if found is None:
                raise HTTPError(404, {"error": {"code": "NOT_FOUND", "message": f"No route {request.path}"}})
            route, params = found
            request.query.update({k: [v] for k, v in params.items()})
            with self._lock:
                result = route(request)
            if isinstance(result, Streamed):  # written outside the lock: other requests go on meanwhile
                self._send_streamed(handler, result)
                return
            status, payload = result if isinstance(result, tuple) else (200, result)
            self._send(handler, status, payload)
        except HTTPError as err:
            self._send(handler, err.status, err.body, err.headers)

    def pause(self, seconds: float) -> bool:
        """Sleep in a streamed answer; returns False when the server is stopping."""
        return not self._closing.wait(seconds)

    def _send_streamed(self, handler: BaseHTTPRequestHandler, answer: Streamed) -> None:
        if (answer.delay and not self.pause(answer.delay)) or answer.drop:
            handler.close_connection = True
            if answer.drop:
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.send_header("Cache-Control", "no-cache")
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.flush()
            for piece in answer.chunks:
                if piece:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except BreakConnection:
            handler.close_connection = True
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)  # no terminating chunk: an incomplete body
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            handler.close_connection = True

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


def param(request: Request, name: str) -> str:
    """A path parameter (or the first value of a query parameter)."""
    values = request.query.get(name) or [""]
    return values[0]
