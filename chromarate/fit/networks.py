"""Coordinate networks: an MLP with optional random Fourier features.

Inputs are coordinates in micrometres; Fourier frequencies are in cycles per micrometre,
so a network's spectral reach is a physical length scale, independent of the grid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FourierMLP", "RateNetwork"]


class FourierMLP(nn.Module):
    """MLP ``R^2 -> R^n_out`` with random Fourier features and tanh activations.

    Parameters
    ----------
    n_out : int
        Number of output fields.
    width, depth : int
        Hidden width and number of hidden layers.
    n_fourier : int
        Number of random frequencies (0: plain MLP on the coordinates).
    scale_per_um : float
        Standard deviation of the frequencies (cycles / um).
    generator : torch.Generator
        Source of the random frequencies and initial weights (reproducibility).
    """

    def __init__(self, n_out: int, *, width: int, depth: int, n_fourier: int,
                 scale_per_um: float, generator: torch.Generator) -> None:
        super().__init__()
        if n_fourier > 0:
            freqs = torch.randn(2, n_fourier, generator=generator) * scale_per_um
            self.register_buffer("freqs", freqs)
            n_in = 2 * n_fourier
        else:
            self.register_buffer("freqs", torch.zeros(2, 0))
            n_in = 2
        layers: list[nn.Module] = []
        for _ in range(depth):
            lin = nn.Linear(n_in, width)
            _init_linear(lin, generator)
            layers += [lin, nn.Tanh()]
            n_in = width
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(n_in, n_out)
        _init_linear(self.head, generator, gain=0.1)

    def features(self, xy: torch.Tensor) -> torch.Tensor:
        if self.freqs.shape[1] == 0:
            return xy
        z = 2.0 * math.pi * xy @ self.freqs
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.features(xy)))


def _init_linear(lin: nn.Linear, generator: torch.Generator, gain: float = 1.0) -> None:
    bound = gain * math.sqrt(6.0 / (lin.in_features + lin.out_features))
    with torch.no_grad():
        lin.weight.uniform_(-bound, bound, generator=generator)
        lin.bias.zero_()


class RateNetwork(nn.Module):
    """Non-negative rate field lambda(x, y) = softplus(net(x, y) + offset).

    ``offset`` is set so that the initial rate equals ``initial_rate`` everywhere.
    """

    def __init__(self, *, initial_rate: float, width: int, depth: int, n_fourier: int,
                 scale_per_um: float, generator: torch.Generator) -> None:
        super().__init__()
        self.net = FourierMLP(1, width=width, depth=depth, n_fourier=n_fourier,
                              scale_per_um=scale_per_um, generator=generator)
        r = max(float(initial_rate), 1e-3)
        inv_softplus = r + math.log(-math.expm1(-r))
        self.register_buffer("offset", torch.tensor(inv_softplus))

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.net(xy)[..., 0] + self.offset)
