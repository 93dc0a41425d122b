"""``--live``: the federated mode through a real Mosquitto, the aggregator service and one edge
node service per run (each training in its trainer child) matches the in-process run."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation import skab
from evaluation.inprocess import run_mode
from evaluation.live import run_live
from evaluation.nodes import prepare
from fedge.broker_process import RunningBroker
from tests.evaluation.skab_support import QUICK, write_dataset


def test_live_federated_matches_the_in_process_run(tmp_path: Path, broker: RunningBroker) -> None:
    root = write_dataset(tmp_path / "skab", runs=3)
    dataset = skab.load(root, min_rows=QUICK.train_rows + QUICK.window)
    nodes = [prepare(e, QUICK) for e in dataset.experiments]
    lines: list[str] = []
    inprocess = run_mode("federated", nodes, QUICK, lines.append)
    live = run_live(nodes, QUICK, str(broker.url), lines.append)

    assert live.live
    assert [r.index for r in live.rounds] == [1, 2]
    assert abs(live.overall.f1 - inprocess.overall.f1) < 0.01
    for node in nodes:
        here, there = inprocess.detections[node.node], live.detections[node.node]
        # same weights up to float summation order: same threshold, same episodes
        assert there.threshold == pytest.approx(here.threshold, rel=1e-4)
        assert len(there.episodes) == len(here.episodes) >= 1
        assert there.score.shape == here.score.shape
        # the broker saw an update, a command and a model per node per round, of the sizes
        # the in-process run encodes (ids and timestamps differ by a few bytes)
        for side in ("sent", "received"):
            measured = getattr(live.traffic, side)[node.node]
            encoded = getattr(inprocess.traffic, side)[node.node]
            assert measured == pytest.approx(encoded, rel=0.02), side
    assert live.traffic.final_model == pytest.approx(inprocess.traffic.final_model, rel=0.01)
    assert any("rounds done" in line for line in lines)
