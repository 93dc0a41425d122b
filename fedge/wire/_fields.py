"""Typed, validating access to the fields of a decoded msgpack map.

Decoders never touch a raw map directly: they pull each field through a ``FieldReader``, which
checks type, range, length, dtype, shape and finiteness and raises ``WireError`` naming the
field path (for example ``arrays.enc.0.weight.shape``). Unknown keys are an error too, so a v1
decoder accepts exactly the v1 schema.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray

from fedge.errors import TopicError, WireError
from fedge.topics import validate_id

# JSON-like values allowed in free-form maps (metrics, event data, command parameters).
Plain: TypeAlias = bool | int | float | str | list["Plain"] | dict[str, "Plain"] | None

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

# Wire dtype name -> numpy dtype. Always explicit byte order; nothing else is ever accepted.
DTYPES: Final[Mapping[str, np.dtype[np.generic]]] = {
    "<f2": np.dtype("<f2"),
    "<f4": np.dtype("<f4"),
    "<f8": np.dtype("<f8"),
    "|i1": np.dtype("|i1"),
    "|u1": np.dtype("|u1"),
    "<i2": np.dtype("<i2"),
    "<i4": np.dtype("<i4"),
    "<i8": np.dtype("<i8"),
}
MAX_NDIM: Final = 8


@dataclass(frozen=True)
class WireLimits:
    """Upper bounds the decoder enforces before any allocation driven by the payload."""

    max_payload_bytes: int = 64 * 1024 * 1024
    max_text_len: int = 4096
    max_name_len: int = 256
    max_items: int = 4096
    max_plain_depth: int = 4


class FieldReader:
    """Reads the fields of one msgpack map, validating each and naming it on failure."""

    def __init__(self, raw: object, path: str, limits: WireLimits) -> None:
        if not isinstance(raw, dict):
            raise WireError(path or "message", f"expected a map, got {_type_name(raw)}")
        self._raw: dict[str, object] = raw
        self._path = path
        self._seen: set[str] = set()
        self.limits = limits

    def name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def value(self, key: str, optional: bool) -> object:
        self._seen.add(key)
        if key not in self._raw:
            if optional:
                return None
            raise WireError(self.name(key), "missing")
        return self._raw[key]

    def finish(self) -> None:
        """Reject keys the schema does not define."""
        extra = sorted(str(k) for k in self._raw if k not in self._seen)
        if extra:
            raise WireError(self.name(extra[0]), "unknown field")

    def text(self, key: str, *, max_len: int | None = None) -> str:
        value = self.value(key, optional=False)
        return check_text(self.name(key), value, max_len or self.limits.max_text_len)

    def opt_text(self, key: str) -> str | None:
        value = self.value(key, optional=True)
        if value is None:
            return None
        return check_text(self.name(key), value, self.limits.max_text_len)

    def ident(self, key: str, what: str) -> str:
        return check_ident(self.name(key), what, self.value(key, optional=False))

    def opt_ident(self, key: str, what: str) -> str | None:
        value = self.value(key, optional=True)
        return None if value is None else check_ident(self.name(key), what, value)

    def integer(self, key: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
        return check_int(self.name(key), self.value(key, optional=False), lo, hi)

    def opt_integer(self, key: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int | None:
        value = self.value(key, optional=True)
        return None if value is None else check_int(self.name(key), value, lo, hi)

    def number(self, key: str) -> float:
        return check_float(self.name(key), self.value(key, optional=False))

    def opt_number(self, key: str) -> float | None:
        value = self.value(key, optional=True)
        return None if value is None else check_float(self.name(key), value)

    def boolean(self, key: str) -> bool:
        value = self.value(key, optional=False)
        if not isinstance(value, bool):
            raise WireError(self.name(key), f"expected a bool, got {_type_name(value)}")
        return value

    def binary(self, key: str) -> bytes:
        value = self.value(key, optional=False)
        if not isinstance(value, bytes):
            raise WireError(self.name(key), f"expected binary, got {_type_name(value)}")
        return value

    def names(self, key: str) -> tuple[str, ...]:
        value = self.value(key, optional=False)
        if not isinstance(value, list):
            raise WireError(self.name(key), f"expected a list of strings, got {_type_name(value)}")
        return check_names(self.name(key), value, self.limits)

    def plain_map(self, key: str) -> dict[str, Plain]:
        value = self.value(key, optional=False)
        checked = check_plain(self.name(key), value, self.limits, depth=0)
        if not isinstance(checked, dict):
            raise WireError(self.name(key), f"expected a map, got {_type_name(value)}")
        return checked

    def metrics(self, key: str) -> dict[str, float]:
        value = self.value(key, optional=False)
        if not isinstance(value, dict):
            raise WireError(self.name(key), f"expected a map of numbers, got {_type_name(value)}")
        return check_metrics(self.name(key), value, self.limits)

    def array(
        self, key: str, dtypes: frozenset[str], ndim: int | None = None
    ) -> NDArray[np.generic]:
        value = self.value(key, optional=False)
        return decode_array(self.name(key), value, dtypes, ndim, self.limits)

    def opt_array(
        self, key: str, dtypes: frozenset[str], ndim: int | None = None
    ) -> NDArray[np.generic] | None:
        value = self.value(key, optional=True)
        if value is None:
            return None
        return decode_array(self.name(key), value, dtypes, ndim, self.limits)

    def named_arrays(self, key: str, dtypes: frozenset[str]) -> dict[str, NDArray[np.generic]]:
        value = self.value(key, optional=False)
        name = self.name(key)
        if not isinstance(value, dict):
            raise WireError(name, f"expected a map of arrays, got {_type_name(value)}")
        if len(value) > self.limits.max_items:
            raise WireError(name, f"{len(value)} arrays exceed the limit {self.limits.max_items}")
        out: dict[str, NDArray[np.generic]] = {}
        for k, v in value.items():
            array_name = check_text(f"{name} key", k, self.limits.max_name_len)
            if not array_name:
                raise WireError(f"{name} key", "array names must not be empty")
            out[array_name] = decode_array(f"{name}.{k}", v, dtypes, None, self.limits)
        return out


def check_text(name: str, value: object, max_len: int) -> str:
    if not isinstance(value, str):
        raise WireError(name, f"expected a string, got {_type_name(value)}")
    if len(value) > max_len:
        raise WireError(name, f"{len(value)} characters exceed the limit {max_len}")
    return value


def check_names(name: str, values: Sequence[object], limits: WireLimits) -> tuple[str, ...]:
    """Validate a list of names: bounded count and lengths, non-empty, unique."""
    if len(values) > limits.max_items:
        raise WireError(name, f"{len(values)} entries exceed the limit {limits.max_items}")
    out = tuple(check_text(f"{name}[{i}]", v, limits.max_name_len) for i, v in enumerate(values))
    if any(not v for v in out):
        raise WireError(name, "names must not be empty")
    if len(set(out)) != len(out):
        raise WireError(name, "names must be unique")
    return out


def check_metrics(name: str, value: Mapping[str, object], limits: WireLimits) -> dict[str, float]:
    """Validate a map of named finite numbers; return it with float values."""
    if len(value) > limits.max_items:
        raise WireError(name, f"{len(value)} entries exceed the limit {limits.max_items}")
    out: dict[str, float] = {}
    for k, v in value.items():
        out[check_text(f"{name} key", k, limits.max_name_len)] = check_float(f"{name}.{k}", v)
    return out


def check_ident(name: str, what: str, value: object) -> str:
    try:
        return validate_id(what, value)
    except TopicError as exc:
        raise WireError(name, str(exc)) from None


def check_int(name: str, value: object, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(name, f"expected an integer, got {_type_name(value)}")
    if not lo <= value <= hi:
        raise WireError(name, f"{value} is outside [{lo}, {hi}]")
    return value


def check_float(name: str, value: object) -> float:
    """Accept an int or float that is finite; return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(name, f"expected a number, got {_type_name(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise WireError(name, f"{result} is not finite")
    return result


def check_plain(name: str, value: object, limits: WireLimits, depth: int) -> Plain:
    """Validate a JSON-like value: bounded depth, sizes and string lengths, finite floats."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return check_int(name, value)
    if isinstance(value, float):
        return check_float(name, value)
    if isinstance(value, str):
        return check_text(name, value, limits.max_text_len)
    if depth >= limits.max_plain_depth and isinstance(value, (list, dict)):
        raise WireError(name, f"nested deeper than {limits.max_plain_depth} levels")
    if isinstance(value, list):
        if len(value) > limits.max_items:
            raise WireError(name, f"{len(value)} entries exceed the limit {limits.max_items}")
        return [check_plain(f"{name}[{i}]", v, limits, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if len(value) > limits.max_items:
            raise WireError(name, f"{len(value)} entries exceed the limit {limits.max_items}")
        return {
            check_text(f"{name} key", k, limits.max_name_len): check_plain(
                f"{name}.{k}", v, limits, depth + 1
            )
            for k, v in value.items()
        }
    raise WireError(name, f"{_type_name(value)} is not allowed here")


def encode_array(array: NDArray[np.generic]) -> dict[str, object]:
    """Array -> wire map with explicit little-endian dtype, shape and raw bytes."""
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    wire_dtype = dtype.str
    if wire_dtype not in DTYPES:
        raise WireError("array.dtype", f"{array.dtype} is not an allowed wire dtype")
    # Not ``ascontiguousarray``: it turns a 0-d array into shape (1,).
    data = np.asarray(array, dtype=dtype, order="C")
    # A byte view, not a copy: msgpack packs any buffer as bin.
    raw = data.reshape(-1).view(np.uint8).data
    return {"dtype": wire_dtype, "shape": list(data.shape), "data": raw}


def decode_array(
    name: str,
    raw: object,
    dtypes: frozenset[str],
    ndim: int | None,
    limits: WireLimits,
) -> NDArray[np.generic]:
    """Wire map -> read-only numpy array, after checking dtype, shape and byte length.

    Finiteness is a property of the message, not of the array encoding: each message's
    ``__post_init__`` checks its float arrays, so it is checked once on decode and on build.
    """
    fields = FieldReader(raw, name, limits)
    dtype_name = fields.text("dtype", max_len=8)
    if dtype_name not in dtypes:
        raise WireError(
            fields.name("dtype"), f"{dtype_name!r} not allowed, use one of {sorted(dtypes)}"
        )
    dtype = DTYPES[dtype_name]
    shape_raw = fields.value("shape", optional=False)
    if not isinstance(shape_raw, list) or len(shape_raw) > MAX_NDIM:
        raise WireError(fields.name("shape"), f"expected a list of at most {MAX_NDIM} sizes")
    shape = tuple(
        check_int(f"{fields.name('shape')}[{i}]", s, 0, INT64_MAX) for i, s in enumerate(shape_raw)
    )
    if ndim is not None and len(shape) != ndim:
        raise WireError(fields.name("shape"), f"expected {ndim} dimensions, got {len(shape)}")
    data = fields.binary("data")
    fields.finish()
    count = math.prod(shape)
    if count * dtype.itemsize != len(data):
        raise WireError(
            fields.name("data"),
            f"{len(data)} bytes do not match shape {shape} of {dtype_name} "
            f"({count * dtype.itemsize} bytes)",
        )
    try:
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError as exc:  # a zero-size shape whose other sizes overflow numpy's index type
        raise WireError(fields.name("shape"), f"{shape} is not a valid shape: {exc}") from None


def _type_name(value: object) -> str:
    return type(value).__name__
