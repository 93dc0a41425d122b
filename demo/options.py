"""``fedge demo``'s options: flags over the ``[demo]`` table of ``--config`` over the defaults.

Like every fedge command, the demo reads ``--config``; its own table is ``[demo]`` with the
flags' names (``nodes``, ``devices``, ``rounds``, ``speed``, ``seed``, ``timeout``, ``report``,
``run_dir``, ``keep``, ``embedded_broker``), and from ``[mqtt]`` it takes ``topic_prefix`` and
``protocol``. Everything about reaching a broker (address, credentials, TLS) is refused, in a
flag or in the file: the demo runs its own anonymous broker on loopback, and connecting its
components (with their fixed client ids) to a broker others use could knock real nodes off.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from demo.plan import DemoSettings
from device_sim.scenario import parse_duration
from fedge.config import MQTT_KEYS, load_file, section
from fedge.errors import ConfigError, TopicError
from fedge.mqtt import Protocol
from fedge.topics import TopicRoot

DEMO_KEYS: Final = frozenset(
    {"nodes", "devices", "rounds", "speed", "seed", "timeout", "report", "run_dir", "keep",
     "embedded_broker"}
)  # fmt: skip
MQTT_TAKEN: Final = frozenset({"topic_prefix", "protocol"})
REFUSED_FLAGS: Final = {
    "broker": "--broker",
    "username": "--username",
    "password_env": "--password-env",
    "ca_file": "--ca-file",
    "cert_file": "--cert-file",
    "key_file": "--key-file",
}
OWN_BROKER: Final = "fedge demo runs its own local broker and takes no broker options"
DEFAULT_REPORT: Final = Path("fedge-demo-report")


@dataclass(frozen=True)
class DemoOptions:
    """Everything one ``fedge demo`` needs, validated."""

    settings: DemoSettings
    report: Path = DEFAULT_REPORT
    run_dir: Path | None = None
    keep: bool = False
    embedded_broker: bool = False
    topic_prefix: str | None = None
    protocol: Protocol | None = None


def demo_options(args: argparse.Namespace) -> DemoOptions:
    """Merge flags over ``[demo]`` (and two ``[mqtt]`` keys) over the defaults, validated."""
    for attribute, flag in REFUSED_FLAGS.items():
        if getattr(args, attribute, None) is not None:
            raise ConfigError(flag, OWN_BROKER)
    config = load_file(args.config)
    table = section(config, "demo", DEMO_KEYS)
    mqtt = section(config, "mqtt", MQTT_KEYS)
    for key in sorted(set(mqtt) - MQTT_TAKEN):
        raise ConfigError(f"mqtt.{key}", OWN_BROKER)

    def pick(key: str) -> Any:
        value = getattr(args, key, None)
        return value if value is not None else table.get(key)

    values: dict[str, Any] = {
        key: _integer(key, pick(key))
        for key in ("nodes", "devices", "rounds", "seed")
        if pick(key) is not None
    }
    if pick("speed") is not None:
        values["speed"] = _number("speed", pick("speed"))
    if pick("timeout") is not None:
        values["timeout_s"] = parse_duration("timeout", pick("timeout"))
    settings = DemoSettings(**{**DemoSettings().__dict__, **values})
    prefix = args.topic_prefix if args.topic_prefix is not None else mqtt.get("topic_prefix")
    protocol = args.mqtt_protocol if args.mqtt_protocol is not None else mqtt.get("protocol")
    embedded = bool(args.embedded_broker) or table.get("embedded_broker") is True
    if protocol not in (None, "5", "3.1.1"):
        raise ConfigError("mqtt.protocol", f"{protocol!r} is not 5 or 3.1.1")
    if protocol == "5" and embedded:
        raise ConfigError("mqtt-protocol", "the embedded broker speaks MQTT 3.1.1 only")
    return DemoOptions(
        settings=settings,
        report=Path(str(pick("report") or DEFAULT_REPORT)),
        run_dir=None if pick("run_dir") is None else Path(str(pick("run_dir"))),
        keep=bool(args.keep) or table.get("keep") is True,
        embedded_broker=embedded,
        topic_prefix=_prefix(prefix),
        protocol=protocol,
    )


def _integer(key: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(key, f"{value!r} is not an integer")


def _number(key: str, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(key, f"{value!r} is not a number")


def _prefix(prefix: object) -> str | None:
    if prefix is None:
        return None
    try:
        return TopicRoot(str(prefix)).prefix
    except TopicError as exc:
        raise ConfigError("topic-prefix", str(exc)) from None
