"""The demo's live progress: one refreshing line on a terminal, one line a second elsewhere.

A terminal gets the line redrawn in place (``\\r`` and erase-to-end-of-line, cut to the
terminal's width), so the run reads like a dashboard; a pipe, a CI log or a test gets a plain
line per second, so nothing is lost to carriage returns.
"""

from __future__ import annotations

import shutil
import time
from typing import TextIO

from demo.tally import Snapshot


def human_bytes(count: float) -> str:
    """``1234567`` as ``1.2 MB`` (decimal units, as network traffic is counted)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def status_text(elapsed: float, snap: Snapshot, rounds: int, nodes: int, phase: str) -> str:
    """The status line: time, phase, rounds, presence, alarms, triggers, traffic."""
    return (
        f"[{elapsed:5.0f}s] {phase:<14} | rounds {snap.rounds}/{rounds} | nodes online "
        f"{snap.nodes_online}/{nodes} | anomalies {snap.anomalies} | triggers {snap.triggers} | "
        f"fine-tunes {snap.finetunes} | exchanged {human_bytes(snap.exchanged)} vs raw "
        f"{human_bytes(snap.sensor_bytes)}"
    )


class StatusLine:
    """Writes status lines to ``stream``, redrawing on a TTY, at most every ``interval_s``."""

    def __init__(
        self, stream: TextIO, interval_s: float | None = None, columns: int | None = None
    ) -> None:
        self.stream = stream
        self.columns = columns  # None: the terminal's width at each redraw
        self.tty = stream.isatty()
        self.interval_s = interval_s if interval_s is not None else (0.25 if self.tty else 1.0)
        self._last = -float("inf")
        self._drawn = False

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval_s

    def show(self, text: str) -> None:
        self._last = time.monotonic()
        if self.tty:
            # A line wider than the terminal wraps, and "\r" could only redraw its last part.
            width = (self.columns or shutil.get_terminal_size().columns) - 1
            self.stream.write("\r" + text[:width] + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (a phase of the run), above the status line on a terminal."""
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Leave the last status line on screen and move below it."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
