"""One Euro filter for landmark tracks: still faces stay still, moving faces are followed without lag.

The cutoff frequency rises with speed (Casiez et al., CHI 2012). Speed is measured in face sizes per
second so the same settings suit small and large faces. The update is written as
`prev + alpha * (x - prev)`, so an unchanged input returns the previous output bit for bit.
"""

from __future__ import annotations

import math

import torch

MIN_CUTOFF_HZ = 1.0
BETA = 300.0
DERIVATIVE_CUTOFF_HZ = 5.0


def _alpha(cutoff: torch.Tensor | float, dt: float) -> torch.Tensor | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters a tensor of points [K, D] over time (D >= 2; speed is measured on the first two axes)."""

    def __init__(
        self,
        min_cutoff: float = MIN_CUTOFF_HZ,
        beta: float = BETA,
        derivative_cutoff: float = DERIVATIVE_CUTOFF_HZ,
    ) -> None:
        self.min_cutoff, self.beta, self.derivative_cutoff = min_cutoff, beta, derivative_cutoff
        self.value: torch.Tensor | None = None
        self.velocity: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, dt: float, scale: float) -> torch.Tensor:
        """The smoothed `x`, `dt` seconds after the previous call; `scale` is the face size in pixels."""
        if self.value is None or self.velocity is None:
            self.value, self.velocity = x.clone(), torch.zeros_like(x)
            return x.clone()
        velocity = (x - self.value) / (dt * max(scale, 1e-6))
        self.velocity = self.velocity + _alpha(self.derivative_cutoff, dt) * (velocity - self.velocity)
        speed = self.velocity[:, :2].norm(dim=1, keepdim=True)
        alpha = _alpha(self.min_cutoff + self.beta * speed, dt)
        self.value = self.value + alpha * (x - self.value)
        return self.value.clone()
