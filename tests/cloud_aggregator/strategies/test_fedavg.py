"""FedAvg: the streaming weighted mean agrees with a plain numpy weighted average."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from cloud_aggregator.strategies import Contribution, FedAvg, WeightedMean
from cloud_aggregator.strategies.fedavg import BLOCK, CHUNK
from tests.cloud_aggregator.strategies.support import assert_close, contributions, folded

shapes = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
values = st.floats(-1e3, 1e3, width=32)
weights = st.floats(1e-3, 1e6)


@st.composite
def updates(draw: st.DrawFn) -> tuple[list[Contribution], list[NDArray[np.float32]]]:
    """1-40 contributions of one or two arrays (crossing the float32 block size)."""
    layout = draw(st.lists(shapes, min_size=1, max_size=2))
    count = draw(st.integers(1, 2 * BLOCK + 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    items, stacks = [], []
    spread = draw(values.filter(lambda v: v != 0))
    for i in range(count):
        arrays = {
            f"a{j}": np.asarray(rng.standard_normal(shape) * spread, np.float32)
            for j, shape in enumerate(layout)
        }
        items.append(Contribution(f"n{i}", arrays, draw(weights)))
    for j in range(len(layout)):
        stacks.append(np.stack([c.arrays[f"a{j}"] for c in items]))
    return items, stacks


def _reference(
    items: list[Contribution], stacks: list[NDArray[np.float32]]
) -> dict[str, NDArray[np.float64]]:
    w = np.array([c.weight for c in items])
    return {
        f"a{j}": np.average(s.astype(np.float64), axis=0, weights=w) for j, s in enumerate(stacks)
    }


@settings(max_examples=150, deadline=None)
@given(updates(), st.data())
def test_matches_numpy_weighted_average(
    case: tuple[list[Contribution], list[NDArray[np.float32]]], data: st.DataObject
) -> None:
    """Folded in any split and merged, FedAvg equals np.average with the sample weights."""
    items, stacks = case
    cut = data.draw(st.integers(0, len(items)))
    accumulator = folded(FedAvg(), items[:cut])
    accumulator.merge(folded(FedAvg(), items[cut:]))
    expected = _reference(items, stacks)
    scale = max(float(np.abs(s).max()) for s in stacks)
    # float32 subnormals (below ``tiny``) carry absolute precision only.
    atol = 1e-6 * scale + float(np.finfo(np.float32).tiny)
    assert_close(accumulator.result(), expected, rtol=1e-5, atol=atol)


def test_many_updates_keep_float64_accuracy() -> None:
    """1,000 folds stay within float32 rounding of the exact mean (blocks go to float64)."""
    items = contributions(1000, seed=7)
    w = np.array([c.weight for c in items])
    expected = {
        name: np.average(np.stack([c.arrays[name] for c in items]).astype(np.float64), 0, w)
        for name in items[0].arrays
    }
    assert_close(folded(FedAvg(), items).result(), expected, rtol=1e-6, atol=1e-7)


def test_arrays_larger_than_a_chunk() -> None:
    """Arrays spanning several multiply-add chunks (and an odd tail) fold correctly."""
    rng = np.random.default_rng(8)
    size = 2 * CHUNK + 17
    items = [
        Contribution(f"n{i}", {"w": rng.standard_normal(size).astype(np.float32)}, float(i + 1))
        for i in range(3)
    ]
    expected = np.average(np.stack([c.arrays["w"] for c in items]), 0, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        folded(FedAvg(), items).result()["w"], expected, rtol=1e-6, atol=1e-6
    )


def test_counts_and_weights() -> None:
    """count and total_weight add up every fold."""
    items = contributions(BLOCK + 2, seed=9)
    accumulator = folded(FedAvg(), items)
    assert isinstance(accumulator, WeightedMean)
    assert accumulator.count == BLOCK + 2
    assert accumulator.total_weight == pytest.approx(sum(c.weight for c in items))


def test_step_adds_the_delta() -> None:
    """The server step is global + delta, new arrays, the global model untouched."""
    base = {"w": np.ones(3, np.float32)}
    stepped = FedAvg().step(base, {"w": np.array([0.5, -1.0, 0.0], np.float32)})
    np.testing.assert_array_equal(stepped["w"], [1.5, 0.0, 1.0])
    np.testing.assert_array_equal(base["w"], [1.0, 1.0, 1.0])
