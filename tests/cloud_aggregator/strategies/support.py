"""Shared helpers for the strategy tests: random contributions and one of every strategy."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies import (
    Accumulator,
    Contribution,
    Strategy,
    make_strategy,
)

SHAPES: Mapping[str, tuple[int, ...]] = {
    "enc.0.weight": (4, 3),
    "enc.0.bias": (4,),
    "dec.weight": (2, 2, 3),
}

# One of every catalogued strategy, with parameters that work for any number of updates
# (Krum with f = 0), plus the norm filter around a streaming and a holding strategy.
EVERY_STRATEGY: Mapping[str, Callable[[], Strategy]] = {
    "fedavg": lambda: make_strategy("fedavg"),
    "fedprox": lambda: make_strategy("fedprox", mu=0.1),
    "fedavgm": lambda: make_strategy("fedavgm"),
    "fedadam": lambda: make_strategy("fedadam"),
    "fedyogi": lambda: make_strategy("fedyogi"),
    "fedadagrad": lambda: make_strategy("fedadagrad"),
    "median": lambda: make_strategy("median"),
    "trimmed_mean": lambda: make_strategy("trimmed_mean", beta=0.2),
    "krum": lambda: make_strategy("krum", f=0),
    "multikrum": lambda: make_strategy("multikrum", f=0, m=3),
    "fedavg+norm_filter": lambda: make_strategy("fedavg", norm_filter=2.0),
    "trimmed_mean+norm_filter": lambda: make_strategy("trimmed_mean", beta=0.2, norm_filter=2.0),
}


def arrays(rng: np.random.Generator, scale: float = 1.0) -> dict[str, NDArray[np.float32]]:
    """Random float32 arrays in ``SHAPES``, read-only like the wire decoder's views."""
    out = {}
    for name, shape in SHAPES.items():
        array = (rng.standard_normal(shape) * scale).astype(np.float32)
        array.flags.writeable = False
        out[name] = array
    return out


def contributions(count: int, seed: int = 0, outlier: float | None = None) -> list[Contribution]:
    """``count`` contributions with random weights; the last scaled by ``outlier`` if given."""
    rng = np.random.default_rng(seed)
    made = []
    for i in range(count):
        scale = outlier if outlier is not None and i == count - 1 else 1.0
        made.append(
            Contribution(
                f"node-{i:02d}", arrays(rng, scale), float(rng.integers(1, 100)), f"u{seed}-{i}"
            )
        )
    return made


def folded(strategy: Strategy, items: Sequence[Contribution]) -> Accumulator:
    """A new accumulator of ``strategy`` with ``items`` folded in order."""
    accumulator = strategy.accumulator()
    for item in items:
        accumulator.fold(item)
    return accumulator


def assert_close(
    actual: Mapping[str, NDArray[np.floating]],
    expected: Mapping[str, NDArray[np.floating]],
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Same names, shapes and values within float32 tolerance."""
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name].shape == value.shape, name
        np.testing.assert_allclose(actual[name], value, rtol=rtol, atol=atol, err_msg=name)
