"""Mollifier kernels that are exact on the pixel grid, and the torch layer that applies them.

Why not sample the analytic derivatives of the bump? On a grid of practical size the
sampled derivative kernels have the wrong discrete moments: the sampled fourth-derivative
kernel of radius 8 px applied to x^4/24 gives about -21 instead of 1 (docs/design.md section 7).

Construction used here. ``K_0`` (the mollifier) is a smooth compact weight ``w`` of radius
``eps`` pixels (bump or Wendland) times a polynomial chosen so that its *discrete* moments
obey ``sum_j K_0[j] (j h)^m = delta(m, 0)`` for m = 0 .. q (default q = 6), i.e. it leaves
every polynomial of degree <= q unchanged on the grid. The order-``a`` kernel is the central
difference ``D_a`` that is exact to the same degree, composed with ``K_0``::

    K_a = D_a * K_0,   so   K_a * f = D_a (K_0 * f) = K_0 * (D_a f),

hence ``sum_j K_a[j] f(x + j h) = f^(a)(x)`` exactly for every polynomial of degree <= q, and
every derivative is a derivative of the *same* mollified field: the strong form (chain rule
on derivatives of u = K_0 * g) and the weak form (derivatives moved onto the kernels) agree.
2-D operators are tensor products (``d^(a+b)/dx^a dy^b = K_a(x) K_b(y)``), exact for 2-D
polynomials of degree <= q in each variable.

Convolution is a correlation: ``out[i] = sum_j K[j] g[i + j]``. The direct path uses
separable ``conv2d`` passes; the FFT path multiplies spectra; both give the same numbers
(the FFT path zero-pads, so the two agree everywhere the valid region is defined).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ConfigError

__all__ = [
    "KERNELS",
    "MollifierKernels",
    "kernel_1d",
    "kernel_weights",
    "make_kernels",
    "finite_difference_kernels",
    "apply_1d_numpy",
    "apply_2d_numpy",
]

KERNELS = ("bump", "wendland")


def kernel_weights(kind: str, radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample the smooth compact weight on integer offsets.

    Parameters
    ----------
    kind : {"bump", "wendland"}
        ``bump``: exp(-1 / (1 - r^2)) (C-infinity); ``wendland``: (1 - r)^6 (35 r^2 + 18 r + 3)
        (C4, Wendland's psi_{3,2}).
    radius_px : float
        Support radius in pixels; samples with ``|j| < radius_px`` are non-zero.

    Returns
    -------
    offsets : ndarray of int
        ``-R .. R`` with ``R = ceil(radius_px) - 1``.
    weights : ndarray of float64
        Unnormalised weights at the offsets.
    """
    if kind not in KERNELS:
        raise ConfigError(f"unknown mollifier kernel {kind!r}; choose one of {KERNELS}")
    if not np.isfinite(radius_px) or radius_px <= 1.0:
        raise ConfigError(f"mollifier radius must be > 1 pixel, got {radius_px!r}")
    half = int(math.ceil(radius_px)) - 1
    j = np.arange(-half, half + 1)
    r = np.abs(j) / radius_px
    w = np.zeros(j.shape, dtype=np.float64)
    inside = r < 1.0
    if kind == "bump":
        w[inside] = np.exp(-1.0 / (1.0 - r[inside] ** 2))
    else:
        ri = r[inside]
        w[inside] = (1.0 - ri) ** 6 * (35.0 * ri**2 + 18.0 * ri + 3.0)
    return j, w


def _moment_weights(offsets: np.ndarray, weights: np.ndarray, scale: float, order: int,
                    degree: int) -> np.ndarray:
    """``weights * P(offsets / scale)`` with P of degree <= ``degree`` such that the discrete
    moments ``sum K (j/scale)^m`` equal ``a! delta(m, a)`` for m = 0 .. degree (Legendre basis
    for conditioning)."""
    from numpy.polynomial import legendre as L

    t = offsets / scale
    eye = np.eye(degree + 1)
    basis = np.stack([L.legval(t, eye[n]) for n in range(degree + 1)])
    gram = (basis * weights) @ basis.T
    rhs = np.array([L.legval(0.0, L.legder(eye[m], order)) if order <= m else 0.0
                    for m in range(degree + 1)])
    coef = np.linalg.solve(gram, rhs)
    return weights * (coef @ basis)


@lru_cache(maxsize=64)
def _fd_stencil(order: int, degree: int) -> np.ndarray:
    """Central finite-difference stencil of ``order`` exact for polynomials of ``degree``."""
    half = max(1, int(math.ceil(degree / 2)))
    j = np.arange(-half, half + 1, dtype=np.float64)
    k = _moment_weights(j, np.ones_like(j), 1.0, order, 2 * half)
    k.setflags(write=False)
    return k


@lru_cache(maxsize=256)
def _kernel_1d_cached(kind: str, radius_px: float, order: int, degree: int) -> np.ndarray:
    j, w = kernel_weights(kind, radius_px)
    n_nonzero = int(np.count_nonzero(w))
    if n_nonzero < degree + 1:
        raise ConfigError(
            f"mollifier radius {radius_px:g} px has {n_nonzero} non-zero samples, fewer than the "
            f"{degree + 1} needed for polynomial degree {degree}; use radius >= {(degree + 2) / 2:g} px"
        )
    k0 = _moment_weights(j.astype(np.float64), w, radius_px, 0, degree)
    if order == 0:
        k = k0
    else:
        # derivative of the mollified field: exact central difference composed with K_0
        k = np.convolve(_fd_stencil(order, degree), k0)
    k.setflags(write=False)
    return k


def kernel_1d(kind: str, radius_px: float, order: int, degree: int = 6, *,
              pixel: float = 1.0) -> np.ndarray:
    """1-D kernel of derivative ``order``, exact for polynomials of degree <= ``degree``.

    ``K_0`` is the moment-corrected mollifier; ``K_a = D_a * K_0`` composes it with the
    central difference ``D_a`` that is exact to the same degree, so every ``K_a`` is the
    (discrete) derivative of the same mollified field. That keeps the strong and the weak
    (integrated-by-parts) forms consistent: ``K_a * f = D_a (K_0 * f) = K_0 * (D_a f)``.

    Parameters
    ----------
    kind : {"bump", "wendland"}
    radius_px : float
        Support radius of ``K_0`` in pixels (``K_a`` is wider by the stencil's half-width).
    order : int
        Derivative order, 0 .. degree.
    degree : int
        Polynomial degree reproduced exactly (default 6 = fourth order + 2).
    pixel : float
        Grid spacing in the physical unit; the kernel returns derivatives per that unit.

    Returns
    -------
    ndarray
        Kernel of odd length (correlation weights, centre in the middle).

    Examples
    --------
    >>> k = kernel_1d("bump", 8.0, 4, 6)
    >>> h = (len(k) - 1) // 2
    >>> x = np.arange(-h, h + 1, dtype=float)
    >>> round(float(k @ (x**4 / 24)), 10)
    1.0
    """
    if not 0 <= order <= degree:
        raise ConfigError(f"derivative order {order} must be between 0 and degree {degree}")
    return np.asarray(_kernel_1d_cached(kind, float(radius_px), int(order), int(degree))) / pixel**order


#: Derivative multi-indices (order in x, order in y) the chromatin model needs.
DERIVATIVES = {
    "u": ((0, 0, 1.0),),
    "u_x": ((1, 0, 1.0),),
    "u_y": ((0, 1, 1.0),),
    "u_xx": ((2, 0, 1.0),),
    "u_yy": ((0, 2, 1.0),),
    "u_xy": ((1, 1, 1.0),),
    "lap": ((2, 0, 1.0), (0, 2, 1.0)),
    "bilap": ((4, 0, 1.0), (2, 2, 2.0), (0, 4, 1.0)),
}


@dataclass(frozen=True)
class MollifierKernels:
    """A family of 1-D kernels for one weight, radius and degree, per derivative order.

    Attributes
    ----------
    kind : str
    radius_px : float
    degree : int
        Polynomial degree every kernel reproduces exactly.
    pixel : float
        Grid spacing in the physical unit (um in the physics).
    kernels : tuple of ndarray
        ``kernels[a]`` is the order-``a`` kernel (per physical unit^a).
    """

    kind: str
    radius_px: float
    degree: int
    pixel: float
    kernels: tuple

    @property
    def half_width(self) -> int:
        """Number of pixels on each side of the centre (the halo a layer needs)."""
        return (len(self.kernels[0]) - 1) // 2

    def operator_terms(self, name: str):
        """(order_x, order_y, coefficient) terms of a named operator (see DERIVATIVES)."""
        if name not in DERIVATIVES:
            raise ConfigError(f"unknown derivative {name!r}; known: {sorted(DERIVATIVES)}")
        return DERIVATIVES[name]


def make_kernels(kind: str, radius_px: float, *, degree: int | None = None, max_order: int = 4,
                 pixel: float = 1.0) -> MollifierKernels:
    """Build the kernels of orders 0..max_order for one weight and radius.

    Parameters
    ----------
    degree : int or None
        Polynomial degree every kernel reproduces exactly; None (default) means
        ``max_order + 2``, the least the design asks for (fewest vanishing moments, least
        oscillating kernels, lowest noise gain).

    All kernels are zero-padded to one common length, so one halo serves every operator.
    """
    deg = max_order + 2 if degree is None else int(degree)
    if max_order > deg:
        raise ConfigError(f"max derivative order {max_order} exceeds polynomial degree {deg}")
    ks = [kernel_1d(kind, radius_px, a, deg, pixel=pixel) for a in range(max_order + 1)]
    length = max(len(k) for k in ks)
    padded = []
    for k in ks:
        pad = (length - len(k)) // 2
        k = np.pad(k, (pad, pad))
        k.setflags(write=False)
        padded.append(k)
    return MollifierKernels(kind=kind, radius_px=float(radius_px), degree=deg,
                            pixel=float(pixel), kernels=tuple(padded))


#: Central finite-difference stencils (second-order accurate), all of length 5.
_FD_STENCILS = (
    (0.0, 0.0, 1.0, 0.0, 0.0),
    (0.0, -0.5, 0.0, 0.5, 0.0),
    (0.0, 1.0, -2.0, 1.0, 0.0),
    (-0.5, 1.0, 0.0, -1.0, 0.5),
    (1.0, -4.0, 6.0, -4.0, 1.0),
)


def finite_difference_kernels(pixel: float = 1.0) -> MollifierKernels:
    """Second-order central finite differences packaged like mollifier kernels.

    Lets the finite-difference backend reuse the convolution machinery; there is no
    smoothing (order-0 kernel is the identity) and the stencils are exact for polynomials
    of degree order + 1.
    """
    ks = tuple(np.array(st) / pixel**a for a, st in enumerate(_FD_STENCILS))
    for k in ks:
        k.setflags(write=False)
    return MollifierKernels(kind="finite-difference", radius_px=2.0, degree=-1, pixel=float(pixel),
                            kernels=ks)


def apply_1d_numpy(signal: np.ndarray, kernel: np.ndarray, axis: int = -1) -> np.ndarray:
    """Correlate along ``axis`` keeping only the valid part (length n - len(kernel) + 1)."""
    from scipy.ndimage import correlate1d

    half = (len(kernel) - 1) // 2
    full = correlate1d(np.asarray(signal, dtype=np.float64), kernel, axis=axis, mode="constant")
    sl = [slice(None)] * full.ndim
    sl[axis] = slice(half, full.shape[axis] - half)
    return full[tuple(sl)]


def apply_2d_numpy(field: np.ndarray, kernels: MollifierKernels, name: str, *,
                   mode: str = "valid") -> np.ndarray:
    """Apply a named 2-D operator (e.g. ``"lap"``) to a (y, x) array with numpy/scipy.

    Parameters
    ----------
    mode : {"valid", "same"}
        ``valid`` drops ``half_width`` pixels on each side; ``same`` keeps the shape and
        mirrors the field at the border (values near the border are then approximate).
    """
    from scipy.ndimage import correlate1d

    f = np.asarray(field, dtype=np.float64)
    out = None
    for ox, oy, c in kernels.operator_terms(name):
        tmp = correlate1d(f, kernels.kernels[ox], axis=1, mode="mirror")
        tmp = correlate1d(tmp, kernels.kernels[oy], axis=0, mode="mirror")
        out = c * tmp if out is None else out + c * tmp
    if mode == "valid":
        h = kernels.half_width
        return out[h:-h or None, h:-h or None] if h else out
    if mode == "same":
        return out
    raise ConfigError(f"unknown mode {mode!r}; use 'valid' or 'same'")
