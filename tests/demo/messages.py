"""Wire messages for the demo's unit tests: what nodes, the aggregator and pumps publish."""

from __future__ import annotations

import numpy as np

from fedge.wire import Command, Event, GlobalModel, ModelUpdate, NodeStatus, Plain

T0 = 1_700_000_000.0


def status(node: str, online: bool = True, version: int | None = 0) -> NodeStatus:
    return NodeStatus(node, online=online, time=T0, model="default", model_version=version)


def model(version: int, round_id: int | None = None) -> GlobalModel:
    """A tiny global model; a round's version carries ``metrics["round"]`` as the aggregator's
    do, an async one ``mean_staleness``, version 0 neither (bootstrap)."""
    metrics = {} if version == 0 else {"mean_staleness": 1.0}
    if round_id is not None:
        metrics = {"round": float(round_id), "updates": 2.0}
    return GlobalModel(
        "default",
        version,
        {"w": np.zeros(4, np.float32)},
        b"onnx",
        parent_version=None if version == 0 else version - 1,
        metrics=metrics,
    )


def command(node: str, round_id: int, base: int = 0) -> Command:
    params: dict[str, Plain] = {"round_id": round_id, "base_version": base}
    return Command(node, "train", f"round.{round_id}.ab", T0, params, deadline=T0 + 60)


def update(node: str, round_id: int | None, base: int = 0) -> ModelUpdate:
    return ModelUpdate(
        node, "default", base, f"u-{node}-{round_id}", 100, {"w": np.zeros(4, np.float32)},
        round_id=round_id,
    )  # fmt: skip


def anomaly(node: str, device: str, state: str, start: float, end: float | None) -> Event:
    data: dict[str, Plain] = {"state": state, "start": start, "end": end}
    return Event(node, "anomaly", T0, f"e-{state}-{start}", device, data)


def event(node: str, kind: str, device: str | None = "pump-0", **data: Plain) -> Event:
    return Event(node, kind, T0, f"e-{kind}-{node}", device, data)
