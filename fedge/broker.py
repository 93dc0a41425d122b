"""Start and stop MQTT brokers: Mosquitto from a bundled template, else an embedded amqtt broker.

Tests, ``fedge broker`` and the examples all get their broker here, as a
:class:`~fedge.broker_process.RunningBroker` child process. Mosquitto is the real thing
(MQTT 5, persistence, the configs in ``broker_config/``); the embedded amqtt broker is a
pure-Python MQTT 3.1.1 stand-in for machines without Mosquitto.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Final

from fedge.broker_process import BrokerKind, MqttProtocol, RunningBroker
from fedge.broker_templates import bundled_templates, read_template, render_config
from fedge.errors import BrokerError, PortInUseError

__all__ = [
    "EMBEDDED_FALLBACK_MESSAGE",
    "BrokerKind",
    "MqttProtocol",
    "RunningBroker",
    "bundled_templates",
    "find_mosquitto",
    "free_port",
    "render_config",
    "start_broker",
]

log = logging.getLogger(__name__)

EMBEDDED_FALLBACK_MESSAGE: Final = (
    "mosquitto not found: running the embedded amqtt broker (MQTT 3.1.1 only)"
)
_SBIN_DIRS: Final = (Path("/usr/sbin"), Path("/usr/local/sbin"))
_PORT_ATTEMPTS: Final = 3
_TLS_LINE: Final = re.compile(r"^\s*certfile\s", re.MULTILINE)


def find_mosquitto() -> Path | None:
    """The ``mosquitto`` binary on PATH, else in /usr/sbin or /usr/local/sbin (Debian puts it
    there, outside a normal user's PATH); None if it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    for directory in _SBIN_DIRS:
        candidate = directory / "mosquitto"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port(bind: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it; another process could
    still take it before the broker binds, which ``start_broker`` retries)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((bind, 0))
        port: int = probe.getsockname()[1]
        return port


def _current_user() -> str:
    """The account Mosquitto should keep when started as root (it drops to ``mosquitto``
    otherwise, which cannot write a data directory owned by root)."""
    return pwd.getpwuid(os.geteuid()).pw_name


def start_broker(
    port: int | None = None,
    config: str | Path | None = None,
    data_dir: Path | None = None,
    prefer: BrokerKind = "mosquitto",
    bind: str = "127.0.0.1",
    *,
    config_values: Mapping[str, object] | None = None,
    echo_output: bool = False,
    timeout: float = 10.0,
) -> RunningBroker:
    """Start a broker and return it once it accepts connections.

    Mosquitto runs from ``config`` (a bundled template name or a file; default ``dev``) when
    the binary exists, else the embedded amqtt broker runs and one warning says so.
    ``prefer="amqtt"`` always runs the embedded broker. A ``config`` requires Mosquitto.
    ``config_values`` fills the template's other placeholders (``ca_file`` for ``secure``);
    ``port``, ``bind_address`` and ``data_dir`` are always ours, ``user`` defaults to the
    current account. ``port`` None or 0 picks a free port. ``data_dir`` None uses a temporary
    directory that ``close()`` deletes. ``echo_output`` copies the broker's log to our stderr.
    """
    if prefer not in ("mosquitto", "amqtt"):
        raise BrokerError(f"unknown broker {prefer!r}: use 'mosquitto' or 'amqtt'")
    if prefer == "amqtt" and config is not None:
        raise BrokerError(
            f"broker config {config} is a Mosquitto config; the embedded amqtt broker takes none"
        )
    mosquitto = find_mosquitto() if prefer == "mosquitto" else None
    if prefer == "mosquitto" and mosquitto is None:
        if config is not None:
            raise BrokerError(
                f"broker config {config} needs mosquitto, which is not installed (looked on "
                "PATH, /usr/sbin, /usr/local/sbin): install it, e.g. apt-get install mosquitto"
            )
        log.warning(EMBEDDED_FALLBACK_MESSAGE)
    if mosquitto is not None:
        _check_template(config or "dev")
    owns_data_dir = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="fedge-broker-")) if data_dir is None else data_dir
    directory = directory.resolve()
    try:
        broker = _start_on_port(
            port,
            bind,
            directory,
            mosquitto=mosquitto,
            config=config or "dev",
            config_values=config_values or {},
            timeout=timeout,
            echo_output=echo_output,
        )
    except BaseException:
        if owns_data_dir:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    broker.owns_data_dir = owns_data_dir
    return broker


def _start_on_port(
    port: int | None,
    bind: str,
    data_dir: Path,
    *,
    mosquitto: Path | None,
    config: str | Path,
    config_values: Mapping[str, object],
    timeout: float,
    echo_output: bool,
) -> RunningBroker:
    """Start on ``port``, or on a free port, retrying if another process takes it first."""
    attempts = 1 if port else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port or free_port(bind)
        if mosquitto is not None:
            values = {"user": _current_user(), **config_values}
            values |= {"port": chosen, "bind_address": bind, "data_dir": data_dir}
            conf = data_dir / "mosquitto.conf"
            rendered = render_config(config, **values)
            data_dir.mkdir(parents=True, exist_ok=True)
            conf.write_text(rendered, encoding="utf-8")
            kind: BrokerKind = "mosquitto"
            argv = [str(mosquitto), "-c", str(conf)]
            tls = bool(_TLS_LINE.search(rendered))
        else:
            kind, tls = "amqtt", False
            argv = [sys.executable, "-m", "fedge._embedded_broker"]
            argv += ["--host", bind, "--port", str(chosen)]
        broker = RunningBroker(
            kind=kind,
            argv=argv,
            port=chosen,
            bind=bind,
            data_dir=data_dir,
            tls=tls,
            echo_output=echo_output,
        )
        try:
            broker.start(timeout)
        except PortInUseError:
            if attempt == attempts:
                raise
            continue
        return broker
    raise BrokerError(f"no free port on {bind}")  # not reached: the loop returns or raises


def _check_template(config: str | Path) -> None:
    """Fail early unless ``config`` exists and says where it listens (``$port``)."""
    name, text = read_template(config)
    if "port" not in Template(text).get_identifiers():
        raise BrokerError(
            f"broker config {name} never uses $port, so fedge cannot know where it listens: "
            "write its listener as `listener $port $bind_address`"
        )
