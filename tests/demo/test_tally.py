"""The demo's bookkeeping: who sent and received what, per round; presence, alarms, triggers."""

from __future__ import annotations

import numpy as np

from demo.tally import Tally
from fedge.wire import LabelFrame
from tests.demo.messages import T0, anomaly, command, event, model, status, update

NODES = ["node-0", "node-1"]


def _tally() -> Tally:
    return Tally(NODES, window_s=6.0)


def test_a_round_costs_its_command_update_and_resulting_model() -> None:
    """Round 1's cost per node is its train command and the version it produced (received)
    and the update with round_id 1 (sent); the node's totals add status and version 0."""
    tally = _tally()
    tally.global_model(model(0), size=1000, at=1.0)  # before anyone is online
    for node in NODES:
        tally.status(node, status(node), size=50, at=2.0)  # online: gets the retained v0

    for node in NODES:
        tally.command(node, command(node, 1), size=200, at=3.0)
    tally.update("node-0", update("node-0", 1), size=400, at=4.0)
    tally.update("node-1", update("node-1", 1), size=410, at=4.5)
    tally.global_model(model(1, round_id=1), size=1100, at=5.0)

    [round_1] = tally.rounds.values()
    assert (round_1.round_id, round_1.version, round_1.opened_at, round_1.closed_at) == (
        1, 1, 3.0, 5.0,
    )  # fmt: skip
    assert dict(round_1.sent) == {"node-0": 400, "node-1": 410}
    assert dict(round_1.received) == {"node-0": 1300, "node-1": 1300}
    node_0 = tally.traffic["node-0"]
    assert (node_0.sent, node_0.received) == (50 + 400, 1000 + 200 + 1100)
    assert (node_0.messages_sent, node_0.messages_received) == (2, 3)
    assert tally.versions == {0: (1.0, "bootstrap"), 1: (5.0, "round")}


def test_a_model_reaches_only_nodes_online_and_a_repeat_is_not_counted() -> None:
    """A version counts for the nodes online when it appears; the retained copy seen again
    after a reconnect is not new traffic; an offline node gets nothing."""
    tally = _tally()
    tally.status("node-0", status("node-0"), size=50, at=0.0)
    tally.status("node-1", status("node-1", online=False), size=50, at=0.0)

    tally.global_model(model(0), size=1000, at=1.0)
    tally.global_model(model(0), size=1000, at=2.0)

    assert tally.traffic["node-0"].received == 1000
    assert tally.traffic["node-1"].received == 0


def test_an_update_outside_a_round_counts_for_the_node_but_no_round() -> None:
    """A drift fine-tune's update (round_id None) is sent traffic, in no round; its async
    version is marked on the timeline."""
    tally = _tally()
    tally.status("node-1", status("node-1"), size=50, at=0.0)

    tally.update("node-1", update("node-1", None), size=400, at=1.0)
    tally.global_model(model(1), size=1000, at=2.0)

    assert tally.rounds == {}
    assert tally.traffic["node-1"].sent == 450
    assert tally.versions[1] == (2.0, "async")
    assert [m.what for m in tally.marks] == ["async_version"]


def test_sensor_frames_count_as_raw_data_per_node() -> None:
    """Sensor frames add their payload and rows x channels x 4 bytes to their node."""
    tally = _tally()

    tally.sensor("node-0", rows=10, channels=6, size=420)
    tally.sensor("node-0", rows=10, channels=6, size=420)

    traffic = tally.traffic["node-0"]
    assert (traffic.sensor_bytes, traffic.raw_bytes, traffic.readings) == (840, 480, 20)
    assert tally.snapshot().sensor_bytes == 840


def test_episodes_open_and_close_per_device() -> None:
    """An open anomaly event starts an episode on its device, the closed one ends it."""
    tally = _tally()

    tally.event("node-0", anomaly("node-0", "pump-0", "open", T0 + 10, None), size=80, at=1.0)
    tally.event("node-0", anomaly("node-0", "pump-1", "open", T0 + 11, None), size=80, at=1.5)
    tally.event("node-0", anomaly("node-0", "pump-0", "closed", T0 + 10, T0 + 20), 80, at=2.0)

    first, second = tally.episodes
    assert (first.device, first.start, first.end, first.closed_at) == ("pump-0", T0 + 10, T0 + 20,
                                                                       2.0)  # fmt: skip
    assert (second.device, second.end, second.closed_at) == ("pump-1", None, None)
    assert tally.snapshot().anomalies == 2
    assert tally.traffic["node-0"].sent == 240


def test_detection_matches_injected_anomalies_by_device_and_data_time() -> None:
    """An episode overlapping an injected span on the same pump detects it; one on another
    pump or at another time does not, and counts as not on injected behaviour."""
    tally = _tally()
    labels = np.zeros((10, 2), np.uint8)
    labels[:, 0] = 7
    tally.label("node-0", LabelFrame("pump-0", 5, ("anomaly", "drift"), labels, T0 + 5,
                                     period=0.1), at=1.0)  # fmt: skip
    tally.label("node-1", LabelFrame("pump-0", 9, ("anomaly", "drift"), labels, T0 + 9,
                                     period=0.1), at=1.0)  # fmt: skip

    tally.event("node-0", anomaly("node-0", "pump-0", "open", T0 + 5.5, None), 80, at=2.0)
    tally.event("node-0", anomaly("node-0", "pump-1", "open", T0 + 5.5, None), 80, at=2.0)

    assert tally.detection() == {
        "injected_anomalies": 2,
        "detected": 1,
        "injected_drifts": 0,
        "episodes": 2,
        "episodes_on_injected_behaviour": 1,
        "other_episodes": 1,
    }


def test_triggers_wait_for_their_fine_tune() -> None:
    """A trigger firing is pending until its node reports a fine-tune (or a failure)."""
    tally = _tally()

    tally.event("node-1", event("node-1", "trigger", statistic="level", channel="pressure"), 90,
                at=1.0)  # fmt: skip
    pending = tally.pending_finetunes()
    tally.event("node-1", event("node-1", "finetune", threshold=1.5, reason="level"), 90, at=2.0)

    assert pending == 1
    assert tally.pending_finetunes() == 0
    trigger, finetune = tally.marks
    assert (trigger.what, trigger.detail) == ("trigger", "level pressure")
    assert finetune.data == {"threshold": 1.5, "reason": "level"}
    snap = tally.snapshot()
    assert (snap.triggers, snap.finetunes) == (1, 1)


def test_presence_follows_the_latest_status() -> None:
    """Nodes online counts births minus deaths (a Last Will is an offline status)."""
    tally = _tally()

    for node in NODES:
        tally.status(node, status(node), size=50, at=1.0)
    tally.status("node-1", status("node-1", online=False), size=50, at=2.0)

    assert tally.snapshot().nodes_online == 1


def test_traffic_samples_are_cumulative() -> None:
    """Each sample holds the totals so far: exchanged, sensor frames, bare float32."""
    tally = _tally()
    tally.sample(0.0)
    tally.sensor("node-0", rows=10, channels=6, size=400)
    tally.status("node-0", status("node-0"), size=50, at=0.5)

    tally.sample(1.0)

    assert tally.series == [(0.0, 0, 0, 0), (1.0, 50, 400, 240)]
