"""Broker addresses: parsing ``mqtt://`` and ``mqtts://`` URLs into BrokerUrl values."""

from __future__ import annotations

import dataclasses
import ipaddress
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedge.endpoint import DEFAULT_PORTS, BrokerUrl
from fedge.errors import ConfigError

labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
hosts = hostnames | ipv4 | ipv6
ports = st.integers(1, 65535)


def test_defaults_are_plain_mqtt_on_localhost() -> None:
    """BrokerUrl() is mqtt://127.0.0.1:1883 without TLS."""
    # Prepare / Execute
    url = BrokerUrl()

    # Assert
    assert (url.host, url.port, url.tls) == ("127.0.0.1", 1883, False)
    assert str(url) == "mqtt://127.0.0.1:1883"
    assert DEFAULT_PORTS == {"mqtt": 1883, "mqtts": 8883}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt://broker.local:1884", BrokerUrl("broker.local", 1884, tls=False)),
        ("mqtt://broker.local", BrokerUrl("broker.local", 1883, tls=False)),
        ("mqtts://broker.local", BrokerUrl("broker.local", 8883, tls=True)),
        ("mqtts://broker.local:443", BrokerUrl("broker.local", 443, tls=True)),
        ("broker.local:1884", BrokerUrl("broker.local", 1884, tls=False)),
        ("broker.local", BrokerUrl("broker.local", 1883, tls=False)),
        ("10.0.0.7", BrokerUrl("10.0.0.7", 1883, tls=False)),
        ("mqtt://[::1]:1884", BrokerUrl("::1", 1884, tls=False)),
        ("mqtts://[fe80::1]", BrokerUrl("fe80::1", 8883, tls=True)),
        ("[::1]:1884", BrokerUrl("::1", 1884, tls=False)),
        ("  mqtt://broker:1  ", BrokerUrl("broker", 1, tls=False)),
        ("mqtt://broker:65535", BrokerUrl("broker", 65535, tls=False)),
        ("mqtt://broker:1883/", BrokerUrl("broker", 1883, tls=False)),
        ("mqtt://broker:", BrokerUrl("broker", 1883, tls=False)),
        ("MQTTS://Broker.Local", BrokerUrl("broker.local", 8883, tls=True)),
    ],
)
def test_parse_accepts_urls_and_bare_host_ports(text: str, expected: BrokerUrl) -> None:
    """mqtt:// and mqtts:// URLs, with or without a port, and bare host[:port] are parsed."""
    # Prepare / Execute
    url = BrokerUrl.parse(text)

    # Assert
    assert url == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "mqtt://",
        "mqtt://:1883",
        "tcp://broker:1883",
        "http://broker",
        "ws://broker:9001",
        "mqtt://broker:0",
        "broker:0",
        "mqtt://broker:65536",
        "mqtt://broker:-1",
        "mqtt://broker:+1",
        "mqtt://broker:abc",
        "mqtt://broker:18 83",
        "mqtt://user@broker",
        "mqtt://user:secret@broker:1883",
        "mqtt://broker/path",
        "mqtt://broker:1883/fedge/v1",
        "mqtt://broker?x=1",
        "mqtt://broker#frag",
        "mqtt://[::1",
        "mqtt://[not-ipv6]:1883",
        "mqtt://bro ker",
        "::1",
    ],
)
def test_parse_rejects_bad_urls_with_config_error(text: str) -> None:
    """Unknown schemes, bad or zero ports, credentials, paths and missing hosts are refused."""
    # Prepare / Execute
    with pytest.raises(ConfigError) as info:
        BrokerUrl.parse(text)

    # Assert
    assert info.value.key == "broker"


def test_parse_points_credentials_to_the_command_line_options() -> None:
    """A URL with credentials is refused with a pointer to --username/--password."""
    # Prepare / Execute
    with pytest.raises(ConfigError) as info:
        BrokerUrl.parse("mqtt://user:secret@broker")

    # Assert
    assert "--username/--password" in info.value.reason


@pytest.mark.parametrize(
    "text",
    [
        "mqtt://user:s3cr3t@broker",
        "mqtts://user:s3cr3t@broker:8883",
        "tcp://user:s3cr3t@broker",
        "mqtt://user:s3cr3t@broker:abc",
        "mqtt://user:s3cr3t@broker/path",
        "mqtt://user:s3/cr3t@broker",
        "mqtt://user:s3cr3t@[::1",
        "user:s3cr3t@broker:1883",
        "mqtt://user:s3cr3t@",
    ],
)
def test_errors_never_show_a_password(text: str) -> None:
    """Whatever else is wrong with a URL, its password never appears in the error."""
    # Prepare
    secret_parts = ["s3cr3t", "s3/cr3t", "s3", "cr3t"]

    # Execute
    with pytest.raises(ConfigError) as info:
        BrokerUrl.parse(text)

    # Assert
    assert not [part for part in secret_parts if part in str(info.value)]
    assert "***@" in str(info.value)


@pytest.mark.parametrize(
    ("host", "port"),
    [("", 1883), ("a/b", 1883), ("a b", 1883), ("u@h", 1883), ("h", 0), ("h", -1), ("h", 65536)],
)
def test_constructor_rejects_bad_hosts_and_ports(host: str, port: int) -> None:
    """Empty hosts, hosts with '/', ' ' or '@', and ports outside 1-65535 are refused."""
    # Prepare / Execute
    with pytest.raises(ConfigError) as info:
        BrokerUrl(host, port)

    # Assert
    assert info.value.key == "broker"


@pytest.mark.parametrize(
    ("url", "text"),
    [
        (BrokerUrl("broker", 1884), "mqtt://broker:1884"),
        (BrokerUrl("broker", 8883, tls=True), "mqtts://broker:8883"),
        (BrokerUrl("::1", 1883), "mqtt://[::1]:1883"),
        (BrokerUrl("192.168.1.2", 1), "mqtt://192.168.1.2:1"),
    ],
)
def test_str_renders_a_url_with_explicit_port(url: BrokerUrl, text: str) -> None:
    """str() always names scheme and port, and brackets IPv6 addresses."""
    # Prepare / Execute
    rendered = str(url)

    # Assert
    assert rendered == text


@settings(deadline=None, max_examples=300)
@given(host=hosts, port=ports, tls=st.booleans())
def test_parse_of_str_round_trips(host: str, port: int, tls: bool) -> None:
    """BrokerUrl.parse(str(url)) == url for host names, IPv4 and IPv6 addresses."""
    # Prepare
    url = BrokerUrl(host, port, tls)

    # Execute
    parsed = BrokerUrl.parse(str(url))

    # Assert
    assert parsed == url


@settings(deadline=None, max_examples=200)
@given(host=hosts, port=st.none() | ports, tls=st.booleans())
def test_str_of_parse_is_canonical(host: str, port: int | None, tls: bool) -> None:
    """Parsing then rendering gives the canonical URL: scheme, host and explicit port."""
    # Prepare
    scheme = "mqtts" if tls else "mqtt"
    shown_host = f"[{host}]" if ":" in host else host
    text = f"{scheme}://{shown_host}" + ("" if port is None else f":{port}")
    expected_port = DEFAULT_PORTS[scheme] if port is None else port

    # Execute
    rendered = str(BrokerUrl.parse(text))

    # Assert
    assert rendered == f"{scheme}://{shown_host}:{expected_port}"
    if ":" in host:
        assert ipaddress.ip_address(host).version == 6


@settings(deadline=None, max_examples=300)
@given(text=st.text(max_size=40))
def test_parse_of_arbitrary_text_raises_only_config_error(text: str) -> None:
    """Whatever the text, parse returns a BrokerUrl or raises ConfigError."""
    # Prepare / Execute
    try:
        url = BrokerUrl.parse(text)
    except ConfigError:
        return

    # Assert
    assert 0 < url.port < 65536
    assert url.host


def test_broker_url_is_a_frozen_value() -> None:
    """BrokerUrl compares by value and cannot be mutated."""
    # Prepare
    url = BrokerUrl.parse("mqtt://broker:1884")

    # Execute / Assert
    assert url == BrokerUrl("broker", 1884)
    assert hash(url) == hash(BrokerUrl("broker", 1884))
    with pytest.raises(dataclasses.FrozenInstanceError):
        url.port = 1  # type: ignore[misc]
