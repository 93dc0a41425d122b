"""The job directory: jobs and results round-trip, and hostile files are refused with JobError."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from edge_node.trainer import (
    JobError,
    TrainingConfig,
    TrainingJob,
    TrainingMetrics,
    TrainingResult,
    read_job,
    read_result,
    write_job,
    write_result,
)
from edge_node.trainer.files import (
    BASE_FILE,
    JOB_FILE,
    ONNX_FILE,
    RESULT_ARRAYS_FILE,
    RESULT_FILE,
    WINDOWS_FILE,
)
from fedge.errors import ConfigError
from tests.edge_node.trainer.support import CHANNELS, WINDOW, spec, windows


def _base() -> dict[str, NDArray[np.float32]]:
    rng = np.random.default_rng(1)
    return {
        "encoder.0.weight": rng.standard_normal((4, WINDOW * CHANNELS)).astype(np.float32),
        "encoder.0.bias": rng.standard_normal(4).astype(np.float32),
    }


def _job(config: TrainingConfig | None = None) -> TrainingJob:
    return TrainingJob(spec(), _base(), windows(10), config or TrainingConfig())


def _metrics(**changes: float | bool) -> TrainingMetrics:
    values: dict[str, float | bool] = {
        "loss_before": 0.5,
        "loss_after": 0.25,
        "samples": 10,
        "validation_samples": 0,
        "epochs_completed": 1,
        "batches": 1,
        "stopped_early": False,
        "train_s": 0.01,
        "duration_s": 2.5,
        "peak_rss_mb": 250.0,
    }
    values.update(changes)
    return TrainingMetrics(**values)  # type: ignore[arg-type]


def _result() -> TrainingResult:
    arrays = {k: v + 1 for k, v in _base().items()}
    return TrainingResult(arrays, b"\x08\x07onnx\x00\xff", _metrics())


def _npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _npz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_job_round_trips_through_its_directory(tmp_path: Path) -> None:
    """read_job returns the spec, config, base arrays and windows write_job stored."""
    # Prepare
    config = TrainingConfig(epochs=3, lr=0.01, mu=0.5, validation_fraction=0.2, threads=2)
    job = _job(config)

    # Execute
    write_job(tmp_path, job)
    loaded = read_job(tmp_path)

    # Assert
    assert (loaded.spec, loaded.config) == (job.spec, config)
    assert list(loaded.base) == list(job.base)
    for name, array in job.base.items():
        assert loaded.base[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.base[name], array)
    np.testing.assert_array_equal(loaded.windows, job.windows)
    assert loaded.windows.flags.writeable


def test_result_round_trips_and_matches_its_base(tmp_path: Path) -> None:
    """read_result returns the arrays, ONNX bytes and metrics write_result stored."""
    # Prepare
    result = _result()

    # Execute
    write_result(tmp_path, result)
    loaded = read_result(tmp_path, _base())

    # Assert
    assert loaded.onnx == result.onnx
    assert loaded.metrics == result.metrics
    for name, array in result.arrays.items():
        np.testing.assert_array_equal(loaded.arrays[name], array)


def test_writing_a_job_removes_the_previous_result(tmp_path: Path) -> None:
    """A stale result can never be mistaken for the new job's."""
    write_result(tmp_path, _result())

    write_job(tmp_path, _job())

    assert not (tmp_path / RESULT_FILE).exists()
    assert not (tmp_path / ONNX_FILE).exists()
    assert not (tmp_path / RESULT_ARRAYS_FILE).exists()


def test_metrics_give_the_float_map_of_a_model_update() -> None:
    """as_floats() turns every figure into a float, stopped_early into 0 or 1."""
    floats = _metrics(stopped_early=True).as_floats()

    assert floats["stopped_early"] == 1.0
    assert floats["samples"] == 10.0
    assert all(type(v) is float for v in floats.values())


def _write(name: str, data: bytes) -> Callable[[Path], object]:
    return lambda directory: (directory / name).write_bytes(data)


def _edit_meta(edit: Callable[[dict[str, object]], object]) -> Callable[[Path], object]:
    def corrupt(directory: Path) -> None:
        meta = json.loads((directory / JOB_FILE).read_text())
        edit(meta)
        (directory / JOB_FILE).write_text(json.dumps(meta))

    return corrupt


def _huge_header() -> bytes:
    """A .npy header declaring a terabyte of float32 followed by 12 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 38, WINDOW, CHANNELS)}
    )
    return header.getvalue() + b"\x00" * 12


GOOD_WINDOWS = windows(4)
JOB_CORRUPTIONS: dict[str, Callable[[Path], object]] = {
    "job.json missing": lambda d: (d / JOB_FILE).unlink(),
    "job.json not json": _write(JOB_FILE, b"{ not json"),
    "job.json a list": _write(JOB_FILE, b"[1, 2]"),
    "job.json wrong format": _edit_meta(lambda m: m.update(format="something-else")),
    "job.json newer version": _edit_meta(lambda m: m.update(version=2)),
    "job.json unknown key": _edit_meta(lambda m: m.update(extra=1)),
    "spec not a map": _edit_meta(lambda m: m.update(spec=[1])),
    "spec unknown architecture": _edit_meta(
        lambda m: m.update(spec={"architecture": "os:system()", "window": WINDOW, "channels": 3})
    ),
    "config unknown key": _edit_meta(lambda m: m.update(config={"epochz": 2})),
    "config wrong type": _edit_meta(lambda m: m.update(config={"epochs": "2"})),
    "config boolean number": _edit_meta(lambda m: m.update(config={"batch_size": True})),
    "config out of range": _edit_meta(lambda m: m.update(config={"lr": -1.0})),
    "config NaN": _edit_meta(lambda m: m.update(config={"mu": float("nan")})),
    "array names differ": _edit_meta(lambda m: m.update(arrays=["encoder.0.weight"])),
    "windows missing": lambda d: (d / WINDOWS_FILE).unlink(),
    "windows garbage": _write(WINDOWS_FILE, b"\x00garbage bytes, not an array"),
    "windows pickled objects": _write(
        WINDOWS_FILE, _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)
    ),
    "windows float64": _write(WINDOWS_FILE, _npy(GOOD_WINDOWS.astype(np.float64))),
    "windows big-endian": _write(WINDOWS_FILE, _npy(GOOD_WINDOWS.astype(">f4"))),
    "windows NaN": _write(WINDOWS_FILE, _npy(np.full_like(GOOD_WINDOWS, np.nan))),
    "windows wrong channels": _write(WINDOWS_FILE, _npy(np.zeros((4, WINDOW, 5), np.float32))),
    "windows flat": _write(WINDOWS_FILE, _npy(np.zeros(48, np.float32))),
    "windows empty": _write(WINDOWS_FILE, _npy(np.zeros((0, WINDOW, 3), np.float32))),
    "windows truncated": _write(WINDOWS_FILE, _npy(GOOD_WINDOWS)[:-7]),
    "windows header lies": _write(WINDOWS_FILE, _huge_header()),
    "base missing": lambda d: (d / BASE_FILE).unlink(),
    "base not a zip": _write(BASE_FILE, b"PK\x03\x04 but not really"),
    "base pickled member": _write(
        BASE_FILE,
        _npz(
            {
                "encoder.0.weight.npy": _npy(np.array([object()]), allow_pickle=True),
                "encoder.0.bias.npy": _npy(np.zeros(4, np.float32)),
            }
        ),
    ),
    "base member not npy": _write(BASE_FILE, _npz({"encoder.0.weight.txt": b"1 2 3"})),
    "base integer array": _write(
        BASE_FILE,
        _npz(
            {
                "encoder.0.weight.npy": _npy(np.zeros((4, 48), np.int32)),
                "encoder.0.bias.npy": _npy(np.zeros(4, np.float32)),
            }
        ),
    ),
    "base infinite weight": _write(
        BASE_FILE,
        _npz(
            {
                "encoder.0.weight.npy": _npy(np.full((4, 48), np.inf, np.float32)),
                "encoder.0.bias.npy": _npy(np.zeros(4, np.float32)),
            }
        ),
    ),
}


@pytest.mark.parametrize("corrupt", JOB_CORRUPTIONS.values(), ids=JOB_CORRUPTIONS.keys())
def test_hostile_job_files_raise_job_error(
    tmp_path: Path, corrupt: Callable[[Path], object]
) -> None:
    """Corrupt, hand-edited or malicious job files are a JobError naming the job, nothing else."""
    # Prepare
    write_job(tmp_path, _job())
    corrupt(tmp_path)

    # Execute
    with pytest.raises(JobError) as info:
        read_job(tmp_path)

    # Assert
    assert str(tmp_path) in str(info.value)


def _edit_result(edit: Callable[[dict[str, object]], object]) -> Callable[[Path], object]:
    def corrupt(directory: Path) -> None:
        meta = json.loads((directory / RESULT_FILE).read_text())
        edit(meta)
        (directory / RESULT_FILE).write_text(json.dumps(meta))

    return corrupt


def _set_metric(key: str, value: object) -> Callable[[Path], object]:
    def edit(meta: dict[str, object]) -> None:
        metrics = meta["metrics"]
        assert isinstance(metrics, dict)
        metrics[key] = value

    return _edit_result(edit)


RESULT_CORRUPTIONS: dict[str, Callable[[Path], object]] = {
    "result.json missing": lambda d: (d / RESULT_FILE).unlink(),
    "onnx missing": lambda d: (d / ONNX_FILE).unlink(),
    "onnx empty": _write(ONNX_FILE, b""),
    "arrays missing": lambda d: (d / RESULT_ARRAYS_FILE).unlink(),
    "metrics not a map": _edit_result(lambda m: m.update(metrics=3)),
    "metric missing": _edit_result(lambda m: m.update(metrics={"loss_before": 1.0})),
    "metric NaN": _set_metric("loss_after", float("nan")),
    "metric negative": _set_metric("duration_s", -1.0),
    "metric wrong type": _set_metric("samples", "ten"),
    "metric float for a count": _set_metric("batches", 1.5),
    "arrays of another shape": _write(
        RESULT_ARRAYS_FILE,
        _npz(
            {
                "encoder.0.weight.npy": _npy(np.zeros((8, 48), np.float32)),
                "encoder.0.bias.npy": _npy(np.zeros(4, np.float32)),
            }
        ),
    ),
}


@pytest.mark.parametrize("corrupt", RESULT_CORRUPTIONS.values(), ids=RESULT_CORRUPTIONS.keys())
def test_unusable_results_raise_job_error(
    tmp_path: Path, corrupt: Callable[[Path], object]
) -> None:
    """A missing, torn or mismatched result is a JobError, never a half-read result."""
    # Prepare
    write_result(tmp_path, _result())
    corrupt(tmp_path)

    # Execute / Assert
    with pytest.raises(JobError):
        read_result(tmp_path, _base())


def test_config_from_plain_takes_defaults_for_absent_keys() -> None:
    """Only the keys given change; integers are accepted where floats are expected."""
    config = TrainingConfig.from_plain({"epochs": 4, "lr": 1})

    assert config == TrainingConfig(epochs=4, lr=1.0)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"epochs": 0}, "trainer.epochs"),
        ({"epochs": 1.5}, "trainer.epochs"),
        ({"batch_size": 0}, "trainer.batch_size"),
        ({"mu": -0.1}, "trainer.mu"),
        ({"lr": float("inf")}, "trainer.lr"),
        ({"time_budget_s": 0.0}, "trainer.time_budget_s"),
        ({"validation_fraction": 0.9}, "trainer.validation_fraction"),
        ({"threads": 0}, "trainer.threads"),
    ],
)
def test_invalid_config_values_name_their_key(changes: dict[str, float], key: str) -> None:
    """Each out-of-range or mistyped value is a ConfigError naming it."""
    with pytest.raises(ConfigError) as info:
        TrainingConfig(**changes)  # type: ignore[arg-type]

    assert info.value.key == key


def test_a_job_needs_a_window_left_to_train_on() -> None:
    """Holding out the only window for validation leaves nothing to train: refused."""
    with pytest.raises(JobError, match="none to train on"):
        TrainingJob(spec(), _base(), windows(1), TrainingConfig(validation_fraction=0.5))


def test_a_job_refuses_windows_of_another_shape() -> None:
    """Windows must be (n, w, c) for the spec."""
    with pytest.raises(JobError, match="shape"):
        TrainingJob(spec(), _base(), np.zeros((3, WINDOW + 1, CHANNELS), np.float32))
