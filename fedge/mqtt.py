"""The MQTT client fedge components use: paho-mqtt behind fedge's own types.

This is the only module that imports paho. It adds what every fedge process needs on top of
paho's threaded client:

- MQTT 5 by default, 3.1.1 on request; TLS, mutual TLS and username/password; a Last Will.
- Automatic reconnect with exponential backoff, and every subscription re-sent on each
  reconnect, so handlers keep receiving after a broker restart.
- QoS >= 1 publishes bounded by ``max_pending`` unacknowledged messages. A full queue makes
  ``publish`` wait for acknowledgements (backpressure) and then raise ``PublishQueueFullError``;
  nothing is dropped silently. QoS 1 messages published while disconnected are kept and sent
  after reconnecting.
- ``TCP_NODELAY`` on every socket: small frames go out at once instead of waiting for Nagle.
- Handlers run in paho's network thread behind a guard: an exception in a handler is counted
  and logged once per handler and exception type, and never reaches paho.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fedge.endpoint import BrokerUrl
from fedge.errors import ConfigError, PublishQueueFullError, TransportError
from fedge.transport import Message, MessageHandler

log = logging.getLogger(__name__)

Protocol = Literal["5", "3.1.1"]


@dataclass(frozen=True)
class TlsOptions:
    """TLS settings; ``cert_file`` + ``key_file`` enable mutual TLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip host-name verification (self-signed lab setups only)

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("tls", "mutual TLS needs both cert_file and key_file")


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for us if we vanish without disconnecting."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class MqttOptions:
    """How to connect. ``persistent_session`` needs a stable ``client_id``."""

    client_id: str = ""
    protocol: Protocol = "5"
    username: str | None = None
    password: str | None = None
    tls: TlsOptions | None = None
    keepalive_s: int = 30
    persistent_session: bool = False
    session_expiry_s: int = 7 * 24 * 3600
    will: Will | None = None
    max_pending: int = 1000
    max_inflight: int = 100
    publish_timeout_s: float = 30.0
    reconnect_min_s: float = 0.25
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.protocol not in ("5", "3.1.1"):
            raise ConfigError("mqtt.protocol", f"{self.protocol!r} is not 5 or 3.1.1")
        if self.persistent_session and not self.client_id:
            raise ConfigError("mqtt.client_id", "a persistent session needs a fixed client id")
        if self.max_pending < 1 or self.max_inflight < 1:
            raise ConfigError("mqtt.max_pending", "max_pending and max_inflight must be >= 1")


@dataclass
class ClientStats:
    """Counters for metrics and tests. Each is written by one thread only."""

    published: int = 0
    received: int = 0
    handler_errors: int = 0
    unrouted: int = 0
    dropped_qos0: int = 0
    publish_refused: int = 0
    connects: int = 0
    disconnects: int = 0


@dataclass
class _Subscription:
    qos: int
    handlers: list[MessageHandler] = field(default_factory=list)


class MqttClient:
    """A connection to one broker, usable from any thread; implements ``Transport``."""

    def __init__(self, url: BrokerUrl, options: MqttOptions | None = None) -> None:
        self.url = url
        self.options = opts = options or MqttOptions()
        self.client_id = opts.client_id or f"fedge-{uuid.uuid4().hex[:12]}"
        self.stats = ClientStats()
        self._subscriptions: dict[str, _Subscription] = {}
        self._lock = threading.Lock()  # guards _subscriptions and _pending; never held in paho
        self._pending: deque[paho.MQTTMessageInfo] = deque()
        self._acked = threading.Condition()
        self._state = threading.Condition()
        self._connected = False
        self._ready = False  # connected and the on-connect subscriptions acknowledged
        self._resubscribe_mid: int | None = None
        self._refusal: str | None = None
        self._last_disconnect: str | None = None
        self._started = False
        self._closing = False
        self._subacks: dict[int, list[ReasonCode]] = {}
        # Called in the network thread after every successful (re)connect, for example to
        # publish a retained birth message. They must not block: publish with timeout=0.
        self.connect_hooks: list[Callable[[], None]] = []
        self._logged: set[str] = set()
        self._client = self._make_client()

    # -- lifecycle --------------------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        opts = self.options
        v5 = opts.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else not opts.persistent_session,
        )
        if log.isEnabledFor(logging.DEBUG):
            # paho logs every failed attempt at ERROR; fedge reports connection state itself.
            client.enable_logger(logging.getLogger("fedge.mqtt.paho"))
        client.max_inflight_messages_set(opts.max_inflight)
        client.max_queued_messages_set(opts.max_pending)
        # paho doubles the delay from min to max without jitter; a per-client factor keeps a
        # fleet that lost its broker together from reconnecting in lockstep.
        spread = random.uniform(0.5, 1.5)  # noqa: S311 - load spreading, not security
        client.reconnect_delay_set(
            opts.reconnect_min_s * spread,  # type: ignore[arg-type]  # floats work at run time
            max(opts.reconnect_max_s * spread, opts.reconnect_min_s),  # type: ignore[arg-type]
        )
        if opts.username is not None:
            client.username_pw_set(opts.username, opts.password)
        if self.url.tls or opts.tls is not None:
            self._configure_tls(client)
        if opts.will is not None:
            client.will_set(opts.will.topic, opts.will.payload, opts.will.qos, opts.will.retain)
        client.on_socket_open = _set_nodelay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_unrouted
        return client

    def _configure_tls(self, client: paho.Client) -> None:
        tls = self.options.tls or TlsOptions()
        if not self.url.tls:
            raise ConfigError("broker", f"TLS options given but {self.url} is not mqtts://")
        client.tls_set(
            ca_certs=tls.ca_file,
            certfile=tls.cert_file,
            keyfile=tls.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(tls.insecure)

    def start(self) -> None:
        """Begin connecting in the background; reconnects forever until ``close``."""
        if self._started:
            return
        self._started = True
        properties = None
        clean_start: bool | Literal[3] = paho.MQTT_CLEAN_START_FIRST_ONLY
        if self.options.protocol == "5":
            clean_start = not self.options.persistent_session
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if self.options.persistent_session:
                properties.SessionExpiryInterval = self.options.session_expiry_s
        self._client.connect_async(
            self.url.host,
            self.url.port,
            keepalive=self.options.keepalive_s,
            clean_start=clean_start,
            properties=properties,
        )
        self._client.loop_start()

    def connect(self, timeout: float = 10.0) -> MqttClient:
        """Start and wait for the first successful connection; raise TransportError otherwise."""
        self.start()
        if not self.wait_connected(timeout):
            reason = self._refusal or self._last_disconnect or _probe(self.url)
            hint = ""
            speaks_mqtt = any(
                clue in reason for clue in ("protocol version", "connection closed", "CONNACK")
            )
            if self.options.protocol == "5" and speaks_mqtt:
                hint = " (if the broker speaks only MQTT 3.1.1, use --mqtt-protocol 3.1.1)"
            self.close(flush_timeout=0)
            raise TransportError(
                f"could not connect to {self.url} within {timeout:g} s: {reason}{hint}"
            )
        return self

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until connected; stop early if the broker refused us. True if connected."""
        with self._state:
            self._state.wait_for(lambda: self._connected or self._refusal is not None, timeout)
            return self._connected

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until connected *and* the broker acknowledged the subscriptions sent on
        connect, so that nothing published from now on can miss them. True if ready."""
        with self._state:
            self._state.wait_for(lambda: self._connected and self._ready, timeout)
            return self._connected and self._ready

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def refused_publishes(self) -> int:
        """Publishes the broker acknowledged with a failure reason (MQTT 5), so far."""
        return self.stats.publish_refused

    def close(self, flush_timeout: float = 5.0) -> None:
        """Flush pending QoS >= 1 publishes (up to ``flush_timeout``), then disconnect cleanly.

        A clean DISCONNECT means the broker does not publish the Last Will.
        """
        if self._closing:
            return
        if flush_timeout > 0 and self._connected:
            self.flush(flush_timeout)
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        with self._state:
            self._connected = False
            self._state.notify_all()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a power loss would: the Will fires."""
        self._closing = True
        sock = self._client.socket()
        if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            # Already gone is fine: the broker sees the connection drop either way.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._client.loop_stop()
        with self._state:
            self._connected = False
            self._state.notify_all()

    def __enter__(self) -> MqttClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- subscribe --------------------------------------------------------------------------

    def subscribe(
        self, topic_filter: str, handler: MessageHandler, qos: int = 1, timeout: float = 10.0
    ) -> None:
        """Route messages on ``topic_filter`` to ``handler``; waits for SUBACK when connected."""
        with self._lock:
            sub = self._subscriptions.get(topic_filter)
            is_new = sub is None
            if sub is None:
                sub = self._subscriptions[topic_filter] = _Subscription(qos)
            sub.handlers.append(handler)
        if not is_new:
            return
        self._client.message_callback_add(topic_filter, self._router(topic_filter))
        if self._connected:
            result, mid = self._client.subscribe(topic_filter, qos)
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                return  # disconnected meanwhile: on_connect subscribes again
            self._wait_suback(topic_filter, mid, timeout)

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            self._subscriptions.pop(topic_filter, None)
        self._client.message_callback_remove(topic_filter)
        if self._connected:
            self._client.unsubscribe(topic_filter)

    def _wait_suback(self, topic_filter: str, mid: int, timeout: float) -> None:
        with self._state:
            self._state.wait_for(lambda: mid in self._subacks or not self._started, timeout)
            codes = self._subacks.pop(mid, None)
        if codes is None:
            raise TransportError(f"no SUBACK for {topic_filter} within {timeout:g} s")
        if any(code.is_failure for code in codes):
            raise TransportError(f"broker refused subscription to {topic_filter}: {codes[0]}")

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        with self._state:
            self._subacks[mid] = codes
            if mid == self._resubscribe_mid:
                self._ready = True
            while len(self._subacks) > 64:  # answers to on_connect's re-subscribe: nobody waits
                self._subacks.pop(next(iter(self._subacks)))
            self._state.notify_all()
        for code in codes:
            if code.is_failure:
                self._log_once(f"suback:{code}", f"broker refused a subscription: {code}")

    def _router(self, topic_filter: str) -> Any:
        def route(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
            try:
                message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
            except UnicodeDecodeError:
                self._log_once(topic_filter, "topic is not UTF-8", logging.WARNING)
                self.stats.unrouted += 1
                return
            self.stats.received += 1
            with self._lock:
                sub = self._subscriptions.get(topic_filter)
                handlers = list(sub.handlers) if sub else []
            for handler in handlers:
                try:
                    handler(message)
                except Exception as exc:  # noqa: BLE001 - a handler's bug must never reach paho
                    self.stats.handler_errors += 1
                    self._log_once(
                        f"{topic_filter}:{type(exc).__name__}",
                        f"handler for {topic_filter} raised {exc!r}",
                        logging.ERROR,
                        exc_info=True,
                    )

        return route

    def _on_unrouted(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self.stats.unrouted += 1

    # -- publish ----------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Publish. QoS 0 is dropped (and counted) while disconnected; QoS >= 1 is kept.

        A full queue of unacknowledged QoS >= 1 messages blocks up to ``timeout`` seconds
        (default ``publish_timeout_s``; 0 to fail at once) and then raises PublishQueueFullError.
        """
        wait = self.options.publish_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            info = self._client.publish(topic, payload, qos, retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishQueueFullError(self.options.max_pending, topic)
            with self._acked:
                self._acked.wait(min(remaining, 0.5))
        if qos == 0:
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                self.stats.dropped_qos0 += 1
                self._log_once("qos0-drop", "not connected: QoS 0 messages are being dropped")
                return
        elif info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            # Queued inside paho and sent after reconnecting; mark it so waiting on it works.
            info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        self.stats.published += 1
        if qos > 0:
            with self._lock:
                self._pending.append(info)
                while self._pending and self._pending[0].is_published():
                    self._pending.popleft()

    @property
    def pending(self) -> int:
        """QoS >= 1 messages published but not yet acknowledged by the broker."""
        with self._lock:
            self._pending = deque(i for i in self._pending if not i.is_published())
            return len(self._pending)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every QoS >= 1 publish so far is acknowledged; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            waiting = list(self._pending)
        for info in waiting:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            info.wait_for_publish(remaining)
            if not info.is_published():
                return False
        return True

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self.stats.publish_refused += 1
            self._log_once(f"puback:{reason}", f"broker refused a publish: {reason}")
        with self._acked:
            self._acked.notify_all()

    # -- connection events --------------------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            with self._state:
                self._refusal = f"broker refused the connection: {reason}"
                self._state.notify_all()
            self._log_once(f"refused:{reason}", self._refusal, logging.ERROR)
            return
        with self._lock:
            topics = [(f, s.qos) for f, s in self._subscriptions.items()]
        resubscribe: int | None = None
        if topics:
            _, resubscribe = client.subscribe(topics)  # fresh or restored session: all of them
        self.stats.connects += 1
        if self.stats.connects > 1:
            log.info("reconnected to %s", self.url)
        with self._state:
            self._connected = True
            self._refusal = None
            self._resubscribe_mid = resubscribe
            self._ready = resubscribe is None or resubscribe in self._subacks
            self._state.notify_all()
        for hook in list(self.connect_hooks):
            try:
                hook()
            except Exception as exc:  # noqa: BLE001 - a hook's bug must never reach paho
                self._log_once(f"hook:{type(exc).__name__}", f"connect hook raised {exc!r}")

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        was_connected = self._connected
        with self._state:
            self._connected = False
            self._last_disconnect = f"connection closed ({reason})"
            self._state.notify_all()
        if was_connected and not self._closing:
            self.stats.disconnects += 1
            log.warning("lost connection to %s (%s); reconnecting", self.url, reason)

    def _log_once(
        self, key: str, text: str, level: int = logging.WARNING, exc_info: bool = False
    ) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        log.log(level, "%s (further occurrences are counted, not logged)", text, exc_info=exc_info)


def _probe(url: BrokerUrl) -> str:
    """Say why a broker did not answer: the operating system's reason, if there is one."""
    try:
        with socket.create_connection((url.host, url.port), timeout=2.0):
            return "the port accepts TCP connections but no MQTT CONNACK came back"
    except OSError as exc:
        return exc.strerror or str(exc)


def _set_nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    # Not a TCP socket (for example a websocket wrapper): nothing to tune.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
