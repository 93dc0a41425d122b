"""User models (``package.module:Class``) that misbehave, for the trainer's failure tests.

The trainer child imports this module by its import path, so it must stay importable on its
own (torch and the standard library only).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn


class Exploding(nn.Module):
    """Builds fine, raises on the first forward pass."""

    def __init__(self, window: int, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom: this model cannot run")


class Quitter(nn.Module):
    """Ends the process with status 0 while being built: an exit without a result."""

    def __init__(self, window: int, channels: int) -> None:
        super().__init__()
        sys.exit(0)


class Sleeper(nn.Module):
    """Starts a grandchild process, writes its pid to ``pid_file``, then hangs."""

    def __init__(self, window: int, channels: int, pid_file: str) -> None:
        super().__init__()
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        partial = Path(f"{pid_file}.partial")
        partial.write_text(str(grandchild.pid))
        partial.replace(pid_file)
        time.sleep(120)
