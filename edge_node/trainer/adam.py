"""Adam without ``torch.optim``. Imports torch; used only inside the trainer child.

Constructing any ``torch.optim`` optimiser imports ``torch._dynamo`` (and sympy, mpmath and
some 800 other modules): about 70 MB of resident memory and a second of start-up, a fifth of the
trainer's whole footprint with the built-in autoencoders. ``Adam`` here is the same update as
``torch.optim.Adam`` with its defaults (no weight decay, no AMSGrad), in a dozen tensor
operations; a test checks that both produce the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction, as ``torch.optim.Adam`` computes it."""

    def __init__(
        self,
        params: Sequence[nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.steps = 0
        self._avg = [torch.zeros_like(p) for p in self.params]
        self._avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    def step(self) -> None:
        """Apply one update from the gradients in ``param.grad`` (parameters without are kept)."""
        beta1, beta2 = self.betas
        self.steps += 1
        step_size = self.lr / (1 - beta1**self.steps)
        correction2_sqrt = (1 - beta2**self.steps) ** 0.5
        with torch.no_grad():
            for param, avg, avg_sq in zip(self.params, self._avg, self._avg_sq, strict=True):
                grad = param.grad
                if grad is None:
                    continue
                avg.lerp_(grad, 1 - beta1)
                avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (avg_sq.sqrt() / correction2_sqrt).add_(self.eps)
                param.addcdiv_(avg, denom, value=-step_size)
