"""The ``--report`` output: decodable PNGs, and an HTML page that links them and escapes text."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from matplotlib.image import imread

from device_sim.recording import CsvKind, Recording
from evaluation.inprocess import ModeResult, RoundRecord, Traffic
from evaluation.metrics import Confusion, Episode
from evaluation.nodes import Detection, NodeData, prepare
from evaluation.protocol import EvalConfig
from evaluation.report import write_report
from evaluation.results import ANCHORS
from evaluation.skab import Experiment

CONFIG = EvalConfig(train_rows=100, window=10, rounds=2, frame_rows=20)
ROWS = 300
NAMES = ("valve<1>/a&b", "valve2/0")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _node(name: str, anomaly: slice, seed: int) -> NodeData:
    """A two-channel run at 1 Hz with a 40 s gap, prepared by the node's own windowing."""
    rng = np.random.default_rng(seed)
    times = 1.6e9 + np.arange(ROWS, dtype=np.float64)
    times[250:] += 40.0
    values = rng.normal(size=(ROWS, 2)).astype(np.float32)
    truth = np.zeros(ROWS, dtype=bool)
    truth[anomaly] = True
    recording = Recording(Path(f"{name}.csv"), CsvKind.SKAB, ("a", "b"), times, values)
    node = re.sub(r"[^A-Za-z0-9_.:-]", "_", name.replace("/", "-"))
    return prepare(Experiment(name, node, recording, truth), CONFIG)


def _detection(data: NodeData, scale: float, threshold: float) -> Detection:
    """Scores ``scale``-times higher inside the true anomaly; flagged where above threshold."""
    truth = data.experiment.anomaly
    score = np.where(truth[data.test_end_index], scale, 0.5).astype(np.float32)
    flagged = np.zeros(ROWS - CONFIG.train_rows, dtype=bool)
    flagged[data.test_end_index[score > threshold] - CONFIG.train_rows] = True
    episodes = (Episode(float(data.test_end_time[0]), None),)
    confusion = Confusion.of(truth[CONFIG.train_rows :], flagged)
    return Detection(threshold, episodes, score, flagged, confusion)


def _result(mode: str, nodes: list[NodeData], scale: float, *, live: bool = False) -> ModeResult:
    traffic = Traffic()
    if mode == "federated":
        for node in nodes:
            for index in range(CONFIG.rounds):
                traffic.add(node.node, index, 100_000, 200_000)
            traffic.raw_bytes[node.node] = ROWS * 2 * 4
            traffic.frame_bytes[node.node] = ROWS * 2 * 6
        traffic.final_model = 200_000
    detections = {n.node: _detection(n, scale, threshold=1.0) for n in nodes}
    losses = [{n.node: 1.0 / (i + 1 + k) for k, n in enumerate(nodes)} for i in range(3)]
    rounds = [RoundRecord(i + 1, losses[i], losses[i + 1], 0.5 + 0.1 * i) for i in range(2)]
    return ModeResult(mode, detections, rounds, traffic, 1.0, live=live)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report over two runs, every mode plus a live federated run missing one run."""
    nodes = [_node(NAMES[0], slice(180, 230), 1), _node(NAMES[1], slice(150, 200), 2)]
    results = [_result(m, nodes, s) for m, s in (("local", 3.0), ("centralized", 30.0))]
    results.append(_result("federated", nodes, 300.0))
    live = _result("federated", nodes, 300.0, live=True)
    del live.detections[nodes[1].node]
    results.append(live)
    return write_report(tmp_path_factory.mktemp("report"), nodes, results, CONFIG)


def _links(page: Path) -> set[str]:
    return {unquote(m) for m in re.findall(r'(?:href|src)="([^"]+)"', page.read_text("utf-8"))}


def test_every_png_is_a_decodable_image(report: Path) -> None:
    """Per-run PNGs plus f1_by_mode, training and traffic, each a real image of sane size."""
    pngs = sorted(report.parent.rglob("*.png"))

    names = {p.relative_to(report.parent).as_posix() for p in pngs}

    assert {"f1_by_mode.png", "training.png", "traffic.png"} <= names
    assert len([n for n in names if n.startswith("runs/")]) == len(NAMES)
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = imread(png).shape
        assert 300 <= width <= 1500
        assert 300 <= height <= 1500


def test_page_links_every_png_and_nothing_missing(report: Path) -> None:
    """index.html links each PNG written, and every link is a relative path that exists."""
    pngs = {p.relative_to(report.parent).as_posix() for p in report.parent.rglob("*.png")}

    links = _links(report)

    assert pngs <= links
    for link in links:
        assert not link.startswith(("/", "http")), link
        assert (report.parent / link).is_file(), link


def test_page_escapes_run_names(report: Path) -> None:
    """A run name with HTML metacharacters appears escaped, never raw."""
    text = report.read_text("utf-8")

    assert "valve&lt;1&gt;/a&amp;b" in text
    assert "valve<1>" not in text
    assert "<script" not in text


def test_page_shows_modes_anchors_and_protocol(report: Path) -> None:
    """The overall table holds every mode (and the live run) beside SKAB's anchors, and the
    protocol lists every setting."""
    text = report.read_text("utf-8")

    for mode in ("federated", "federated (live)", "local", "centralized"):
        assert f"<th>fedge {mode}</th>" in text
    for name, f1, _, _ in ANCHORS:
        assert f"<th>SKAB {name}</th><td>{f1:.3f}</td>" in text
    assert "<td>13.7%</td><td>17.8%</td>" in text  # Conv-AE's FAR and MAR
    for key, value in CONFIG.describe().items():
        assert f"<tr><th>{key}</th><td>{html.escape(str(value))}</td></tr>" in text


def test_no_traffic_png_without_federated_traffic(tmp_path: Path) -> None:
    """Local nodes send nothing: the report leaves the traffic plot out rather than draw zeros."""
    nodes = [_node("valve1/0", slice(180, 230), 3)]

    page = write_report(tmp_path, nodes, [_result("local", nodes, 3.0)], CONFIG)

    assert not (tmp_path / "traffic.png").exists()
    assert "traffic.png" not in page.read_text("utf-8")
    assert (tmp_path / "training.png").read_bytes()[:8] == PNG_SIGNATURE
