"""How the registry stores named arrays and JSON-like values: plain data, never pickle.

A set of named arrays is one msgpack map ``{"format": "fedge.arrays", "v": 1, "arrays":
[[name, dtype, shape, data], ...]}`` with the arrays sorted by name, dtypes spelled with an
explicit byte order and ``data`` the raw little-endian bytes. Sorting makes the encoding
canonical: equal weights give equal bytes, hence one blob under one SHA-256 (the registry
keeps each version's own array order next to it). Decoding checks every field and size, so a
damaged blob is an error, never a wrong array.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, Final

import msgpack
import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.registry_schema import RegistryError
from fedge.wire import Plain

FORMAT: Final = "fedge.arrays"
FORMAT_VERSION: Final = 1
# Everything a global model or an update may hold (updates may travel as float16 or int8).
STORED_DTYPES: Final = frozenset({"<f4", "<f2", "|i1"})
MAX_NDIM: Final = 8


def sha256(data: bytes) -> str:
    """The content address of ``data``: its SHA-256 as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def encode_arrays(arrays: Mapping[str, NDArray[np.generic]]) -> bytes:
    """Named arrays -> canonical bytes (sorted by name, little-endian)."""
    entries = []
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype.str not in STORED_DTYPES:
            raise RegistryError(
                f"array {name} has dtype {array.dtype}, the registry stores {sorted(STORED_DTYPES)}"
            )
        data = np.asarray(array, dtype=dtype, order="C").tobytes()
        entries.append([name, dtype.str, list(array.shape), data])
    packed: bytes = msgpack.packb(
        {"format": FORMAT, "v": FORMAT_VERSION, "arrays": entries}, use_bin_type=True
    )
    return packed


def decode_arrays(blob: bytes, what: str) -> dict[str, NDArray[np.generic]]:
    """Canonical bytes -> read-only named arrays; ``what`` names the blob in errors."""
    try:
        raw = msgpack.unpackb(blob, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise RegistryError(f"{what} is not a stored array set: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise RegistryError(f"{what} is not a stored array set")
    if raw.get("v") != FORMAT_VERSION or not isinstance(raw.get("arrays"), list):
        raise RegistryError(f"{what} has an unknown array-set version {raw.get('v')!r}")
    out: dict[str, NDArray[np.generic]] = {}
    for entry in raw["arrays"]:
        name, array = _decode_entry(entry, what)
        out[name] = array
    return out


def _decode_entry(entry: object, what: str) -> tuple[str, NDArray[np.generic]]:
    if not isinstance(entry, list) or len(entry) != 4:
        raise RegistryError(f"{what}: an array entry is malformed")
    name, dtype_name, shape, data = entry
    if not isinstance(name, str) or dtype_name not in STORED_DTYPES:
        raise RegistryError(f"{what}: array {name!r} has an invalid name or dtype {dtype_name!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(isinstance(s, int) and s >= 0 for s in shape)
    ):
        raise RegistryError(f"{what}: array {name} has an invalid shape {shape!r}")
    dtype = np.dtype(dtype_name)
    if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
        raise RegistryError(f"{what}: array {name} does not hold {shape} of {dtype_name}")
    return name, np.frombuffer(data, dtype=dtype).reshape(shape)


def to_json(value: Mapping[str, Any] | list[Any]) -> str:
    """Canonical JSON (sorted keys, no NaN) for the registry's JSON columns."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def plain_map(text: str | None) -> dict[str, Plain]:
    """A JSON column holding a map, read back."""
    if text is None:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise RegistryError(f"a JSON column holds {type(value).__name__}, expected a map")
    return value


def float_map(text: str) -> dict[str, float]:
    """A JSON column holding named numbers (metrics), read back as floats."""
    return {k: float(v) for k, v in plain_map(text).items() if isinstance(v, (int, float))}


def name_list(text: str) -> list[str]:
    """A JSON column holding a list of names, read back."""
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryError("a JSON column holds something other than a list of names")
    return value
