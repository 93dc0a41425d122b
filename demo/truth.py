"""Ground truth for the demo: injected anomaly and drift spans rebuilt from label frames.

The simulator sends a ``LabelFrame`` beside every sensor frame that holds an injected reading
(``anomaly`` and ``drift`` columns, one row per reading) and nothing for normal frames. A span
therefore continues from one label frame to the next only when their ``seq`` numbers are
consecutive and the run reaches the frame boundary; anything else closes it. Spans are in data
time (the readings' own timestamps), so they match the ``start``/``end`` of anomaly events
exactly, whatever the simulator's speed-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedge.wire import LabelFrame


@dataclass
class Span:
    """One injected behaviour on one device: ``[start, end]`` in data time (epoch seconds)."""

    node: str
    device: str
    kind: str  # "anomaly" or "drift"
    start: float
    end: float
    arrived_at: float  # wall seconds since the demo started, when its first label arrived
    code: int = 0  # the simulator's anomaly code (docs/device_sim.md), 0 for a drift

    def overlaps(self, start: float, end: float | None, slack: float) -> bool:
        """True if ``[start, end]`` (``end`` None: still open) meets this span, allowing
        ``slack`` seconds after it for windows that still contain its last readings."""
        return start <= self.end + slack and (end is None or end >= self.start)


@dataclass
class _Open:
    span: Span
    seq: int  # the frame whose last row the span reached


class GroundTruth:
    """Collects injected spans per device from label frames, in arrival order."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._open: dict[tuple[str, str, str], _Open] = {}

    def add(self, node: str, frame: LabelFrame, at: float) -> None:
        """Fold one label frame into the spans of ``node``/``frame.device``."""
        for column, kind in enumerate(frame.names):
            if kind in ("anomaly", "drift"):
                self._fold(node, frame, column, at)

    def _fold(self, node: str, frame: LabelFrame, column: int, at: float) -> None:
        """Extend or open the spans of one label column (``anomaly`` or ``drift``)."""
        kind, values, times = frame.names[column], frame.values[:, column], _times(frame)
        key = (node, frame.device, kind)
        current = self._open.pop(key, None)
        rows = values.shape[0]
        for first, last in _runs(values != 0):
            continues = (
                current is not None
                and first == 0
                and current.seq == frame.seq - 1
                and (kind == "drift" or current.span.code == int(values[0]))
            )
            if current is not None and continues:
                current.span.end = float(times[last])
            else:
                span = Span(
                    node,
                    frame.device,
                    kind,
                    float(times[first]),
                    float(times[last]),
                    at,
                    code=int(values[first]) if kind == "anomaly" else 0,
                )
                self.spans.append(span)
                current = _Open(span, frame.seq)
            current.seq = frame.seq if last == rows - 1 else -2  # -2: cannot continue
        if current is not None and current.seq == frame.seq:
            self._open[key] = current

    def anomalies(self) -> list[Span]:
        return [s for s in self.spans if s.kind == "anomaly"]

    def drifts(self) -> list[Span]:
        return [s for s in self.spans if s.kind == "drift"]


def _times(frame: LabelFrame) -> NDArray[np.float64]:
    """The timestamp of every row (LabelFrame has no ``times()`` of its own, unlike
    SensorFrame: the same rule, regular ``t0 + i * period`` or explicit timestamps)."""
    if frame.timestamps is not None:
        return frame.timestamps
    period = frame.period if frame.period is not None else 0.0
    return frame.t0 + period * np.arange(frame.values.shape[0], dtype=np.float64)


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """``(first, last)`` row of every run of True in ``mask``, in order."""
    if not mask.any():
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]
