"""Derivative backends behind one interface.

A backend turns a coordinate network into fields and their derivatives on a pixel grid:
``backend.fields(net, grid) -> {name: tensor (C, ny, nx)}`` for the names the physics asks
for (``u``, ``u_x``, ``u_y``, ``lap``, ``bilap``, ...).

- :class:`MollifierBackend` evaluates the network once on the grid plus a halo and
  convolves with the exact kernels of :mod:`chromarate.fit.mollifier` (no nested autograd).
- :class:`AutogradBackend` differentiates the network with nested ``torch.autograd.grad``
  (the standard PINN), for comparison.
- :class:`FiniteDifferenceBackend` evaluates the network on the grid plus a 2-pixel halo and
  applies second-order central differences (no smoothing).
- :class:`SpectralBackend` evaluates the network on the grid and differentiates its Fourier
  series (exact for band-limited periodic fields; a non-periodic field rings at the edges).

``make_backend(name, ...)`` builds any of them by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len

from ..errors import ConfigError
from .mollifier import DERIVATIVES, MollifierKernels, finite_difference_kernels, make_kernels

__all__ = [
    "AutogradBackend", "BACKENDS", "FiniteDifferenceBackend", "Grid", "MollifierBackend",
    "SpectralBackend", "make_backend", "make_grid",
]

#: Names accepted by :func:`make_backend`.
BACKENDS = ("mollifier", "autograd", "finite-difference", "spectral")


@dataclass(frozen=True)
class Grid:
    """A pixel grid in um: ``ny x nx`` pixel centres starting at ``(y0, x0)`` spacing ``h``."""

    ny: int
    nx: int
    h: float
    y0: float = 0.0
    x0: float = 0.0

    def padded(self, halo: int) -> "Grid":
        return Grid(self.ny + 2 * halo, self.nx + 2 * halo, self.h,
                    self.y0 - halo * self.h, self.x0 - halo * self.h)

    def coords(self, device, dtype) -> torch.Tensor:
        """(ny*nx, 2) tensor of (x, y) coordinates, row-major over (y, x)."""
        y = self.y0 + self.h * torch.arange(self.ny, device=device, dtype=dtype)
        x = self.x0 + self.h * torch.arange(self.nx, device=device, dtype=dtype)
        yy, xx = torch.meshgrid(y, x, indexing="ij")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def make_grid(shape: tuple[int, int], pixel_um: float) -> Grid:
    """Grid centred on the origin (keeps Fourier features well conditioned)."""
    ny, nx = shape
    return Grid(ny, nx, pixel_um, -0.5 * (ny - 1) * pixel_um, -0.5 * (nx - 1) * pixel_um)


class MollifierBackend:
    """Fields and derivatives by convolution with exact mollifier kernels.

    Parameters
    ----------
    kernels : MollifierKernels
        Built with ``pixel`` equal to the grid spacing in um.
    device, dtype
        Where the kernels live (follow the network's parameters).
    """

    name = "mollifier"

    #: Kernel length from which ``method="auto"`` switches to the FFT path. Separable direct
    #: passes cost O(N L) against O(N log N) for the FFT, and torch's depthwise conv2d is
    #: slow backwards on CPU: a training step of the default fit on 256^2 (kernel length
    #: 21) took 0.087 s direct against 0.059 s by FFT (5-smooth transform lengths).
    FFT_FROM_LENGTH = 17

    def __init__(self, kernels: MollifierKernels, device, dtype, *, method: str = "auto") -> None:
        if method not in ("auto", "direct", "fft"):
            raise ConfigError(f"unknown convolution method {method!r}; use auto, direct or fft")
        self.kernels = kernels
        self.halo = kernels.half_width
        self._k = [torch.tensor(np.array(k), device=device, dtype=dtype) for k in kernels.kernels]
        length = 2 * self.halo + 1
        self.method = ("fft" if length >= self.FFT_FROM_LENGTH else "direct") if method == "auto" else method
        self._fft_cache: dict = {}

    def _kernel_2d(self, name: str) -> torch.Tensor:
        acc = None
        for ox, oy, c in DERIVATIVES[name]:
            t = c * torch.outer(self._k[oy], self._k[ox])  # rows: y, cols: x
            acc = t if acc is None else acc + t
        return acc

    def _kernel_spectrum(self, name: str, size: tuple[int, int]) -> torch.Tensor:
        key = (name,) + size
        if key not in self._fft_cache:
            k = torch.flip(self._kernel_2d(name), dims=(0, 1))  # correlation = conv with flip
            self._fft_cache[key] = torch.fft.rfft2(k, s=size)
        return self._fft_cache[key]

    def _fft_size(self, g: torch.Tensor) -> tuple[int, int, tuple[int, int]]:
        # any transform length >= the field's works (wrap-around only reaches the first
        # 2*halo outputs, which are cropped); 5-smooth lengths are much faster than, e.g., 310
        hp, wp = g.shape[-2:]
        return hp, wp, (next_fast_len(hp, real=True), next_fast_len(wp, real=True))

    def _convolve_fft(self, g: torch.Tensor, names) -> dict[str, torch.Tensor]:
        hp, wp, size = self._fft_size(g)
        length = 2 * self.halo + 1
        spec = torch.fft.rfft2(g, s=size)
        out = {}
        for n in names:
            full = torch.fft.irfft2(spec * self._kernel_spectrum(n, size), s=size)
            out[n] = full[..., length - 1:hp, length - 1:wp]
        return out

    def combine(self, terms) -> torch.Tensor:
        """``sum coef * (K_name * field)`` over ``terms = [(name, field, coef), ...]``.

        Fields are 2-D (ny + 2 halo, nx + 2 halo); the result is (ny, nx). On the FFT path
        the sum is formed in Fourier space, so it costs one inverse transform in all (see
        :meth:`combine_with`).
        """
        return self.combine_with(terms)[0]

    def combine_with(self, terms, extra=()) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """:meth:`combine`, and further single convolutions from the same transforms.

        Parameters
        ----------
        terms : sequence of (str, torch.Tensor, float or torch.Tensor)
            ``(operator name, 2-D field (ny + 2 halo, nx + 2 halo), coefficient)``.
        extra : sequence of (str, torch.Tensor)
            ``(operator name, field)``: also return ``K_name * field``. A field that *is*
            (the same tensor object as) one of the terms' fields reuses that field's
            forward transform.

        Returns
        -------
        (torch.Tensor, list of torch.Tensor)
            The sum (ny, nx) and the extra convolutions (ny, nx each, in order).

        Notes
        -----
        On the FFT path all fields are transformed in one batched ``rfft2`` and the sum and
        the extra outputs are transformed back in one batched ``irfft2``, so the whole
        call is one transform pair however many operators it applies. The kernel spectra,
        scaled by plain-number coefficients, are computed once per transform size and
        cached.
        """
        if self.method != "fft":
            acc = None
            for name, field, coef in terms:
                t = coef * self.convolve(field.unsqueeze(0), (name,))[name][0]
                acc = t if acc is None else acc + t
            return acc, [self.convolve(f.unsqueeze(0), (n,))[n][0] for n, f in extra]
        fields = [f for _, f, _ in terms]
        where = []
        for _, f in extra:
            j = next((i for i, t in enumerate(fields) if t is f), None)
            if j is None:
                fields.append(f)
                j = len(fields) - 1
            where.append(j)
        hp, wp, size = self._fft_size(fields[0])
        length = 2 * self.halo + 1
        spec = torch.fft.rfft2(torch.stack(fields), s=size)
        kern = self._term_spectra([(n, c) for n, _, c in terms], size)
        acc = None
        for i in range(len(terms)):
            t = spec[i] * kern[i]
            acc = t if acc is None else acc + t
        outs = [acc] + [spec[j] * self._kernel_spectrum(n, size) for (n, _), j in zip(extra, where)]
        full = torch.fft.irfft2(torch.stack(outs), s=size)[:, length - 1:hp, length - 1:wp]
        return full[0], list(full[1:])

    def _term_spectra(self, names_coefs, size: tuple[int, int]) -> list[torch.Tensor]:
        """``coef * spectrum(K_name)`` of each term; cached when every coefficient is a number."""
        if not all(isinstance(c, (int, float)) for _, c in names_coefs):
            return [c * self._kernel_spectrum(n, size) for n, c in names_coefs]
        key = ("terms", tuple((n, float(c)) for n, c in names_coefs)) + size
        if key not in self._fft_cache:
            self._fft_cache[key] = [c * self._kernel_spectrum(n, size) for n, c in names_coefs]
        return self._fft_cache[key]

    def _x_pass(self, g: torch.Tensor, order: int) -> torch.Tensor:
        k = self._k[order]
        c = g.shape[0]
        return F.conv2d(g.unsqueeze(0), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)[0]

    def _y_pass(self, g: torch.Tensor, order: int) -> torch.Tensor:
        k = self._k[order]
        c = g.shape[0]
        return F.conv2d(g.unsqueeze(0), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)[0]

    def convolve(self, g: torch.Tensor, names) -> dict[str, torch.Tensor]:
        """Apply named operators to a (C, ny + 2 halo, nx + 2 halo) field; outputs (C, ny, nx)."""
        needed: dict[int, set[int]] = {}
        for n in names:
            if n not in DERIVATIVES:
                raise ConfigError(f"unknown derivative {n!r}")
            for ox, oy, _ in DERIVATIVES[n]:
                if max(ox, oy) >= len(self._k):
                    raise ConfigError(f"derivative order {max(ox, oy)} not built for this mollifier")
                needed.setdefault(ox, set()).add(oy)
        if self.method == "fft":
            return self._convolve_fft(g, names)
        parts: dict[tuple[int, int], torch.Tensor] = {}
        for ox, oys in needed.items():
            gx = self._x_pass(g, ox)
            for oy in oys:
                parts[(ox, oy)] = self._y_pass(gx, oy)
        out = {}
        for n in names:
            terms = DERIVATIVES[n]
            acc = None
            for ox, oy, c in terms:
                t = parts[(ox, oy)] if c == 1.0 else c * parts[(ox, oy)]
                acc = t if acc is None else acc + t
            out[n] = acc
        return out

    def fields(self, net: torch.nn.Module, grid: Grid, names, *,
               offset: torch.Tensor | None = None,
               where: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Evaluate ``net`` on ``grid`` plus the halo, add ``offset`` (C, ny+2h, nx+2h), convolve.

        ``where`` (bool, ny x nx) says where derivatives are needed; convolution costs the
        same everywhere, so it is ignored here (backends whose cost grows with the points,
        like nested autograd, use it)."""
        pg = grid.padded(self.halo)
        p = next(net.parameters())
        xy = pg.coords(p.device, p.dtype)
        g = net(xy).T.reshape(-1, pg.ny, pg.nx)
        if offset is not None:
            g = g + offset
        return self.convolve(g, names)


class AutogradBackend:
    """Fields and derivatives by nested automatic differentiation (no mollification)."""

    name = "autograd"
    halo = 0

    def fields(self, net: torch.nn.Module, grid: Grid, names, *,
               offset: torch.Tensor | None = None,
               where: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Evaluate ``net`` at the pixel centres and differentiate it; ``offset`` is not supported.

        With ``where`` (bool, ny x nx), the nested derivatives are formed only at those
        pixels (their cost grows with the number of points) and are 0 elsewhere; ``u`` is
        evaluated everywhere."""
        if offset is not None:
            raise ConfigError("the autograd backend cannot differentiate a gridded offset field")
        p = next(net.parameters())
        coords = grid.coords(p.device, p.dtype)
        rest = [n for n in names if n != "u"]
        if where is None or not rest:
            pts = self.derivatives(net, coords, names)
            return {n: v.reshape(-1, grid.ny, grid.nx) for n, v in pts.items()}
        idx = torch.nonzero(where.reshape(-1), as_tuple=False).squeeze(1)
        out = {}
        for n, v in self.derivatives(net, coords[idx], rest).items():
            full = torch.zeros(v.shape[0], grid.ny * grid.nx, device=v.device, dtype=v.dtype)
            out[n] = full.index_copy(1, idx, v).reshape(-1, grid.ny, grid.nx)
        if "u" in names:
            out["u"] = net(coords).T.reshape(-1, grid.ny, grid.nx)
        return out

    @staticmethod
    def derivatives(net: torch.nn.Module, xy: torch.Tensor, names) -> dict[str, torch.Tensor]:
        """``{name: (C, N)}``: the network's outputs and their derivatives at points ``xy``
        (N, 2), by nested automatic differentiation."""
        xy = xy.detach().requires_grad_(True)
        u = net(xy)  # (N, C)
        c = u.shape[1]
        out: dict[str, list[torch.Tensor]] = {n: [] for n in names}

        def grad(f):
            (gr,) = torch.autograd.grad(f.sum(), xy, create_graph=True)
            return gr[:, 0], gr[:, 1]

        want = set(names)
        for ch in range(c):
            f = u[:, ch]
            cache = {"u": f}
            if want - {"u"}:
                cache["u_x"], cache["u_y"] = grad(f)  # one call gives both components
            if want & {"u_xx", "u_xy", "lap", "bilap"}:
                cache["u_xx"], cache["u_xy"] = grad(cache["u_x"])
            if want & {"u_yy", "lap", "bilap"}:
                cache["u_yy"] = grad(cache["u_y"])[1]
            if want & {"lap", "bilap"}:
                cache["lap"] = cache["u_xx"] + cache["u_yy"]
            if "bilap" in want:
                lx, ly = grad(cache["lap"])
                cache["bilap"] = grad(lx)[0] + grad(ly)[1]
            for n in names:
                out[n].append(cache[n])
        return {n: torch.stack(v) for n, v in out.items()}


class FiniteDifferenceBackend(MollifierBackend):
    """Second-order central differences of the network sampled on the grid plus a halo."""

    name = "finite-difference"

    def __init__(self, pixel: float, device, dtype) -> None:
        super().__init__(finite_difference_kernels(pixel), device, dtype, method="direct")


class SpectralBackend:
    """Derivatives of the network's samples by FFT (periodic)."""

    name = "spectral"
    halo = 0

    def fields(self, net: torch.nn.Module, grid: Grid, names, *,
               offset: torch.Tensor | None = None,
               where: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """FFT derivatives of the samples on ``grid`` (``where`` is ignored: the cost of an
        FFT does not depend on it)."""
        p = next(net.parameters())
        g = net(grid.coords(p.device, p.dtype)).T.reshape(-1, grid.ny, grid.nx)
        if offset is not None:
            g = g + offset
        ky = 2 * np.pi * torch.fft.fftfreq(grid.ny, d=grid.h, device=p.device, dtype=p.dtype)
        kx = 2 * np.pi * torch.fft.rfftfreq(grid.nx, d=grid.h, device=p.device, dtype=p.dtype)
        ky, kx = ky[:, None], kx[None, :]
        spec = torch.fft.rfft2(g)
        out = {}
        for n in names:
            if n not in DERIVATIVES:
                raise ConfigError(f"unknown derivative {n!r}")
            mult = None
            for ox, oy, c in DERIVATIVES[n]:
                t = c * (1j * kx) ** ox * (1j * ky) ** oy
                mult = t if mult is None else mult + t
            out[n] = torch.fft.irfft2(spec * mult, s=(grid.ny, grid.nx))
        return out


def make_backend(name: str, *, pixel: float, device, dtype, kernel: str = "bump",
                 radius_px: float = 8.0, degree: int | None = None, method: str = "auto"):
    """Build a derivative backend by name (see :data:`BACKENDS`)."""
    if name == "mollifier":
        ks = make_kernels(kernel, radius_px, degree=degree, max_order=4, pixel=pixel)
        return MollifierBackend(ks, device, dtype, method=method)
    if name == "autograd":
        return AutogradBackend()
    if name == "finite-difference":
        return FiniteDifferenceBackend(pixel, device, dtype)
    if name == "spectral":
        return SpectralBackend()
    raise ConfigError(f"unknown derivative backend {name!r}; choose one of {BACKENDS}")
