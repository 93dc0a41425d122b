"""Fixtures shared by every test: real brokers on free ports and a unique topic root per test.

``broker`` is a real Mosquitto (MQTT 5) started from ``broker_config/test.conf.template``;
``embedded_broker`` is the pure-Python amqtt fallback (MQTT 3.1.1). Both are function-scoped:
a test may stop and restart its broker (``broker.stop(); broker.start()``, same port, same
data directory) without disturbing any other test. Tests that use ``broker`` get the
``broker`` marker, so ``pytest -m "not broker"`` runs the quick layers alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from fedge.broker import RunningBroker, find_mosquitto, start_broker
from fedge.topics import TopicRoot
from tests.broker_probes import process_exists

MOSQUITTO_MISSING = (
    "mosquitto is not installed, and tests that cross the wire need a real Mosquitto 2.x "
    "(they never silently skip). Install it: `apt-get install mosquitto mosquitto-clients` "
    "(Debian/Ubuntu), `brew install mosquitto` (macOS). CI installs it."
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real broker, so it can be selected or deselected."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    """A real Mosquitto on a free loopback port, data in tmp_path, gone after the test."""
    if find_mosquitto() is None:
        pytest.fail(MOSQUITTO_MISSING, pytrace=False)
    running = start_broker(config="test", data_dir=tmp_path / "broker", prefer="mosquitto")
    yield from _until_teardown(running)


@pytest.fixture
def embedded_broker(tmp_path: Path) -> Iterator[RunningBroker]:
    """The embedded amqtt broker (MQTT 3.1.1 only) on a free loopback port."""
    running = start_broker(data_dir=tmp_path / "embedded-broker", prefer="amqtt")
    yield from _until_teardown(running)


@pytest.fixture
def topic_root() -> TopicRoot:
    """A topic prefix no other test uses, so tests sharing a broker never see each other."""
    return TopicRoot(f"t{uuid4().hex[:12]}/fedge/v1")


def _until_teardown(running: RunningBroker) -> Iterator[RunningBroker]:
    """Yield the broker, then close it and check that its process really is gone."""
    try:
        yield running
    finally:
        running.close()
    assert not running.is_running(), f"{running!r} still running after close()"
    assert running.pid is None or not process_exists(running.pid), (
        f"broker process {running.pid} survived its test"
    )
