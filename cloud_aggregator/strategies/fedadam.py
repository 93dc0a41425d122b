"""FedAdam (Reddi et al. 2021): Adam on the server, ``v <- beta2 * v + (1 - beta2) * delta^2``."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cloud_aggregator.strategies.fedopt import AdaptiveServer


class FedAdam(AdaptiveServer):
    """Exponential moving average of the squared delta: forgets old magnitudes."""

    name = "fedadam"

    def second_moment(
        self, v: NDArray[np.float32], squared: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        return self.beta2 * v + (1.0 - self.beta2) * squared
