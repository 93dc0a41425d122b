"""The fleet generator: frame-size independent values, time order, labels and ground truth."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from device_sim.behaviour import LABEL_NAMES, Anomaly, Drift, Kind
from device_sim.fleet import Fleet, FleetSpec
from device_sim.ground_truth import read_events, write_events
from device_sim.pump import CHANNELS
from fedge.errors import ConfigError
from fedge.wire import LabelFrame, SensorFrame, decode, encode

START = 1_700_000_000.0


def _spec(**changes: object) -> FleetSpec:
    values: dict[str, object] = {
        "nodes": 2,
        "devices": 2,
        "rate": 100.0,
        "frame_size": 10,
        "readings": 2500,
        "seed": 11,
        "start": START,
    }
    return FleetSpec(**(values | changes))  # type: ignore[arg-type]


def _by_device(
    fleet: Fleet,
) -> dict[tuple[str, str], tuple[list[SensorFrame], list[LabelFrame]]]:
    out: dict[tuple[str, str], tuple[list[SensorFrame], list[LabelFrame]]] = defaultdict(
        lambda: ([], [])
    )
    for node, frame, labels in fleet.frames():
        out[node, frame.device][0].append(frame)
        if labels is not None:
            out[node, frame.device][1].append(labels)
    return out


def _stacked(frames: list[SensorFrame]) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    return np.concatenate([f.values for f in frames]), np.concatenate([f.times() for f in frames])


def test_frame_size_never_changes_a_value() -> None:
    """Frame sizes 10 and 50 (and 7, which splits chunks unevenly) give identical readings."""
    streams = {n: _by_device(Fleet(_spec(frame_size=n))) for n in (10, 50, 7)}

    for key, (frames, _) in streams[10].items():
        values, times = _stacked(frames)
        for size in (50, 7):
            other_values, other_times = _stacked(streams[size][key][0])
            assert np.array_equal(values, other_values)
            assert np.allclose(times, other_times, rtol=0, atol=1e-6)
        assert len(values) == 2500


def test_frames_come_in_time_order_with_regular_timestamps() -> None:
    """Frames never go back in time; each device's seq counts up; reading i is at t0 + i/rate."""
    fleet = Fleet(_spec(frame_size=50))

    emitted = list(fleet.frames())

    starts = [frame.t0 for _, frame, _ in emitted]
    assert starts == sorted(starts)
    assert [(n, f.device) for n, f, _ in emitted[:4]] == [
        ("node-0", "pump-0"),
        ("node-0", "pump-1"),
        ("node-1", "pump-0"),
        ("node-1", "pump-1"),
    ]
    frames = _by_device(fleet)["node-1", "pump-1"][0]
    assert [f.seq for f in frames] == list(range(50))
    assert all(f.period == pytest.approx(0.01) and f.channels == CHANNELS for f in frames)
    assert frames[7].t0 == START + 350 / 100.0


def test_last_frame_is_short_when_readings_do_not_divide() -> None:
    """A duration that is not a whole number of frames ends with a shorter frame."""
    frames = _by_device(Fleet(_spec(readings=95, frame_size=10)))["node-0", "pump-0"][0]

    assert [f.rows for f in frames] == [10] * 9 + [5]


def test_label_frames_accompany_only_anomalous_frames() -> None:
    """A label frame is sent with exactly the frames holding injected readings, and matches them."""
    spike = Anomaly(Kind.STEP, at_s=10.05, for_s=0.2, target="node-1/pump-0")
    fleet = Fleet(_spec(behaviours=(spike,)))

    streams = _by_device(fleet)

    assert all(not labels for key, (_, labels) in streams.items() if key != ("node-1", "pump-0"))
    labels = streams["node-1", "pump-0"][1]
    assert [lab.seq for lab in labels] == [100, 101, 102]
    assert labels[0].names == LABEL_NAMES
    column = np.concatenate([lab.values[:, 0] for lab in labels])
    assert column.tolist() == [0] * 5 + [Kind.STEP] * 20 + [0] * 5
    assert all(decode(encode(lab), LabelFrame) == lab for lab in labels)


def test_events_record_every_injection_and_round_trip_through_files(tmp_path: Path) -> None:
    """Ground truth lists each behaviour per device it hits, and survives CSV and JSON Lines."""
    behaviours = (
        Anomaly(Kind.SPIKE, at_s=1.0, target="pump-1"),
        Drift(at_s=20.0, channels=("flow", "pressure"), scale=1.25, over_s=1.0),
    )
    fleet = Fleet(_spec(behaviours=behaviours))

    events = fleet.events()
    for name in ("truth.csv", "truth.jsonl"):
        assert write_events(tmp_path / name, events) == len(events)
        assert read_events(tmp_path / name) == events

    spikes = [e for e in events if e.kind == "spike"]
    assert [(e.node, e.device) for e in spikes] == [("node-0", "pump-1"), ("node-1", "pump-1")]
    assert (spikes[0].start, spikes[0].end) == (START + 1.0, START + 1.01)
    assert (spikes[0].start_index, spikes[0].end_index, spikes[0].code) == (100, 101, 1)
    drifts = [e for e in events if e.kind == "drift"]
    assert len(drifts) == 4
    assert (drifts[0].channel, drifts[0].scale, drifts[0].magnitude) == (
        "flow+pressure",
        1.25,
        None,
    )


def test_events_cut_at_what_was_published() -> None:
    """Given the readings sent per device, events that never started are left out."""
    fleet = Fleet(_spec(behaviours=(Anomaly(Kind.STEP, at_s=5.0, for_s=10.0),)))
    sent = dict.fromkeys(fleet.signals, 700) | {("node-0", "pump-0"): 300}

    events = fleet.events(sent)

    assert len(events) == 3
    assert {e.end_index for e in events} == {700}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"rate": 0.01}, "rate"),
        ({"rate": 20_000.0}, "rate"),
        ({"nodes": 0}, "nodes"),
        ({"frame_size": 0}, "frame-size"),
        ({"seed": -1}, "seed"),
        ({"readings": 0}, "duration"),
        ({"behaviours": (Anomaly(Kind.SPIKE, at_s=0.0, target="node-9/*"),)}, "device"),
    ],
)
def test_invalid_fleet_is_a_config_error(changes: dict[str, object], key: str) -> None:
    """Rates outside 0.1 Hz-10 kHz, empty fleets and targets matching nothing are refused."""
    with pytest.raises(ConfigError) as caught:
        Fleet(_spec(**changes))

    assert caught.value.key == key
