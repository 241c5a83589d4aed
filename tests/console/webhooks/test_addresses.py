"""The SSRF guard: which addresses webhooks may reach, by literal and by name."""

from __future__ import annotations

import ipaddress

import pytest

from deskside.console.errors import InvalidRequest
from deskside.console.webhooks.addresses import AddressGuard, ForbiddenAddress, check_url
from deskside.console.webhooks.settings import WebhookSettings
from deskside.protocol.errors import ConfigError

FORBIDDEN = {
    "loopback": ["127.0.0.1", "127.8.9.10", "::1"],
    "private": ["10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::1"],
    "link-local": ["169.254.169.254", "fe80::1"],
    "multicast": ["224.0.0.1", "ff02::1"],
    "unspecified": ["0.0.0.0", "::"],
    "shared": ["100.64.0.1"],
    "reserved": ["240.0.0.1"],
}
PUBLIC = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "1.1.1.1"]


def table(names: dict[str, list[str]]) -> AddressGuard:
    """A guard whose resolver answers from ``names`` (DNS's answers, chosen by the test)."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError("name not known")
        return names[host]

    return AddressGuard(resolver=resolve)


def url_of(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:8443/hook"


@pytest.mark.parametrize(
    ("kind", "address"), [(k, a) for k, values in FORBIDDEN.items() for a in values]
)
async def test_each_forbidden_range_is_refused_as_a_literal(kind: str, address: str) -> None:
    with pytest.raises(ForbiddenAddress, match="allow_networks"):
        await AddressGuard().resolve(url_of(address))


@pytest.mark.parametrize(
    ("kind", "address"), [(k, a) for k, values in FORBIDDEN.items() for a in values]
)
async def test_each_forbidden_range_is_refused_behind_a_name(kind: str, address: str) -> None:
    guard = table({"tickets.example.org": [address]})
    with pytest.raises(ForbiddenAddress, match=str(ipaddress.ip_address(address))):
        await guard.resolve("https://tickets.example.org/hook")


async def test_ipv4_mapped_ipv6_is_judged_by_its_ipv4() -> None:
    with pytest.raises(ForbiddenAddress):
        await AddressGuard().resolve(url_of("::ffff:127.0.0.1"))


@pytest.mark.parametrize("address", PUBLIC)
async def test_public_addresses_pass(address: str) -> None:
    guard = table({"tickets.example.org": [address]})
    destination = await guard.resolve("https://tickets.example.org/hook")
    assert destination.address == address
    assert destination.host == "tickets.example.org"


async def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    guard = table({"mixed.example.org": ["1.1.1.1", "10.0.0.1"]})
    with pytest.raises(ForbiddenAddress, match=r"10\.0\.0\.1"):
        await guard.resolve("https://mixed.example.org/")


async def test_localhost_through_the_real_resolver_is_refused() -> None:
    with pytest.raises(ForbiddenAddress, match="loopback"):
        await AddressGuard().resolve("http://localhost:9/hook")


async def test_the_console_own_addresses_are_refused() -> None:
    guard = AddressGuard(own=frozenset({ipaddress.ip_address("93.184.215.14")}))
    with pytest.raises(ForbiddenAddress, match="console's own"):
        await guard.resolve(url_of("93.184.215.14"))


async def test_allowed_networks_open_exactly_themselves() -> None:
    settings = WebhookSettings.from_toml({"webhooks": {"allow_networks": ["127.0.0.0/8"]}})
    guard = settings.guard([])
    assert (await guard.resolve("http://127.0.0.1:9/x")).address == "127.0.0.1"
    assert (await guard.resolve("http://localhost:9/x")).address.startswith("127.")
    with pytest.raises(ForbiddenAddress):
        await guard.resolve(url_of("10.0.0.1"))
    with pytest.raises(ForbiddenAddress):
        await guard.resolve(url_of("::1"))


async def test_an_allowed_network_overrides_the_own_addresses() -> None:
    own = frozenset({ipaddress.ip_address("127.0.0.1")})
    guard = AddressGuard(allow_networks=(ipaddress.ip_network("127.0.0.1/32"),), own=own)
    assert (await guard.resolve("http://127.0.0.1:9/")).address == "127.0.0.1"


async def test_an_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="cannot resolve"):
        await table({}).resolve("https://nowhere.example.org/")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://example.org/",
        "file:///etc/passwd",
        "gopher://example.org/",
        "https://",
        "https://user:pw@example.org/",
        "https://example.org/#frag",
        "https://example.org:0/",
        "https://example.org:99999/",
        "https://exa mple.org/",
        "https://example.org/\n",
        "example.org/hook",
        "https://example.org/" + "a" * 2100,
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest):
        check_url(url)


@pytest.mark.parametrize(
    ("table_", "message"),
    [
        ({"webhooks": []}, "table"),
        ({"webhooks": {"allow_networks": "127.0.0.0/8"}}, "list"),
        ({"webhooks": {"allow_networks": ["localhost"]}}, "not a network"),
        ({"webhooks": {"allow_networks": [8]}}, "CIDR"),
        ({"webhooks": {"timeout": 0}}, "1 to 60"),
        ({"webhooks": {"timeout": "5"}}, "number"),
        ({"webhooks": {"alow_networks": []}}, "unknown"),
    ],
)
def test_bad_settings_are_config_errors(table_: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WebhookSettings.from_toml(table_)
