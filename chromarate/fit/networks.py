"""Coordinate networks: an MLP with optional random Fourier features.

Inputs are coordinates in micrometres; Fourier frequencies are in cycles per micrometre,
so a network's spectral reach is a physical length scale, independent of the grid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FourierMLP", "PirateNet", "RateNetwork", "make_field_network"]


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
        self._feature_cache: tuple | None = None

    def features(self, xy: torch.Tensor) -> torch.Tensor:
        """Fourier features ``[cos 2 pi xy F, sin 2 pi xy F]`` of points ``xy`` (N, 2).

        The frequencies are fixed (a buffer), so the features of fixed points are
        constants: the last result is kept and reused while the same coordinate tensor
        comes back unchanged (the training loss evaluates the networks at the same lattice
        points every step). Inputs or frequencies that require gradients (nested
        automatic differentiation) are never cached, nor is anything under autocast.
        """
        if self.freqs.shape[1] == 0:
            return xy
        cacheable = not (xy.requires_grad or self.freqs.requires_grad
                         or torch.is_autocast_enabled(xy.device.type))
        hit = self._feature_cache if cacheable else None
        if hit is not None and hit[0] is xy and hit[1] == xy._version \
                and hit[2] is self.freqs and hit[3] == self.freqs._version:
            return hit[4]
        z = 2.0 * math.pi * xy @ self.freqs
        out = torch.cat([torch.cos(z), torch.sin(z)], dim=-1)
        self._feature_cache = (xy, xy._version, self.freqs, self.freqs._version, out) if cacheable else None
        return out

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


class PirateNet(nn.Module):
    """PirateNet: residual gated blocks with adaptive skip connections.

    After Wang, Li, Chen & Perdikaris (2024), written from the paper's description: random
    Fourier features ``phi(x)`` feed two gates ``U = tanh(W_u phi)``, ``V = tanh(W_v phi)``;
    each block computes three dense layers whose outputs are mixed with the gates,
    ``z <- f * U + (1 - f) * V``, and returns ``alpha * h + (1 - alpha) * x`` with a trainable
    ``alpha`` that starts at 0, so at initialisation every block is the identity and the
    network is a linear model of the Fourier features (easy to fit), deepening as training
    needs it.

    Parameters
    ----------
    n_out : int
    width : int
        Hidden width; the Fourier embedding has ``width // 2`` frequencies.
    n_blocks : int
    scale_per_um : float
        Standard deviation of the Fourier frequencies (cycles / um).
    generator : torch.Generator
    """

    def __init__(self, n_out: int, *, width: int, n_blocks: int, scale_per_um: float,
                 generator: torch.Generator) -> None:
        super().__init__()
        n_f = max(width // 2, 1)
        self.register_buffer("freqs", torch.randn(2, n_f, generator=generator) * scale_per_um)
        dim = 2 * n_f
        self.gate_u = nn.Linear(dim, dim)
        self.gate_v = nn.Linear(dim, dim)
        for lin in (self.gate_u, self.gate_v):
            _init_linear(lin, generator)
        self.blocks = nn.ModuleList()
        for _ in range(n_blocks):
            layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(3)])
            for lin in layers:
                _init_linear(lin, generator)
            self.blocks.append(layers)
        self.alpha = nn.Parameter(torch.zeros(n_blocks))
        self.head = nn.Linear(dim, n_out)
        _init_linear(self.head, generator, gain=0.1)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        z = 2.0 * math.pi * xy @ self.freqs
        x = torch.cat([torch.cos(z), torch.sin(z)], dim=-1)
        u = torch.tanh(self.gate_u(x))
        v = torch.tanh(self.gate_v(x))
        for k, (l1, l2, l3) in enumerate(self.blocks):
            f = torch.tanh(l1(x))
            z1 = f * u + (1.0 - f) * v
            g = torch.tanh(l2(z1))
            z2 = g * u + (1.0 - g) * v
            h = torch.tanh(l3(z2))
            a = self.alpha[k]
            x = a * h + (1.0 - a) * x
        return self.head(x)


def make_field_network(architecture: str, n_out: int, *, width: int, depth: int, n_fourier: int,
                       scale_per_um: float, generator: torch.Generator) -> nn.Module:
    """Build the field network named by ``architecture`` ("fourier_mlp", "mlp", "pirate")."""
    if architecture == "fourier_mlp":
        return FourierMLP(n_out, width=width, depth=depth, n_fourier=n_fourier,
                          scale_per_um=scale_per_um, generator=generator)
    if architecture == "mlp":
        return FourierMLP(n_out, width=width, depth=depth, n_fourier=0,
                          scale_per_um=scale_per_um, generator=generator)
    if architecture == "pirate":
        return PirateNet(n_out, width=width, n_blocks=depth, scale_per_um=scale_per_um,
                         generator=generator)
    from ..errors import ConfigError

    raise ConfigError(f"unknown network architecture {architecture!r}; use fourier_mlp, mlp or pirate")
