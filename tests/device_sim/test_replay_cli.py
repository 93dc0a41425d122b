"""`fedge replay` and `fedge record` as processes: summaries, one-line errors, clean signals."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from device_sim.csvio import read_recording
from fedge.broker import RunningBroker
from fedge.mqtt import MqttClient, MqttOptions
from fedge.topics import TopicRoot
from fedge.wire import SensorFrame, encode
from tests.device_sim.recordings import skab_dir, skab_oracle, write
from tests.support import wait_for

NO_BROKER = "mqtt://127.0.0.1:1"


def _fedge(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedge.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _broker_args(broker: RunningBroker, root: TopicRoot) -> list[str]:
    url = str(broker.url)
    return ["--broker", url, "--mqtt-protocol", broker.protocol, "--topic-prefix", root.prefix]


def _error_lines(stderr: str) -> list[str]:
    # Plugins another component has not installed yet are announced by fedge.cli itself.
    return [
        line for line in stderr.splitlines() if "entry" not in line or "unavailable" not in line
    ]


class _Recording:
    """`fedge record` running in the background, started once it says it is recording."""

    def __init__(self, *argv: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fedge.cli", "record", *argv, "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=30)
        except queue.Empty:
            first = ""
        if not first.startswith("recording "):
            self.process.kill()
            _, err = self.process.communicate()
            pytest.fail(f"fedge record did not start: {first!r} {err}")

    def wait(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err


def test_bad_file_is_one_line_exit_2_without_traceback(tmp_path: Path) -> None:
    """A non-numeric value stops replay before connecting: one line naming file:line, exit 2."""
    bad = write(tmp_path / "bad.csv", "timestamp,x\n1,2\n2,oops\n")

    result = _fedge("replay", str(bad), "--broker", NO_BROKER)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert _error_lines(result.stderr) == [
        f"fedge replay: error: {bad}:3: column 'x': 'oops' is not a number"
    ]


def test_skip_bad_rows_and_dry_run_report_the_mapping(tmp_path: Path) -> None:
    """--dry-run prints node/device per file; --skip-bad-rows counts what it skipped."""
    write(tmp_path / "rec" / "site" / "a.csv", "timestamp,x\n1,2\n2,oops\n3,4\n")

    result = _fedge("replay", str(tmp_path / "rec"), "--dry-run", "--skip-bad-rows")

    assert result.returncode == 0, result.stderr
    assert "node site device a (fedge): 2 rows, 1 channel" in result.stdout
    assert "1 bad row skipped" in result.stdout
    assert "skipped 1 bad rows of" in result.stderr


def test_missing_path_is_a_one_line_error() -> None:
    """`fedge replay` without a PATH says what is missing, exit 2."""
    result = _fedge("replay", "--broker", NO_BROKER)

    assert result.returncode == 2
    assert _error_lines(result.stderr) == [
        "fedge replay: error: give at least one CSV file or directory to replay (PATH...)"
    ]


def test_record_then_replay_in_two_commands(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """The README's two lines: record what SKAB replay publishes, replay that, record the same."""
    skab = skab_dir() / "valve1" / "0.csv"
    args = _broker_args(broker, topic_root)
    first = _Recording(str(tmp_path / "a"), "--frames", "115", *args)

    replay = _fedge("replay", str(skab), "--fast", *args)
    code, out, err = first.wait()
    second = _Recording(str(tmp_path / "b"), "--frames", "230", *args)
    again = _fedge("replay", str(tmp_path / "a"), "--fast", "--frame-size", "5", *args)
    code_b, _, err_b = second.wait()

    assert replay.returncode == 0, replay.stderr
    assert "replayed 1,147 rows in 115 frames" in replay.stdout
    assert code == 0, err
    assert "recorded 1,147 rows in 115 frames from 1 device on 1 node" in out
    _, values, _ = skab_oracle(skab)
    recorded = read_recording(tmp_path / "a" / "0" / "0.csv")
    assert np.array_equal(recorded.values.view(np.uint32), values.view(np.uint32))
    assert again.returncode == 0, again.stderr
    assert code_b == 0, err_b
    copy = (tmp_path / "b" / "0" / "0.csv").read_bytes()
    assert copy == (tmp_path / "a" / "0" / "0.csv").read_bytes()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_record_stops_cleanly_on_a_signal(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path, signum: int
) -> None:
    """Ctrl-C or SIGTERM ends a recording normally: rows flushed, summary printed, exit 0."""
    recording = _Recording(str(tmp_path), *_broker_args(broker, topic_root))
    path = tmp_path / "n1" / "dev.csv"
    with MqttClient(broker.url, MqttOptions(protocol=broker.protocol)) as client:
        for seq in range(3):
            values = np.full((4, 1), seq, dtype=np.float32)
            frame = SensorFrame("dev", seq, ("v",), values, t0=10.0 * seq, period=1.0)
            client.publish(str(topic_root.sensors("n1", "dev")), encode(frame))
        client.flush(10)
    # The first frames of a device wait in the reorder buffer; the file appears when they are
    # written, so the signal must find them buffered and flush them on the way out.
    assert not wait_for(path.exists, 0.5)

    recording.process.send_signal(signum)
    code, out, err = recording.wait()

    assert code == 0, err
    assert "Traceback" not in err
    assert "stopped: recorded 12 rows in 3 frames from 1 device on 1 node" in out
    assert read_recording(path).values[:, 0].tolist() == [0] * 4 + [1] * 4 + [2] * 4
