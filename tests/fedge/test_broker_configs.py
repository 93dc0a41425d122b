"""The production configs in ``broker_config/`` run in Mosquitto and do what they promise:
mutual TLS with the ACL of ARCHITECTURE.md, and a site broker bridged to the cloud."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest

from fedge.broker import RunningBroker, start_broker
from tests.broker_probes import (
    Pki,
    make_pki,
    mqtt_tool,
    publish,
    receive,
    wait_for_retained,
)

pytestmark = pytest.mark.broker

CONFIGS = files("fedge.broker_config")
ROOT = "fedge/v1"  # acl.example and bridge.conf.example are written for the default root
# Persistent MQTT 5 sessions: subscribe now (-E exits once subscribed), read later.
SESSION = ("-c", "-x", "3600", "-q", "1")


def secure_broker(tmp_path: Path, pki: Pki) -> RunningBroker:
    """secure.conf.template with the bundled acl.example and the test CA's server cert."""
    return start_broker(
        config="secure",
        data_dir=tmp_path / "cloud",
        config_values={
            "ca_file": pki.ca,
            "cert_file": pki.cert("server"),
            "key_file": pki.key("server"),
            "acl_file": CONFIGS / "acl.example",
        },
    )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", ["server", "n1", "n2", "aggregator", "site-a-bridge"])


@pytest.fixture
def cloud(tmp_path: Path, pki: Pki) -> Iterator[RunningBroker]:
    with secure_broker(tmp_path, pki) as running:
        yield running


def subscribe_later(broker: RunningBroker, pki: Pki | None, user: str, topic: str) -> list[str]:
    """Open a persistent session for ``user`` subscribed to ``topic``; return its options."""
    options = [*(pki.client_args(user) if pki else []), "-i", f"watch-{user}", *SESSION]
    done = mqtt_tool("mosquitto_sub", broker, "-t", topic, *options, "-E")
    assert done.returncode == 0, done.stderr
    return options


def publish_as(
    broker: RunningBroker, pki: Pki, user: str, topic: str, payload: str, *args: str
) -> None:
    """Publish as ``user``; a publish the ACL refuses is dropped, which is what we test."""
    options = [*pki.client_args(user), "-t", topic, "-m", payload, "-q", "1", *args]
    mqtt_tool("mosquitto_pub", broker, *options)


def test_secure_config_requires_tls_and_a_client_certificate(
    cloud: RunningBroker, pki: Pki
) -> None:
    """The secure broker is mqtts:// and refuses clients without a certificate."""
    without_cert = ["--cafile", str(pki.ca), "-t", f"{ROOT}/models/m/global", "-m", "x"]

    refused = mqtt_tool("mosquitto_pub", cloud, *without_cert)

    assert cloud.url.tls
    assert refused.returncode != 0


def test_acl_lets_nodes_write_only_their_own_topics(cloud: RunningBroker, pki: Pki) -> None:
    """Node n1 reaches the aggregator on its own updates topic; posing as n2 is dropped."""
    agg = subscribe_later(cloud, pki, "aggregator", f"{ROOT}/nodes/+/updates")

    publish_as(cloud, pki, "n1", f"{ROOT}/nodes/n2/updates", "n1 posing as n2")
    publish_as(cloud, pki, "n1", f"{ROOT}/nodes/n1/updates", "from n1")

    assert receive(cloud, f"{ROOT}/nodes/+/updates", *agg) == ["from n1"]


def test_acl_lets_nodes_read_only_their_own_commands(cloud: RunningBroker, pki: Pki) -> None:
    """Only the aggregator commands nodes, and n2 never reads what is meant for n1."""
    n2 = subscribe_later(cloud, pki, "n2", f"{ROOT}/nodes/+/commands")

    publish_as(cloud, pki, "n1", f"{ROOT}/nodes/n2/commands", "n1 commanding n2")
    publish_as(cloud, pki, "aggregator", f"{ROOT}/nodes/n1/commands", "for n1")
    publish_as(cloud, pki, "aggregator", f"{ROOT}/nodes/n2/commands", "for n2")

    assert receive(cloud, f"{ROOT}/nodes/+/commands", *n2) == ["for n2"]


def test_acl_lets_every_node_read_the_global_model(cloud: RunningBroker, pki: Pki) -> None:
    """The aggregator's retained global model reaches any node; a node cannot publish one."""
    topic = f"{ROOT}/models/ae/global"
    publish_as(cloud, pki, "aggregator", topic, "v1", "-r")
    publish_as(cloud, pki, "n1", topic, "forged by n1", "-r")

    assert receive(cloud, topic, *pki.client_args("n2")) == ["v1"]


def site_config(tmp_path: Path, pki: Pki, cloud: RunningBroker) -> Path:
    """bridge.conf.example with the test's addresses and certificates, as a template."""
    text = (CONFIGS / "bridge.conf.example").read_text()
    edits = {
        "listener 1883 0.0.0.0": "listener $port $bind_address",
        "persistence_location /var/lib/mosquitto/": "persistence_location $data_dir/",
        "address cloud.example.com:8883": f"address 127.0.0.1:{cloud.port}",
        "/etc/mosquitto/certs/": f"{pki.directory}/",
    }
    for old, new in edits.items():
        assert old in text, f"bridge.conf.example changed: {old!r} is gone; update this test"
        text = text.replace(old, new)
    path = tmp_path / "site.conf"
    path.write_text(text + "user $user\n")
    return path


def test_bridge_example_relays_node_traffic_up_and_models_down(
    tmp_path: Path, pki: Pki, cloud: RunningBroker
) -> None:
    """Through the bridge, the cloud aggregator hears site nodes and the site gets models."""
    with start_broker(config=site_config(tmp_path, pki, cloud), data_dir=tmp_path / "site") as site:
        state = "$SYS/broker/connection/site-a-bridge/state"
        assert wait_for_retained(site, state, "1", timeout=15), site.output_tail()
        agg = subscribe_later(cloud, pki, "aggregator", f"{ROOT}/nodes/+/updates")
        site_node = subscribe_later(site, None, "n7", f"{ROOT}/models/+/global")

        publish(site, f"{ROOT}/nodes/n7/updates", "update from n7")
        publish_as(cloud, pki, "aggregator", f"{ROOT}/models/ae/global", "v2", "-r")

        assert receive(cloud, f"{ROOT}/nodes/+/updates", *agg) == ["update from n7"]
        assert receive(site, f"{ROOT}/models/+/global", *site_node) == ["v2"]
