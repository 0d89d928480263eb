"""1-D derivative backends with the interface of :mod:`chromarate.fit.derivatives`.

``backend.fields(net, grid, names) -> {name: tensor (C, n)}`` for ``u``, ``u_t``, ``u_tt``
on a :class:`Grid1D`, as the 2-D backends do on a :class:`~chromarate.fit.derivatives.Grid`:

- :class:`Mollifier1DBackend`: the network once on the grid plus a halo, correlated with
  grid-exact mollifier kernels (``conv1d``, no nested autograd);
- :class:`FiniteDifferenceBackend1D`: second-order central differences;
- :class:`AutogradBackend1D`: nested ``torch.autograd.grad`` (the standard PINN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..mollifier import kernel_1d

__all__ = ["BACKENDS_1D", "DERIVATIVES_1D", "AutogradBackend1D", "FiniteDifferenceBackend1D", "Grid1D",
           "Mollifier1DBackend", "make_backend_1d", "mollifier_kernels_1d"]

#: Derivative names of the 1-D backends and their orders.
DERIVATIVES_1D = {"u": 0, "u_t": 1, "u_tt": 2}

#: Names accepted by :func:`make_backend_1d`.
BACKENDS_1D = ("mollifier", "autograd", "finite-difference")


@dataclass(frozen=True)
class Grid1D:
    """``n`` nodes starting at ``t0`` with spacing ``h``."""

    n: int
    h: float
    t0: float = 0.0

    def padded(self, halo: int) -> "Grid1D":
        return Grid1D(self.n + 2 * halo, self.h, self.t0 - halo * self.h)

    def coords(self, device, dtype) -> torch.Tensor:
        """(n, 1) tensor of node coordinates."""
        return (self.t0 + self.h * torch.arange(self.n, device=device, dtype=dtype)).unsqueeze(-1)


def _check_names_1d(names, max_order: int) -> None:
    for n in names:
        if n not in DERIVATIVES_1D:
            raise ConfigError(f"unknown 1-D derivative {n!r}; known: {sorted(DERIVATIVES_1D)}")
        if DERIVATIVES_1D[n] > max_order:
            raise ConfigError(f"derivative {n!r} not built for this backend (max order {max_order})")


def mollifier_kernels_1d(kind: str, radius_px: float, *, max_order: int, degree: int | None = None,
                         pixel: float = 1.0) -> list[np.ndarray]:
    """Grid-exact 1-D kernels of orders 0 .. ``max_order``, zero-padded to one common length.

    Each is :func:`chromarate.fit.mollifier.kernel_1d` of polynomial degree ``degree``
    (default ``max_order + 2``), per unit of ``pixel``; the common length lets one halo
    serve every order.
    """
    deg = max_order + 2 if degree is None else int(degree)
    ks = [np.asarray(kernel_1d(kind, radius_px, a, deg, pixel=pixel)) for a in range(max_order + 1)]
    length = max(len(k) for k in ks)
    return [np.pad(k, ((length - len(k)) // 2,) * 2) for k in ks]


class Mollifier1DBackend:
    """1-D fields by ``conv1d`` with grid-exact mollifier kernels (orders 0 .. max_order).

    The network is evaluated once on the grid plus a halo of the kernel half-width and
    correlated with the kernels of :func:`mollifier_kernels_1d` (no nested autograd).
    """

    name = "mollifier"

    def __init__(self, kernels, device, dtype) -> None:
        lengths = {len(k) for k in kernels}
        if len(lengths) != 1 or len(kernels[0]) % 2 != 1:
            raise ConfigError("the 1-D kernels must all have the same odd length")
        self.halo = (len(kernels[0]) - 1) // 2
        self._k = [torch.tensor(np.array(k), device=device, dtype=dtype).view(1, 1, -1) for k in kernels]

    @classmethod
    def from_radius(cls, radius_px: float, *, pixel: float, device, dtype, kernel: str = "bump",
                    degree: int | None = None, max_order: int = 1) -> "Mollifier1DBackend":
        return cls(mollifier_kernels_1d(kernel, radius_px, max_order=max_order, degree=degree,
                                        pixel=pixel), device, dtype)

    def convolve(self, g: torch.Tensor, names) -> dict[str, torch.Tensor]:
        """Apply named operators to a (C, n + 2 halo) field; outputs (C, n)."""
        _check_names_1d(names, len(self._k) - 1)
        x = g.unsqueeze(1)
        return {n: F.conv1d(x, self._k[DERIVATIVES_1D[n]])[:, 0] for n in names}

    def fields(self, net: nn.Module, grid: Grid1D, names) -> dict[str, torch.Tensor]:
        p = next(net.parameters())
        t = grid.padded(self.halo).coords(p.device, p.dtype)
        return self.convolve(net(t).T, names)


class FiniteDifferenceBackend1D(Mollifier1DBackend):
    """Second-order central differences of the network sampled on the grid plus one node."""

    name = "finite-difference"

    def __init__(self, pixel: float, device, dtype) -> None:
        ks = [np.array([0.0, 1.0, 0.0]), np.array([-0.5, 0.0, 0.5]) / pixel,
              np.array([1.0, -2.0, 1.0]) / pixel**2]
        super().__init__(ks, device, dtype)


class AutogradBackend1D:
    """1-D fields by nested ``torch.autograd.grad`` at the nodes (the standard PINN)."""

    name = "autograd"
    halo = 0

    def fields(self, net: nn.Module, grid: Grid1D, names) -> dict[str, torch.Tensor]:
        _check_names_1d(names, 2)
        p = next(net.parameters())
        t = grid.coords(p.device, p.dtype).requires_grad_(True)
        u = net(t)
        top = max(DERIVATIVES_1D[n] for n in names)
        out: dict[str, list] = {n: [] for n in names}
        for ch in range(u.shape[1]):
            ders = [u[:, ch]]
            for _ in range(top):
                (g,) = torch.autograd.grad(ders[-1].sum(), t, create_graph=True)
                ders.append(g[:, 0])
            for n in names:
                out[n].append(ders[DERIVATIVES_1D[n]])
        return {n: torch.stack(v) for n, v in out.items()}


def make_backend_1d(name: str, *, pixel: float, device, dtype, kernel: str = "bump",
                    radius_px: float = 8.0, degree: int | None = None, max_order: int = 1):
    """Build a 1-D derivative backend by name (see :data:`BACKENDS_1D`).

    ``max_order`` (1 or 2) is the highest derivative the mollifier backend builds; its
    kernels have polynomial degree ``max_order + 2`` unless ``degree`` is given.
    """
    if name == "mollifier":
        return Mollifier1DBackend.from_radius(radius_px, pixel=pixel, device=device, dtype=dtype,
                                              kernel=kernel, degree=degree, max_order=max_order)
    if name == "autograd":
        return AutogradBackend1D()
    if name == "finite-difference":
        return FiniteDifferenceBackend1D(pixel, device, dtype)
    raise ConfigError(f"unknown 1-D derivative backend {name!r}; choose one of {BACKENDS_1D}")
