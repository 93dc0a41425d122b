"""`fedge demo` for real: broker, aggregator, edge nodes with their trainers, and the simulator
as processes; a short run to its end, and a run stopped with Ctrl-C, leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from demo.children import MARKER_ENV
from tests.broker_probes import process_exists
from tests.support import wait_for

pytestmark = pytest.mark.broker  # a real broker: Mosquitto when installed, else the embedded one

SHORT = ["--nodes", "2", "--devices", "1", "--rounds", "2", "--speed", "100"]


def _demo(tmp_path: Path, *extra: str) -> list[str]:
    report = tmp_path / "report"
    return [sys.executable, "-m", "fedge.cli", "demo", *SHORT, "--report", str(report), *extra]


def _of_run(under: Path) -> list[int]:
    """Live processes started for a run whose directory is in ``under``: the demo marks its
    children's environment with the run directory, and their children inherit it (Mosquitto
    and trainers included)."""
    prefix = f"{MARKER_ENV}=".encode()
    where = str(under.resolve()).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(prefix) and where in v for v in environ):
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _summary(tmp_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((tmp_path / "report" / "summary.json").read_text())
    return loaded


def test_a_short_demo_trains_detects_reports_and_leaves_no_process(tmp_path: Path) -> None:
    """Two nodes, two rounds: both rounds close, injected anomalies are detected, every round
    and node has its traffic, the report is written, and no process of the run survives."""
    from matplotlib import image  # noqa: PLC0415 - the report extra

    run_dir = tmp_path / "run"
    done = subprocess.run(_demo(tmp_path, "--run-dir", str(run_dir)), capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = _summary(tmp_path)
    assert summary["outcome"] == "completed"
    assert summary["rounds_closed"] == 2
    assert [v["origin"] for v in summary["versions"][:3]] == ["bootstrap", "round", "round"]
    for closed in summary["rounds"]:
        assert sorted(closed["per_node"]) == ["node-0", "node-1"]
        assert all(c["sent"] > 0 and c["received"] > 0 for c in closed["per_node"].values())
    assert summary["anomalies"]["injected_anomalies"] == 5
    assert summary["anomalies"]["detected"] >= 1
    totals = summary["totals"]
    assert totals["sensor_bytes"] > totals["raw_bytes"] > 0
    assert totals["exchanged"] > 0
    pixels = image.imread(tmp_path / "report" / "demo.png")
    assert pixels.shape[:2] > (400, 800)
    assert (tmp_path / "report" / "index.html").is_file()
    assert "what each round cost each node" in done.stdout
    assert "rounds 2/2 | nodes online 2/2" in done.stdout  # the status lines, not a TTY here
    assert not [pid for pid in summary["pids"].values() if process_exists(pid)]
    assert _of_run(run_dir) == []
    assert (run_dir / "logs" / "node-0.log").is_file()  # --run-dir is kept


def test_ctrl_c_while_nodes_train_stops_every_process_cleanly(tmp_path: Path) -> None:
    """SIGINT while a trainer child runs (a grandchild in a session of its own): the demo
    stops everything, says it was interrupted, exits 130, writes what it saw, and leaves no
    process and no temporary run directory behind."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}  # where the default run directory goes
    demo = subprocess.Popen(_demo(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    run_dir = scratch
    try:
        training = wait_for(
            lambda: any("edge_node.trainer" in _cmdline(p) for p in _of_run(run_dir)),
            timeout=120,
            interval=0.02,
        )
        running = _of_run(run_dir)
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()

    assert training, f"no trainer seen; the demo said:\n{out[-3000:]}{err[-3000:]}"
    assert demo.returncode == 130, out[-3000:] + err[-3000:]
    assert "fedge demo: interrupted" in err
    assert len(running) >= 6  # broker (and Mosquitto), aggregator, 2 nodes, sim, a trainer
    assert not [pid for pid in running if process_exists(pid)]
    assert _of_run(run_dir) == []
    assert "interrupted: stopping the simulator" in out
    summary = _summary(tmp_path)
    assert summary["outcome"] == "interrupted"
    assert summary["run_dir"] is None
    assert list(scratch.glob("fedge-demo-*")) == []  # the temporary run directory is gone


def test_a_child_that_dies_fails_the_run_and_keeps_its_logs(tmp_path: Path) -> None:
    """The aggregator killed mid-run: the demo stops the rest, names the dead process and its
    log, exits 2, and keeps its temporary run directory for the post-mortem."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    demo = subprocess.Popen(_demo(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    try:
        found = wait_for(lambda: _aggregator(scratch) is not None, timeout=60)
        aggregator = _aggregator(scratch)
        if aggregator is not None:
            os.kill(aggregator, signal.SIGKILL)
        out, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()

    assert found, out[-3000:] + err[-3000:]
    assert demo.returncode == 2, out[-3000:] + err[-3000:]
    assert "fedge demo: error: aggregator exited with code -9; its log is" in err
    [run_dir] = scratch.glob("fedge-demo-*")
    assert (run_dir / "logs" / "aggregator.log").is_file()
    assert f"logs, node state and registry: {run_dir}" in out
    assert _summary(tmp_path)["outcome"] == "failed"
    assert _of_run(scratch) == []


def _aggregator(under: Path) -> int | None:
    pids = [p for p in _of_run(under) if "fedge.cli aggregator" in _cmdline(p)]
    return pids[0] if pids else None


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    """A bad value or a broker option fails before anything starts, in one line, exit 2."""
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("x")
    cases = [
        (["--nodes", "0"], "config nodes: 0 is outside 1-8"),
        (["--speed", "500"], "config speed: 500 is outside 1-100"),
        (
            ["--broker", "mqtt://127.0.0.1:1883"],
            "config --broker: fedge demo runs its own local broker",
        ),
        (["--run-dir", str(taken)], "is not an empty directory"),
        (["--topic-prefix", "a b"], "config topic-prefix: topic prefix 'a b' is invalid"),
    ]
    for argv, message in cases:
        done = subprocess.run([sys.executable, "-m", "fedge.cli", "demo", *argv], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

        assert done.returncode == 2, (argv, done.stderr)
        assert done.stderr.strip().splitlines()[-1].startswith("fedge demo: error: "), argv
        assert message in done.stderr, (argv, done.stderr)
    assert not (tmp_path / "fedge-demo-report").exists()  # nothing created before the checks
