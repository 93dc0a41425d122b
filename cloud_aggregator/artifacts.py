"""Global-model artifacts on the aggregator: bootstrap, and ONNX export of each new version.

The aggregator is torch-capable (it runs in a container in the cloud): every version it
publishes carries both the named float32 arrays (what aggregation works on) and the ONNX graph
the edge runs, exported from those arrays.

A model is bootstrapped from a built-in architecture and a seed, from a ``.npz`` of named
float32 arrays (state-dict names; loaded without pickle), or from an ONNX file whose
initializers carry the state-dict names (as fedge's exporter writes them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from fedge.errors import ConfigError
from fedge.models import ModelSpec
from fedge.models.networks import build_module, export_onnx, load_arrays, to_arrays

Arrays = dict[str, NDArray[np.float32]]


def bootstrap(spec: ModelSpec, seed: int = 0, path: Path | None = None) -> tuple[Arrays, bytes]:
    """Version 0 of a model: its arrays and ONNX graph."""
    module = build_module(spec, seed=seed)
    if path is not None:
        load_arrays(module, _read_weights(path))
    return to_arrays(module), export_onnx(module, spec)


def export(spec: ModelSpec, arrays: Mapping[str, NDArray[np.float32]]) -> bytes:
    """The ONNX graph for ``arrays`` under ``spec`` (names and shapes must match exactly)."""
    module = build_module(spec)
    load_arrays(module, arrays)
    return export_onnx(module, spec)


def _read_weights(path: Path) -> Arrays:
    if not path.is_file():
        raise ConfigError("aggregator.init", f"{path} is not a file")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k], np.float32) for k in data.files}
        except (OSError, ValueError) as exc:
            raise ConfigError("aggregator.init", f"cannot read {path}: {exc}") from None
    if path.suffix == ".onnx":
        try:
            graph = onnx.load(str(path)).graph
        except Exception as exc:  # noqa: BLE001 - onnx raises protobuf's many error types
            raise ConfigError("aggregator.init", f"{path} is not an ONNX model: {exc}") from None
        return {i.name: np.asarray(numpy_helper.to_array(i), np.float32) for i in graph.initializer}
    raise ConfigError("aggregator.init", f"{path}: expected a .npz of named arrays or a .onnx file")
