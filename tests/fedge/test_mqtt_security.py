"""The MQTT layer's TLS, mutual TLS and password options against a real, locked-down Mosquitto."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest

from fedge.broker import RunningBroker, start_broker
from fedge.endpoint import BrokerUrl
from fedge.errors import TransportError
from fedge.mqtt import MqttClient, MqttOptions, TlsOptions
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import Message
from tests.broker_probes import Pki, make_pki
from tests.support import Collector

pytestmark = pytest.mark.broker
ROOT = TopicRoot()  # acl.example is written for the default fedge/v1 root


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", ["server", "n1", "aggregator"])


@pytest.fixture
def secure(tmp_path: Path, pki: Pki) -> Iterator[RunningBroker]:
    broker = start_broker(
        config="secure",
        data_dir=tmp_path / "secure",
        config_values={
            "ca_file": pki.ca,
            "cert_file": pki.cert("server"),
            "key_file": pki.key("server"),
            "acl_file": files("fedge.broker_config") / "acl.example",
        },
    )
    with broker:
        yield broker


def _tls_url(broker: RunningBroker) -> BrokerUrl:
    return BrokerUrl("127.0.0.1", broker.port, tls=True)


def _as(pki: Pki, name: str) -> TlsOptions:
    return TlsOptions(
        ca_file=str(pki.ca), cert_file=str(pki.cert(name)), key_file=str(pki.key(name))
    )


def test_mutual_tls_node_reaches_its_commands(secure: RunningBroker, pki: Pki) -> None:
    """Over mTLS the aggregator's command reaches node n1, whose identity is its certificate."""
    got: Collector[Message] = Collector()
    topic = str(ROOT.node("n1", NodeChannel.COMMANDS))
    with (
        MqttClient(_tls_url(secure), MqttOptions(tls=_as(pki, "n1"))) as node,
        MqttClient(_tls_url(secure), MqttOptions(tls=_as(pki, "aggregator"))) as aggregator,
    ):
        node.subscribe(topic, got)
        aggregator.publish(topic, b"train")
        aggregator.flush(10)

        assert [m.payload for m in got.wait(1)] == [b"train"]


def test_tls_without_client_certificate_is_refused(secure: RunningBroker, pki: Pki) -> None:
    """A client without a certificate cannot connect to a broker that requires one."""
    client = MqttClient(
        _tls_url(secure), MqttOptions(tls=TlsOptions(ca_file=str(pki.ca)), reconnect_max_s=0.2)
    )
    with pytest.raises(TransportError, match="could not connect"):
        client.connect(timeout=2.0)


def test_tls_with_an_untrusted_broker_certificate_is_refused(
    secure: RunningBroker, tmp_path: Path
) -> None:
    """A broker whose certificate is not signed by our CA is not trusted."""
    other = make_pki(tmp_path / "other", ["n1"])
    client = MqttClient(_tls_url(secure), MqttOptions(tls=_as(other, "n1"), reconnect_max_s=0.2))
    with pytest.raises(TransportError, match="could not connect"):
        client.connect(timeout=2.0)


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[RunningBroker]:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is missing: install the mosquitto package", pytrace=False)
    passwords = tmp_path / "passwd"
    subprocess.run([tool, "-b", "-c", str(passwords), "node-7", "right"], check=True)
    config = tmp_path / "password.conf.template"
    config.write_text(
        "listener $port $bind_address\n"
        "allow_anonymous false\n"
        f"password_file {passwords}\n"
        "persistence false\n"
        "user $user\n"
    )
    with start_broker(config=config, data_dir=tmp_path / "pw") as broker:
        yield broker


def test_username_and_password(password_broker: RunningBroker) -> None:
    """Right credentials connect; wrong ones are refused with the broker's reason."""
    url = password_broker.url
    with MqttClient(url, MqttOptions(username="node-7", password="right")) as client:  # noqa: S106
        assert client.connected

    wrong = MqttClient(url, MqttOptions(username="node-7", password="wrong", reconnect_max_s=0.2))  # noqa: S106
    with pytest.raises(TransportError, match="refused"):
        wrong.connect(timeout=3.0)
