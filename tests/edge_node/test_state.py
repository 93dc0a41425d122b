"""The node's state directory: atomic writes, round trips, and unreadable files refused."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_node.state import (
    Calibration,
    NodeStore,
    Normalisation,
    StateError,
    StoredModel,
    write_atomic,
)
from fedge.errors import FedgeError
from fedge.wire import Plain
from tests.edge_node.inference_support import CHANNELS, WINDOW

C = len(CHANNELS)


def _model(version: int = 3) -> StoredModel:
    architecture: dict[str, Plain] = {
        "architecture": "dense_ae",
        "window": WINDOW,
        "channels": C,
        "params": {},
    }
    return StoredModel("default", version, "global", architecture, b"\x08\x07onnx-bytes\x00\xff")


def _calibration(threshold: float | None = 0.125) -> Calibration:
    rng = np.random.default_rng(0)
    return Calibration(
        channels=CHANNELS,
        threshold=threshold,
        devices={
            "pump-1": Normalisation(
                rng.standard_normal(C).astype(np.float32),
                rng.uniform(0.1, 2.0, C).astype(np.float32),
            ),
            "pump-2": Normalisation(np.zeros(C, np.float32), np.ones(C, np.float32)),
        },
        model_version=3,
        windows=rng.standard_normal((7, WINDOW, C)).astype(np.float32),
    )


def _npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """The target holds the new bytes and the directory holds nothing else."""
    # Prepare
    target = tmp_path / "deep" / "model.onnx"
    write_atomic(target, b"old")

    # Execute
    write_atomic(target, b"new")

    # Assert
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]


def test_a_failed_atomic_write_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    """If the final rename fails, the error surfaces and no temporary file is left behind."""
    # Prepare
    target = tmp_path / "model.onnx"
    target.mkdir()
    (target / "keep").write_bytes(b"old")

    # Execute
    with pytest.raises(OSError):  # noqa: PT011 - the platform decides which OSError
        write_atomic(target, b"new")

    # Assert
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert (target / "keep").read_bytes() == b"old"


def test_an_empty_directory_holds_no_state(tmp_path: Path) -> None:
    """Nothing saved yet: both loads return None."""
    store = NodeStore(tmp_path / "state")

    assert store.load_model() is None
    assert store.load_calibration() is None


def test_model_round_trips(tmp_path: Path) -> None:
    """load_model returns exactly what save_model stored."""
    # Prepare
    store = NodeStore(tmp_path)

    # Execute
    store.save_model(_model())
    loaded = store.load_model()

    # Assert
    assert loaded == _model()


def test_saving_a_model_replaces_the_previous_one(tmp_path: Path) -> None:
    """The newest save wins, in both files."""
    store = NodeStore(tmp_path)
    store.save_model(_model(version=1))

    store.save_model(_model(version=2))

    loaded = store.load_model()
    assert loaded is not None
    assert loaded.version == 2


@pytest.mark.parametrize("threshold", [0.125, None])
def test_calibration_round_trips(tmp_path: Path, threshold: float | None) -> None:
    """Channels, threshold, per-device normalisation and windows come back bit for bit."""
    # Prepare
    store = NodeStore(tmp_path)
    saved = _calibration(threshold)

    # Execute
    store.save_calibration(saved)
    loaded = store.load_calibration()

    # Assert
    assert loaded is not None
    assert (loaded.channels, loaded.threshold, loaded.model_version) == (
        CHANNELS,
        threshold,
        3,
    )
    assert loaded.devices.keys() == saved.devices.keys()
    for device, norm in saved.devices.items():
        assert loaded.devices[device].mean.dtype == np.float32
        np.testing.assert_array_equal(loaded.devices[device].mean, norm.mean)
        np.testing.assert_array_equal(loaded.devices[device].std, norm.std)
    assert loaded.windows.dtype == np.float32
    np.testing.assert_array_equal(loaded.windows, saved.windows)


def test_normalisation_centres_and_scales_per_channel() -> None:
    """apply() gives (raw - mean) / std, channel by channel, as float32."""
    norm = Normalisation(np.array([1.0, -2.0], np.float32), np.array([2.0, 0.5], np.float32))
    raw = np.array([[[3.0, -2.0], [1.0, -1.0]]], np.float32)

    out = norm.apply(raw)

    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[1.0, 0.0], [0.0, 2.0]]])


def _break_json(text: str) -> Callable[[Path], object]:
    def corrupt(directory: Path) -> None:
        (directory / "model.json").write_text(text)

    return corrupt


MODEL_CORRUPTIONS = {
    "not json": _break_json("{ this is not json"),
    "not utf-8": lambda d: (d / "model.json").write_bytes(b'{"model": "\xff\xfe"}'),
    "a list": _break_json("[1, 2, 3]"),
    "no version": _break_json('{"model": "m", "origin": "global", "architecture": {}}'),
    "version not a number": _break_json(
        '{"model": "m", "version": "three", "origin": "global", "architecture": {}}'
    ),
    "architecture not a map": _break_json(
        '{"model": "m", "version": 1, "origin": "global", "architecture": 7}'
    ),
}


@pytest.mark.parametrize("corrupt", MODEL_CORRUPTIONS.values(), ids=MODEL_CORRUPTIONS.keys())
def test_unreadable_model_metadata_raises_state_error(
    tmp_path: Path, corrupt: Callable[[Path], object]
) -> None:
    """Torn or hand-edited model.json is a StateError, never another exception."""
    # Prepare
    store = NodeStore(tmp_path)
    store.save_model(_model())
    corrupt(tmp_path)

    # Execute
    with pytest.raises(StateError) as info:
        store.load_model()

    # Assert
    assert "model.json" in str(info.value)
    assert isinstance(info.value, FedgeError)


def _edit_calibration(edit: Callable[[dict[str, object]], object]) -> Callable[[Path], object]:
    def corrupt(directory: Path) -> None:
        path = directory / "calibration.json"
        meta = json.loads(path.read_text())
        edit(meta)
        path.write_text(json.dumps(meta))

    return corrupt


def _write_npy(data: bytes) -> Callable[[Path], object]:
    def corrupt(directory: Path) -> None:
        (directory / "calibration.npy").write_bytes(data)

    return corrupt


def _truncated_npy(directory: Path) -> None:
    path = directory / "calibration.npy"
    path.write_bytes(path.read_bytes()[:-40])


CALIBRATION_CORRUPTIONS: dict[str, Callable[[Path], object]] = {
    "json torn": lambda d: (d / "calibration.json").write_text('{"channels": ["a"'),
    "json a string": lambda d: (d / "calibration.json").write_text('"calibration"'),
    "no devices": _edit_calibration(lambda m: m.pop("devices")),
    "devices a list": _edit_calibration(lambda m: m.update(devices=[1, 2])),
    "device without std": _edit_calibration(lambda m: m.update(devices={"p": {"mean": [0.0]}})),
    "mean not numbers": _edit_calibration(
        lambda m: m.update(devices={"p": {"mean": ["a", "b", "c"], "std": [1.0, 1.0, 1.0]}})
    ),
    "mean of the wrong length": _edit_calibration(
        lambda m: m.update(devices={"p": {"mean": [0.0, 0.0], "std": [1.0, 1.0, 1.0]}})
    ),
    "zero std": _edit_calibration(
        lambda m: m.update(devices={"p": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 0.0, 1.0]}})
    ),
    "threshold not a number": _edit_calibration(lambda m: m.update(threshold="high")),
    "model version missing": _edit_calibration(lambda m: m.pop("model_version")),
    "npy empty": _write_npy(b""),
    "npy garbage": _write_npy(b"definitely not numpy" * 4),
    "npy truncated": _truncated_npy,
    "npy pickled objects": _write_npy(_npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)),
    "npy of text": _write_npy(_npy(np.array(["a", "b"]))),
    "npy not 3-d": _write_npy(_npy(np.zeros((7, WINDOW), np.float32))),
    "npy with other channels": _write_npy(_npy(np.zeros((7, WINDOW, C + 1), np.float32))),
}


@pytest.mark.parametrize(
    "corrupt", CALIBRATION_CORRUPTIONS.values(), ids=CALIBRATION_CORRUPTIONS.keys()
)
def test_unreadable_calibration_raises_state_error(
    tmp_path: Path, corrupt: Callable[[Path], object]
) -> None:
    """Torn, hand-edited or inconsistent calibration files are a StateError, nothing else."""
    # Prepare
    store = NodeStore(tmp_path)
    store.save_calibration(_calibration())
    corrupt(tmp_path)

    # Execute / Assert
    with pytest.raises(StateError, match="calibration"):
        store.load_calibration()


class _Exploit:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_a_pickled_calibration_file_never_runs_code(tmp_path: Path) -> None:
    """A .npy holding a pickle is refused without unpickling it."""
    # Prepare
    store = NodeStore(tmp_path)
    store.save_calibration(_calibration())
    marker = tmp_path / "pwned"
    payload = np.array([_Exploit(str(marker))], dtype=object)
    (tmp_path / "calibration.npy").write_bytes(_npy(payload, allow_pickle=True))

    # Execute
    with pytest.raises(StateError):
        store.load_calibration()

    # Assert
    assert not marker.exists()
