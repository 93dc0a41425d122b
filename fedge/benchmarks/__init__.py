"""Benchmarks run by `fedge bench NAME --json PATH`; results are reported in bench/README.md."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fedge.broker import start_broker
from fedge.endpoint import BrokerUrl
from fedge.mqtt import Protocol


@dataclass(frozen=True)
class BenchBroker:
    url: BrokerUrl
    protocol: Protocol
    kind: str  # "mosquitto", "amqtt", or the URL of a broker given with --broker


@contextmanager
def bench_broker(args: argparse.Namespace) -> Iterator[BenchBroker]:
    """The broker a benchmark measures: ``--broker`` if given, else a temporary one, stopped
    when the benchmark ends."""
    if args.broker:
        url = BrokerUrl.parse(args.broker)
        protocol: Protocol = "3.1.1" if args.mqtt_protocol == "3.1.1" else "5"
        yield BenchBroker(url, protocol, str(url))
        return
    broker = start_broker()
    try:
        yield BenchBroker(broker.url, broker.protocol, broker.kind)
    finally:
        broker.stop()
