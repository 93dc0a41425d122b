"""What an edge node keeps on disk so that a restart resumes scoring at once.

Layout of the state directory::

    model.onnx        the ONNX graph being scored
    model.json        model name, version, origin ("global" or "local"), architecture spec
    calibration.json  per-device normalisation (mean, std per channel), the node threshold,
                      and how it was calibrated
    calibration.npy   the calibration windows (normalised), for recalibrating a new model

Every file is written to a temporary name, fsynced and renamed, so a power cut leaves either
the old or the new version, never a torn one. JSON and ``.npy`` (loaded with
``allow_pickle=False``) only: nothing on disk can execute code.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedge.errors import FedgeError
from fedge.wire import Plain


class StateError(FedgeError):
    """The state directory holds something unreadable; the node starts without it."""


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and standard deviation of one device's calibration readings."""

    mean: NDArray[np.float32]
    std: NDArray[np.float32]

    def apply(self, raw: NDArray[np.float32]) -> NDArray[np.float32]:
        return ((raw - self.mean) / self.std).astype(np.float32, copy=False)


@dataclass(frozen=True)
class StoredModel:
    model: str
    version: int
    origin: str  # "global" (from the aggregator) or "local" (fine-tuned on this node)
    architecture: Mapping[str, Plain]
    onnx: bytes


@dataclass(frozen=True)
class Calibration:
    channels: tuple[str, ...]
    threshold: float | None  # informational: a restart recomputes it under the stored model
    devices: Mapping[str, Normalisation]
    model_version: int
    windows: NDArray[np.float32]  # normalised calibration windows (k, w, c)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class NodeStore:
    """Reads and writes the node's state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save_model(self, stored: StoredModel) -> None:
        meta = {
            "model": stored.model,
            "version": stored.version,
            "origin": stored.origin,
            "architecture": dict(stored.architecture),
        }
        write_atomic(self.directory / "model.onnx", stored.onnx)
        write_atomic(self.directory / "model.json", json.dumps(meta, indent=2).encode())

    def load_model(self) -> StoredModel | None:
        meta_path, onnx_path = self.directory / "model.json", self.directory / "model.onnx"
        if not meta_path.exists() or not onnx_path.exists():
            return None
        meta = _read_json(meta_path)
        try:
            return StoredModel(
                model=str(meta["model"]),
                version=int(meta["version"]),
                origin=str(meta["origin"]),
                architecture=dict(meta["architecture"]),
                onnx=onnx_path.read_bytes(),
            )
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise StateError(f"{meta_path} is incomplete: {exc}") from None

    def save_arrays(self, name: str, arrays: Mapping[str, NDArray[np.float32]]) -> None:
        """Named float32 arrays (model weights) as ``{name}.npz``: numeric only, no pickle."""
        buffer = io.BytesIO()
        weights = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        np.savez(buffer, allow_pickle=False, **weights)
        write_atomic(self.directory / f"{name}.npz", buffer.getvalue())

    def load_arrays(self, name: str) -> dict[str, NDArray[np.float32]] | None:
        path = self.directory / f"{name}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k], np.float32) for k in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise StateError(f"cannot read {path}: {exc}") from None
        if not arrays or not all(np.isfinite(a).all() for a in arrays.values()):
            raise StateError(f"{path} holds no weights or non-finite values")
        return arrays

    def save_calibration(self, calibration: Calibration) -> None:
        meta = {
            "channels": list(calibration.channels),
            "threshold": calibration.threshold,
            "model_version": calibration.model_version,
            "devices": {
                d: {"mean": n.mean.tolist(), "std": n.std.tolist()}
                for d, n in calibration.devices.items()
            },
        }
        with tempfile.TemporaryFile() as buffer:
            np.save(buffer, calibration.windows, allow_pickle=False)
            buffer.seek(0)
            write_atomic(self.directory / "calibration.npy", buffer.read())
        write_atomic(self.directory / "calibration.json", json.dumps(meta).encode())

    def load_calibration(self) -> Calibration | None:
        meta_path, windows_path = (
            self.directory / "calibration.json",
            self.directory / "calibration.npy",
        )
        if not meta_path.exists() or not windows_path.exists():
            return None
        meta = _read_json(meta_path)
        try:
            windows = np.load(windows_path, allow_pickle=False).astype(np.float32)
            devices = {
                str(d): Normalisation(
                    np.asarray(v["mean"], np.float32), np.asarray(v["std"], np.float32)
                )
                for d, v in meta["devices"].items()
            }
            calibration = Calibration(
                tuple(str(c) for c in meta["channels"]),
                None if meta["threshold"] is None else float(meta["threshold"]),
                devices,
                int(meta["model_version"]),
                windows,
            )
        except (KeyError, TypeError, ValueError, OSError, AttributeError, EOFError) as exc:
            raise StateError(f"{meta_path} is incomplete: {exc}") from None
        _check_shapes(calibration, meta_path)
        return calibration


def _check_shapes(calibration: Calibration, path: Path) -> None:
    """Refuse a calibration that would break scoring: every array must fit the channels."""
    c = len(calibration.channels)
    if calibration.windows.ndim != 3 or calibration.windows.shape[2] != c:
        raise StateError(
            f"{path}: calibration windows have shape {calibration.windows.shape}, "
            f"expected (k, w, {c})"
        )
    for device, norm in calibration.devices.items():
        if norm.mean.shape != (c,) or norm.std.shape != (c,) or not np.all(norm.std > 0):
            raise StateError(
                f"{path}: normalisation of {device} needs {c} means and {c} positive stds"
            )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise StateError(f"{path} does not hold a JSON object")
    return data
