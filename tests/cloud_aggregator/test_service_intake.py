"""Hostile and repeated updates against a running aggregator over a real Mosquitto: each is
rejected with its reason recorded in the registry, never folded, and the service goes on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cloud_aggregator.config import BufferConfig
from fedge.broker import RunningBroker
from fedge.topics import NodeChannel, TopicRoot
from fedge.wire import encode
from tests.cloud_aggregator.service_support import ScriptedNode, config, running, update_for
from tests.support import wait_for

pytestmark = pytest.mark.broker


def test_hostile_updates_are_rejected_recorded_and_never_folded(
    broker: RunningBroker, topic_root: TopicRoot, tmp_path: Path
) -> None:
    """Wrong shapes, names, dtypes, models, versions, sample counts, rounds and spoofed
    senders are each rejected with a reason code; garbage is counted; a valid update sent
    twice makes exactly one async version."""
    settings = dataclasses.replace(
        config(tmp_path / "registry.db", enabled=False), buffer=BufferConfig(k=1)
    )
    evil = ScriptedNode(broker, topic_root, "evil")
    try:
        with running(broker, topic_root, settings) as handle:
            aggregator = handle.drive()
            base = aggregator.current
            first = next(iter(base.arrays))
            arrays = dict(update_for("evil", base).arrays)
            hostile = {
                "shape": update_for(
                    "evil", base, arrays={**arrays, first: arrays[first].reshape(-1)}
                ),
                "names": update_for(
                    "evil", base, arrays={k: v for k, v in arrays.items() if k != first}
                ),
                "dtype": update_for(
                    "evil", base, arrays={**arrays, first: arrays[first].astype(np.float16)}
                ),
                "unknown_model": update_for("evil", base, model="other"),
                "future_base": update_for("evil", base, base_version=7),
                "num_samples": update_for("evil", base, samples=10**12),
                "unknown_round": update_for("evil", base, round_id=42),
                "compression": update_for("evil", base, compression={"scheme": "zstd"}),
                "spoofed": update_for("n1", base),  # claims n1, sent on evil's topic
            }
            for update in hostile.values():
                evil.send(update)
            garbage = str(topic_root.node("evil", NodeChannel.UPDATES))
            evil.publish(garbage, b"\x00not a frame")
            evil.publish(garbage, encode(update_for("evil", base))[:-3])  # truncated
            assert wait_for(lambda: aggregator.intake.rejected == len(hostile), 20)
            assert wait_for(lambda: aggregator.rejects.total >= len(hostile) + 2, 20)

            valid = update_for("evil", base, seed=5)
            evil.send(valid)
            evil.send(valid)  # delivered twice: applied once
            assert wait_for(lambda: aggregator.stats.async_versions == 1, 20)
            assert wait_for(lambda: aggregator.intake.counts["duplicate"] == 1, 20)
            rejections = {r.update_id: r for r in aggregator.registry.rejections()}
            ledger = aggregator.registry.ledger("default") + aggregator.registry.ledger("other")
            result = aggregator.current
    finally:
        evil.close()

    for code, update in hostile.items():
        record = rejections[update.update_id]
        assert record.reason_code == code, (code, record.reason)
        assert record.reason
    assert "n1" in str(rejections[hostile["spoofed"].update_id].reason)
    assert "round 42" in str(rejections[hostile["unknown_round"].update_id].reason)
    assert [r.status for r in ledger if r.update_id == valid.update_id] == ["applied"]
    assert sum(r.status != "rejected" for r in ledger) == 1
    assert result.version == 1
    for name, array in result.arrays.items():
        expected = base.arrays[name] + np.asarray(valid.arrays[name], np.float32)
        np.testing.assert_allclose(array, expected, atol=1e-6)
