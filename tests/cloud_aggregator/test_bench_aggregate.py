"""`fedge bench aggregate`: runs every path on the same updates and names each figure."""

from __future__ import annotations

import argparse
import importlib
import io
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from cloud_aggregator import bench_aggregate
from cloud_aggregator.bench_aggregate import BENCHMARK, Flower, import_flower, layer_sizes
from fedge.errors import ConfigError


def _weighted_mean(results: list[tuple[list[NDArray[Any]], int]]) -> list[NDArray[Any]]:
    weights = [n for _, n in results]
    layers = zip(*(arrays for arrays, _ in results), strict=True)
    return [np.average(np.stack(layer), axis=0, weights=weights) for layer in layers]


def _stand_in() -> Flower:
    """Flower's serde and aggregation functions, imitated with numpy (flwr is bench-only)."""

    def to_parameters(arrays: list[NDArray[Any]]) -> SimpleNamespace:
        tensors = []
        for array in arrays:
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            tensors.append(buffer.getvalue())
        return SimpleNamespace(tensors=tensors)

    def to_ndarrays(parameters: SimpleNamespace) -> list[NDArray[Any]]:
        return [np.load(io.BytesIO(t), allow_pickle=False) for t in parameters.tensors]

    common = SimpleNamespace(
        ndarrays_to_parameters=to_parameters,
        parameters_to_ndarrays=to_ndarrays,
        Status=lambda code, message: SimpleNamespace(code=code, message=message),
        Code=SimpleNamespace(OK=0),
        FitRes=lambda status, parameters, num_examples, metrics: SimpleNamespace(
            parameters=parameters, num_examples=num_examples
        ),
    )

    def inplace(results: list[tuple[Any, Any]]) -> list[NDArray[Any]]:
        return _weighted_mean([(to_ndarrays(r.parameters), r.num_examples) for _, r in results])

    return Flower("stand-in", common, _weighted_mean, inplace)


def test_figures_are_named_and_fedge_agrees_with_flower(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small run reports every figure by name; fedge's mean equals the reference mean."""
    monkeypatch.setattr(bench_aggregate, "import_flower", _stand_in)
    args = argparse.Namespace(params=20_000, updates=5, repeat=1, small_params=2_000, series=[2, 6])

    figures = BENCHMARK.run(args)

    for key in (
        "fedge_time_s",
        "flower_aggregate_time_s",
        "flower_aggregate_inplace_time_s",
        "time_ratio_to_flower",
        "fedge_peak_mb",
        "flower_aggregate_peak_mb",
        "flower_aggregate_inplace_peak_mb",
    ):
        assert figures[key] > 0, key
    assert figures["max_abs_difference_vs_flower"] < 1e-6
    assert set(figures["fedge_peak_mb_by_updates"]) == {"2", "6"}
    assert figures["arrays"] == len(layer_sizes(20_000))


def test_layer_sizes_add_up_to_the_model() -> None:
    """The benchmark model has exactly the requested parameters, in weight and bias arrays."""
    sizes = layer_sizes(1_000_000)
    assert sum(sizes.values()) == 1_000_000
    assert any(name.endswith(".bias") for name in sizes)


def test_missing_flower_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without flwr the benchmark stops with a ConfigError naming the pip command."""

    def no_flwr(name: str) -> ModuleType:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", no_flwr)
    with pytest.raises(ConfigError, match="pip install flwr"):
        import_flower()
