"""The model-artifact contract: ModelSpec, built-in networks, named arrays and ONNX export."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from fedge.errors import ConfigError
from fedge.models import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, ModelSpec
from fedge.models.networks import (
    ConvAutoencoder,
    DenseAutoencoder,
    build_module,
    export_onnx,
    load_arrays,
    parameter_count,
    to_arrays,
)
from fedge.wire import Plain
from tests.edge_node.inference_support import CHANNELS, WINDOW, Exported


class Doubler(nn.Module):
    """A user model in the ``package.module:Class`` form: reconstructs 2 * scale * x."""

    def __init__(self, window: int, channels: int, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), 2.0 * scale))
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Counted(nn.Module):
    """A user model whose state dict holds an integer buffer: not a valid artifact."""

    def __init__(self, window: int, channels: int) -> None:
        super().__init__()
        self.register_buffer("steps", torch.zeros(1, dtype=torch.int64))


USER_DOUBLER = f"{__name__}:Doubler"


def _run_onnx(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    return out


def _torch(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out: np.ndarray = module(torch.from_numpy(x)).numpy()
    return out


@pytest.mark.parametrize("architecture", ["dense_ae", "conv_ae", "my_pkg.models:Net"])
def test_spec_round_trips_through_its_plain_form(architecture: str) -> None:
    """ModelSpec.from_plain(spec.to_plain()) == spec."""
    # Prepare
    spec = ModelSpec(architecture, 60, 8, {"hidden": [32, 8]})

    # Execute
    back = ModelSpec.from_plain(spec.to_plain())

    # Assert
    assert back == spec
    assert spec.to_plain()["params"] == {"hidden": [32, 8]}


@pytest.mark.parametrize(
    ("architecture", "window", "channels", "key"),
    [
        ("lstm", 60, 8, "model.architecture"),
        ("os:system()", 60, 8, "model.architecture"),
        ("dense_ae", 1, 8, "model.window"),
        ("dense_ae", 100_001, 8, "model.window"),
        ("dense_ae", 60, 0, "model.channels"),
        ("dense_ae", 60, 4097, "model.channels"),
    ],
)
def test_invalid_specs_raise_config_error(
    architecture: str, window: int, channels: int, key: str
) -> None:
    """Unknown architectures and out-of-range shapes name the offending key."""
    with pytest.raises(ConfigError) as info:
        ModelSpec(architecture, window, channels)

    assert info.value.key == key


@pytest.mark.parametrize(
    ("plain", "key"),
    [
        ({"window": 60, "channels": 8}, "model"),
        ({"architecture": "dense_ae", "channels": 8}, "model"),
        ({"architecture": 3, "window": 60, "channels": 8}, "model.architecture"),
        ({"architecture": "dense_ae", "window": "60", "channels": 8}, "model"),
        ({"architecture": "dense_ae", "window": 60, "channels": 8, "params": [1]}, "model.params"),
    ],
)
def test_malformed_plain_specs_raise_config_error(plain: Mapping[str, Plain], key: str) -> None:
    """A spec received over the wire that lacks a key or has a wrong type is refused."""
    with pytest.raises(ConfigError) as info:
        ModelSpec.from_plain(plain)

    assert info.value.key == key


def test_build_module_is_deterministic_for_a_seed(exported: Exported) -> None:
    """Two modules built with the same seed have identical weights; another seed differs."""
    # Prepare
    spec = exported.spec

    # Execute
    a, b, c = build_module(spec, seed=4), build_module(spec, seed=4), build_module(spec, seed=5)

    # Assert
    arrays_a, arrays_b, arrays_c = to_arrays(a), to_arrays(b), to_arrays(c)
    assert all(np.array_equal(arrays_a[k], arrays_b[k]) for k in arrays_a)
    assert not all(np.array_equal(arrays_a[k], arrays_c[k]) for k in arrays_a)
    assert parameter_count(a) == sum(v.size for v in arrays_a.values())


def test_built_in_architectures_map_to_their_classes() -> None:
    """dense_ae and conv_ae build the documented autoencoders with their params."""
    dense = build_module(ModelSpec("dense_ae", 10, 2, {"hidden": [8, 3]}))
    conv = build_module(ModelSpec("conv_ae", 10, 2, {"filters": [4, 6], "kernel": 5}))

    assert isinstance(dense, DenseAutoencoder)
    assert isinstance(conv, ConvAutoencoder)
    assert to_arrays(dense)["encoder.2.weight"].shape == (3, 8)
    assert to_arrays(conv)["encoder.2.weight"].shape == (6, 4, 5)


@pytest.mark.parametrize("window", [5, 15, 16, 61])
def test_conv_autoencoder_restores_any_window_length(window: int) -> None:
    """The time axis halved twice and restored is cropped back to exactly w."""
    module = build_module(ModelSpec("conv_ae", window, 3, {"filters": [4, 4], "kernel": 3}))

    out = _torch(module, np.zeros((2, window, 3), np.float32))

    assert out.shape == (2, window, 3)


def test_user_model_is_loaded_from_its_import_path() -> None:
    """``package.module:Class`` is constructed with window, channels and the spec's params."""
    # Prepare
    spec = ModelSpec(USER_DOUBLER, 4, 2, {"scale": 1.5})

    # Execute
    module = build_module(spec)

    # Assert
    assert isinstance(module, Doubler)
    np.testing.assert_allclose(_torch(module, np.ones((1, 4, 2), np.float32)), 3.0)


@pytest.mark.parametrize(
    ("architecture", "params", "key"),
    [
        ("tests.edge_node.no_such_module:Net", {}, "model.architecture"),
        (f"{__name__}:NoSuchClass", {}, "model.architecture"),
        (USER_DOUBLER, {"depth": 3}, "model.params"),
        ("dense_ae", {"layers": 3}, "model.params"),
        ("collections:OrderedDict", {}, "model.architecture"),
    ],
)
def test_unbuildable_architectures_raise_config_error(
    architecture: str, params: dict[str, Plain], key: str
) -> None:
    """Missing modules or classes, unknown params and non-modules are refused by key."""
    with pytest.raises(ConfigError) as info:
        build_module(ModelSpec(architecture, 8, 2, params))

    assert info.value.key == key


def test_conv_autoencoder_refuses_an_even_kernel() -> None:
    """A kernel must be odd and at least 3 so padding keeps the time axis aligned."""
    with pytest.raises(ConfigError, match="kernel"):
        build_module(ModelSpec("conv_ae", 16, 3, {"kernel": 4}))


def test_arrays_round_trip_into_a_fresh_module(exported: Exported) -> None:
    """load_arrays(fresh, to_arrays(m)) makes fresh compute exactly what m computes."""
    # Prepare
    arrays = to_arrays(exported.module)
    fresh = build_module(exported.spec, seed=99)
    x = np.random.default_rng(0).standard_normal((4, WINDOW, len(CHANNELS))).astype(np.float32)

    # Execute
    load_arrays(fresh, arrays)

    # Assert
    np.testing.assert_array_equal(_torch(fresh, x), _torch(exported.module, x))
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays.values())
    assert set(arrays) == set(exported.module.state_dict())


def test_to_arrays_returns_copies(dense_model: Exported) -> None:
    """Changing an exported array never changes the module's weights."""
    # Prepare
    module = build_module(dense_model.spec, seed=0)
    arrays = to_arrays(module)
    before = to_arrays(module)

    # Execute
    for array in arrays.values():
        array[...] = array + 1.0

    # Assert
    after = to_arrays(module)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_integer_state_is_not_an_artifact() -> None:
    """A state dict holding a non-floating tensor cannot become named float32 arrays."""
    with pytest.raises(ConfigError, match="steps"):
        to_arrays(Counted(4, 2))


def test_load_arrays_refuses_missing_extra_and_misshapen_arrays(dense_model: Exported) -> None:
    """Names and shapes must match the network exactly; the module is left untouched."""
    # Prepare
    module = build_module(dense_model.spec, seed=0)
    good = to_arrays(module)
    name = "encoder.0.weight"
    missing = {k: v for k, v in good.items() if k != name}
    extra = {**good, "encoder.9.weight": np.zeros(3, np.float32)}
    misshapen = {**good, name: good[name][:, :-1]}

    # Execute
    errors = []
    for arrays in (missing, extra, misshapen):
        with pytest.raises(ConfigError) as info:
            load_arrays(module, arrays)
        errors.append(info.value.reason)

    # Assert
    assert name in errors[0]
    assert "missing" in errors[0]
    assert "encoder.9.weight" in errors[1]
    assert name in errors[2]
    assert "shape" in errors[2]
    assert all(np.array_equal(good[k], v) for k, v in to_arrays(module).items())


@pytest.mark.parametrize("batch", [1, 2, 33])
def test_onnx_runtime_and_torch_agree(exported: Exported, batch: int) -> None:
    """The exported graph reconstructs what the torch module does, for any batch size."""
    # Prepare
    x = np.random.default_rng(batch).standard_normal((batch, WINDOW, len(CHANNELS)))
    x = x.astype(np.float32)

    # Execute
    from_onnx = _run_onnx(exported.onnx, x)

    # Assert
    assert from_onnx.shape == x.shape
    assert from_onnx.dtype == np.float32
    np.testing.assert_allclose(from_onnx, _torch(exported.module, x), rtol=1e-4, atol=1e-5)


def test_export_follows_the_artifact_contract(exported: Exported) -> None:
    """One float32 input ``window`` [batch, w, c], one output ``reconstruction``, opset 17."""
    # Prepare
    model = onnx.load_from_string(exported.onnx)

    # Execute
    onnx.checker.check_model(model)

    # Assert
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    for value, name in ((graph_input, INPUT_NAME), (graph_output, OUTPUT_NAME)):
        assert value.name == name
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
        assert [d.dim_value for d in dims[1:]] == [WINDOW, len(CHANNELS)]
    assert {o.domain: o.version for o in model.opset_import}[""] == ONNX_OPSET


def test_a_user_model_exports_and_runs_under_onnx_runtime() -> None:
    """User models go through the same export as the built-in ones."""
    # Prepare
    spec = ModelSpec(USER_DOUBLER, 6, 2, {"scale": 0.5})
    x = np.arange(24, dtype=np.float32).reshape(2, 6, 2)

    # Execute
    onnx_bytes = export_onnx(build_module(spec), spec)

    # Assert
    np.testing.assert_allclose(_run_onnx(onnx_bytes, x), x)
