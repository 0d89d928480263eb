"""Grid operations of the chromatin fit: lattice evaluation of the networks, separable
bicubic upsampling, dilation, and the Gaussian test-window blur by FFT (torch).

Pure tensor functions, used by the fit's loss (:mod:`chromarate.fit.chromatin_problem`).
"""

from __future__ import annotations

import torch
from scipy.fft import next_fast_len

from .derivatives import Grid

__all__ = ["auto_stride"]


def auto_stride(radius_px: float, fourier_scale_per_um: float, pixel_um: float) -> int:
    """Lattice stride for the networks: at most a third of the mollifier radius, and at
    least four lattice points per wavelength of the field network's highest typical
    frequency (three standard deviations of its Fourier features)."""
    finest_um = 1.0 / (3.0 * fourier_scale_per_um)
    return max(1, min(int(radius_px // 3), int(finest_um / (4.0 * pixel_um))))


def _on_lattice(net, grid: Grid, stride: int, dev, dtype, *, points=None) -> torch.Tensor:
    """Network output (channels, ny, nx) on ``grid``, evaluated every ``stride`` pixels and
    interpolated bicubically (exact at the lattice points) when ``stride > 1``.

    Parameters
    ----------
    net : torch.nn.Module or sequence of torch.nn.Module
        One network, or several whose outputs are stacked as channels (in order) and
        upsampled together.
    grid : Grid
    stride : int
    dev, dtype
        Device and dtype of the coordinates and of the output.
    points : (torch.Tensor, torch.Tensor), optional
        ``(idx, xy)``: evaluate only at these lattice points (flat indices into the
        ``cy x cx`` lattice, row-major, and their coordinates); the others are 0.
    """
    nets = tuple(net) if isinstance(net, (list, tuple)) else (net,)
    s = max(1, int(stride))
    cy = -(-(grid.ny - 1) // s) + 1
    cx = -(-(grid.nx - 1) // s) + 1
    if points is None:
        xy = Grid(cy, cx, grid.h * s, grid.y0, grid.x0).coords(dev, dtype)
    else:
        idx, xy = points
    outs = []
    for n in nets:
        o = n(xy).to(dtype)
        outs.append(o[:, None] if o.ndim == 1 else o)
    vals = (outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)).T
    if points is not None:
        vals = vals.new_zeros(vals.shape[0], cy * cx).index_copy(1, idx, vals)
    out = vals.reshape(-1, cy, cx)
    if s == 1:
        return out
    return _upsample_bicubic(out, s)[:, :grid.ny, :grid.nx]


#: Parameter of the cubic convolution kernel, as in ``torch.nn.functional.interpolate``.
_CUBIC_A = -0.75


def _cubic_weights(s: int) -> list[list[float]]:
    """Weights of the 4 lattice neighbours ``i-1 .. i+2`` for the fine points ``s i + t``,
    ``t = 0 .. s-1`` (Keys' cubic convolution with ``a = -0.75``; row ``t = 0`` is 0 1 0 0)."""
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    return [[far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)] for t in (k / s for k in range(s))]


def _upsample_axis(c: torch.Tensor, s: int, dim: int, w: list[list[float]]) -> torch.Tensor:
    n = c.shape[dim]
    last = c.narrow(dim, n - 1, 1)
    padded = torch.cat([c.narrow(dim, 0, 1), c, last, last], dim)  # border replicated
    taps = [padded.narrow(dim, m, n) for m in range(4)]
    phases = []
    for t in range(s):
        acc = None
        for m in range(4):
            if w[t][m] == 0.0:
                continue
            term = taps[m] if w[t][m] == 1.0 else taps[m] * w[t][m]
            acc = term if acc is None else acc + term
        phases.append(acc)
    shape = list(c.shape)
    shape[dim] = n * s
    return torch.stack(phases, dim=dim + 1).reshape(shape).narrow(dim, 0, (n - 1) * s + 1)


def _upsample_bicubic(c: torch.Tensor, s: int) -> torch.Tensor:
    """Bicubic upsampling of (channels, cy, cx) by the integer factor ``s`` through the
    lattice points: (channels, (cy-1) s + 1, (cx-1) s + 1).

    The same interpolant as ``interpolate(..., mode="bicubic", align_corners=True)`` (x
    first, then y; border samples replicated), written as two separable passes of a few
    shifted multiply-adds: the fine points fall at fixed phases ``t / s`` between lattice
    points, so each phase has fixed weights. Its backward pass costs a few elementwise
    operations, where torch's CPU kernel scatters point by point (about 3x slower on the
    sample nucleus, forward and backward).
    """
    w = _cubic_weights(s)
    return _upsample_axis(_upsample_axis(c, s, 2, w), s, 1, w)


def _dilate(a: torch.Tensor, r: int) -> torch.Tensor:
    """Binary dilation of a 2-D bool tensor by a ``(2r+1) x (2r+1)`` square (two 1-D passes)."""
    if r <= 0:
        return a
    x = a.to(torch.float32)[None, None]
    x = torch.nn.functional.max_pool2d(x, (2 * r + 1, 1), stride=1, padding=(r, 0))
    x = torch.nn.functional.max_pool2d(x, (1, 2 * r + 1), stride=1, padding=(0, r))
    return x[0, 0] > 0


def _blur(a: torch.Tensor, k: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
    """Convolution of a 2-D tensor with the separable kernel ``k x k`` (zero padding), by FFT.

    The transform is zero-padded to 5-smooth lengths of at least the field plus half the
    kernel: the circular convolution then wraps around only into outputs that are cropped
    (an output ``o`` in ``[p, p + n)`` reads inputs ``o - j``, ``j`` in ``[0, 2p]``, which stay
    in ``[-p, n + p)``, and ``-p`` wraps to ``F - p >= n``, past the field). The kernel's
    spectrum is kept in ``cache`` (a dict, keyed by the transform size) when one is given.
    """
    p = (k.numel() - 1) // 2
    ny, nx = a.shape
    return _fft_conv(a, k, ny + p, nx + p, cache)[p:p + ny, p:p + nx]


def _blur_full(a: torch.Tensor, k: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
    """Full linear convolution of a 2-D tensor with ``k x k``: (ny + 2p, nx + 2p), by FFT
    (transform lengths of at least that, so nothing wraps around; spectrum cached as in
    :func:`_blur`)."""
    p = (k.numel() - 1) // 2
    ny, nx = a.shape
    return _fft_conv(a, k, ny + 2 * p, nx + 2 * p, cache)[:ny + 2 * p, :nx + 2 * p]


def _fft_conv(a: torch.Tensor, k: torch.Tensor, ly: int, lx: int,
              cache: dict | None) -> torch.Tensor:
    """Circular convolution of ``a`` with ``k x k`` on 5-smooth transform lengths of at
    least (``ly``, ``lx``); the kernel's spectrum kept in ``cache`` (keyed by the lengths)."""
    fy, fx = next_fast_len(ly, real=True), next_fast_len(lx, real=True)
    key = (fy, fx, k.numel(), k.dtype, str(k.device))
    kspec = None if cache is None else cache.get(key)
    if kspec is None:
        kspec = torch.fft.fft(k, n=fy)[:, None] * torch.fft.rfft(k, n=fx)[None, :]
        if cache is not None:
            cache[key] = kspec
    return torch.fft.irfft2(torch.fft.rfft2(a, s=(fy, fx)) * kspec, s=(fy, fx))


def _embed(t: torch.Tensor, top: int, left: int, ny: int, nx: int) -> torch.Tensor:
    """``t`` placed with its first pixel at (top, left) of a zero (ny, nx) array (cropped
    where it sticks out)."""
    return torch.nn.functional.pad(t, (left, nx - left - t.shape[-1], top, ny - top - t.shape[-2]))
