"""The update outbox: idempotent, ordered, bounded, durable; drained through outages and crashes."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_node.outbox import Outbox, OutboxEntry, OutboxError, OutboxSender
from fedge.broker import RunningBroker
from fedge.endpoint import BrokerUrl
from fedge.mqtt import MqttClient, MqttOptions, Protocol
from fedge.topics import NodeChannel, TopicRoot
from fedge.transport import InMemoryHub, InMemoryTransport, Message, Transport
from fedge.wire import ModelUpdate, decode, encode
from tests.support import Collector, wait_for

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "fedge/v1/nodes/n1/updates"
CRASHED = 75  # exit status of the child that dies between acknowledgement and delete


def _update(update_id: str, floats: int = 8) -> ModelUpdate:
    delta = np.full(floats, 0.5, np.float32)
    return ModelUpdate("n1", "default", 3, update_id, 100, {"enc.0.weight": delta}, {"loss": 0.1})


def _payload(update_id: str) -> bytes:
    return encode(_update(update_id))


def _ids(outbox: Outbox) -> list[str]:
    return [e.update_id for e in outbox.pending()]


def _first_arrivals(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _listen(hub: InMemoryHub) -> Collector[str]:
    """Collect the update ids arriving on TOPIC, decoded from the payload."""
    got: Collector[str] = Collector()
    hub.connect().subscribe(TOPIC, lambda m: got(decode(m.payload, ModelUpdate).update_id))
    return got


class FlakyTransport:
    """A transport whose broker goes away after ``fail_after`` publishes until ``restore``."""

    def __init__(self, inner: Transport, fail_after: int | None = None) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.published = 0
        self.down = False

    def subscribe(
        self, topic_filter: str, handler: Callable[[Message], None], qos: int = 1
    ) -> None:
        self.inner.subscribe(topic_filter, handler, qos)

    def unsubscribe(self, topic_filter: str) -> None:
        self.inner.unsubscribe(topic_filter)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.published += 1
        if self.fail_after is not None and self.published > self.fail_after:
            self.down = True
        if not self.down:
            self.inner.publish(topic, payload, qos, retain, timeout)

    def flush(self, timeout: float | None = None) -> bool:
        return not self.down

    def close(self) -> None:
        self.inner.close()

    def restore(self) -> None:
        self.fail_after, self.down = None, False


class FakeClient(InMemoryTransport):
    """An in-memory transport that reconnects on demand and runs its connect hooks."""

    def __init__(self, hub: InMemoryHub) -> None:
        super().__init__(hub)
        self.connect_hooks: list[Callable[[], None]] = []
        self.connected = False
        self.refused_publishes = 0  # set by a test to play a broker refusing (ACL, quota)

    def reconnect(self) -> None:
        self.connected = True
        for hook in self.connect_hooks:
            hook()


# -- the outbox ----------------------------------------------------------------------------------


def test_putting_the_same_update_id_twice_stores_it_once(tmp_path: Path) -> None:
    """The update id is the idempotency key: a second put of a pending id stores nothing."""
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        first = outbox.put("u1", TOPIC, b"first")

        again = outbox.put("u1", TOPIC, b"second")

        pending = outbox.pending()
    assert first.stored
    assert first.dropped == ()
    assert again.status == "duplicate"
    assert not again.stored
    assert [(e.update_id, e.payload) for e in pending] == [("u1", b"first")]


def test_pending_keeps_insertion_order_and_mark_sent_deletes(tmp_path: Path) -> None:
    """Entries leave oldest first; a sent id is deleted and a re-put of it is not stored."""
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        for i in (5, 3, 9, 1):
            outbox.put(f"u{i}", TOPIC, _payload(f"u{i}"))

        removed = outbox.mark_sent("u3")
        removed_again = outbox.mark_sent("u3")
        again = outbox.put("u3", TOPIC, b"late retry")

        assert removed
        assert not removed_again
        assert again.status == "already_sent"
        assert _ids(outbox) == ["u5", "u9", "u1"]
        assert [e.update_id for e in outbox.pending(limit=2)] == ["u5", "u9"]
        assert len(outbox) == 3


def test_a_full_outbox_drops_the_oldest_and_says_so(tmp_path: Path) -> None:
    """Beyond max_entries the oldest entries go, reported by put and counted on disk."""
    with Outbox(tmp_path / "outbox.sqlite", max_entries=3) as outbox:
        results = [outbox.put(f"u{i}", TOPIC, b"x" * 10) for i in range(5)]

        assert _ids(outbox) == ["u2", "u3", "u4"]
        assert [r.status for r in results] == ["stored"] * 5
        assert [[d.update_id for d in r.dropped] for r in results] == [[], [], [], ["u0"], ["u1"]]
        assert "max_entries 3" in results[3].dropped[0].reason
        assert outbox.dropped_total == 2
        assert [d.update_id for d in outbox.drops()] == ["u0", "u1"]


def test_the_byte_bound_evicts_as_many_as_needed_and_refuses_giants(tmp_path: Path) -> None:
    """max_bytes evicts oldest entries until a put fits; a payload above it is refused."""
    with Outbox(tmp_path / "outbox.sqlite", max_bytes=100) as outbox:
        for i in range(3):
            outbox.put(f"u{i}", TOPIC, b"x" * 30)

        big = outbox.put("big", TOPIC, b"y" * 70)
        giant = outbox.put("giant", TOPIC, b"z" * 101)

        assert [d.update_id for d in big.dropped] == ["u0", "u1"]
        assert giant.status == "too_large"
        assert [d.update_id for d in giant.dropped] == ["giant"]
        assert _ids(outbox) == ["u2", "big"]
        assert outbox.size_bytes == 100
        assert outbox.dropped_total == 3


def test_entries_and_drops_survive_reopening_the_file(tmp_path: Path) -> None:
    """A restarted node finds its pending updates, in order, and what was dropped before."""
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, max_entries=4) as outbox:
        for i in range(6):
            outbox.put(f"u{i}", TOPIC, _payload(f"u{i}"))
        outbox.mark_sent("u2")

    with Outbox(path, max_entries=4) as reopened:
        pending = reopened.pending()
        duplicate = reopened.put("u4", TOPIC, b"again")
        resent = reopened.put("u2", TOPIC, b"again")
        total = reopened.dropped_total

    assert [e.update_id for e in pending] == ["u3", "u4", "u5"]
    assert pending[0].payload == _payload("u3")
    assert (duplicate.status, resent.status) == ("duplicate", "already_sent")
    assert total == 2


def test_an_unreadable_file_is_moved_aside_and_the_outbox_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that is not a database is kept for inspection, reported, and replaced."""
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"not a database at all" * 100)

    with caplog.at_level(logging.ERROR), Outbox(path) as outbox:
        stored = outbox.put("u1", TOPIC, b"x")
        moved = outbox.recovered_from

    assert stored.stored
    assert moved is not None
    assert moved.read_bytes().startswith(b"not a database")
    assert "unreadable" in caplog.text


def test_a_failed_write_raises_outbox_error_and_leaves_the_outbox_usable(tmp_path: Path) -> None:
    """A write SQLite refuses (disk full, I/O) is an OutboxError naming the update, rolled back."""
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        outbox.put("u1", TOPIC, b"x")
        outbox._db.execute(
            "CREATE TEMP TRIGGER full BEFORE INSERT ON entries "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )

        with pytest.raises(OutboxError, match=r"storing update u2 .* disk is full"):
            outbox.put("u2", TOPIC, b"y")
        outbox._db.execute("DROP TRIGGER full")
        retried = outbox.put("u2", TOPIC, b"y")

        assert retried.stored
        assert _ids(outbox) == ["u1", "u2"]


def test_the_file_is_a_wal_database_with_full_sync(tmp_path: Path) -> None:
    """The outbox runs SQLite in WAL mode, synchronous=FULL, so a put is durable on return."""
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        outbox.put("u1", TOPIC, b"x")

        (mode,) = outbox._db.execute("PRAGMA journal_mode").fetchone()
        (sync,) = outbox._db.execute("PRAGMA synchronous").fetchone()

    assert (mode, sync) == ("wal", 2)
    with sqlite3.connect(path) as db:  # closed cleanly: a plain reader sees everything
        assert db.execute("SELECT update_id FROM entries").fetchall() == [("u1",)]


def test_concurrent_puts_are_all_stored_once(tmp_path: Path) -> None:
    """Puts from several threads (trainer results, retries) never lose or double an entry."""
    with Outbox(tmp_path / "outbox.sqlite", max_entries=1000) as outbox:

        def put_all(worker: int) -> None:
            for i in range(50):
                outbox.put(f"u{i}", TOPIC, f"{worker}".encode())  # all workers, same ids

        threads = [threading.Thread(target=put_all, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(_ids(outbox)) == sorted(f"u{i}" for i in range(50))


# -- the sender, in memory -----------------------------------------------------------------------


def test_drain_publishes_in_order_and_empties_the_outbox(tmp_path: Path) -> None:
    """Every pending update is published once, oldest first, then deleted."""
    hub = InMemoryHub()
    got = _listen(hub)
    sent: list[OutboxEntry] = []
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        ids = [f"u{i:02d}" for i in range(20)]
        for update_id in ids:
            outbox.put(update_id, TOPIC, _payload(update_id))
        sender = OutboxSender(outbox, hub.connect(), batch_size=6, on_sent=sent.extend)

        count = sender.drain()

        assert count == 20
        assert len(outbox) == 0
    assert got.items == ids
    assert [e.update_id for e in sent] == ids


def test_an_outage_mid_drain_leaves_the_rest_for_the_next_connect(tmp_path: Path) -> None:
    """Unacknowledged batches stay; after reconnecting, all arrive and first arrivals keep order."""
    hub = InMemoryHub()
    got = _listen(hub)
    transport = FlakyTransport(hub.connect(), fail_after=6)
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        ids = [f"u{i:02d}" for i in range(10)]
        for update_id in ids:
            outbox.put(update_id, TOPIC, _payload(update_id))
        sender = OutboxSender(outbox, transport, batch_size=4)

        during = sender.drain()
        left = _ids(outbox)
        transport.restore()
        after = sender.drain()

        assert (during, after) == (4, 6)
        assert left == ids[4:]
        assert len(outbox) == 0
    assert _first_arrivals(got.items) == ids
    assert got.items == ids[:6] + ids[4:]  # u04, u05 reached the broker twice: same ids
    assert sender.stats.stalled == 1


def test_the_sender_thread_drains_after_send_and_on_each_connect(tmp_path: Path) -> None:
    """send() while offline only stores; the connect hook wakes the thread, which delivers."""
    hub = InMemoryHub()
    got = _listen(hub)
    client = FakeClient(hub)
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        sender = OutboxSender(outbox, client, retry_s=60.0)
        sender.attach(client)
        sender.start()
        try:
            offline = [sender.send_update(TOPIC, _update(f"u{i}")) for i in range(3)]
            assert wait_for(lambda: sender.stats.stalled >= 1)
            assert got.items == []
            assert len(outbox) == 3

            client.reconnect()  # runs the hook, as MqttClient does in its network thread
            delivered = wait_for(lambda: len(got.items) == 3)
            sender.send_update(TOPIC, _update("u3"))
            live = wait_for(lambda: len(got.items) == 4)
        finally:
            sender.close()

        assert all(r.stored for r in offline)
        assert delivered
        assert live
        assert got.items == ["u0", "u1", "u2", "u3"]
        assert len(outbox) == 0


# -- against a real Mosquitto --------------------------------------------------------------------


def _mqtt(broker: RunningBroker, client_id: str) -> MqttClient:
    options = MqttOptions(
        client_id=client_id,
        protocol=broker.protocol,
        persistent_session=True,
        reconnect_min_s=0.05,
        reconnect_max_s=0.5,
    )
    return MqttClient(broker.url, options)


def _aggregator(broker: RunningBroker, topic: str) -> tuple[MqttClient, Collector[str]]:
    """A persistent-session subscriber: the broker queues updates for it across restarts."""
    got: Collector[str] = Collector()
    client = _mqtt(broker, f"agg-{uuid.uuid4().hex[:8]}").connect()
    client.subscribe(topic, lambda m: got(decode(m.payload, ModelUpdate).update_id))
    return client, got


def test_updates_put_during_a_broker_outage_arrive_in_order(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """Updates put before and during an outage all arrive, in put order, after the restart."""
    topic = str(topic_root.node("n1", NodeChannel.UPDATES))
    aggregator, got = _aggregator(broker, topic)
    node = _mqtt(broker, f"fedge-edge-n1-{uuid.uuid4().hex[:8]}").connect()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    sender = OutboxSender(outbox, node, batch_size=8, ack_timeout_s=2.0, retry_s=0.5)
    sender.attach(node)
    sender.start()
    ids = [f"u{i:03d}" for i in range(60)]
    try:
        for update_id in ids[:10]:
            sender.send_update(topic, _update(update_id))
        assert wait_for(lambda: len(got.items) >= 10)
        for update_id in ids[10:40]:  # large updates; the broker goes away mid-drain
            sender.send_update(topic, _update(update_id, floats=16_384))

        broker.stop()
        assert wait_for(lambda: not node.connected and not aggregator.connected)
        offline = [sender.send_update(topic, _update(u)) for u in ids[40:]]
        waiting = len(outbox)
        broker.start()

        assert wait_for(lambda: set(got.items) == set(ids), timeout=30)
        assert wait_for(lambda: len(outbox) == 0)
    finally:
        sender.close()
        node.close()
        aggregator.close()
        outbox.close()

    assert all(r.stored for r in offline)
    assert waiting >= 20  # nothing leaves the outbox while the broker is away
    assert _first_arrivals(got.items) == ids
    assert node.stats.connects >= 2


def _crash_after_acknowledgement(path: str, url: str, protocol: str, acked: str) -> None:
    """Child process: drain the outbox and die once ``acked`` updates were acknowledged,
    after the acknowledgement and before the delete: the worst moment for a duplicate."""
    proto: Protocol = "5" if protocol == "5" else "3.1.1"
    client = MqttClient(BrokerUrl.parse(url), MqttOptions(protocol=proto)).connect()

    class DieAfterAck(FlakyTransport):
        def flush(self, timeout: float | None = None) -> bool:
            ok = self.inner.flush(timeout)
            if ok and self.published >= int(acked):
                os._exit(CRASHED)
            return ok

    OutboxSender(Outbox(Path(path)), DieAfterAck(client), batch_size=4).drain()
    os._exit(0)


def test_a_node_killed_mid_drain_loses_nothing_and_duplicates_keep_their_ids(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """Killed between ack and delete, then restarted on the same file: every update arrives,
    first arrivals in put order, and the re-sent ones carry the same update ids."""
    topic = str(topic_root.node("n1", NodeChannel.UPDATES))
    path = tmp_path / "outbox.sqlite"
    ids = [f"u{i:03d}" for i in range(40)]
    with Outbox(path) as outbox:
        for update_id in ids:
            outbox.put(update_id, topic, _payload(update_id))
    aggregator, got = _aggregator(broker, topic)
    try:
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from tests.edge_node.test_outbox import "
                "_crash_after_acknowledgement as run; run(*sys.argv[1:])",
                str(path),
                str(broker.url),
                broker.protocol,
                "10",
            ],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == CRASHED, child.stderr.decode()
        assert wait_for(lambda: len(got.items) == 12)
        outbox = Outbox(path)
        left = _ids(outbox)
        node = _mqtt(broker, f"fedge-edge-n1-{uuid.uuid4().hex[:8]}")
        sender = OutboxSender(outbox, node)
        sender.attach(node)
        sender.start()
        node.start()
        try:
            assert wait_for(lambda: set(got.items) == set(ids), timeout=30)
            assert wait_for(lambda: len(outbox) == 0)
        finally:
            sender.close()
            node.close()
            outbox.close()
    finally:
        aggregator.close()

    received = got.items
    duplicates = [u for i, u in enumerate(received) if u in received[:i]]
    assert left == ids[8:]  # the last batch was acknowledged but never deleted
    assert _first_arrivals(received) == ids
    assert duplicates == ids[8:12]


def test_an_acknowledgement_with_a_failure_reason_keeps_the_batch(tmp_path: Path) -> None:
    """A PUBACK that refuses (MQTT 5 reason code, e.g. an ACL denial) is not a delivery: the
    updates stay in the outbox and go out once the broker accepts them."""
    hub = InMemoryHub()
    got = _listen(hub)
    client = FakeClient(hub)
    client.connected = True
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        sender = OutboxSender(outbox, client, retry_s=60.0)
        sender.attach(client)
        for i in range(3):
            outbox.put(f"u{i}", TOPIC, encode(_update(f"u{i}")))
        real_publish = client.publish

        def refusing(*args: Any, **kwargs: Any) -> None:
            real_publish(*args, **kwargs)
            client.refused_publishes += 1

        client.publish = refusing  # type: ignore[method-assign]
        refused = sender.drain()
        kept = len(outbox)
        client.publish = real_publish  # type: ignore[method-assign]
        delivered = sender.drain()

        assert (refused, kept, delivered) == (0, 3, 3)
        assert len(outbox) == 0
    assert sender.stats.errors == 1
    assert _first_arrivals(got.items) == ["u0", "u1", "u2"]
