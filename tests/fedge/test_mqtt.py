"""The MQTT layer against a real Mosquitto: delivery, hostile payloads, reconnect, Will, limits."""

from __future__ import annotations

import pickle  # builds a hostile payload; nothing here ever unpickles
import socket
import threading
import time

import numpy as np
import pytest

from fedge.broker import RunningBroker
from fedge.endpoint import BrokerUrl
from fedge.errors import PublishQueueFullError, TransportError
from fedge.mqtt import MqttClient, MqttOptions, Will
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import Message, RejectLog, decoding
from fedge.wire import NodeStatus, SensorFrame, decode, encode
from tests.support import Collector, wait_for

CHANNELS = ("vib", "current", "pressure")


def _frame(seq: int, rows: int = 5) -> SensorFrame:
    values = np.arange(rows * len(CHANNELS), dtype=np.float32).reshape(rows, -1) + seq
    return SensorFrame("pump-1", seq, CHANNELS, values, t0=1.7e9 + seq, period=0.1)


def _client(broker: RunningBroker, **options: object) -> MqttClient:
    return MqttClient(broker.url, MqttOptions(protocol=broker.protocol, **options))  # type: ignore[arg-type]


@pytest.mark.parametrize("qos", [0, 1])
def test_frames_arrive_decoded_and_in_order(
    broker: RunningBroker, topic_root: TopicRoot, qos: int
) -> None:
    """Frames published through the layer arrive complete, decoded and in publish order."""
    topic = str(topic_root.sensors("n1", "pump-1"))
    got: Collector[SensorFrame] = Collector()
    rejects = RejectLog()
    with _client(broker) as sub, _client(broker) as pub:
        sub.subscribe(
            topic_root.sensors_filter("n1"),
            decoding(SensorFrame, lambda t, f: got(f), rejects),
            qos=qos,
        )

        for seq in range(200):
            pub.publish(topic, encode(_frame(seq)), qos=qos)
        pub.flush(10)
        frames = got.wait(200)

    assert [f.seq for f in frames] == list(range(200))
    assert frames[17] == _frame(17)
    assert rejects.total == 0


def test_hostile_payload_becomes_counted_wire_error(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """Garbage, truncated and pickle payloads are counted rejects; paho's thread never sees them."""
    topic = str(topic_root.sensors("n1", "pump-1"))
    got: Collector[SensorFrame] = Collector()
    rejects = RejectLog()
    hostile = [
        b"",
        b"\xff" * 64,
        encode(_frame(1))[:-9],
        pickle.dumps({"values": [1.0, 2.0]}),
        b"\x81\xa4kind\xc7\x05\x01hello",  # msgpack ext type
    ]
    with _client(broker) as sub, _client(broker) as pub:
        sub.subscribe(topic, decoding(SensorFrame, lambda t, f: got(f), rejects))

        for payload in hostile:
            pub.publish(topic, payload)
        pub.publish(topic, encode(_frame(2)))
        pub.flush(10)
        frames = got.wait(1)
        assert wait_for(lambda: rejects.total == len(hostile))

        assert sub.stats.handler_errors == 0
        assert sub.connected
    assert [f.seq for f in frames] == [2]


def test_handler_exception_never_reaches_the_network_thread(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """A handler that raises is counted; the client keeps delivering to later messages."""
    topic = str(topic_root.node("n1", NodeChannel.EVENTS))
    got: Collector[Message] = Collector()

    def flaky(message: Message) -> None:
        if message.payload == b"boom":
            raise ValueError("component bug")
        got(message)

    with _client(broker) as sub, _client(broker) as pub:
        sub.subscribe(topic, flaky)
        for payload in (b"a", b"boom", b"b", b"boom", b"c"):
            pub.publish(topic, payload)
        pub.flush(10)

        assert [m.payload for m in got.wait(3)] == [b"a", b"b", b"c"]
        assert sub.stats.handler_errors == 2
        assert sub.connected


def test_qos1_published_during_outage_arrives_after_restart(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """QoS 1 messages published while the broker is down are delivered once it is back."""
    topic = str(topic_root.sensors("n1", "pump-1"))
    got: Collector[SensorFrame] = Collector()
    rejects = RejectLog()
    sub = _client(broker, client_id="sub-persistent", persistent_session=True).connect()
    pub = _client(broker, reconnect_max_s=0.5).connect()
    try:
        sub.subscribe(topic, decoding(SensorFrame, lambda t, f: got(f), rejects))
        for seq in range(50):
            pub.publish(topic, encode(_frame(seq)))
        assert pub.flush(10)

        broker.stop()
        assert wait_for(lambda: not pub.connected and not sub.connected)
        for seq in range(50, 100):
            pub.publish(topic, encode(_frame(seq)))  # queued in the client while offline
        assert pub.pending == 50
        broker.start()

        assert pub.flush(30)
        # QoS 1 is at-least-once: duplicates may arrive, so wait for every distinct frame.
        assert wait_for(lambda: len({f.seq for f in got.items}) == 100, timeout=30)
    finally:
        pub.close()
        sub.close()

    assert sorted({f.seq for f in got.items}) == list(range(100))
    assert sub.stats.connects >= 2
    assert pub.stats.connects >= 2


def test_subscriptions_are_renewed_after_a_clean_session_reconnect(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """A clean-session client re-subscribes on reconnect, so new messages keep arriving."""
    topic = str(topic_root.node("n1", NodeChannel.COMMANDS))
    got: Collector[Message] = Collector()
    with _client(broker, reconnect_max_s=0.5) as sub, _client(broker, reconnect_max_s=0.5) as pub:
        sub.subscribe(topic, got)
        broker.stop()
        broker.start()
        assert wait_for(lambda: sub.connected and pub.connected and sub.stats.connects >= 2, 20)
        time.sleep(0.2)  # let the re-subscribe's SUBACK land before publishing

        pub.publish(topic, b"after-restart")
        pub.flush(10)

        assert [m.payload for m in got.wait(1)] == [b"after-restart"]


def test_last_will_fires_on_abort_but_not_on_clean_close(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """The broker publishes a node's Will when it vanishes, not when it says goodbye."""
    statuses: Collector[NodeStatus] = Collector()
    rejects = RejectLog()

    def node(name: str) -> MqttClient:
        topic = str(topic_root.node(name, NodeChannel.STATUS))
        will = Will(topic, encode(NodeStatus(name, online=False, time=0.0)))
        return _client(broker, will=will, keepalive_s=5).connect()

    with _client(broker) as watcher:
        watcher.subscribe(
            topic_root.node_filter(NodeChannel.STATUS),
            decoding(NodeStatus, lambda t, s: statuses(s), rejects),
        )
        polite, crashing = node("polite"), node("crashing")
        polite.close()
        crashing.abort()

        got = statuses.wait(1)
        time.sleep(0.5)  # a Will for the polite node would have arrived by now

    assert [(s.node, s.online) for s in statuses.items] == [("crashing", False)]
    assert got[0].node == "crashing"


def test_retained_message_reaches_a_late_subscriber(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """A retained publish (the global model's delivery path) reaches subscribers that come later."""
    topic = str(topic_root.model("ae"))
    got: Collector[Message] = Collector()
    with _client(broker) as pub:
        pub.publish(topic, b"model-v3", retain=True)
        pub.flush(10)
    with _client(broker) as late:
        late.subscribe(topic_root.models_filter(), got)
        messages = got.wait(1)

    assert [(m.payload, m.retain) for m in messages] == [(b"model-v3", True)]


def test_full_queue_raises_publish_queue_full(broker: RunningBroker, topic_root: TopicRoot) -> None:
    """With the broker gone, QoS 1 publishes fill the bounded queue and then fail loudly."""
    client = _client(broker, max_pending=5, max_inflight=5).connect()
    try:
        broker.stop()
        assert wait_for(lambda: not client.connected)
        for i in range(5):
            client.publish(f"{topic_root.prefix}/x", str(i).encode(), timeout=0)

        started = time.monotonic()
        with pytest.raises(PublishQueueFullError, match="5 messages already await"):
            client.publish(f"{topic_root.prefix}/x", b"one too many", timeout=0.3)
        assert time.monotonic() - started >= 0.25  # it waited for room before giving up
    finally:
        client.abort()


def test_qos0_while_disconnected_is_counted_not_silent(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """QoS 0 publishes during an outage are dropped, as QoS 0 allows, and counted."""
    client = _client(broker).connect()
    try:
        broker.stop()
        assert wait_for(lambda: not client.connected)
        for _ in range(3):
            client.publish(f"{topic_root.prefix}/x", b"lost", qos=0)
        assert client.stats.dropped_qos0 == 3
    finally:
        client.abort()


def test_sockets_have_tcp_nodelay(broker: RunningBroker) -> None:
    """Every connection disables Nagle's algorithm so small frames leave at once."""
    with _client(broker) as client:
        sock = client._client.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_connect_to_nothing_fails_with_a_clear_error() -> None:
    """Connecting where no broker listens raises TransportError naming the address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = MqttClient(BrokerUrl("127.0.0.1", port), MqttOptions(reconnect_max_s=0.2))
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
        client.connect(timeout=1.0)


def test_concurrent_publishers_share_one_client(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """Several threads publishing through one client lose nothing."""
    topic = f"{topic_root.prefix}/concurrent"
    got: Collector[Message] = Collector()
    with _client(broker) as sub, _client(broker) as pub:
        sub.subscribe(topic, got)

        def burst(k: int) -> None:
            for i in range(250):
                pub.publish(topic, f"{k}:{i}".encode())

        threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pub.flush(10)
        messages = got.wait(1000)

    assert sorted(m.payload for m in messages) == sorted(
        f"{k}:{i}".encode() for k in range(4) for i in range(250)
    )


def test_mqtt_311_works_with_the_embedded_broker(
    embedded_broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """Over MQTT 3.1.1 (the embedded broker) frames still round-trip through the layer."""
    topic = str(topic_root.sensors("n1", "pump-1"))
    got: Collector[Message] = Collector()
    options = MqttOptions(protocol="3.1.1")
    with (
        MqttClient(embedded_broker.url, options) as sub,
        MqttClient(embedded_broker.url, options) as pub,
    ):
        sub.subscribe(topic, got)
        pub.publish(topic, encode(_frame(3)))
        pub.flush(10)
        messages = got.wait(1)

    assert [decode(m.payload, SensorFrame) for m in messages] == [_frame(3)]


def test_mqtt5_against_a_311_broker_says_what_to_do(embedded_broker: RunningBroker) -> None:
    """An MQTT 5 client refused by a 3.1.1-only broker gets an error that names the fix."""
    client = MqttClient(embedded_broker.url, MqttOptions(protocol="5", reconnect_max_s=0.2))
    with pytest.raises(TransportError, match=r"3\.1\.1"):
        client.connect(timeout=2.0)


def test_ready_means_subscriptions_made_before_connecting_are_active(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """After wait_ready, a message published at once reaches a subscription made before start."""
    topic = f"{topic_root.prefix}/ready"
    got: Collector[Message] = Collector()
    sub = _client(broker)
    sub.subscribe(topic, got)  # registered before the connection exists
    sub.start()
    try:
        assert sub.wait_ready(10)
        with _client(broker) as pub:
            pub.publish(topic, b"first")
            pub.flush(10)
        messages = got.wait(1)
    finally:
        sub.close()

    assert [m.payload for m in messages] == [b"first"]


def test_reconnect_backoff_is_spread_across_clients() -> None:
    """Each client gets its own backoff scale, so a fleet does not reconnect in lockstep."""
    options = MqttOptions(reconnect_min_s=1.0, reconnect_max_s=30.0)
    delays = [MqttClient(BrokerUrl(), options)._client._reconnect_min_delay for _ in range(20)]

    assert len(set(delays)) > 10
    assert all(0.5 <= d <= 1.5 for d in delays)
