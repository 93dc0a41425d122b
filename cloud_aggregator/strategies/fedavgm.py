"""FedAvgM (Hsu et al. 2019): FedAvg with server momentum.

The server keeps a velocity ``v`` per array: ``v <- momentum * v + delta``, then
``x <- x + server_lr * v``. With ``momentum = 0`` and ``server_lr = 1`` it is FedAvg. The
velocity is the state the registry persists with each version.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import F32, Arrays, check_same_layout, load_moments, number
from cloud_aggregator.strategies.fedavg import FedAvg


class FedAvgM(FedAvg):
    """Weighted mean of the deltas, applied through a server-side momentum buffer."""

    name = "fedavgm"
    memory = "O(model) to fold; the server keeps one velocity array per array"

    def __init__(self, server_lr: float = 1.0, momentum: float = 0.9) -> None:
        self.server_lr = number("strategy.fedavgm.server_lr", server_lr, lo=0.0, lo_open=True)
        self.momentum = number("strategy.fedavgm.momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
        self._velocity: dict[str, NDArray[np.float32]] = {}

    def params(self) -> dict[str, float | int]:
        return {"server_lr": self.server_lr, "momentum": self.momentum}

    def step(self, global_arrays: Arrays, delta: Arrays) -> dict[str, NDArray[np.float32]]:
        check_same_layout(global_arrays, delta)
        velocity = self._velocity or {name: np.zeros_like(d, F32) for name, d in delta.items()}
        check_same_layout(velocity, delta)
        self._velocity = {
            name: (self.momentum * velocity[name] + delta[name]).astype(F32) for name in delta
        }
        return {
            name: (x + self.server_lr * self._velocity[name]).astype(F32)
            for name, x in global_arrays.items()
        }

    def state(self) -> dict[str, NDArray[np.float32]]:
        return {f"velocity/{name}": v.copy() for name, v in self._velocity.items()}

    def load_state(self, state: Arrays) -> None:
        (self._velocity,) = load_moments(self.name, state, ("velocity",))
