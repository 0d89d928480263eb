"""Helpers shared by the asv benchmarks: small synthetic inputs and one thread for torch.

The leading underscore keeps asv from collecting benchmarks here.
"""

from __future__ import annotations

import numpy as np

#: Pixel size of the synthetic fields, nm (the default fit's scale).
PIXEL_NM = 10.0


def one_torch_thread() -> None:
    """Use one torch thread (stable timings on a shared machine)."""
    import torch

    torch.set_num_threads(1)


def smooth_fields(side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth synthetic phase fields on a ``side`` x ``side`` grid at :data:`PIXEL_NM`.

    Parameters
    ----------
    side : int
        Grid side in pixels.
    seed : int
        Seed of the random plane waves.

    Returns
    -------
    tuple of ndarray
        ``phi_d = 0.2 tanh(z)`` (``z``: 12 random plane waves of wavelength 0.3-1.5 um, unit
        standard deviation), ``phi_w = 0.6 - phi_d`` and a centred disk mask of radius
        0.45 ``side``.

    Examples
    --------
    >>> phi_d, phi_w, mask = smooth_fields(8)
    >>> phi_d.shape, bool(abs(phi_d).max() <= 0.2), int(mask.sum()) > 0
    ((8, 8), True, True)
    """
    rng = np.random.default_rng(seed)
    h = PIXEL_NM / 1000.0
    c = h * (np.arange(side) - 0.5 * (side - 1))
    yy, xx = np.meshgrid(c, c, indexing="ij")
    z = np.zeros((side, side))
    for _ in range(12):
        k = 2 * np.pi / rng.uniform(0.3, 1.5)
        a = rng.uniform(0, 2 * np.pi)
        z += np.cos(k * (np.cos(a) * xx + np.sin(a) * yy) + rng.uniform(0, 2 * np.pi))
    z /= np.sqrt(6.0)
    phi_d = 0.2 * np.tanh(z)
    r = np.hypot(yy, xx) / h
    return phi_d, 0.6 - phi_d, r <= 0.45 * side


def localization_table(n: int, field_nm: float = 4000.0, seed: int = 0):
    """Canonical localization table (``x_nm``, ``y_nm``, ``frame``, ``photons``, ``precision_nm``).

    Parameters
    ----------
    n : int
        Number of localizations, uniform on the square field.
    field_nm : float
        Side of the field.
    seed : int
        Random seed.

    Returns
    -------
    pandas.DataFrame
        One row per localization, precisions 5-25 nm.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x_nm": rng.uniform(0.0, field_nm, n),
        "y_nm": rng.uniform(0.0, field_nm, n),
        "frame": rng.integers(0, 10_000, n),
        "photons": rng.uniform(500.0, 5000.0, n),
        "precision_nm": rng.uniform(5.0, 25.0, n),
    })
