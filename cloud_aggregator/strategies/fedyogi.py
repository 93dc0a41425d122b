"""FedYogi (Reddi et al. 2021): Yogi on the server.

``v <- v - (1 - beta2) * delta^2 * sign(v - delta^2)``: ``v`` moves towards ``delta^2`` by a
step proportional to ``delta^2``, not to ``v``, so it grows or shrinks more gently than Adam's.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.fedopt import AdaptiveServer


class FedYogi(AdaptiveServer):
    """Additive, sign-controlled second-moment update."""

    name = "fedyogi"

    def second_moment(
        self, v: NDArray[np.float32], squared: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        sign: NDArray[np.float32] = np.sign(v - squared)
        return v - (1.0 - self.beta2) * squared * sign
