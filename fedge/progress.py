"""Progress reporting for long runs: a bar on a terminal, plain periodic lines elsewhere.

``Progress.update(n)`` is cheap enough to call per frame; output is rate-limited. On a TTY it
redraws one line (count, rate, ETA when the total is known); in a log file or CI it prints a
plain line every ``interval_s`` seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts units (rows, readings, frames) and reports rate and ETA."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "rows",
        stream: TextIO | None = None,
        interval_s: float | None = None,
        enabled: bool = True,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = interval_s if interval_s is not None else (0.2 if self.tty else 10.0)
        self.enabled = enabled
        self.count = 0
        self._start = time.monotonic()
        self._last = self._start

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval_s:
            self._last = now
            self._emit(now, final=False)

    def close(self) -> None:
        """Print the final state (always, so a short run still says what it did)."""
        if self.enabled:
            self._emit(time.monotonic(), final=True)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        text = f"{self.label}: {self.count:,} {self.unit}"
        if self.total:
            pct = min(100.0, 100.0 * self.count / self.total)
            text += f" / {self.total:,} ({pct:5.1f} %)"
        text += f", {rate:,.0f} {self.unit}/s, {elapsed:,.1f} s"
        if self.total and rate > 0 and self.count < self.total:
            text += f", ETA {(self.total - self.count) / rate:,.0f} s"
        return text

    def _emit(self, now: float, final: bool) -> None:
        text = self.line(now)
        if self.tty:
            bar = ""
            if self.total:
                filled = int(30 * min(1.0, self.count / self.total))
                bar = "[" + "#" * filled + "." * (30 - filled) + "] "
            self.stream.write("\r" + bar + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
