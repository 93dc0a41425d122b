"""``fedge bench codec``: wire overhead and speed of the msgpack codec.

Overhead is measured on a 1M-parameter model update in two layouts (one flat array, and the
many-layer shape of a real network), relative to the raw float32 bytes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from fedge.wire import ModelUpdate, SensorFrame, decode, encode


def _timed(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-three mean seconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def _layered(total: int, rng: np.random.Generator) -> dict[str, np.ndarray[Any, Any]]:
    """A 1M-parameter state dict shaped like a conv autoencoder (weights and biases)."""
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    remaining, layer = total, 0
    while remaining > 0:
        size = min(remaining, 16_384 * (1 + layer % 5))
        bias = min(64, size // 2) if size > 128 else 0
        arrays[f"encoder.{layer}.weight"] = rng.standard_normal(size - bias).astype(np.float32)
        if bias:
            arrays[f"encoder.{layer}.bias"] = rng.standard_normal(bias).astype(np.float32)
        remaining -= size
        layer += 1
    return arrays


class CodecBenchmark:
    name = "codec"
    help = "wire-format overhead and encode/decode speed"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--params", type=int, default=1_000_000)

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        rng = np.random.default_rng(0)
        raw_bytes = args.params * 4
        results: dict[str, Any] = {"params": args.params, "raw_array_bytes": raw_bytes}
        layouts = {
            "flat": {"w": rng.standard_normal(args.params).astype(np.float32)},
            "layered": _layered(args.params, rng),
        }
        for layout, arrays in layouts.items():
            update = ModelUpdate(
                "node-1", "conv-ae", 7, "0f3c2a9e1b7d4c55", 1000, arrays, {"loss": 0.1}
            )
            payload = encode(update)
            results[f"update_{layout}"] = {
                "arrays": len(arrays),
                "payload_bytes": len(payload),
                "overhead_percent": round(100 * (len(payload) - raw_bytes) / raw_bytes, 4),
                "encode_ms": round(1000 * _timed(partial(encode, update), 10), 3),
                "decode_ms": round(1000 * _timed(partial(decode, payload), 10), 3),
            }
        values = rng.standard_normal((50, 8)).astype(np.float32)
        frame = SensorFrame(
            "pump-1", 1, tuple(f"c{i}" for i in range(8)), values, t0=1.7e9, period=0.01
        )
        payload = encode(frame)
        results["sensor_frame_50x8"] = {
            "payload_bytes": len(payload),
            "raw_value_bytes": values.nbytes,
            "encode_us": round(1e6 * _timed(lambda: encode(frame), 2000), 2),
            "decode_us": round(1e6 * _timed(lambda: decode(payload, SensorFrame), 2000), 2),
        }
        return results


BENCHMARK = CodecBenchmark()
