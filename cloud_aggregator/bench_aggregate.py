"""``fedge bench aggregate``: fedge's streaming FedAvg against Flower's aggregation functions.

Both sides start from the same updates in their own wire form and end with the weighted mean:

- fedge: each update is a ``ModelUpdate`` payload (msgpack, CRC-32, the form nodes publish);
  ``fedge.wire.decode`` validates it (checksum, dtypes, shapes, finiteness) and the
  ``FedAvg`` accumulator folds it, one update at a time; then ``result()``.
- Flower: each update is a ``FitRes`` whose ``Parameters`` hold the arrays serialised by
  ``ndarrays_to_parameters`` (``np.save`` bytes, the form Flower's gRPC messages carry).
  ``aggregate_inplace`` deserialises and accumulates them one at a time (what Flower's
  ``FedAvg`` does by default); ``aggregate`` deserialises all of them first, then averages
  (``FedAvg(inplace=False)``).

Times are the best of ``--repeat`` runs, the paths interleaved. Peak memory is what
``tracemalloc`` sees allocated during one run beyond what existed before it (numpy reports its
array buffers to tracemalloc), the same for every path; inputs are built before tracing starts.
A second, smaller model shows how each path's peak grows with the number of updates.

Flower is only needed here: ``pip install flwr`` (it is not a fedge dependency).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies import Contribution, FedAvg
from fedge.errors import ConfigError, FedgeError
from fedge.wire import ModelUpdate, decode, encode
from fedge.wire.codec import TRAILER_BYTES, checksum

MIB = 2**20
TARGET_TIME_RATIO = 0.5
Arrays = dict[str, NDArray[np.float32]]


@dataclass(frozen=True)
class Flower:
    """The Flower functions the benchmark calls, imported only when it runs."""

    version: str
    common: Any
    aggregate: Callable[[list[tuple[list[NDArray[Any]], int]]], list[NDArray[Any]]]
    aggregate_inplace: Callable[[list[tuple[Any, Any]]], list[NDArray[Any]]]


def import_flower() -> Flower:
    """Flower's serde and aggregation functions, or a ConfigError saying how to install it."""
    try:
        flwr = importlib.import_module("flwr")
        common = importlib.import_module("flwr.common")
        functions = importlib.import_module("flwr.server.strategy.aggregate")
    except ImportError as exc:
        raise ConfigError(
            "flwr",
            f"Flower is not installed ({exc}); this benchmark compares against it, so install "
            "it for the benchmark only: pip install flwr (it is not a fedge dependency)",
        ) from None
    return Flower(flwr.__version__, common, functions.aggregate, functions.aggregate_inplace)


def layer_sizes(params: int) -> dict[str, int]:
    """A state dict of ``params`` parameters shaped like a conv autoencoder: weights, biases."""
    sizes: dict[str, int] = {}
    remaining, layer = params, 0
    while remaining > 0:
        size = min(remaining, 16_384 * (1 + layer % 5))
        bias = min(64, size // 2) if size > 128 else 0
        sizes[f"layers.{layer}.weight"] = size - bias
        if bias:
            sizes[f"layers.{layer}.bias"] = bias
        remaining -= size
        layer += 1
    return sizes


@dataclass(frozen=True)
class Inputs:
    """The same updates in both wire forms."""

    fedge_payloads: list[bytes]
    flower_results: list[tuple[None, Any]]  # (client proxy, FitRes): Flower ignores the proxy

    def first(self, count: int) -> Inputs:
        return Inputs(self.fedge_payloads[:count], self.flower_results[:count])


def build_inputs(flower: Flower, params: int, updates: int, seed: int) -> Inputs:
    """``updates`` random deltas of a ``params``-parameter model, encoded both ways."""
    rng = np.random.default_rng(seed)
    sizes = layer_sizes(params)
    common = flower.common
    payloads: list[bytes] = []
    results: list[tuple[None, Any]] = []
    for i in range(updates):
        arrays = {
            name: rng.standard_normal(size, dtype=np.float32) * np.float32(0.01)
            for name, size in sizes.items()
        }
        samples = int(rng.integers(10, 1000))
        update = ModelUpdate(f"node-{i:04d}", "bench", 0, f"u{i:06d}", samples, arrays)
        payloads.append(encode(update))
        parameters = common.ndarrays_to_parameters(list(arrays.values()))
        status = common.Status(code=common.Code.OK, message="")
        results.append((None, common.FitRes(status, parameters, samples, {})))
    return Inputs(payloads, results)


def fedge_fedavg(inputs: Inputs) -> list[NDArray[np.float32]]:
    """Decode each payload and fold it into fedge's streaming FedAvg."""
    accumulator = FedAvg().accumulator()
    for payload in inputs.fedge_payloads:
        accumulator.fold(Contribution.from_update(decode(payload, ModelUpdate)))
    return list(accumulator.result().values())


def fedge_decode_only(inputs: Inputs) -> None:
    """The decode half of ``fedge_fedavg``, for the breakdown."""
    for payload in inputs.fedge_payloads:
        decode(payload, ModelUpdate)


def fedge_checksum_only(inputs: Inputs) -> None:
    """The CRC-32 that ``decode`` verifies first (``fedge.wire.codec``), for the breakdown."""
    for payload in inputs.fedge_payloads:
        checksum(memoryview(payload)[:-TRAILER_BYTES])


def flower_aggregate(flower: Flower, inputs: Inputs) -> list[NDArray[Any]]:
    """Flower's FedAvg with ``inplace=False``: deserialise everything, then ``aggregate``."""
    common = flower.common
    return flower.aggregate(
        [
            (common.parameters_to_ndarrays(fit.parameters), fit.num_examples)
            for _, fit in inputs.flower_results
        ]
    )


def flower_aggregate_inplace(flower: Flower, inputs: Inputs) -> list[NDArray[Any]]:
    """Flower's default FedAvg path: ``aggregate_inplace`` over the ``FitRes`` results."""
    return flower.aggregate_inplace(inputs.flower_results)


def best_time(run: Callable[[], object]) -> float:
    """Seconds for one call, after a collection so no earlier garbage is freed inside it."""
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def peak_mb(run: Callable[[], object]) -> float:
    """Peak MiB allocated during one call beyond what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return round(peak / MIB, 2)


def _paths(flower: Flower, inputs: Inputs) -> dict[str, Callable[[], object]]:
    return {
        "fedge": lambda: fedge_fedavg(inputs),
        "flower_aggregate": lambda: flower_aggregate(flower, inputs),
        "flower_aggregate_inplace": lambda: flower_aggregate_inplace(flower, inputs),
    }


def _max_difference(a: Sequence[NDArray[Any]], b: Sequence[NDArray[Any]]) -> float:
    return max(
        float(np.abs(x.reshape(-1) - y.reshape(-1)).max()) for x, y in zip(a, b, strict=True)
    )


class AggregateBenchmark:
    name = "aggregate"
    help = "streaming FedAvg (decode + fold) against Flower's aggregate and aggregate_inplace"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--params", type=int, default=1_000_000, help="model size")
        parser.add_argument("--updates", type=int, default=100, help="updates to aggregate")
        parser.add_argument("--repeat", type=int, default=5, help="timed runs per path (best)")
        parser.add_argument(
            "--small-params", type=int, default=100_000, help="model size of the memory series"
        )
        parser.add_argument(
            "--series",
            type=lambda text: [int(n) for n in text.split(",")],
            default=[10, 100, 1000],
            help="update counts of the memory series (comma-separated)",
        )

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        flower = import_flower()
        figures = self._comparison(flower, args.params, args.updates, args.repeat)
        figures.update(self._series(flower, args.small_params, args.series))
        return figures

    def _comparison(self, flower: Flower, params: int, updates: int, repeat: int) -> dict[str, Any]:
        """Time, peak memory and agreement of the three paths on the same updates."""
        inputs = build_inputs(flower, params, updates, seed=0)
        paths = {
            **_paths(flower, inputs),
            "fedge_decode": lambda: fedge_decode_only(inputs),
            "fedge_checksum": lambda: fedge_checksum_only(inputs),
        }
        times = dict.fromkeys(paths, float("inf"))
        for _ in range(repeat):
            for name, run in paths.items():
                times[name] = min(times[name], best_time(run))
        peaks = {name: peak_mb(run) for name, run in _paths(flower, inputs).items()}
        difference = _max_difference(fedge_fedavg(inputs), flower_aggregate_inplace(flower, inputs))
        flower_best = min(times["flower_aggregate"], times["flower_aggregate_inplace"])
        ratio = times["fedge"] / flower_best
        flower_bytes = sum(len(t) for t in inputs.flower_results[0][1].parameters.tensors)
        return {
            "flwr_version": flower.version,
            "params": params,
            "arrays": len(layer_sizes(params)),
            "updates": updates,
            "fedge_payload_bytes": len(inputs.fedge_payloads[0]),
            "flower_payload_bytes": flower_bytes,
            "fedge_time_s": round(times["fedge"], 4),
            "fedge_decode_time_s": round(times["fedge_decode"], 4),
            "fedge_decode_checksum_time_s": round(times["fedge_checksum"], 4),
            "fedge_fold_time_s": round(times["fedge"] - times["fedge_decode"], 4),
            "flower_aggregate_time_s": round(times["flower_aggregate"], 4),
            "flower_aggregate_inplace_time_s": round(times["flower_aggregate_inplace"], 4),
            "time_ratio_to_flower": round(ratio, 3),
            "time_ratio_target": TARGET_TIME_RATIO,
            "time_target_met": ratio <= TARGET_TIME_RATIO,
            "fedge_peak_mb": peaks["fedge"],
            "flower_aggregate_peak_mb": peaks["flower_aggregate"],
            "flower_aggregate_inplace_peak_mb": peaks["flower_aggregate_inplace"],
            "max_abs_difference_vs_flower": difference,
        }

    def _series(self, flower: Flower, params: int, counts: list[int]) -> dict[str, Any]:
        """Peak memory (and fedge's time) for each update count, on a smaller model."""
        everything = build_inputs(flower, params, max(counts), seed=1)
        series: dict[str, dict[str, float]] = {
            "fedge_peak_mb_by_updates": {},
            "flower_aggregate_inplace_peak_mb_by_updates": {},
            "flower_aggregate_peak_mb_by_updates": {},
            "fedge_time_s_by_updates": {},
        }
        for count in counts:
            paths = _paths(flower, everything.first(count))
            for name, run in paths.items():
                series[f"{name}_peak_mb_by_updates"][str(count)] = peak_mb(run)
            fedge_time = min(best_time(paths["fedge"]) for _ in range(3))
            series["fedge_time_s_by_updates"][str(count)] = round(fedge_time, 4)
        return {"small_model_params": params, **series}


BENCHMARK = AggregateBenchmark()


def main(argv: Sequence[str] | None = None) -> int:
    """Run as ``python -m cloud_aggregator.bench_aggregate [--json PATH]``, same output file."""
    from fedge.bench_cli import COMMAND  # noqa: PLC0415 - only when run as a script

    parser = argparse.ArgumentParser(prog="python -m cloud_aggregator.bench_aggregate")
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    BENCHMARK.configure(parser)
    args = parser.parse_args(argv)
    args.fedge_benchmark = BENCHMARK
    try:
        return COMMAND.run(args)
    except FedgeError as exc:
        sys.stderr.write(f"fedge bench aggregate: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
