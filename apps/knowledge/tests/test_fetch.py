"""URL fetches for knowledge sources, attacked the way a hostile tenant or site would: a name
whose DNS answer changes between the check and the connection (rebinding), redirects to
internal addresses, odd spellings of loopback addresses, pages that trickle a byte at a time.
Real HTTP servers on loopback addresses (tests/netlocal.py); the DNS answers for made-up
names are scripted; everything else is real."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.knowledge.extractors import ExtractionError
from apps.knowledge.fetch import fetch
from tests.netlocal import LocalSite, elapsed, local_site, scripted_dns, twin_sites

PUBLIC = "93.184.215.14"  # a globally routable address (example.com's)
PAGE = "<html><head><title>Help</title></head><body><p>Opening hours are 8 to 20.</p></body></html>"


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with local_site("127.0.0.1") as server:
        server.page("/", PAGE).page("/secret", "internal admin console")
        yield server


@pytest.fixture(autouse=True)
def _short_timeouts(settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = []
    settings.KNOWLEDGE_URL_ALLOWLIST = []
    settings.KNOWLEDGE_FETCH_TIMEOUT = 2
    settings.KNOWLEDGE_FETCH_DEADLINE = 4


def test_dns_rebinding_never_reaches_the_internal_address(site: LocalSite, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name answers a public address when it is checked and 127.0.0.1 when the HTTP
    client would look it up again to connect: the connection goes to the checked address
    only, so the internal server never sees a request."""
    scripted_dns(monkeypatch, {"rebind.test": [PUBLIC, "127.0.0.1"]})
    _seconds, result = elapsed(lambda: fetch(f"http://rebind.test:{site.port}/secret"))
    assert site.seen == []
    assert not (hasattr(result, "body") and b"internal" in result.body)


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.2 is allow-listed (an intranet); the name answers it once, then 127.0.0.1 (a
    decoy on the same port): the page comes from 127.0.0.2, asked for by its host name."""
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.2/32"]
    pinned, decoy = twin_sites("127.0.0.2", "127.0.0.1")
    try:
        pinned.page("/", PAGE)
        decoy.page("/", "decoy")
        lookups = scripted_dns(monkeypatch, {"wiki.intranet.test": ["127.0.0.2", "127.0.0.1"]})
        page = fetch(f"http://wiki.intranet.test:{pinned.port}/")
    finally:
        pinned.stop()
        decoy.stop()
    assert b"Opening hours" in page.body and decoy.seen == []
    assert [(s.path, s.host) for s in pinned.seen] == [("/", f"wiki.intranet.test:{pinned.port}")]
    assert lookups["wiki.intranet.test"] == 1  # resolved once, and that answer was used


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/secret",
        "http://localhost:{port}/secret",
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://2130706433:{port}/secret",
        "http://rebind.test:{port}/secret",
    ],
)
def test_a_redirect_to_an_internal_address_is_refused(
    site: LocalSite, settings: Any, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    """An allow-listed intranet page (127.0.0.2) redirects to an address that is not
    allow-listed: the redirect is refused and the internal server never sees a request."""
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.2/32"]
    scripted_dns(monkeypatch, {"rebind.test": ["127.0.0.1"]})
    with local_site("127.0.0.2") as intranet:
        intranet.redirect("/moved", location.format(port=site.port))
        with pytest.raises(ExtractionError, match="public internet address"):
            fetch(intranet.url("/moved"))
        assert intranet.paths() == ["/moved"]
    assert site.seen == []


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "Only http and https"),
        ("ftp://127.0.0.2/x", "Only http and https"),
        ("http://user:secret@127.0.0.2:{port}/", "credentials"),
    ],
)
def test_a_redirect_to_another_scheme_or_with_credentials_is_refused(settings: Any, location: str, reason: str) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.2/32"]
    with local_site("127.0.0.2") as intranet:
        intranet.redirect("/moved", location.format(port=intranet.port)).page("/", PAGE)
        with pytest.raises(ExtractionError, match=reason):
            fetch(intranet.url("/moved"))
        assert intranet.paths() == ["/moved"]


@pytest.mark.parametrize(
    "netloc",
    [
        "2130706433:{port}",  # decimal
        "0177.0.0.1:{port}",  # octal
        "0x7f.0.0.1:{port}",  # hexadecimal
        "127.1:{port}",  # short form
        "0.0.0.0:{port}",  # "this host": Linux connects it to loopback
        "[::ffff:127.0.0.1]:{port}",  # IPv4-mapped IPv6
        "[::ffff:7f00:1]:{port}",
        "localhost:{port}",
    ],
)
def test_spellings_of_loopback_are_refused(site: LocalSite, netloc: str) -> None:
    with pytest.raises(ExtractionError):
        fetch(f"http://{netloc.format(port=site.port)}/secret")
    assert site.seen == []


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ("64:ff9b::7f00:1", "NAT64 prefix around 127.0.0.1"),
        ("64:ff9b::a00:5", "NAT64 prefix around 10.0.0.5"),
        ("2002:7f00:1::1", "6to4 around 127.0.0.1"),
        ("2002:a9fe:a9fe::1", "6to4 around the metadata address"),
        ("::1", "IPv6 loopback"),
        ("fd00::1", "unique local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("169.254.169.254", "cloud metadata"),
    ],
)
def test_names_resolving_to_internal_addresses_are_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, answer: str, what: str
) -> None:
    """IPv6 addresses that carry an internal IPv4 address inside them (NAT64, 6to4) count as
    that address; the refusal happens before any connection attempt."""
    scripted_dns(monkeypatch, {"inside.test": [answer]})
    with pytest.raises(ExtractionError, match="public internet address"):
        fetch("http://inside.test/")


def test_an_allow_listed_host_name_is_fetched(site: LocalSite, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_dns(monkeypatch, {"wiki.corp.test": ["127.0.0.1"]})
    with pytest.raises(ExtractionError):
        fetch(f"http://wiki.corp.test:{site.port}/")
    settings.OUTBOUND_ALLOWLIST = ["other.test", "Wiki.Corp.Test"]
    assert b"Opening hours" in fetch(f"http://wiki.corp.test:{site.port}/").body
    with pytest.raises(ExtractionError):  # the name is allowed, not every name on that address
        fetch(f"http://127.0.0.1:{site.port}/")


@pytest.mark.parametrize("setting", ["OUTBOUND_ALLOWLIST", "KNOWLEDGE_URL_ALLOWLIST"])
def test_an_allow_listed_network_is_fetched_and_the_old_setting_still_works(
    site: LocalSite, settings: Any, setting: str
) -> None:
    setattr(settings, setting, ["127.0.0.0/8"])
    assert b"Opening hours" in fetch(site.url("/")).body
    assert site.paths() == ["/"]


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_trickling_server_fails_at_the_total_deadline(settings: Any, phase: str) -> None:
    """One byte every 0.2 s keeps every single read under the 1 s read timeout; the total
    deadline (1 s) still ends the fetch, in the headers as in the body, with a clear reason."""
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    settings.KNOWLEDGE_FETCH_TIMEOUT = 1
    settings.KNOWLEDGE_FETCH_DEADLINE = 1
    with local_site("127.0.0.1") as slow:
        slow.page("/", PAGE * 4, trickle_every=0.2, trickle_from=phase)
        seconds, result = elapsed(lambda: fetch(slow.url("/")))
    assert isinstance(result, ExtractionError), result
    assert "did not finish loading within 1 second" in str(result)
    assert 0.9 < seconds < 2.5
