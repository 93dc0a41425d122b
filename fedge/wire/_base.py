"""What every wire message shares: value equality, the dtype sets and construction limits."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import fields
from typing import Final

import numpy as np

from fedge.wire._fields import Plain, WireLimits, check_plain

F4: frozenset[str] = frozenset({"<f4"})
F8: frozenset[str] = frozenset({"<f8"})
U1: frozenset[str] = frozenset({"|u1"})
# Updates may travel compressed (half precision or int8 quantised, see ``compression``).
UPDATE_DTYPES: frozenset[str] = frozenset({"<f4", "<f2", "|i1"})
# Construction checks every field the way decoding does, so nothing is built only to be dropped
# on arrival. Sizes are left to each receiver's own ``WireLimits``, hence no bounds here.
LIMITS: Final = WireLimits(
    max_text_len=sys.maxsize,
    max_name_len=sys.maxsize,
    max_items=sys.maxsize,
    max_plain_depth=sys.maxsize,
)


class ValueEquality:
    """Field-wise equality that compares numpy arrays by dtype, shape and content."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            _equal(getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)  # type: ignore[arg-type]
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays and maps: not hashable


def _equal(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def check_plain_map(name: str, value: Mapping[str, Plain]) -> None:
    """Hold a JSON-like map built in code to the rules its decoded form must meet."""
    check_plain(name, dict(value), LIMITS, depth=0)
