"""The adaptive server optimizers of Reddi et al. 2021, "Adaptive Federated Optimization".

Algorithm 2 of the paper, with ``delta`` the aggregated (weighted mean) client delta:

    m <- beta1 * m + (1 - beta1) * delta
    v <- FedAdagrad: v + delta^2
         FedAdam:    beta2 * v + (1 - beta2) * delta^2
         FedYogi:    v - (1 - beta2) * delta^2 * sign(v - delta^2)
    x <- x + eta * m / (sqrt(v) + tau)

starting from ``m = 0`` and ``v = tau^2`` (the paper asks for ``v_{-1} >= tau^2``), with no
bias correction, as in the paper. (Flower starts ``v`` at zero and corrects FedAdam's bias.)
``tau`` bounds how far adaptivity can scale a coordinate. ``m`` and ``v`` are the state the
registry persists with each version.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.base import F32, Arrays, check_same_layout, load_moments, number
from cloud_aggregator.strategies.fedavg import FedAvg


class AdaptiveServer(FedAvg):
    """FedAvg's weighted mean, applied by a per-coordinate adaptive server optimizer."""

    memory = "O(model) to fold; the server keeps two moment arrays per array"

    def __init__(
        self, eta: float = 1e-2, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3
    ) -> None:
        key = f"strategy.{self.name}"
        self.eta = number(f"{key}.eta", eta, lo=0.0, lo_open=True)
        self.beta1 = number(f"{key}.beta1", beta1, lo=0.0, hi=1.0, hi_open=True)
        self.beta2 = number(f"{key}.beta2", beta2, lo=0.0, hi=1.0, hi_open=True)
        self.tau = number(f"{key}.tau", tau, lo=0.0, lo_open=True)
        self._m: dict[str, NDArray[np.float32]] = {}
        self._v: dict[str, NDArray[np.float32]] = {}

    def params(self) -> dict[str, float | int]:
        return {"eta": self.eta, "beta1": self.beta1, "beta2": self.beta2, "tau": self.tau}

    @abstractmethod
    def second_moment(
        self, v: NDArray[np.float32], squared: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        """The new ``v`` from the old one and ``delta ** 2``."""

    def step(self, global_arrays: Arrays, delta: Arrays) -> dict[str, NDArray[np.float32]]:
        check_same_layout(global_arrays, delta)
        if not self._m:
            self._m = {name: np.zeros_like(d, F32) for name, d in delta.items()}
            self._v = {name: np.full_like(d, self.tau**2, F32) for name, d in delta.items()}
        check_same_layout(self._m, delta)
        out: dict[str, NDArray[np.float32]] = {}
        for name, x in global_arrays.items():
            d = delta[name]
            m = (self.beta1 * self._m[name] + (1.0 - self.beta1) * d).astype(F32)
            v = self.second_moment(self._v[name], np.square(d, dtype=F32)).astype(F32)
            self._m[name], self._v[name] = m, v
            out[name] = (x + self.eta * m / (np.sqrt(v) + self.tau)).astype(F32)
        return out

    def state(self) -> dict[str, NDArray[np.float32]]:
        moments = {f"m/{name}": m.copy() for name, m in self._m.items()}
        return moments | {f"v/{name}": v.copy() for name, v in self._v.items()}

    def load_state(self, state: Arrays) -> None:
        self._m, self._v = load_moments(self.name, state, ("m", "v"))
