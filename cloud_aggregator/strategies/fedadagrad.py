"""FedAdagrad (Reddi et al. 2021): Adagrad on the server, ``v <- v + delta^2``.

``v`` only grows, so each coordinate's step shrinks with its history. ``beta2`` plays no part;
``beta1`` defaults to 0 (no momentum), as in plain Adagrad.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.fedopt import AdaptiveServer


class FedAdagrad(AdaptiveServer):
    """Sum of squared deltas as the per-coordinate scale."""

    name = "fedadagrad"

    def __init__(self, eta: float = 1e-2, beta1: float = 0.0, tau: float = 1e-3) -> None:
        super().__init__(eta=eta, beta1=beta1, tau=tau)

    def params(self) -> dict[str, float | int]:
        return {"eta": self.eta, "beta1": self.beta1, "tau": self.tau}

    def second_moment(
        self, v: NDArray[np.float32], squared: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        return v + squared
