"""The job directory: how a job reaches the trainer child and its result comes back. Torch-free.

Layout::

    job.json      format tag and version, the model spec, the training config, the base names
    base.npz      the base weights by state-dict name (float32)
    windows.npy   the training windows, (n, w, c) float32, normalised
    trainer.log   the child's stdout and stderr (opened by the runner)
    result.npz    the new weights: the base's names and shapes
    model.onnx    the ONNX graph of the new weights
    result.json   format tag and version, the metrics; written last, so it marks a whole result

JSON and ``.npy`` only, nothing that can execute code: arrays are read by parsing the ``.npy``
header and refusing anything but little-endian float32 before a byte of data is read, so a
pickled or object array is never loaded, and a header that declares more data than the file
holds is refused before anything is allocated. Every file is replaced atomically.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeVar

import numpy as np
from numpy.lib import format as npy
from numpy.typing import NDArray

from edge_node.state import write_atomic
from edge_node.trainer.job import (
    JobError,
    TrainingConfig,
    TrainingJob,
    TrainingMetrics,
    TrainingResult,
)
from fedge.errors import ConfigError
from fedge.models import ModelSpec

JOB_FILE: Final = "job.json"
BASE_FILE: Final = "base.npz"
WINDOWS_FILE: Final = "windows.npy"
LOG_FILE: Final = "trainer.log"
RESULT_FILE: Final = "result.json"
RESULT_ARRAYS_FILE: Final = "result.npz"
ONNX_FILE: Final = "model.onnx"

JOB_FORMAT: Final = "fedge-training-job"
RESULT_FORMAT: Final = "fedge-training-result"
FORMAT_VERSION: Final = 1
MAX_FILE_BYTES: Final = 1 << 30  # any one file: arrays, windows or the ONNX graph
MAX_JSON_BYTES: Final = 1 << 22
MAX_ARRAYS: Final = 4096
_FLOAT32: Final = np.dtype("<f4")
_T = TypeVar("_T")


def write_job(directory: Path, job: TrainingJob) -> None:
    """Write ``job`` into ``directory`` (created if needed), removing any previous result."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (RESULT_FILE, RESULT_ARRAYS_FILE, ONNX_FILE):
        (directory / stale).unlink(missing_ok=True)
    write_atomic(directory / BASE_FILE, _npz_bytes(job.base))
    write_atomic(directory / WINDOWS_FILE, _npy_bytes(job.windows))
    meta = {
        "format": JOB_FORMAT,
        "version": FORMAT_VERSION,
        "spec": job.spec.to_plain(),
        "config": job.config.to_plain(),
        "arrays": list(job.base),
    }
    write_atomic(directory / JOB_FILE, json.dumps(meta, indent=2).encode())


def read_job(directory: Path) -> TrainingJob:
    """The job in ``directory``, fully validated; ``JobError`` naming the file otherwise."""
    meta_path = directory / JOB_FILE
    meta = _read_meta(meta_path, JOB_FORMAT, ("spec", "config", "arrays"))
    spec_plain, config_plain = meta["spec"], meta["config"]
    if not isinstance(spec_plain, dict) or not isinstance(config_plain, dict):
        raise JobError(str(meta_path), "spec and config must be JSON objects")
    try:
        spec = ModelSpec.from_plain(spec_plain)
        config = TrainingConfig.from_plain(config_plain)
    except ConfigError as exc:
        raise JobError(str(meta_path), str(exc)) from None
    base = _read_npz(directory / BASE_FILE)
    _check_names(directory / BASE_FILE, base, meta["arrays"])
    windows = _read_npy(directory / WINDOWS_FILE)
    return _located(directory, lambda: TrainingJob(spec, base, windows, config))


def write_result(directory: Path, result: TrainingResult) -> None:
    """Write ``result`` into ``directory``; ``result.json`` goes last and completes it."""
    write_atomic(directory / RESULT_ARRAYS_FILE, _npz_bytes(result.arrays))
    write_atomic(directory / ONNX_FILE, result.onnx)
    meta = {
        "format": RESULT_FORMAT,
        "version": FORMAT_VERSION,
        "metrics": result.metrics.to_plain(),
        "arrays": list(result.arrays),
    }
    write_atomic(directory / RESULT_FILE, json.dumps(meta, indent=2).encode())


def read_result(
    directory: Path, base: Mapping[str, NDArray[np.float32]] | None = None
) -> TrainingResult:
    """The result in ``directory``, validated; with ``base``, its names and shapes must match."""
    meta_path = directory / RESULT_FILE
    meta = _read_meta(meta_path, RESULT_FORMAT, ("metrics", "arrays"))
    plain = meta["metrics"]
    if not isinstance(plain, dict):
        raise JobError(str(meta_path), "metrics must be a JSON object")
    metrics = _located(directory, lambda: TrainingMetrics.from_plain(plain))
    arrays = _read_npz(directory / RESULT_ARRAYS_FILE)
    _check_names(directory / RESULT_ARRAYS_FILE, arrays, meta["arrays"])
    onnx = _read_bytes(directory / ONNX_FILE, MAX_FILE_BYTES)
    result = _located(directory, lambda: TrainingResult(arrays, onnx, metrics))
    if base is not None:
        _located(directory, lambda: result.check_matches(base))
    return result


def _located(directory: Path, build: Callable[[], _T]) -> _T:
    """Run ``build``; a ``JobError`` it raises is re-raised naming ``directory``."""
    try:
        return build()
    except JobError as exc:
        raise JobError(f"{directory}: {exc.source}", exc.reason) from None


def _read_meta(path: Path, kind: str, keys: tuple[str, ...]) -> dict[str, object]:
    raw = _read_bytes(path, MAX_JSON_BYTES)
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise JobError(str(path), f"is not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise JobError(str(path), "does not hold a JSON object")
    if meta.get("format") != kind or meta.get("version") != FORMAT_VERSION:
        raise JobError(
            str(path),
            f"format {meta.get('format')!r} version {meta.get('version')!r}, "
            f"expected {kind!r} version {FORMAT_VERSION}",
        )
    expected = {"format", "version", *keys}
    if set(meta) != expected:
        raise JobError(
            str(path),
            f"keys {sorted(meta)} differ from {sorted(expected)}",
        )
    return meta


def _check_names(path: Path, arrays: Mapping[str, object], names: object) -> None:
    if not isinstance(names, list) or names != list(arrays):
        raise JobError(str(path), f"holds {list(arrays)}, the JSON lists {names!r}")


def _read_bytes(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise JobError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise JobError(str(path), f"is larger than {limit} bytes")
    return data


def _read_npy(path: Path) -> NDArray[np.float32]:
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            return _read_array(fh, size, str(path))
    except OSError as exc:
        raise JobError(str(path), f"cannot be read: {exc.strerror or exc}") from None


def _read_npz(path: Path) -> dict[str, NDArray[np.float32]]:
    """Named arrays from an uncompressed or deflated ``.npz``, sizes checked before reading."""
    arrays: dict[str, NDArray[np.float32]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ARRAYS:
                raise JobError(str(path), f"holds {len(members)} arrays, at most {MAX_ARRAYS}")
            if sum(m.file_size for m in members) > MAX_FILE_BYTES:
                raise JobError(str(path), f"unpacks to more than {MAX_FILE_BYTES} bytes")
            for member in members:
                name = member.filename.removesuffix(".npy")
                if name == member.filename or name in arrays:
                    raise JobError(str(path), f"member {member.filename!r} is unexpected")
                data = archive.read(member)
                arrays[name] = _read_array(io.BytesIO(data), len(data), f"{path}:{name}")
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise JobError(str(path), f"is not a readable .npz: {exc}") from None
    return arrays


def _read_array(fh: io.BufferedIOBase, size: int, source: str) -> NDArray[np.float32]:
    """Parse one ``.npy`` stream of ``size`` bytes: float32 only, data length as declared."""
    try:
        version = npy.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(fh)
        else:
            raise JobError(source, f".npy format version {version} is not supported")
    except ValueError as exc:
        raise JobError(source, f"is not a valid .npy: {exc}") from None
    if dtype != _FLOAT32:
        raise JobError(source, f"holds dtype {dtype}, expected little-endian float32")
    if len(shape) > 8:
        raise JobError(source, f"has {len(shape)} dimensions")
    expected = math.prod(shape) * _FLOAT32.itemsize
    available = size - fh.tell()
    if expected != available:
        raise JobError(
            source, f"declares shape {shape} ({expected} bytes) but holds {available} bytes"
        )
    buffer = bytearray(expected)
    if fh.readinto(buffer) != expected:
        raise JobError(source, "ended before its data did")
    flat = np.frombuffer(buffer, dtype=_FLOAT32)
    return np.ascontiguousarray(flat.reshape(shape, order="F" if fortran else "C"))


def _npy_bytes(array: NDArray[np.float32]) -> bytes:
    buffer = io.BytesIO()
    npy.write_array(buffer, np.ascontiguousarray(array, dtype=_FLOAT32), allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(arrays: Mapping[str, NDArray[np.float32]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            archive.writestr(f"{name}.npy", _npy_bytes(array))
    return buffer.getvalue()
