"""FedProx (Li et al. 2020): FedAvg on the server, a proximal term on the clients.

Each node adds ``mu / 2 * ||w - w_base||^2`` to its local loss, which keeps heterogeneous
nodes from drifting far from the global model. The server side is plain FedAvg; this strategy
only carries ``mu`` to the nodes, in the ``mu`` parameter of every train command.
"""

from __future__ import annotations

from cloud_aggregator.strategies.base import number
from cloud_aggregator.strategies.fedavg import FedAvg


class FedProx(FedAvg):
    """FedAvg whose train commands ask nodes for a proximal term of strength ``mu``."""

    name = "fedprox"

    def __init__(self, mu: float = 0.01) -> None:
        self.mu = number("strategy.fedprox.mu", mu, lo=0.0)

    def params(self) -> dict[str, float | int]:
        return {"mu": self.mu}

    def client_config(self) -> dict[str, float]:
        return {"mu": self.mu}
