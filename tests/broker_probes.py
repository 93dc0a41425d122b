"""Probe brokers from tests with the Mosquitto command-line clients, raw TCP and process ids,
never with fedge's own MQTT client; plus a throwaway certificate authority for TLS configs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fedge.broker import RunningBroker

CLIENT_TIMEOUT = 15.0
_PROTOCOL_FLAG = {"5": "mqttv5", "3.1.1": "mqttv311"}


def mqtt_tool(tool: str, broker: RunningBroker, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``mosquitto_pub`` or ``mosquitto_sub`` against ``broker`` in its protocol version."""
    binary = shutil.which(tool)
    if binary is None:
        pytest.fail(f"{tool} is not installed: apt-get install mosquitto-clients", pytrace=False)
    argv = [binary, "-h", broker.url.host, "-p", str(broker.port)]
    argv += ["-V", _PROTOCOL_FLAG[broker.protocol], *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False)


def publish(broker: RunningBroker, topic: str, payload: str, *args: str) -> None:
    """Publish at QoS 1 and wait for the broker's acknowledgement."""
    done = mqtt_tool("mosquitto_pub", broker, "-t", topic, "-m", payload, "-q", "1", *args)
    assert done.returncode == 0, done.stderr


def receive(broker: RunningBroker, topic: str, *args: str, count: int = 1) -> list[str]:
    """The first ``count`` payloads on ``topic`` (retained or queued ones included)."""
    done = mqtt_tool("mosquitto_sub", broker, "-t", topic, "-C", str(count), "-W", "5", *args)
    assert done.returncode == 0, f"nothing on {topic}: {done.stderr}"
    return done.stdout.splitlines()


def retained_roundtrip(broker: RunningBroker, topic: str, payload: str) -> str:
    """Publish a retained message and read it back with a fresh subscriber."""
    publish(broker, topic, payload, "-r")
    return receive(broker, topic)[0]


def accepts_tcp(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def process_exists(pid: int) -> bool:
    """True if a process with this id exists (a zombie counts: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_retained(broker: RunningBroker, topic: str, payload: str, timeout: float) -> bool:
    """Poll a retained topic until it holds ``payload`` (a bridge's connection state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = mqtt_tool("mosquitto_sub", broker, "-t", topic, "-C", "1", "-W", "1")
        if done.stdout.strip() == payload:
            return True
        time.sleep(0.1)
    return False


@dataclass(frozen=True)
class Pki:
    """A CA and certificates (CN = name, valid for localhost and 127.0.0.1) in ``directory``."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def client_args(self, name: str) -> list[str]:
        """mosquitto_pub/sub options to connect over TLS as the user ``name``."""
        return [
            "--cafile",
            str(self.ca),
            "--cert",
            str(self.cert(name)),
            "--key",
            str(self.key(name)),
        ]


def make_pki(directory: Path, names: list[str]) -> Pki:
    """Issue a throwaway CA and one EC certificate per name with the ``openssl`` command."""
    if shutil.which("openssl") is None:
        pytest.fail(
            "openssl is not installed: TLS config tests need it to issue certificates",
            pytrace=False,
        )
    directory.mkdir(parents=True)
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    new_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    _openssl(f"req -x509 -days 2 {new_key} -keyout ca.key -out ca.crt -subj /CN=test-ca", directory)
    for name in names:
        _openssl(f"req {new_key} -keyout {name}.key -out {name}.csr -subj /CN={name}", directory)
        _openssl(
            f"x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
            f"-out {name}.crt -extfile san.ext",
            directory,
        )
    return Pki(directory)


def _openssl(args: str, cwd: Path) -> None:
    """Run ``openssl`` with space-separated ``args`` (names here never contain spaces)."""
    argv = [shutil.which("openssl") or "openssl", *args.split()]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"openssl {args} failed: {done.stderr}"
