"""Resident memory of a process, in MB. Torch-free.

Peak RSS comes from ``VmHWM`` in ``/proc/PID/status``, not ``getrusage().ru_maxrss``: after a
fork and exec, Linux carries the parent's peak into the child's ``ru_maxrss``, so a trainer
started by a 100 MB node would report at least 100 MB however little it used. ``VmHWM``
belongs to the process's own address space. Where ``/proc`` is missing (macOS), ``ru_maxrss``
is the fallback.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_KB_PER_MB = 1024.0


def rss_mb(pid: int | str = "self") -> float | None:
    """Current resident memory of ``pid`` (VmRSS), or None if it cannot be read."""
    return _status_field(pid, "VmRSS")


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory of ``pid`` (VmHWM); of this process from ``getrusage`` without /proc."""
    peak = _status_field(pid, "VmHWM")
    if peak is not None:
        return peak
    if pid != "self":
        return float("nan")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / _KB_PER_MB


def _status_field(pid: int | str, field: str) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / _KB_PER_MB  # reported in kB
    return None
