"""The client's address behind a reverse proxy (syntera/clientip.py): X-Forwarded-For is
believed only from a trusted proxy, and read from the right, so a client cannot pick the
address its per-address limits are counted under."""

from __future__ import annotations

from typing import Any

import pytest

from syntera.clientip import client_ip


@pytest.fixture
def proxy(settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]
    settings.WIDGET_TRUST_X_FORWARDED_FOR = False


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # not a proxy: the header is the client's own words
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # a made-up first entry is ignored
        ("10.0.0.2", "198.51.100.1, 10.0.0.9", "198.51.100.1"),  # two proxies in a row
        ("10.0.0.2", "10.0.0.7, 10.0.0.9", "10.0.0.7"),  # all proxies: the leftmost
        ("10.0.0.2", "not-an-ip, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "garbage", "10.0.0.2"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1:4711", "198.51.100.1"),
        ("10.0.0.2", "[2001:db8::1]:4711", "2001:db8::1"),
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),  # IPv4-mapped peer
        ("2001:db8:ffff::1", "2001:db8::77", "2001:db8::77"),
        ("", "198.51.100.1", ""),
    ],
)
def test_client_ip(proxy: None, peer: str, forwarded: str, expected: str) -> None:
    assert client_ip(peer, forwarded) == expected


def test_the_older_switch_trusts_a_proxy_on_this_machine(settings: Any) -> None:
    settings.TRUSTED_PROXIES = []
    settings.WIDGET_TRUST_X_FORWARDED_FOR = True
    assert client_ip("127.0.0.1", "1.2.3.4, 198.51.100.1") == "198.51.100.1"
    assert client_ip("203.0.113.5", "198.51.100.1") == "203.0.113.5"
    settings.WIDGET_TRUST_X_FORWARDED_FOR = False
    assert client_ip("127.0.0.1", "198.51.100.1") == "127.0.0.1"


def test_per_address_limits_count_the_client_not_the_proxy_nor_its_made_up_header(
    proxy: None, alpha: Any, api_for: Any, settings: Any
) -> None:
    settings.RATELIMIT_LOGIN = "2/m"

    def attempt(n: int, forwarded: str) -> int:
        client = api_for(alpha.host)
        body = {"email": f"nobody{n}@example.com", "password": "wrong-password-123"}
        response = client.post(
            "/api/v1/auth/token/", body, format="json", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded
        )
        return int(response.status_code)

    # One client behind the proxy, each time with a different made-up first entry: one allowance.
    codes = [attempt(n, f"192.0.2.{n}, 198.51.100.1") for n in range(3)]
    assert codes == [401, 401, 429]
    # Another client behind the same proxy has its own.
    assert attempt(9, "198.51.100.2") == 401
