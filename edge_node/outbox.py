"""The node's on-disk outbox of model updates: a broker outage or a reboot loses nothing.

``Outbox`` is one SQLite file (WAL journal, ``synchronous=FULL``: ``put`` returns once the entry
is on disk). Entries leave in insertion order and are deleted only when the broker has
acknowledged them (``mark_sent``). The update id is the idempotency key: putting an id that is
pending, or was sent recently (the last ``remember_sent`` ids), stores nothing. The outbox is
bounded by entries and bytes; a put that does not fit evicts the oldest entries and says so
(``PutResult.dropped``), and every drop is counted and remembered on disk (``dropped_total``,
``drops()``), so the node can report what it lost, even after a restart. An update larger than
``max_bytes`` on its own is not stored and is reported the same way.

``OutboxSender`` drains the outbox through a transport in its own thread. ``wake`` never blocks,
so it is safe as an ``MqttClient`` connect hook (which runs in the network thread); the sender
is woken after every ``send`` and on every (re)connect, and retries every ``retry_s`` seconds. It
publishes pending entries in order at QoS 1, in batches, waits for the broker's
acknowledgements and only then deletes them. An outage mid-drain leaves the rest for the next
connect. Delivery is at least once: an entry acknowledged but not yet deleted when the process
dies is sent again after the restart, with the same update id, which the aggregator applies
once. Nothing reorders entries, so their first arrivals keep the order they were put in.

Disk: the database holds at most ``max_bytes`` of payloads plus SQLite's overhead; the WAL file
is truncated to ``journal_size_limit`` after checkpoints. Neither grows with the outage length.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from fedge.errors import FedgeError
from fedge.transport import Transport
from fedge.wire import ModelUpdate, encode

log = logging.getLogger(__name__)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, update_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL, payload BLOB NOT NULL, size INTEGER NOT NULL,
        created REAL NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS sent (update_id TEXT PRIMARY KEY, sent_at REAL NOT NULL)",
    """CREATE TABLE IF NOT EXISTS dropped (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, update_id TEXT NOT NULL, topic TEXT NOT NULL,
        size INTEGER NOT NULL, created REAL NOT NULL, dropped_at REAL NOT NULL,
        reason TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
JOURNAL_SIZE_LIMIT = 8 * 2**20

PutStatus = Literal["stored", "duplicate", "already_sent", "too_large"]


class OutboxError(FedgeError):
    """The outbox's database failed (disk full, I/O error); the operation did not happen."""


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    update_id: str
    topic: str
    payload: bytes
    created: float


@dataclass(frozen=True)
class DroppedEntry:
    """An update the outbox gave up on, and why."""

    update_id: str
    topic: str
    size: int
    created: float
    dropped_at: float
    reason: str


@dataclass(frozen=True)
class PutResult:
    """What ``put`` did; ``dropped`` lists the updates evicted (or refused) to honour the bounds."""

    status: PutStatus
    dropped: tuple[DroppedEntry, ...] = ()

    @property
    def stored(self) -> bool:
        return self.status == "stored"


class Outbox:
    """Model updates waiting for the broker's acknowledgement, on disk, bounded, in order."""

    def __init__(
        self,
        path: Path,
        max_entries: int = 100,
        max_bytes: int = 256 * 2**20,
        *,
        remember_sent: int = 1000,
        remember_drops: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(f"outbox bounds must be >= 1, got {max_entries}, {max_bytes}")
        self.path = path
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.remember_sent = remember_sent
        self.remember_drops = remember_drops
        self.recovered_from: Path | None = None  # where an unreadable database was moved
        self._clock = clock
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return _connect(self.path)
        except sqlite3.DatabaseError as exc:
            moved = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(
                "outbox %s is unreadable (%s): moved to %s, starting empty; the updates it "
                "held are lost",
                self.path,
                exc,
                moved,
            )
            self.path.replace(moved)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(moved.with_name(moved.name + suffix))
            self.recovered_from = moved
            return _connect(self.path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; an SQLite failure (disk full, I/O) becomes an OutboxError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise OutboxError(f"outbox {self.path}: {what} failed: {exc}") from exc
                raise

    def put(self, update_id: str, topic: str, payload: bytes) -> PutResult:
        """Store an update durably unless its id is pending or was sent; evict to fit."""
        size, now = len(payload), self._clock()
        with self._transaction(f"storing update {update_id} (not stored)") as db:
            if db.execute("SELECT 1 FROM entries WHERE update_id = ?", (update_id,)).fetchone():
                return PutResult("duplicate")
            if db.execute("SELECT 1 FROM sent WHERE update_id = ?", (update_id,)).fetchone():
                return PutResult("already_sent")
            if size > self.max_bytes:
                reason = f"{size} bytes is more than the outbox's max_bytes {self.max_bytes}"
                refused = DroppedEntry(update_id, topic, size, now, now, reason)
                self._record_drops(db, [refused])
                status: PutStatus = "too_large"
                dropped = [refused]
            else:
                dropped = self._make_room(db, size, now)
                db.execute(
                    "INSERT INTO entries (update_id, topic, payload, size, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (update_id, topic, payload, size, now),
                )
                status = "stored"
        for drop in dropped:
            log.warning("outbox dropped update %s (%s)", drop.update_id, drop.reason)
        return PutResult(status, tuple(dropped))

    def _make_room(self, db: sqlite3.Connection, size: int, now: float) -> list[DroppedEntry]:
        count, total = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").fetchone()
        dropped: list[DroppedEntry] = []
        while count + 1 > self.max_entries or total + size > self.max_bytes:
            seq, update_id, topic, old_size, created = db.execute(
                "SELECT seq, update_id, topic, size, created FROM entries ORDER BY seq LIMIT 1"
            ).fetchone()
            db.execute("DELETE FROM entries WHERE seq = ?", (seq,))
            bound = (
                f"max_entries {self.max_entries}"
                if count + 1 > self.max_entries
                else f"max_bytes {self.max_bytes}"
            )
            reason = f"outbox full ({bound}): evicted, oldest first"
            dropped.append(DroppedEntry(update_id, topic, old_size, created, now, reason))
            count, total = count - 1, total - old_size
        self._record_drops(db, dropped)
        return dropped

    def _record_drops(self, db: sqlite3.Connection, dropped: list[DroppedEntry]) -> None:
        if not dropped:
            return
        db.executemany(
            "INSERT INTO dropped (update_id, topic, size, created, dropped_at, reason) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(d.update_id, d.topic, d.size, d.created, d.dropped_at, d.reason) for d in dropped],
        )
        db.execute(
            "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (len(dropped),),
        )
        db.execute(
            "DELETE FROM dropped WHERE seq <= (SELECT MAX(seq) FROM dropped) - ?",
            (self.remember_drops,),
        )

    def pending(self, limit: int | None = None) -> list[OutboxEntry]:
        """Entries not yet acknowledged, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, update_id, topic, payload, created FROM entries ORDER BY seq LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [OutboxEntry(s, u, t, bytes(p), c) for s, u, t, p, c in rows]

    def mark_sent(self, update_id: str) -> bool:
        """Delete an acknowledged entry; False if it was not pending."""
        return self.mark_sent_many([update_id]) == 1

    def mark_sent_many(self, update_ids: Iterable[str]) -> int:
        """Delete acknowledged entries in one transaction; return how many were pending."""
        now, deleted = self._clock(), 0
        with self._transaction("deleting sent updates (they will be sent again)") as db:
            for update_id in update_ids:
                if db.execute("DELETE FROM entries WHERE update_id = ?", (update_id,)).rowcount:
                    deleted += 1
                    db.execute(
                        "INSERT OR REPLACE INTO sent (update_id, sent_at) VALUES (?, ?)",
                        (update_id, now),
                    )
            db.execute(
                "DELETE FROM sent WHERE rowid NOT IN "
                "(SELECT rowid FROM sent ORDER BY sent_at DESC, rowid DESC LIMIT ?)",
                (self.remember_sent,),
            )
        return deleted

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()
        return int(count)

    @property
    def size_bytes(self) -> int:
        """Bytes of payload pending."""
        with self._lock:
            (total,) = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()
        return int(total)

    @property
    def dropped_total(self) -> int:
        """Updates dropped over the outbox's lifetime (kept across restarts)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return 0 if row is None else int(row[0])

    def drops(self) -> list[DroppedEntry]:
        """The most recent drops (up to ``remember_drops``), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT update_id, topic, size, created, dropped_at, reason FROM dropped "
                "ORDER BY seq"
            ).fetchall()
        return [DroppedEntry(*row) for row in rows]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot switch to WAL (journal mode is {mode})")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        for statement in _SCHEMA:
            db.execute(statement)
    except BaseException:
        db.close()
        raise
    return db


class ReconnectingClient(Transport, Protocol):
    """A transport that calls ``connect_hooks`` after each (re)connect, like ``MqttClient``."""

    connect_hooks: list[Callable[[], None]]

    @property
    def connected(self) -> bool: ...

    @property
    def refused_publishes(self) -> int:
        """How many publishes the broker has refused so far (MQTT 5 PUBACK reason codes)."""


@dataclass
class SenderStats:
    sent: int = 0  # entries acknowledged and deleted
    stalled: int = 0  # drains that stopped early: not connected, no acknowledgement in time
    errors: int = 0  # publishes the transport refused


class OutboxSender:
    """Drains an ``Outbox`` through a transport, in order, deleting only what was acknowledged."""

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        *,
        is_connected: Callable[[], bool] = lambda: True,
        batch_size: int = 16,
        ack_timeout_s: float = 10.0,
        retry_s: float = 5.0,
        on_sent: Callable[[list[OutboxEntry]], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.batch_size = batch_size
        self.ack_timeout_s = ack_timeout_s
        self.retry_s = retry_s
        self.stats = SenderStats()
        self._is_connected = is_connected
        self._refused: Callable[[], int] = lambda: 0
        self._on_sent = on_sent
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drain_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._quiet = False  # the current stall was logged

    def attach(self, client: ReconnectingClient) -> None:
        """Drain on every (re)connect of ``client``, and only while it is connected."""
        self._is_connected = lambda: client.connected
        self._refused = lambda: client.refused_publishes
        client.connect_hooks.append(self.wake)

    def start(self) -> None:
        """Start the sender thread; it drains at once what a previous run left behind."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="outbox-sender", daemon=True)
            self._thread.start()
            self.wake()  # entries left from before a restart

    def wake(self) -> None:
        """Ask the sender thread to drain; never blocks (safe in a connect hook)."""
        self._wake.set()

    def send(self, update_id: str, topic: str, payload: bytes) -> PutResult:
        """Put an update in the outbox (durably) and wake the sender."""
        result = self.outbox.put(update_id, topic, payload)
        self.wake()
        return result

    def send_update(self, topic: str, update: ModelUpdate) -> PutResult:
        """Encode ``update`` and send it keyed by its own ``update_id``."""
        return self.send(update.update_id, topic, encode(update))

    def close(self, timeout: float | None = None) -> None:
        """Stop after the batch in flight; what is not acknowledged stays in the outbox."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.ack_timeout_s + 5.0 if timeout is None else timeout)

    def drain(self) -> int:
        """Publish pending entries until none is left or a batch is not acknowledged."""
        with self._drain_lock:
            sent = 0
            while not self._stopping.is_set():
                batch = self.outbox.pending(self.batch_size)
                if not batch:
                    self._quiet = False
                    return sent
                if not self._is_connected():
                    return self._stall(sent, "not connected")
                refused_before = self._refused()
                try:
                    for entry in batch:
                        self.transport.publish(
                            entry.topic, entry.payload, qos=1, timeout=self.ack_timeout_s
                        )
                    acked = self.transport.flush(self.ack_timeout_s)
                except FedgeError as exc:
                    self.stats.errors += 1
                    return self._stall(sent, f"publish failed: {exc}")
                if not acked:
                    return self._stall(sent, f"no acknowledgement within {self.ack_timeout_s:g} s")
                if self._refused() != refused_before:
                    # An acknowledgement with a failure reason (an ACL denial, a quota) is not
                    # a delivery: keep the batch. Update ids make the resend harmless.
                    self.stats.errors += 1
                    return self._stall(sent, "the broker refused a publish (ACL or quota?)")
                self.outbox.mark_sent_many(e.update_id for e in batch)
                sent += len(batch)
                self.stats.sent += len(batch)
                if self._on_sent is not None:
                    self._on_sent(batch)
            return sent

    def _stall(self, sent: int, reason: str) -> int:
        self.stats.stalled += 1
        if not self._quiet:
            self._quiet = True
            log.info("outbox: %s; %d updates wait for the next connect", reason, len(self.outbox))
        return sent

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.retry_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.drain()
            except Exception:  # the sender must outlive one failure; logged with its traceback
                log.exception("outbox: draining failed; retrying in %g s", self.retry_s)
