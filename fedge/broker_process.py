"""A broker child process on a fixed port: start, wait until it listens, stop, restart.

The process runs in its own process group, so a Ctrl-C meant for the caller never reaches it
half-way and ``stop()`` takes down everything it started; an ``atexit`` hook stops whatever is
still running when the interpreter exits. Its output is kept (the last lines) for error
messages, and optionally echoed to our stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

from fedge.endpoint import BrokerUrl
from fedge.errors import BrokerError, PortInUseError

log = logging.getLogger(__name__)

BrokerKind = Literal["mosquitto", "amqtt"]
MqttProtocol = Literal["5", "3.1.1"]

_OUTPUT_LINES: Final = 40
_POLL_SECONDS: Final = 0.02
# Clients of a broker bound to every interface reach it on loopback.
_WILDCARD_TO_LOOPBACK: Final = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104
_ADDRESS_IN_USE: Final = re.compile(r"address already in use", re.IGNORECASE)


class RunningBroker:
    """A broker child process listening on a fixed port; stops it on leaving a ``with``.

    ``stop()`` then ``start()`` restarts it on the same port with the same data directory, so a
    test can take the broker away and bring it back under connected clients.
    """

    def __init__(
        self,
        *,
        kind: BrokerKind,
        argv: list[str],
        port: int,
        bind: str,
        data_dir: Path,
        tls: bool = False,
        echo_output: bool = False,
    ) -> None:
        self.kind: BrokerKind = kind
        self.protocol: MqttProtocol = "5" if kind == "mosquitto" else "3.1.1"
        self.port = port
        self.bind = bind
        self.data_dir = data_dir
        self.url = BrokerUrl(_WILDCARD_TO_LOOPBACK.get(bind, bind), port, tls)
        self._argv = argv
        #: delete ``data_dir`` on close(): set when the directory is a temporary one made for it
        self.owns_data_dir = False
        #: copy every line the broker logs to our stderr (``fedge broker`` in the foreground)
        self.echo_output = echo_output
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._output: deque[str] = deque(maxlen=_OUTPUT_LINES)
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """Process id of the current (or last) broker process; None before the first start."""
        return None if self._proc is None else self._proc.pid

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output_tail(self, lines: int = 10) -> str:
        """The broker's last ``lines`` lines of output (stderr and stdout), oldest first."""
        with self._lock:
            return "\n".join(list(self._output)[-lines:])

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and return once its port accepts TCP connections."""
        if self.is_running():
            raise BrokerError(
                f"{self.kind} on port {self.port} is already running (pid {self.pid})"
            )
        _check_port_free(self.bind, self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._output.clear()
        try:
            proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=_child_env(),
                start_new_session=True,  # own process group: stop() signals the whole group
            )
        except OSError as exc:
            raise BrokerError(f"cannot run {self._argv[0]}: {exc.strerror}") from None
        self._proc = proc
        _UNCLOSED.add(self)
        self._pump = threading.Thread(
            target=self._collect_output, args=(proc,), name=f"broker-{self.port}", daemon=True
        )
        self._pump.start()
        try:
            self._wait_until_accepting(proc, timeout)
        except BrokerError:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the broker's process group (Mosquitto saves its database), wait up to
        ``timeout`` seconds, then SIGKILL it. Does nothing if it is not running."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%r ignored SIGTERM for %gs: killing it", self, timeout)
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._pump is not None:
            self._pump.join(timeout=2.0)
        if proc.stdout is not None:
            proc.stdout.close()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the broker and delete its data directory if this object created it."""
        self.stop(timeout)
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        _UNCLOSED.discard(self)

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<RunningBroker {self.kind} {self.url} {state}>"

    def _collect_output(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep the last lines of the broker's output (and echo them if asked) until EOF."""
        if proc.stdout is None:  # never: Popen(stdout=PIPE) sets it
            return
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            with self._lock:
                self._output.append(line)
            if self.echo_output:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    def _wait_until_accepting(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise self._startup_failure(proc)
            try:
                with socket.create_connection((self.url.host, self.port), timeout=0.5):
                    pass
            except OSError:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"{self.kind} did not accept connections on port {self.port} within "
                        f"{timeout:g}s; its last output:\n{self.output_tail()}"
                    ) from None
                time.sleep(_POLL_SECONDS)
                continue
            if proc.poll() is None:
                return

    def _startup_failure(self, proc: subprocess.Popen[bytes]) -> BrokerError:
        if self._pump is not None:
            self._pump.join(timeout=2.0)  # EOF follows exit: the output is complete
        tail = self.output_tail()
        if _ADDRESS_IN_USE.search(tail):
            return PortInUseError(self.port, self.bind)
        return BrokerError(
            f"{self.kind} exited with code {proc.returncode} while starting on port "
            f"{self.port}; its last output:\n{tail}"
        )


def _check_port_free(bind: str, port: int) -> None:
    """Raise PortInUseError if a listener already holds ``bind:port``.

    SO_REUSEADDR mirrors what the brokers do, so a port left in TIME_WAIT by a broker that was
    just stopped counts as free, as it is for the broker restarted on it.
    """
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(port, bind) from None
            raise BrokerError(f"cannot listen on {bind}:{port}: {exc.strerror}") from None


def _child_env() -> dict[str, str]:
    """Our environment, with the directory holding ``fedge`` on PYTHONPATH so that
    ``python -m fedge._embedded_broker`` works from a source checkout too."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by ``pid``; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


# Every broker started and not yet closed: still running, or stopped but holding a temporary
# data directory.
_UNCLOSED: set[RunningBroker] = set()


@atexit.register
def _close_unclosed_brokers() -> None:
    """Safety net: never leave a broker process or its temporary directory behind at exit."""
    for broker in list(_UNCLOSED):
        try:
            broker.close(timeout=2.0)
        except (BrokerError, OSError) as exc:
            log.warning("could not stop %r at exit: %s", broker, exc)
