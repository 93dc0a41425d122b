"""`fedge bench publish`: runs the ceiling and the simulator and reports their ratio."""

from __future__ import annotations

import json
from pathlib import Path

from fedge.broker import RunningBroker
from fedge.cli import main


def test_bench_publish_reports_sim_rate_and_ratio(broker: RunningBroker, tmp_path: Path) -> None:
    """A small run writes, per QoS, the ceiling, the sim's rate and ratio_to_ceiling keys."""
    out = tmp_path / "publish.json"

    code = main(
        [
            *("bench", "--broker", str(broker.url), "publish", "--json", str(out)),
            *("--readings", "4000", "--frame-sizes", "50", "--repeat", "1"),
        ]
    )

    assert code == 0
    results = json.loads(out.read_text())["results"]
    for qos in (0, 1):
        case = results[f"qos{qos}_frame50"]
        assert case["readings"] == 4000
        assert case["ceiling_readings_per_s"] > 0
        assert case["sim_readings_per_s"] > 0
        assert results[f"ratio_to_ceiling_qos{qos}_frame50"] == case["ratio_to_ceiling"]
