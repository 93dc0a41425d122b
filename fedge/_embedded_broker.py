"""A pure-Python MQTT 3.1.1 broker (amqtt) for machines without Mosquitto.

``fedge.broker.start_broker`` runs it as ``python -m fedge._embedded_broker --host H --port P``
in a child process. Anonymous clients, no persistence, no ``$SYS`` topics: enough for a
developer laptop or a test, never for a deployment. It stops on SIGTERM or SIGINT, and on its
own when the process that started it disappears, so it cannot outlive a killed test run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

PARENT_CHECK_SECONDS = 1.0
_PROBE_NOISE = "No data to decode MQTT packet fixed header"


class _DropPortProbes(logging.Filter):
    """Drop amqtt's error for a connection closed before its first packet: that is a port
    probe (ours at startup, or a health check), not a client in trouble."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _PROBE_NOISE not in record.getMessage()


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt's configuration: one plain TCP listener, anonymous clients allowed."""
    return {
        # amqtt splits "host:port" at the last colon, so an IPv6 host goes in without brackets.
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def serve(host: str, port: int) -> int:
    """Run the broker until SIGTERM/SIGINT or until our parent exits; return the exit code."""
    from amqtt.broker import Broker  # noqa: PLC0415 -- amqtt is only needed in this process
    from amqtt.errors import BrokerError  # noqa: PLC0415

    broker = Broker(broker_config(host, port))
    try:
        await broker.start()
    except (BrokerError, OSError) as exc:
        sys.stderr.write(f"embedded broker: cannot listen on {host}:{port}: {exc}\n")
        return 1
    sys.stderr.write(f"embedded amqtt broker listening on {host}:{port} (MQTT 3.1.1)\n")
    sys.stderr.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = asyncio.create_task(_stop_when_orphaned(stop))
    await stop.wait()
    watchdog.cancel()
    await broker.shutdown()
    return 0


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """Set ``stop`` once the parent process is gone (we get re-parented)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedge._embedded_broker")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("amqtt.broker").addFilter(_DropPortProbes())
    return asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
