"""client_ip behind trusted proxies (docs/contract.md, section 15; app.addresses)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.addresses import client_ip, trusted_networks
from app.config import Settings

PROXIES = trusted_networks("10.0.0.0/8, 2001:db8::/32")


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # the peer is no proxy: the header is not believed
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        (
            "10.0.0.2",
            ["6.6.6.6, 198.51.100.1, 10.0.0.9"],
            "198.51.100.1",
        ),  # the client's own entry stays left
        ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # several header lines read as one list
        ("10.0.0.2", ["not-an-ip, 10.0.0.3"], "10.0.0.3"),  # an entry that is no address ends the walk
        ("10.0.0.2", [], "10.0.0.2"),
        ("2001:db8::5", ["2001:db8::6, 2a00:1450::1"], "2a00:1450::1"),
        (None, ["198.51.100.1"], None),
    ],
)
def test_the_rightmost_address_that_is_not_a_trusted_proxy(
    peer: str | None, forwarded: list[str], expected: str | None
) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_peer_is_the_address() -> None:
    assert client_ip("10.0.0.2", ["198.51.100.1"], []) == "10.0.0.2"


def test_a_malformed_setting_is_refused_naming_its_position_only() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, trusted_proxies="10.0.0.0/8,secret-host")
    assert "entry 2" in str(caught.value)
    assert "secret-host" not in str(caught.value)
