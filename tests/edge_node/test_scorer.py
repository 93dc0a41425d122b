"""WindowScorer: reconstruction-error scores, and the models it must refuse before use."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from onnx import NodeProto, TensorProto, ValueInfoProto, helper

from edge_node.scorer import ModelRejectedError, WindowScorer
from fedge.errors import FedgeError
from tests.edge_node.inference_support import CHANNELS, WINDOW, Exported

C = len(CHANNELS)
F32, F64 = TensorProto.FLOAT, TensorProto.DOUBLE


def _tensor(name: str, shape: Sequence[int | str], elem: int = F32) -> ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def _graph(
    nodes: Sequence[NodeProto],
    *,
    inputs: Sequence[ValueInfoProto] = (),
    output: ValueInfoProto | None = None,
    constants: Sequence[TensorProto] = (),
    opset: int = 17,
) -> bytes:
    """A one-output ONNX model; input ``window`` and output ``reconstruction`` by default."""
    graph = helper.make_graph(
        list(nodes),
        "hostile",
        list(inputs) or [_tensor("window", ["batch", WINDOW, C])],
        [output or _tensor("reconstruction", ["batch", WINDOW, C])],
        initializer=list(constants),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _identity(
    *,
    inputs: Sequence[ValueInfoProto] = (),
    output: ValueInfoProto | None = None,
    opset: int = 17,
) -> bytes:
    node = helper.make_node("Identity", ["window"], ["reconstruction"])
    return _graph([node], inputs=inputs, output=output, opset=opset)


def _scalar(name: str, value: float) -> TensorProto:
    return helper.make_tensor(name, F32, [1], [value])


def _windows(k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((k, WINDOW, C)).astype(np.float32)


HOSTILE: dict[str, tuple[bytes, str]] = {
    "garbage bytes": (b"\x08\x07not an onnx model at all" * 8, "onnxruntime cannot load it"),
    "no bytes": (b"", "onnxruntime cannot load it"),
    "opset 99": (_identity(opset=99), "onnxruntime cannot load it"),
    "unknown operator": (
        _graph([helper.make_node("Reconstruct", ["window"], ["reconstruction"])]),
        "onnxruntime cannot load it",
    ),
    "window too long": (
        _identity(
            inputs=[_tensor("window", ["batch", WINDOW + 1, C])],
            output=_tensor("reconstruction", ["batch", WINDOW + 1, C]),
        ),
        f"this node needs [batch, {WINDOW}, {C}]",
    ),
    "too few channels": (
        _identity(
            inputs=[_tensor("window", ["batch", WINDOW, C - 1])],
            output=_tensor("reconstruction", ["batch", WINDOW, C - 1]),
        ),
        "has shape",
    ),
    "flat input": (
        _graph(
            [helper.make_node("Identity", ["window"], ["reconstruction"])],
            inputs=[_tensor("window", ["batch", WINDOW * C])],
            output=_tensor("reconstruction", ["batch", WINDOW * C]),
        ),
        "has shape",
    ),
    "float64 input": (
        _identity(
            inputs=[_tensor("window", ["batch", WINDOW, C], F64)],
            output=_tensor("reconstruction", ["batch", WINDOW, C], F64),
        ),
        "expected tensor(float)",
    ),
    "two inputs": (
        _graph(
            [helper.make_node("Add", ["window", "bias"], ["reconstruction"])],
            inputs=[_tensor("window", ["batch", WINDOW, C]), _tensor("bias", [1])],
        ),
        "expected 1 input",
    ),
    "float64 output": (
        _graph(
            [helper.make_node("Cast", ["window"], ["reconstruction"], to=F64)],
            output=_tensor("reconstruction", ["batch", WINDOW, C], F64),
        ),
        "output reconstruction is tensor(double)",
    ),
    "identity then a slice dropping a channel": (
        _graph(
            [
                helper.make_node("Identity", ["window"], ["same"]),
                helper.make_node("Slice", ["same", "starts", "ends", "axes"], ["reconstruction"]),
            ],
            output=_tensor("reconstruction", ["batch", WINDOW, "c"]),
            constants=[
                helper.make_tensor(name, TensorProto.INT64, [1], [value])
                for name, value in (("starts", 0), ("ends", C - 1), ("axes", 2))
            ],
        ),
        f"returned shape (2, {WINDOW}, {C - 1})",
    ),
    "transposing output": (
        _graph(
            [helper.make_node("Transpose", ["window"], ["reconstruction"], perm=[0, 2, 1])],
            output=_tensor("reconstruction", ["batch", "c", "w"]),
        ),
        f"returned shape (2, {C}, {WINDOW})",
    ),
    "batch fixed at one": (
        _identity(
            inputs=[_tensor("window", [1, WINDOW, C])],
            output=_tensor("reconstruction", [1, WINDOW, C]),
        ),
        "test inference failed",
    ),
    "reshape failing at run time": (
        _graph(
            [helper.make_node("Reshape", ["window", "shape"], ["reconstruction"])],
            constants=[helper.make_tensor("shape", TensorProto.INT64, [3], [1, WINDOW, C])],
        ),
        "test inference failed",
    ),
    "log of a negative constant": (
        _graph(
            [
                helper.make_node("Log", ["minus_one"], ["nan"]),
                helper.make_node("Add", ["window", "nan"], ["reconstruction"]),
            ],
            constants=[_scalar("minus_one", -1.0)],
        ),
        "non-finite values",
    ),
    "division by zero": (
        _graph(
            [helper.make_node("Div", ["window", "zero"], ["reconstruction"])],
            constants=[_scalar("zero", 0.0)],
        ),
        "non-finite values",
    ),
}


@pytest.mark.parametrize(("onnx_bytes", "reason"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_models_are_rejected_with_a_reason(onnx_bytes: bytes, reason: str) -> None:
    """Every model this node could not use raises ModelRejectedError naming why."""
    with pytest.raises(ModelRejectedError) as info:
        WindowScorer(onnx_bytes, WINDOW, C)

    assert reason in info.value.reason
    assert str(info.value) == f"model rejected: {info.value.reason}"
    assert isinstance(info.value, FedgeError)
    assert info.value.__cause__ is None


def test_truncated_model_bytes_are_rejected(dense_model: Exported) -> None:
    """A real model cut short in transit is refused, not half-loaded."""
    for cut in (1, len(dense_model.onnx) // 2, len(dense_model.onnx) - 1):
        with pytest.raises(ModelRejectedError, match="cannot load"):
            WindowScorer(dense_model.onnx[:cut], WINDOW, C)


@pytest.mark.parametrize(("window", "channels"), [(WINDOW + 4, C), (WINDOW, C + 1)])
def test_a_real_model_for_another_window_shape_is_rejected(
    dense_model: Exported, window: int, channels: int
) -> None:
    """A valid model whose input is not this node's [batch, w, c] is refused."""
    with pytest.raises(
        ModelRejectedError, match=rf"this node needs \[batch, {window}, {channels}\]"
    ):
        WindowScorer(dense_model.onnx, window, channels)


def test_a_wrongly_declared_output_shape_is_harmless_when_the_output_is_right() -> None:
    """The test run, not the graph's declaration, decides: an identity is accepted."""
    # Prepare
    misdeclared = _identity(output=_tensor("reconstruction", ["batch", C, WINDOW]))

    # Execute
    scorer = WindowScorer(misdeclared, WINDOW, C)

    # Assert
    assert not scorer.score(_windows(3)).score.any()


def test_score_is_mean_squared_error_per_window_and_per_channel(exported: Exported) -> None:
    """score = mean over (w, c) of (recon - x)^2; channel_error = mean over w, per channel."""
    # Prepare
    scorer = WindowScorer(exported.onnx, WINDOW, C)
    windows = _windows(5)
    with torch.no_grad():
        recon = exported.module(torch.from_numpy(windows)).numpy()
    err = (recon.astype(np.float64) - windows) ** 2

    # Execute
    scores = scorer.score(windows)

    # Assert
    assert scores.score.shape == (5,)
    assert scores.channel_error.shape == (5, C)
    assert scores.score.dtype == scores.channel_error.dtype == np.float32
    np.testing.assert_allclose(scores.channel_error, err.mean(axis=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores.score, err.mean(axis=(1, 2)), rtol=1e-4, atol=1e-6)


def test_a_model_outputting_zeros_scores_the_mean_square_of_the_input() -> None:
    """With a zero reconstruction the score is exactly the windows' mean square."""
    # Prepare
    zeros = _graph(
        [helper.make_node("Mul", ["window", "zero"], ["reconstruction"])],
        constants=[_scalar("zero", 0.0)],
    )
    scorer = WindowScorer(zeros, WINDOW, C)
    windows = _windows(4, seed=3)
    windows[2] = 0.0
    windows[3, :, 1] = 2.0

    # Execute
    scores = scorer.score(windows)

    # Assert
    np.testing.assert_allclose(scores.score, np.mean(windows**2, axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(scores.channel_error, np.mean(windows**2, axis=1), rtol=1e-6)
    assert scores.score[2] == 0.0
    assert scores.channel_error[3, 1] == pytest.approx(4.0)


def test_a_perfect_reconstruction_scores_zero_for_any_batch_size() -> None:
    """An identity model scores every window 0, whatever the batch size."""
    # Prepare
    scorer = WindowScorer(_identity(), WINDOW, C)

    # Execute
    sizes = {k: scorer.score(_windows(k, seed=k)) for k in (1, 2, 7, 300)}

    # Assert
    for k, scores in sizes.items():
        assert scores.score.shape == (k,)
        assert not scores.score.any()
        assert not scores.channel_error.any()


def test_scores_of_a_window_do_not_depend_on_its_batch(exported: Exported) -> None:
    """A window scores the same alone or inside a larger batch."""
    # Prepare
    scorer = WindowScorer(exported.onnx, WINDOW, C)
    windows = _windows(9, seed=5)

    # Execute
    together = scorer.score(windows).score
    alone = np.concatenate([scorer.score(windows[i : i + 1]).score for i in range(9)])

    # Assert
    np.testing.assert_allclose(together, alone, rtol=1e-5)
