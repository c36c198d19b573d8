"""Local web sites and a scripted resolver for tests of outbound requests.

`LocalSite` is a real HTTP server on a loopback address of the test's choosing (127.0.0.1,
127.0.0.2, ::1; Linux routes all of 127.0.0.0/8 to the loopback interface), with scripted
pages, redirects and slow ("trickling") answers, and a log of every request it received, so a
test can assert that a request never arrived. `scripted_dns` replaces `socket.getaddrinfo`
for chosen host names: each lookup of a name takes the next answer of its script (the last
answer repeats), which is how a DNS-rebinding attacker's name server behaves. Every other
name, and every IP literal, is resolved by the real resolver.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # Trickling: the whole answer (status line, headers, body) is written `trickle_bytes`
    # bytes at a time, `trickle_every` seconds apart; `trickle_from` = "headers" or "body".
    trickle_every: float = 0.0
    trickle_bytes: int = 1
    trickle_from: str = "headers"


@dataclass
class Seen:
    method: str
    path: str
    host: str  # the Host header as received


class LocalSite:
    """A threaded HTTP/1.1 server on `address` (port 0 = any free port)."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.address = address
        self.scheme = "https" if tls else "http"
        self.pages: dict[str, Page] = {}
        self.seen: list[Seen] = []
        self.closing = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET(method="POST")

            def do_GET(self, method: str = "GET") -> None:
                site.seen.append(Seen(method, self.path, self.headers.get("Host", "")))
                page = site.pages.get(self.path, Page(b"not found", status=404, content_type="text/plain"))
                head = [f"HTTP/1.1 {page.status} X", f"Content-Type: {page.content_type}"]
                head += [f"{name}: {value}" for name, value in page.headers.items()]
                head += [f"Content-Length: {len(page.body)}", "Connection: close", "", ""]
                raw_head = "\r\n".join(head).encode()
                try:
                    if page.trickle_every and page.trickle_from == "headers":
                        self._trickle(raw_head + page.body, page)
                    elif page.trickle_every:
                        self.wfile.write(raw_head)
                        self.wfile.flush()
                        self._trickle(page.body, page)
                    else:
                        self.wfile.write(raw_head + page.body)
                except OSError:
                    pass  # the client gave up (its deadline): routine here
                self.close_connection = True

            def _trickle(self, data: bytes, page: Page) -> None:
                for start in range(0, len(data), page.trickle_bytes):
                    if site.closing.wait(page.trickle_every):
                        return
                    self.wfile.write(data[start : start + page.trickle_bytes])
                    self.wfile.flush()

        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self.server = Server((address, port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def netloc(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.netloc}{path}"

    def page(self, path: str, body: bytes | str = b"", **options: Any) -> LocalSite:
        self.pages[path] = Page(body.encode() if isinstance(body, str) else body, **options)
        return self

    def redirect(self, path: str, location: str, status: int = 302) -> LocalSite:
        return self.page(path, b"", status=status, headers={"Location": location})

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]

    def stop(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def local_site(address: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> Iterator[LocalSite]:
    site = LocalSite(address, port, tls)
    try:
        yield site
    finally:
        site.stop()


def twin_sites(first: str, second: str) -> tuple[LocalSite, LocalSite]:
    """Two sites on the same port at two addresses (a pinned connection and a decoy)."""
    for _ in range(50):
        one = LocalSite(first)
        try:
            return one, LocalSite(second, one.port)
        except OSError:
            one.stop()
    raise RuntimeError("no port free on both addresses")


def scripted_dns(monkeypatch: pytest.MonkeyPatch, scripts: dict[str, list[str]]) -> dict[str, int]:
    """Answer lookups of the scripted names from their scripts; returns lookup counts by name."""
    real = socket.getaddrinfo
    lookups: dict[str, int] = dict.fromkeys(scripts, 0)
    lock = threading.Lock()

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        name = (name or "").lower().rstrip(".")
        if name not in scripts:
            return real(host, port, family, type, proto, flags)
        with lock:
            script = scripts[name]
            answer = script[min(lookups[name], len(script) - 1)]
            lookups[name] += 1
        infos = real(answer, port, family, type or socket.SOCK_STREAM, proto, socket.AI_NUMERICHOST)
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def elapsed(call: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result or the exception raised) of `call()`."""
    started = time.monotonic()
    try:
        result: Any = call()
    except Exception as exc:
        result = exc
    return time.monotonic() - started, result


@dataclass
class TLSPair:
    """A throw-away CA, a server context with a certificate for `names`, a client context
    that trusts only that CA, and the SNI names the server was asked for."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    sni: list[str | None]


def tls_pair(*names: str) -> TLSPair:
    import datetime
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = f"{folder}/cert.pem", f"{folder}/key.pem"
        with open(cert_file, "wb") as handle:
            handle.write(leaf.public_bytes(pem))
        with open(key_file, "wb") as handle:
            handle.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_file, key_file)
    sni: list[str | None] = []
    server.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,func-returns-value]
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return TLSPair(server=server, client=client, sni=sni)
