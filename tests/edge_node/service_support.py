"""Shared pieces for edge-node tests that cross the wire: a trained model and a signal."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edge_node.engine import EngineConfig
from edge_node.learning import LearningConfig
from edge_node.service import EdgeConfig, EdgeNode, client_options
from edge_node.windows import WindowConfig
from fedge.endpoint import BrokerUrl
from fedge.models import ModelSpec
from fedge.mqtt import MqttClient, MqttOptions, Protocol
from fedge.topics import TopicRoot
from fedge.wire import GlobalModel, SensorFrame

CHANNELS = ("vibration", "current", "pressure")
WINDOW = 20
ROWS = 10  # readings per frame


def signal(start: int, rows: int, seed: int = 0) -> NDArray[np.float32]:
    """A smooth, noisy three-channel signal; reading ``i`` is the same whatever the framing."""
    t = np.arange(start, start + rows, dtype=np.float64)
    noise = np.random.default_rng([seed, start]).standard_normal((rows, 3)) * 0.05
    base = np.stack([np.sin(t / 5.0), np.cos(t / 7.0), 0.5 * np.sin(t / 11.0)], axis=1)
    return (base + noise).astype(np.float32)


def frames(
    device: str, count: int, first_seq: int = 0, spikes: frozenset[int] = frozenset()
) -> Iterator[SensorFrame]:
    """``count`` frames of ``ROWS`` readings; reading indices in ``spikes`` get +8 on channel 0."""
    for seq in range(first_seq, first_seq + count):
        start = seq * ROWS
        values = signal(start, ROWS)
        for index in spikes:
            if start <= index < start + ROWS:
                values[index - start, 0] += 8.0
        yield SensorFrame(device, seq, CHANNELS, values, t0=1000.0 + start, period=1.0)


@functools.cache
def trained_model(version: int = 1, seed: int = 0) -> GlobalModel:
    """A dense autoencoder trained briefly on the normal signal (cached per version/seed)."""
    # Imported here, not at the top: the torch-free subprocess test imports this module.
    import torch  # noqa: PLC0415

    from fedge.models.networks import build_module, export_onnx, to_arrays  # noqa: PLC0415

    spec = ModelSpec("dense_ae", WINDOW, len(CHANNELS), {"hidden": [32, 8]})
    module = build_module(spec, seed=seed)
    raw = signal(0, 3000)
    norm = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    windows = np.lib.stride_tricks.sliding_window_view(norm, WINDOW, axis=0).transpose(0, 2, 1)
    data = torch.from_numpy(np.ascontiguousarray(windows))
    optimiser = torch.optim.Adam(module.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(300):
        batch = data[torch.randint(0, data.shape[0], (128,), generator=generator)]
        optimiser.zero_grad()
        loss = torch.mean((module(batch) - batch) ** 2)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    return GlobalModel(
        "default",
        version,
        to_arrays(module),
        export_onnx(module, spec),
        spec.to_plain(),
        created_at=time.time(),
    )


@dataclass
class ScoredLog:
    """Collects the on_scored hook's calls: which windows were scored, under which model."""

    calls: list[tuple[str, list[int], int]] = field(default_factory=list)

    def __call__(
        self, device: str, end_index: NDArray[np.int64], score: NDArray[np.float32], version: int
    ) -> None:
        self.calls.append((device, [int(i) for i in end_index], version))

    def indices(self, device: str) -> list[int]:
        return [i for d, idx, _ in self.calls if d == device for i in idx]

    def versions(self, device: str) -> list[int]:
        return [v for d, idx, v in self.calls if d == device for _ in idx]


def make_node(
    url: BrokerUrl,
    protocol: Protocol,
    topics: TopicRoot,
    state_dir: Path,
    *,
    node: str = "n1",
    scored: ScoredLog | None = None,
    calibration_windows: int = 400,
    learning: LearningConfig | None = None,
) -> EdgeNode:
    config = EdgeConfig(
        node=node,
        state_dir=state_dir,
        channels=CHANNELS,
        engine=EngineConfig(
            window=WindowConfig(WINDOW, stride=1), calibration_windows=calibration_windows
        ),
        heartbeat_s=3600,
        learning=learning or LearningConfig(),
    )
    options = client_options(node, topics, MqttOptions(protocol=protocol, keepalive_s=5))
    return EdgeNode(config, MqttClient(url, options), topics, on_scored=scored)
