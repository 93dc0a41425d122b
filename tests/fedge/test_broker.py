"""Broker launcher, bundled configs and ``fedge broker``, checked with the Mosquitto clients.

Brokers are probed with raw TCP and the ``mosquitto_pub``/``mosquitto_sub`` binaries, never
with fedge's own MQTT client, so a bug there cannot hide or fake a broker problem here.
"""

from __future__ import annotations

import logging
import re
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import fedge.broker
from fedge.broker import (
    EMBEDDED_FALLBACK_MESSAGE,
    RunningBroker,
    bundled_templates,
    find_mosquitto,
    render_config,
    start_broker,
)
from fedge.errors import BrokerError, PortInUseError
from fedge.topics import NodeChannel, TopicRoot
from tests.broker_probes import (
    accepts_tcp,
    mqtt_tool,
    process_exists,
    receive,
    retained_roundtrip,
)

pytestmark = pytest.mark.broker

# --- config templates ---------------------------------------------------------------------


def test_bundled_templates_are_dev_secure_and_test() -> None:
    """The package ships the dev, secure and test templates."""
    assert bundled_templates() == ["dev", "secure", "test"]


def test_render_config_fills_every_placeholder() -> None:
    """Rendering puts the port, address and data directory where Mosquitto reads them."""
    text = render_config("test", port=18830, bind_address="127.0.0.1", data_dir="/d", user="u")

    assert "listener 18830 127.0.0.1" in text.splitlines()
    assert "persistence_location /d/" in text.splitlines()
    assert "$" not in text.replace("$SYS", "")


def test_render_config_names_the_missing_placeholder() -> None:
    """A placeholder without a value is an error naming it, never an empty string."""
    with pytest.raises(BrokerError, match=r"needs a value for \$data_dir"):
        render_config("test", port=1, bind_address="127.0.0.1", user="u")


def test_render_config_refuses_a_value_spanning_lines() -> None:
    """A value cannot smuggle an extra directive into the config."""
    with pytest.raises(BrokerError, match="line break"):
        render_config(
            "test", port=1, bind_address="x\nallow_anonymous true", data_dir="/d", user="u"
        )


def test_render_config_reads_a_template_file(tmp_path: Path) -> None:
    """A path renders like a bundled template."""
    template = tmp_path / "mine.conf"
    template.write_text("listener $port $bind_address\n")

    assert render_config(template, port=7, bind_address="::1") == "listener 7 ::1\n"


def test_unknown_config_is_a_clear_error() -> None:
    """A config that is neither a file nor a bundled name says so and lists the bundled ones."""
    with pytest.raises(BrokerError, match=r"not found.*dev, secure, test"):
        start_broker(config="/nonexistent/broker.conf")


def test_config_without_port_placeholder_is_refused(tmp_path: Path) -> None:
    """fedge will not start a config when it cannot know the port the broker listens on."""
    config = tmp_path / "fixed.conf"
    config.write_text("listener 1883\nallow_anonymous true\n")

    with pytest.raises(BrokerError, match=r"never uses \$port"):
        start_broker(config=config, data_dir=tmp_path / "data")


def test_config_rejected_by_mosquitto_shows_its_error(tmp_path: Path) -> None:
    """A config Mosquitto refuses fails at once with Mosquitto's own explanation."""
    config = tmp_path / "bad.conf"
    config.write_text("listener $port $bind_address\nno_such_option true\n")

    with pytest.raises(BrokerError, match=r"exited with code \d+.*\n.*no_such_option"):
        start_broker(config=config, data_dir=tmp_path / "data")


@pytest.mark.parametrize("template", ["dev", "test"])
def test_bundled_template_runs_in_mosquitto(tmp_path: Path, template: str) -> None:
    """Mosquitto accepts each plain-TCP template and serves MQTT 5 from it."""
    with start_broker(config=template, data_dir=tmp_path / "data") as broker:
        assert retained_roundtrip(broker, "t/fedge/v1/models/m/global", "v1") == "v1"


# --- Mosquitto lifecycle ------------------------------------------------------------------


def test_broker_fixture_serves_mqtt5(broker: RunningBroker, topic_root: TopicRoot) -> None:
    """The fixture's broker is a Mosquitto on loopback that MQTT 5 clients can use."""
    topic = str(topic_root.model("ae"))

    assert (broker.kind, broker.protocol, broker.url.host) == ("mosquitto", "5", "127.0.0.1")
    assert retained_roundtrip(broker, topic, "hello") == "hello"


def test_stop_leaves_no_process_and_frees_the_port(broker: RunningBroker) -> None:
    """stop() ends the process and closes the port; stopping twice is harmless."""
    pid = broker.pid
    assert pid is not None

    broker.stop()
    broker.stop()

    assert not broker.is_running()
    assert not process_exists(pid)
    assert not accepts_tcp(broker.port)


def test_restart_keeps_port_sessions_and_queued_messages(
    broker: RunningBroker, topic_root: TopicRoot
) -> None:
    """A restarted broker listens on the same port and still holds persistent sessions."""
    topic = str(topic_root.node("n1", NodeChannel.COMMANDS))
    session = ["-i", "sub-n1", "-c", "-x", "3600", "-q", "1"]
    assert mqtt_tool("mosquitto_sub", broker, "-t", topic, *session, "-E").returncode == 0
    assert (
        mqtt_tool("mosquitto_pub", broker, "-t", topic, "-m", "queued", "-q", "1").returncode == 0
    )
    port, first_pid = broker.port, broker.pid

    broker.stop()
    broker.start()

    assert (broker.port, broker.is_running()) == (port, True)
    assert broker.pid != first_pid
    assert receive(broker, topic, *session) == ["queued"]


def test_start_on_a_taken_port_is_a_clear_error(broker: RunningBroker, tmp_path: Path) -> None:
    """A second broker on a busy port raises PortInUseError naming the port."""
    with pytest.raises(PortInUseError, match=f"port {broker.port} .* already in use") as caught:
        start_broker(port=broker.port, config="test", data_dir=tmp_path / "second")

    assert caught.value.port == broker.port
    assert broker.is_running()


def test_port_held_by_another_program_is_reported(tmp_path: Path) -> None:
    """Any listener on the port, not only a broker, makes start fail cleanly."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        with pytest.raises(PortInUseError):
            start_broker(port=port, prefer="amqtt", data_dir=tmp_path / "data")


def test_atexit_stops_a_broker_left_running(tmp_path: Path) -> None:
    """A program that forgets to stop its broker does not leave it behind when it exits."""
    code = (
        "from fedge.broker import start_broker\n"
        "b = start_broker(config='test')\n"
        "print(b.pid, b.port, b.data_dir, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    pid, port, data_dir = done.stdout.split()

    assert not process_exists(int(pid))
    assert not accepts_tcp(int(port))
    assert not Path(data_dir).exists()


# --- the embedded broker ------------------------------------------------------------------


def test_embedded_broker_serves_mqtt311(embedded_broker: RunningBroker) -> None:
    """The amqtt fallback speaks MQTT 3.1.1 and says so."""
    assert (embedded_broker.kind, embedded_broker.protocol) == ("amqtt", "3.1.1")
    assert retained_roundtrip(embedded_broker, "t/fedge/v1/models/m/global", "v2") == "v2"


def test_embedded_broker_restarts_on_the_same_port(embedded_broker: RunningBroker) -> None:
    """The embedded broker stops completely and comes back on its port."""
    port, pid = embedded_broker.port, embedded_broker.pid
    assert pid is not None

    embedded_broker.stop()
    assert not process_exists(pid)
    assert not accepts_tcp(port)
    embedded_broker.start()

    assert embedded_broker.port == port
    assert retained_roundtrip(embedded_broker, "t/x", "back") == "back"


def test_missing_mosquitto_falls_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without Mosquitto, start_broker runs amqtt and logs exactly one line saying so."""
    monkeypatch.setattr(fedge.broker, "find_mosquitto", lambda: None)
    caplog.set_level(logging.WARNING, logger="fedge")

    with start_broker() as broker:
        assert broker.kind == "amqtt"

    assert [r.getMessage() for r in caplog.records] == [EMBEDDED_FALLBACK_MESSAGE]


def test_missing_mosquitto_with_a_config_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Mosquitto config without Mosquitto fails and says how to install it."""
    monkeypatch.setattr(fedge.broker, "find_mosquitto", lambda: None)

    with pytest.raises(BrokerError, match=r"mosquitto, which is not installed.*apt-get"):
        start_broker(config="dev")


def test_find_mosquitto_looks_in_sbin_when_not_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Debian's /usr/sbin/mosquitto is found even when sbin is not on PATH."""
    fake = tmp_path / "mosquitto"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(fedge.broker, "_SBIN_DIRS", (tmp_path / "nowhere", tmp_path))

    assert find_mosquitto() == fake


# --- fedge broker -------------------------------------------------------------------------

_URL_LINE = re.compile(
    r"fedge broker: (?P<kind>mosquitto|amqtt) \(MQTT (?P<proto>5|3\.1\.1), pid (?P<pid>\d+)\) "
    r"listening on mqtt://127\.0\.0\.1:(?P<port>\d+)$"
)


def _fedge(*args: str) -> list[str]:
    return [sys.executable, "-m", "fedge.cli", *args]


@pytest.mark.parametrize(("flags", "kind"), [((), "mosquitto"), (("--embedded",), "amqtt")])
def test_fedge_broker_runs_until_sigint(tmp_path: Path, flags: tuple[str, ...], kind: str) -> None:
    """`fedge broker` prints its URL, serves, and on SIGINT stops the broker and exits 0."""
    log_file = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen(
        _fedge("broker", "--port", "0", "--data-dir", str(tmp_path / "d"), *flags),
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().strip() if ready else ""
        match = _URL_LINE.match(line)
        assert match, f"unexpected first line {line!r}"
        port = int(match["port"])
        assert match["kind"] == kind
        assert accepts_tcp(port)

        proc.send_signal(signal.SIGINT)
        returncode = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()

    assert returncode == 0, (tmp_path / "stderr.log").read_text()
    assert not process_exists(int(match["pid"]))
    assert not accepts_tcp(port)
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def test_fedge_broker_bad_config_is_one_line_error(tmp_path: Path) -> None:
    """A missing --broker-config ends in one error line and a non-zero exit, no traceback."""
    missing = tmp_path / "nope.conf"

    done = subprocess.run(
        _fedge("broker", "--port", "0", "--broker-config", str(missing)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fedge broker: error: broker config")
    assert str(missing) in lines[0]
