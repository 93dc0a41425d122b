"""``fedge broker``: run an MQTT broker in the foreground for development and demos.

Mosquitto from a bundled template (``dev`` unless ``--broker-config`` says otherwise), or the
embedded amqtt broker when Mosquitto is not installed or ``--embedded`` asks for it. One line
on stdout says where it listens; the broker's own log goes to stderr. SIGINT or SIGTERM stops
it cleanly (Mosquitto saves its database) and the command exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Final

from fedge.broker import RunningBroker, start_broker
from fedge.endpoint import BrokerUrl
from fedge.errors import BrokerError, ConfigError

DEFAULT_PORT: Final = 1883
_WATCH_SECONDS: Final = 0.2


class BrokerCommand:
    """The ``fedge broker`` subcommand."""

    name = "broker"
    help = "run an MQTT broker in the foreground (Mosquitto, else the embedded amqtt broker)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            metavar="N",
            help=f"port to listen on, 0 for any free port (default: the port of --broker if "
            f"given, else {DEFAULT_PORT})",
        )
        parser.add_argument(
            "--broker-config",
            metavar="PATH|NAME",
            help="Mosquitto config: a bundled template (dev, test, secure) or a file; its "
            "$port, $bind_address, $data_dir and $user are filled in (default: dev). "
            "Requires Mosquitto",
        )
        parser.add_argument(
            "--broker-config-value",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="fill another $KEY of the config, e.g. ca_file=/etc/fedge/ca.crt for secure "
            "(repeatable)",
        )
        parser.add_argument(
            "--data-dir",
            type=Path,
            metavar="DIR",
            help="where Mosquitto keeps sessions, queued and retained messages across restarts "
            "(default: a temporary directory, deleted on exit)",
        )
        parser.add_argument(
            "--embedded",
            action="store_true",
            help="run the embedded amqtt broker (MQTT 3.1.1 only) even if Mosquitto is installed",
        )
        parser.add_argument(
            "--bind",
            default="127.0.0.1",
            metavar="ADDR",
            help="address to listen on (default 127.0.0.1; the dev config has no "
            "authentication, so think twice before 0.0.0.0)",
        )

    def run(self, args: argparse.Namespace) -> int:
        if args.embedded and args.broker_config is not None:
            raise ConfigError(
                "broker-config", "--embedded runs amqtt, which takes no Mosquitto config"
            )
        stop = threading.Event()

        def request_stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            with start_broker(
                port=_port(args),
                config=args.broker_config,
                config_values=_config_values(args.broker_config_value),
                data_dir=args.data_dir,
                prefer="amqtt" if args.embedded else "mosquitto",
                bind=args.bind,
                echo_output=True,
            ) as broker:
                sys.stdout.write(
                    f"fedge broker: {broker.kind} (MQTT {broker.protocol}, pid {broker.pid}) "
                    f"listening on {broker.url}\n"
                )
                sys.stdout.flush()
                _serve_until(stop, broker)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0


def _port(args: argparse.Namespace) -> int:
    """``--port``, else the port of the common ``--broker`` URL, else 1883."""
    if args.port is not None:
        if not 0 <= args.port < 65536:
            raise ConfigError("port", f"{args.port} is outside 0-65535")
        port: int = args.port
        return port
    if args.broker:
        return BrokerUrl.parse(args.broker).port
    return DEFAULT_PORT


def _config_values(pairs: list[str]) -> dict[str, str]:
    """``["ca_file=/x", ...]`` as a dict; a pair without ``=`` is a usage error."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("broker-config-value", f"{pair!r} is not KEY=VALUE")
        values[key] = value
    return values


def _serve_until(stop: threading.Event, broker: RunningBroker) -> None:
    """Block until ``stop`` is set; fail if the broker dies on its own meanwhile."""
    while not stop.wait(_WATCH_SECONDS):
        if not broker.is_running():
            raise BrokerError(
                f"{broker.kind} on port {broker.port} exited unexpectedly; its last output:\n"
                f"{broker.output_tail()}"
            )


COMMAND = BrokerCommand()
