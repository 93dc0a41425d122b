"""The three modes in process, on small synthetic runs: real training, real onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation import results, skab
from evaluation.inprocess import ModeResult, run_mode
from evaluation.nodes import NodeData, calibration_windows, prepare
from fedge.cli import main
from tests.evaluation.skab_support import QUICK, write_dataset


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> list[NodeData]:
    root = write_dataset(tmp_path_factory.mktemp("skab"), runs=3)
    dataset = skab.load(root, min_rows=QUICK.train_rows + QUICK.window)
    return [prepare(e, QUICK) for e in dataset.experiments]


@pytest.fixture(scope="module")
def federated(nodes: list[NodeData]) -> ModeResult:
    return run_mode("federated", nodes, QUICK, lambda line: None)


def test_a_node_calibrates_on_exactly_its_training_part(nodes: list[NodeData]) -> None:
    node = nodes[0]
    # windows of 30 ending at rows 29..399, then one per test row
    assert calibration_windows(node) == QUICK.train_rows - QUICK.window + 1
    assert node.test.shape[0] == node.experiment.rows - QUICK.train_rows
    assert int(node.test_end_index[0]) == QUICK.train_rows
    assert node.train_frames * QUICK.frame_rows == QUICK.train_rows
    # normalised with the training part's statistics: about zero mean, unit spread
    assert abs(float(node.calibration.mean())) < 0.1


def test_federated_rounds_detect_the_shift_and_count_the_traffic(
    federated: ModeResult, nodes: list[NodeData]
) -> None:
    assert [r.index for r in federated.rounds] == [1, 2]
    assert set(federated.detections) == {n.node for n in nodes}
    overall = federated.overall
    assert overall.tp + overall.fn == 300  # three runs, 100 anomalous readings each
    assert overall.f1 > 0.8, overall
    # A window ending up to w-1 readings after the anomaly still holds some of it: at most that
    # tail (and a few readings of hysteresis) is flagged outside each run's anomaly.
    assert overall.fp <= len(nodes) * (QUICK.window + 5), overall
    for record in federated.rounds:
        assert set(record.loss_after) == {n.node for n in nodes}
    traffic = federated.traffic
    for node in nodes:
        sent, received = traffic.sent[node.node], traffic.received[node.node]
        assert len(sent) == len(received) == 2
        assert all(b > 1000 for b in sent + received)  # an update / a model, not a stub
    assert traffic.final_model > 0
    assert traffic.total_received > traffic.total_sent  # the model carries its ONNX graph too


def test_local_nodes_exchange_nothing_and_centralized_ships_the_training_data(
    nodes: list[NodeData],
) -> None:
    local = run_mode("local", nodes, QUICK, lambda line: None)
    assert local.traffic.sent == {}
    assert local.overall.tp + local.overall.fn == 300
    central = run_mode("centralized", nodes, QUICK, lambda line: None)
    for node in nodes:  # the training frames, once
        assert central.traffic.sent[node.node][0] > QUICK.train_rows * 8 * 4
    assert central.overall.f1 > 0.5


def test_json_holds_overall_and_per_file_metrics(
    federated: ModeResult, nodes: list[NodeData], tmp_path: Path
) -> None:
    dataset = skab.Dataset(tmp_path, tuple(n.experiment for n in nodes), ())
    document = results.as_json(dataset, QUICK, [federated])
    path = tmp_path / "out.json"
    results.write_json(path, document)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    mode = loaded["modes"]["federated"]
    assert set(mode["overall"]) >= {"f1", "far", "mar"}
    assert set(mode["files"]) == {n.node for n in nodes}
    assert loaded["protocol"]["train_rows"] == 400
    assert loaded["anchors"]["Conv-AE"]["f1"] == 0.79
    table = results.table(dataset, [federated])
    assert "fedge federated" in table
    assert "SKAB Conv-AE" in table


def test_the_command_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_dataset(tmp_path / "skab", runs=2)
    out = tmp_path / "out.json"
    code = main(
        ["evaluate", "skab", str(root), "--mode", "local", "--rounds", "1", "--json", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "fedge local" in printed
    assert json.loads(out.read_text(encoding="utf-8"))["modes"]["local"]["overall"]["f1"] >= 0


def test_the_command_names_a_bad_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "skab", str(tmp_path / "missing")])
    assert code == 2
    assert "is not a directory" in capsys.readouterr().err


def test_the_command_names_a_bad_round_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_dataset(tmp_path / "skab", runs=1)
    code = main(["evaluate", "skab", str(root), "--rounds", "0"])
    assert code == 2
    assert "--rounds: 0 must be >= 1" in capsys.readouterr().err
