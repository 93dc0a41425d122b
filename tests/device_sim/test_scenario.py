"""Parsing --inject specs and scenario files: what they mean, and one clear error when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_sim.behaviour import Anomaly, Drift, Kind
from device_sim.pump import CHANNELS
from device_sim.scenario import load_scenario, parse_duration, parse_inject
from fedge.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("250ms", 0.25), ("1.5m", 90.0), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_durations_take_units(text: str, seconds: float) -> None:
    """Times are seconds, or a number with ms, s, m, h or d."""
    assert parse_duration("at", text) == seconds


def test_inject_spec_builds_an_anomaly() -> None:
    """A compact spec sets kind, start, duration, channels, target and magnitude."""
    spec = "cavitation,at=10m,for=45s,channel=vibration_rms+flow,device=node-2/*,magnitude=0.4"

    behaviour = parse_inject(spec)

    assert behaviour == Anomaly(
        Kind.CAVITATION,
        at_s=600.0,
        for_s=45.0,
        channels=("vibration_rms", "flow"),
        magnitude=0.4,
        target="node-2/*",
    )


def test_inject_spec_builds_a_drift_and_accepts_spaces() -> None:
    """'drift' makes a Drift; spaces separate pairs as well as commas."""
    behaviour = parse_inject("drift at=1h channel=* scale=1.25 over=5m")

    assert behaviour == Drift(at_s=3600.0, channels=CHANNELS, scale=1.25, over_s=300.0)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("spkie,at=5s", "'spkie' is not a behaviour"),
        ("spike", "needs at=TIME"),
        ("spike,at=soon", "at: 'soon' is not a time"),
        ("spike,at=5s,channel=rpm", "channel: 'rpm' is not a channel"),
        ("spike,at=5s,colour=red", "unknown key 'colour' for spike"),
        ("spike,at=5s,magnitude=big", "magnitude: 'big' is not a number"),
        ("spike,at=5s,for", "'for' is not key=value"),
        ("spike,at=5s,at=6s", "'at' is given twice"),
        ("drift,at=5s,scale=1.1", "a drift needs channel="),
        ("drift,at=5s,channel=flow", "scale: a drift needs scale != 1 or shift != 0"),
        ("drift,at=5s,channel=flow,scale=2,for=3s", "unknown key 'for' for drift"),
        ("", "empty spec"),
    ],
)
def test_bad_inject_spec_names_the_bad_part(spec: str, fragment: str) -> None:
    """Every mistake in a spec is a ConfigError that quotes the spec and names what is wrong."""
    with pytest.raises(ConfigError) as caught:
        parse_inject(spec)

    assert caught.value.key.startswith("--inject")
    assert fragment in str(caught.value)


def test_scenario_file_lists_anomalies_then_drifts(tmp_path: Path) -> None:
    """[[anomaly]] and [[drift]] tables become behaviours, with TOML types or strings."""
    path = tmp_path / "scenario.toml"
    path.write_text(
        """
[[anomaly]]
kind = "stuck"
at = "2m"
for = 30
channel = ["temperature"]
device = "node-0/pump-1"

[[drift]]
at = 3600
channel = "flow"
shift = -0.1

[[anomaly]]
kind = "spike"
at = "90s"
magnitude = 2
"""
    )

    behaviours = load_scenario(path)

    assert behaviours == [
        Anomaly(
            Kind.STUCK, at_s=120.0, for_s=30.0, channels=("temperature",), target="node-0/pump-1"
        ),
        Anomaly(Kind.SPIKE, at_s=90.0, magnitude=2.0),
        Drift(at_s=3600.0, channels=("flow",), shift=-0.1),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[anomaly]]\nat = 5\n", "anomaly[0]: needs a kind"),
        ('[[anomaly]]\nkind = "spike"\nat = 5\nchannel = 3\n', "anomaly[0]: channel: 3 is not"),
        ('[[drift]]\nkind = "spike"\nat = 5\n', "drift[0]: a drift takes no 'kind'"),
        ('[[anomalies]]\nkind = "spike"\n', "unknown table 'anomalies'"),
        ("[[anomaly]\n", "not valid TOML"),
        ("anomaly = [1]\n", "anomaly[0]: must be a table"),
        ('[[anomaly]]\nkind = "spike"\nat = 1\n[[anomaly]]\nkind = "step"\n', "anomaly[1]"),
    ],
)
def test_bad_scenario_names_the_entry(tmp_path: Path, text: str, fragment: str) -> None:
    """A bad scenario file is a ConfigError naming the file, the entry and the problem."""
    path = tmp_path / "bad.toml"
    path.write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_scenario(path)

    assert str(path) in str(caught.value)
    assert fragment in str(caught.value)


def test_missing_scenario_file_is_a_config_error(tmp_path: Path) -> None:
    """A scenario path that does not exist is reported as such."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "nope.toml")


@given(
    st.lists(
        st.sampled_from(
            [
                "spike",
                "drift",
                "stuck",
                "at=",
                "for=",
                "channel=",
                "device=",
                "magnitude=",
                "scale=",
                "shift=",
                "over=",
                "1",
                "-2",
                "1e400",
                "nan",
                "5m",
                "*",
                "flow+",
                "/",
                ",",
                " ",
                "=",
                "node-0/pump-0",
                "x",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_any_spec_is_a_behaviour_or_a_config_error(spec: str) -> None:
    """Whatever the text, parsing yields a behaviour or a ConfigError, never anything else."""
    try:
        behaviour = parse_inject(spec)
    except ConfigError:
        return

    assert isinstance(behaviour, Anomaly | Drift)
