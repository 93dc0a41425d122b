"""Global-model artifacts: bootstrap from a seed, a weights file or an ONNX file; export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud_aggregator.artifacts import bootstrap, export
from edge_node.scorer import WindowScorer
from fedge.errors import ConfigError
from fedge.models import ModelSpec

SPEC = ModelSpec("dense_ae", 20, 3, {"hidden": [16, 4]})


def test_same_seed_same_model_and_the_onnx_scores() -> None:
    """A seed fixes version 0; its ONNX graph loads in the edge's scorer."""
    arrays, onnx_bytes = bootstrap(SPEC, seed=7)
    again, _ = bootstrap(SPEC, seed=7)
    other, _ = bootstrap(SPEC, seed=8)

    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    assert not all(np.array_equal(arrays[k], other[k]) for k in arrays)
    scorer = WindowScorer(onnx_bytes, SPEC.window, SPEC.channels)
    assert scorer.score(np.zeros((2, 20, 3), np.float32)).score.shape == (2,)


@pytest.mark.parametrize("suffix", [".npz", ".onnx"])
def test_bootstrap_from_a_file_reproduces_its_weights(tmp_path: Path, suffix: str) -> None:
    """Weights from a .npz of named arrays or an exported ONNX file come back exactly."""
    arrays, onnx_bytes = bootstrap(SPEC, seed=1)
    path = tmp_path / f"init{suffix}"
    if suffix == ".npz":
        np.savez(path, allow_pickle=False, **arrays)
    else:
        path.write_bytes(onnx_bytes)

    loaded, _ = bootstrap(SPEC, seed=99, path=path)

    assert all(np.array_equal(arrays[k], loaded[k]) for k in arrays)


def test_export_refuses_weights_that_do_not_fit(tmp_path: Path) -> None:
    """Arrays with a wrong name or shape cannot become a version; files must be readable."""
    arrays, _ = bootstrap(SPEC, seed=1)
    wrong = {**arrays, "encoder.0.weight": np.zeros((2, 2), np.float32)}

    with pytest.raises(ConfigError, match=r"encoder\.0\.weight"):
        export(SPEC, wrong)
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"expected a \.npz"):
        bootstrap(SPEC, path=tmp_path / "w.bin")
