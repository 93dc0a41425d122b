"""ONNX Runtime scoring: reconstruction error per window. The only module importing onnxruntime.

A ``WindowScorer`` is built once per model, off the hot path, and refuses a model that would
not work here: bytes ONNX Runtime cannot load (garbage, unsupported opset or operators), an
input or output that is not ``[batch, w, c]`` float32 for this node's window, or a test run
that yields the wrong shape or non-finite values. Scoring is single-threaded by default so an
edge node leaves the device's other core free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from fedge.errors import FedgeError


class ModelRejectedError(FedgeError):
    """A model cannot be used by this node; ``reason`` says why. The node keeps its old one."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"model rejected: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Scores:
    """Per-window score (mean squared reconstruction error) and per-channel errors."""

    score: NDArray[np.float32]  # (k,)
    channel_error: NDArray[np.float32]  # (k, c)


class WindowScorer:
    """An onnxruntime session for one model, checked against this node's window shape."""

    def __init__(self, onnx_bytes: bytes, window: int, channels: int, threads: int = 1) -> None:
        self.window, self.channels = window, channels
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: a rejected model is reported by us
        try:
            self._session = ort.InferenceSession(
                onnx_bytes, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises many unrelated types
            raise ModelRejectedError(f"onnxruntime cannot load it: {_first_line(exc)}") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelRejectedError(f"expected 1 input, got {len(inputs)} inputs")
        spec = inputs[0]
        if spec.type != "tensor(float)":
            raise ModelRejectedError(f"input {spec.name} is {spec.type}, expected tensor(float)")
        shape = list(spec.shape)
        if len(shape) != 3 or shape[1:] != [window, channels]:
            raise ModelRejectedError(
                f"input {spec.name} has shape {shape}; "
                f"this node needs [batch, {window}, {channels}]"
            )
        out_spec = outputs[0]
        if out_spec.type != "tensor(float)":
            raise ModelRejectedError(
                f"output {out_spec.name} is {out_spec.type}, expected tensor(float)"
            )
        self._input = spec.name
        self._output = out_spec.name
        probe = np.zeros((2, window, channels), np.float32)
        try:
            out = self._session.run([self._output], {self._input: probe})[0]
        except Exception as exc:  # noqa: BLE001 - a broken graph fails here in many ways
            raise ModelRejectedError(f"test inference failed: {_first_line(exc)}") from None
        if out.shape != probe.shape or not np.isfinite(out).all():
            raise ModelRejectedError(
                f"test inference returned shape {out.shape} (expected {probe.shape}) "
                "or non-finite values"
            )

    def score(self, windows: NDArray[np.float32]) -> Scores:
        """Score a ``(k, w, c)`` block of normalised windows."""
        recon = self._session.run([self._output], {self._input: windows})[0]
        err = np.square(recon - windows, dtype=np.float32)
        channel_error = err.mean(axis=1, dtype=np.float32)
        return Scores(channel_error.mean(axis=1, dtype=np.float32), channel_error)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
