"""Argument types shared by the device_sim commands: checked at parse time, one-line errors."""

from __future__ import annotations

import argparse
import math


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, a speed factor)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (a count)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def name_list(text: str) -> tuple[str, ...]:
    """Comma-separated names, blanks around each removed; ``''`` is the empty list."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def counted(n: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``1,147 rows``: a count with its noun, for summaries."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
