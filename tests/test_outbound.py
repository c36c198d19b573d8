"""The guarded outbound HTTP client (syntera/outbound/), sync and async: connections go only
to the addresses that were checked (DNS rebinding), TLS is verified against the host name
and sends it as SNI, redirects are checked hop by hop, environment proxies are ignored,
deadlines bound the whole request. Real servers on loopback addresses (tests/netlocal.py)
and scripted DNS answers for made-up names."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import httpx
import pytest

from syntera import outbound
from tests.netlocal import elapsed, local_site, scripted_dns, tls_pair, twin_sites

PUBLIC = "93.184.215.14"


def get(url: str, *, mode: str, **options: Any) -> httpx.Response:
    """GET through a guarded client, sync or async, and read the body."""
    if mode == "sync":
        with outbound.client(**options) as client:
            return client.get(url)

    async def run() -> httpx.Response:
        async with outbound.async_client(**options) as client:
            return await client.get(url)

    return asyncio.run(run())


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@pytest.fixture(autouse=True)
def _no_allow_list(settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = []
    settings.KNOWLEDGE_URL_ALLOWLIST = []


@MODES
def test_a_rebound_name_never_reaches_the_internal_address(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    with local_site("127.0.0.1") as site:
        site.page("/", "internal")
        scripted_dns(monkeypatch, {"rebind.test": [PUBLIC, "127.0.0.1"]})
        elapsed(lambda: get(f"http://rebind.test:{site.port}/", mode=mode, timeout=2, deadline=3))
        scripted_dns(monkeypatch, {"rebind2.test": ["127.0.0.1", PUBLIC]})
        with pytest.raises(outbound.OutboundRefused):
            get(f"http://rebind2.test:{site.port}/", mode=mode)
    assert site.seen == []


@MODES
def test_the_checked_address_is_the_one_connected_to(settings: Any, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.2/32"]
    pinned, decoy = twin_sites("127.0.0.2", "127.0.0.1")
    try:
        pinned.page("/", "pinned")
        lookups = scripted_dns(monkeypatch, {"pinned.test": ["127.0.0.2", "127.0.0.1"]})
        response = get(f"http://pinned.test:{pinned.port}/", mode=mode)
    finally:
        pinned.stop()
        decoy.stop()
    assert response.text == "pinned" and decoy.seen == [] and lookups["pinned.test"] == 1
    assert pinned.seen[0].host == f"pinned.test:{pinned.port}"


@MODES
def test_tls_is_verified_against_the_host_name_and_sends_it_as_sni(
    settings: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The connection is made to the pinned address (127.0.0.2, not in the certificate), yet
    the certificate is checked for the name, the name goes out as SNI and in the Host header."""
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.2/32"]
    scripted_dns(monkeypatch, {"secure.test": ["127.0.0.2"], "imposter.test": ["127.0.0.2"]})
    tls = tls_pair("secure.test")
    with local_site("127.0.0.2", tls=tls.server) as site:
        site.page("/", "over tls")
        response = get(f"https://secure.test:{site.port}/", mode=mode, verify=tls.client)
        assert response.text == "over tls"
        assert tls.sni == ["secure.test"] and site.seen[0].host == f"secure.test:{site.port}"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            get(f"https://imposter.test:{site.port}/", mode=mode, verify=tls.client)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            get(f"https://127.0.0.2:{site.port}/", mode=mode, verify=tls.client)
    assert len(site.seen) == 1


@MODES
def test_every_redirect_hop_is_checked(settings: Any, mode: str) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.2/32"]
    with local_site("127.0.0.1") as internal, local_site("127.0.0.2") as intranet:
        internal.page("/", "internal")
        intranet.redirect("/a", "/b").redirect("/b", internal.url("/"))
        with pytest.raises(outbound.OutboundRefused, match="public internet address"):
            get(intranet.url("/a"), mode=mode)
        intranet.redirect("/c", f"http://user:pw@127.0.0.2:{intranet.port}/a")
        with pytest.raises(outbound.OutboundRefused, match="credentials"):
            get(intranet.url("/c"), mode=mode)
        assert intranet.paths() == ["/a", "/b", "/c"] and internal.seen == []


@MODES
def test_proxies_from_the_environment_are_ignored(settings: Any, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """A proxy taken from the environment would connect wherever the proxy likes, past the
    check: the guarded client connects itself."""
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.2/32"]
    with local_site("127.0.0.1") as proxy, local_site("127.0.0.2") as target:
        target.page("/", "direct")
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url())
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert get(target.url("/"), mode=mode).text == "direct"
        assert proxy.seen == []


@MODES
def test_a_trusted_origin_is_admitted_on_its_own_port_only(mode: str) -> None:
    """The operator's own configured endpoint (OPENAI_BASE_URL) is trusted: that host and port."""
    with local_site("127.0.0.1") as model_server, local_site("127.0.0.1") as other:
        model_server.page("/", "model")
        origin = ("127.0.0.1", model_server.port)
        assert get(model_server.url("/"), mode=mode, trusted_origins=[origin]).text == "model"
        with pytest.raises(outbound.OutboundRefused):
            get(other.url("/"), mode=mode, trusted_origins=[origin])
        assert other.seen == []


@MODES
def test_a_trickling_server_is_cut_off_at_the_deadline(settings: Any, mode: str) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    with local_site("127.0.0.1") as slow:
        slow.page("/", "x" * 200, trickle_every=0.1)
        seconds, result = elapsed(lambda: get(slow.url("/"), mode=mode, timeout=1, deadline=0.8))
    assert isinstance(result, httpx.TimeoutException), result
    assert 0.7 < seconds < 2.0


def test_a_deadline_spans_a_whole_sequence_of_requests(settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    with local_site("127.0.0.1") as slow:
        slow.page("/", "x" * 4, trickle_every=0.15, trickle_from="body")
        with outbound.client(timeout=2, deadline=2) as client, outbound.deadline(1.0):
            client.get(slow.url("/"))  # about 0.6 s
            seconds, result = elapsed(lambda: client.get(slow.url("/")))
    assert isinstance(result, httpx.TimeoutException) and seconds < 0.7


def test_refusals_say_the_same_thing_whether_a_name_resolves_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """No oracle: an unknown name, a name for an internal address and an internal address
    literal get one message; the details go to the log only."""
    scripted_dns(monkeypatch, {"db.internal.test": ["10.1.2.3"]})
    messages = set()
    details = []
    for url in ("http://no-such-name.invalid/", "http://db.internal.test/", "http://10.1.2.3:5432/"):
        with pytest.raises(outbound.OutboundRefused) as refused:
            outbound.check_url(url)
        messages.add(str(refused.value))
        details.append(refused.value.detail)
    assert messages == {outbound.REFUSED_ADDRESS}
    assert "10.1.2.3" not in outbound.REFUSED_ADDRESS and "10.1.2.3" in details[1]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "http://u:p@example.com/",
        "http:///x",
    ],
)
def test_only_http_and_https_without_credentials(url: str) -> None:
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_url(url)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.215.14", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.251", False),
        ("239.255.255.250", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fd12:3456::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.215.14", True),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::5db8:d70e", True),
        ("2002:c0a8:101::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("ff02::1", False),
    ],
)
def test_which_addresses_are_public(address: str, allowed: bool) -> None:
    assert outbound.address_allowed(ipaddress.ip_address(address), outbound.allow_list()) is allowed


def test_the_allow_list_admits_networks_and_names(settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = ["10.20.0.0/16", " wiki.corp.test ", "fd00::/8"]
    settings.KNOWLEDGE_URL_ALLOWLIST = ["192.168.5.5"]
    allowed = outbound.allow_list()
    for address in ("10.20.3.4", "::ffff:10.20.3.4", "fd00::5", "192.168.5.5"):
        assert outbound.address_allowed(ipaddress.ip_address(address), allowed), address
    for address in ("10.21.0.1", "192.168.5.6", "127.0.0.1"):
        assert not outbound.address_allowed(ipaddress.ip_address(address), allowed), address
    assert allowed.hosts == {"wiki.corp.test"}


def test_clients_ignore_the_environment_and_follow_few_redirects() -> None:
    with outbound.client() as client:
        assert client.trust_env is False and client.max_redirects == outbound.MAX_REDIRECTS


def test_a_redirect_loop_ends(settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    with local_site("127.0.0.1") as site:
        site.redirect("/loop", "/loop")
        with pytest.raises(httpx.TooManyRedirects):
            get(site.url("/loop"), mode="sync")
        assert len(site.seen) == outbound.MAX_REDIRECTS + 1


def test_the_async_client_carries_the_openai_sdk(settings: Any) -> None:
    """`AsyncOpenAI(http_client=outbound.async_client())`, as an async provider will use it:
    a streamed answer from an allow-listed server (the OpenAI stand-in); with the allow-list
    empty the same server is refused before any connection."""
    import openai

    from tests.standins.openai_server import OpenAIStandIn

    server = OpenAIStandIn(api_key="sk-async").start()

    async def ask() -> str:
        async with outbound.async_client(follow_redirects=False, timeout=5, deadline=10) as http:
            client = openai.AsyncOpenAI(
                api_key="sk-async",
                base_url=server.base_url,
                http_client=http,  # type: ignore[arg-type]
                max_retries=0,
            )
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    try:
        settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
        assert asyncio.run(ask()) == "Echo: hi"
        settings.OUTBOUND_ALLOWLIST = []
        with pytest.raises((outbound.OutboundRefused, openai.APIConnectionError)):
            asyncio.run(ask())
        assert len(server.chat_requests) == 1
    finally:
        server.stop()
