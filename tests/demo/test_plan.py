"""The demo's plan: a scenario the simulator accepts, and command lines the real CLI parses."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cloud_aggregator.config import AGGREGATOR_KEYS, aggregator_config
from demo import plan
from demo.plan import DemoSettings, RunFiles
from device_sim.behaviour import Anomaly, Drift
from device_sim.scenario import parse_inject
from edge_node.cli import EDGE_KEYS, edge_config
from fedge.cli import build_parser, load_commands
from fedge.config import load_file, section
from fedge.errors import ConfigError

FILES = RunFiles(Path("/tmp/fedge-demo-test"))  # never written: paths only


def _parse(command: list[str]) -> argparse.Namespace:
    """Parse ``command`` as ``fedge`` would: an unknown flag makes argparse exit."""
    return build_parser(load_commands()).parse_args(command)


@pytest.mark.parametrize(("nodes", "devices"), [(3, 2), (1, 1), (2, 1), (8, 3)])
def test_the_scenario_parses_and_fits_the_calibrated_span(nodes: int, devices: int) -> None:
    """Every spec is valid for the simulator, lies within the scenario's data and names a
    pump of the fleet; the single drift comes last."""
    settings = DemoSettings(nodes=nodes, devices=devices)

    behaviours = [parse_inject(spec) for spec in plan.scenario(settings)]

    *anomalies, drift = behaviours
    assert isinstance(drift, Drift)
    assert all(isinstance(a, Anomaly) for a in anomalies)
    pumps = {f"node-{n}/pump-{d}" for n in range(nodes) for d in range(devices)}
    for behaviour in behaviours:
        assert behaviour.target in pumps
        assert behaviour.window(plan.RATE_HZ)[1] <= plan.SCENARIO_S * plan.RATE_HZ


def test_anomalies_cover_every_node_and_avoid_the_drifting_pump() -> None:
    """Each node gets an anomaly; none lands on the drifting pump once it drifts."""
    settings = DemoSettings(nodes=3, devices=2)

    *anomalies, drift = [parse_inject(spec) for spec in plan.scenario(settings)]

    assert isinstance(drift, Drift)
    assert {a.target.split("/")[0] for a in anomalies} == set(settings.node_ids)
    assert drift.target == "/".join(settings.drift_device)
    assert all(a.target != drift.target or a.at_s < drift.at_s for a in anomalies)


def test_every_child_command_parses_with_the_real_cli() -> None:
    """The demo passes only flags the components define (argparse would exit otherwise)."""
    settings = DemoSettings()
    common = plan.mqtt_flags("mqtt://127.0.0.1:1883", "5", "demo/fedge/v1", "info")

    broker = _parse(plan.broker_command(embedded=True))
    aggregator = _parse([*plan.aggregator_command(settings, FILES), *common])
    edge = _parse([*plan.edge_command("node-1", FILES), *common])
    warmup = _parse([*plan.sim_command(settings, FILES, start=1e9, scenario_run=False), *common])
    scenario = _parse([*plan.sim_command(settings, FILES, start=2e9, scenario_run=True), *common])

    assert (broker.port, broker.embedded) == (0, True)
    assert (aggregator.rounds, aggregator.min_nodes, aggregator.channels) == (3, 3, 6)
    assert (edge.node, edge.stride, edge.topic_prefix) == ("node-1", plan.STRIDE, "demo/fedge/v1")
    assert warmup.inject is None
    assert warmup.speed == f"{settings.warmup_speed:g}"
    assert len(scenario.inject) == len(plan.scenario(settings))
    assert scenario.start == "2000000000.000"


def test_config_tables_are_accepted_by_their_components(tmp_path: Path) -> None:
    """The [aggregator] and [edge] tables the demo writes hold only known keys and valid values."""
    (tmp_path / "aggregator.toml").write_text(plan.AGGREGATOR_TABLE, encoding="utf-8")
    (tmp_path / "edge.toml").write_text(plan.EDGE_TABLE, encoding="utf-8")
    files = RunFiles(tmp_path)
    settings = DemoSettings()
    agg_args = _parse(plan.aggregator_command(settings, files))
    edge_args = _parse(plan.edge_command("node-0", files))

    aggregator = aggregator_config(
        agg_args, section(load_file(files.aggregator_config), "aggregator", AGGREGATOR_KEYS)
    )
    edge = edge_config(edge_args, section(load_file(files.edge_config), "edge", EDGE_KEYS))

    assert aggregator.rounds.interval_s == 1.0
    assert aggregator.rounds.min_nodes == settings.nodes
    assert edge.engine.calibration_windows == plan.CALIBRATION_WINDOWS
    assert edge.engine.window.stride == plan.STRIDE


def test_one_warmup_run_covers_calibration() -> None:
    """A warm-up run holds enough readings for every pump to finish calibrating."""
    readings = plan.WARMUP_S * plan.RATE_HZ

    windows = (readings - plan.WINDOW) // plan.STRIDE + 1

    assert windows >= plan.CALIBRATION_WINDOWS


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nodes": 0}, "nodes"),
        ({"devices": 9}, "devices"),
        ({"rounds": 0}, "rounds"),
        ({"speed": 0.5}, "speed"),
        ({"seed": -1}, "seed"),
        ({"timeout_s": 0.0}, "timeout"),
    ],
)
def test_bad_settings_are_config_errors(changes: dict[str, float], message: str) -> None:
    """Out-of-range settings fail with a ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=message):
        DemoSettings(**changes)  # type: ignore[arg-type]
