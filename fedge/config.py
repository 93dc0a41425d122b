"""Configuration: a TOML file, overridden by command-line flags.

Every command reads the same ``[mqtt]`` table, so one file describes how a deployment reaches
its broker::

    [mqtt]
    broker = "mqtts://broker.example:8883"
    protocol = "5"            # or "3.1.1"
    username = "node-7"
    password_env = "FEDGE_MQTT_PASSWORD"   # the password itself never sits in the file
    ca_file = "/etc/fedge/ca.pem"
    cert_file = "/etc/fedge/node-7.pem"    # mutual TLS
    key_file = "/etc/fedge/node-7.key"
    topic_prefix = "fedge/v1"
    keepalive_s = 30

Components add their own tables (``[edge]``, ``[aggregator]``, ``[sim]``) and read them with
``section``. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedge.endpoint import BrokerUrl
from fedge.errors import ConfigError, TopicError
from fedge.mqtt import MqttOptions, Protocol, TlsOptions
from fedge.topics import TopicRoot

MQTT_KEYS = frozenset(
    {
        "broker",
        "protocol",
        "username",
        "password_env",
        "ca_file",
        "cert_file",
        "key_file",
        "tls_insecure",
        "topic_prefix",
        "keepalive_s",
        "max_pending",
    }
)


def load_file(path: str | Path | None) -> dict[str, Any]:
    """Read a TOML config file; an absent path means an empty config."""
    if path is None:
        return {}
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("--config", f"file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None


def section(config: Mapping[str, Any], name: str, allowed: frozenset[str]) -> dict[str, Any]:
    """One table of the config file, with unknown keys rejected."""
    table = config.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(name, "must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{name}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(allowed))})"
        )
    return dict(table)


@dataclass(frozen=True)
class MqttSettings:
    """Everything needed to open a broker connection for one command."""

    url: BrokerUrl
    options: MqttOptions
    topics: TopicRoot

    def with_client(self, client_id: str, **changes: Any) -> MqttOptions:
        """The options with a given client id (and any other field changed)."""
        values = {**self.options.__dict__, "client_id": client_id, **changes}
        return MqttOptions(**values)


def mqtt_settings(args: argparse.Namespace, config: Mapping[str, Any]) -> MqttSettings:
    """Merge the ``[mqtt]`` table with command-line flags (flags win)."""
    table = section(config, "mqtt", MQTT_KEYS)

    def pick(flag: str, key: str, default: Any = None) -> Any:
        value = getattr(args, flag, None)
        return value if value is not None else table.get(key, default)

    url = BrokerUrl.parse(str(pick("broker", "broker", "mqtt://127.0.0.1:1883")))
    protocol: Protocol = str(pick("mqtt_protocol", "protocol", "5"))  # type: ignore[assignment]
    password_env = pick("password_env", "password_env")
    password = None
    if password_env is not None:
        password = os.environ.get(str(password_env))
        if password is None:
            raise ConfigError("password_env", f"environment variable {password_env} is not set")
    tls = _tls(
        pick("ca_file", "ca_file"),
        pick("cert_file", "cert_file"),
        pick("key_file", "key_file"),
        bool(table.get("tls_insecure", False)),
    )
    try:
        topics = TopicRoot(str(pick("topic_prefix", "topic_prefix", "fedge/v1")))
    except TopicError as exc:
        raise ConfigError("topic_prefix", str(exc)) from None
    options = MqttOptions(
        protocol=protocol,
        username=pick("username", "username"),
        password=password,
        tls=tls,
        keepalive_s=_int(table, "keepalive_s", 30),
        max_pending=_int(table, "max_pending", 1000),
    )
    if tls is not None and not url.tls:
        raise ConfigError("broker", f"TLS files given but {url} is not an mqtts:// URL")
    return MqttSettings(url, options, topics)


def _tls(ca: Any, cert: Any, key: Any, insecure: bool) -> TlsOptions | None:
    if ca is None and cert is None and key is None:
        return None
    for name, value in (("ca_file", ca), ("cert_file", cert), ("key_file", key)):
        if value is not None and not Path(str(value)).is_file():
            raise ConfigError(name, f"{value} is not a readable file")
    return TlsOptions(
        ca_file=None if ca is None else str(ca),
        cert_file=None if cert is None else str(cert),
        key_file=None if key is None else str(key),
        insecure=insecure,
    )


def _int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"mqtt.{key}", f"{value!r} is not a positive integer")
    return value
