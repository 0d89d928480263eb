"""Small helpers shared by the tests in this folder (no fixtures here, see conftest.py)."""

from __future__ import annotations

import numpy as np


def random_structure(rng: np.random.Generator, n: int, field: float, n_clusters: int,
                     n_lines: int, shuffle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``n`` true positions (x, y) in nm on a random structure on a ``field`` x ``field``
    square: half in small clusters (sd 15 nm), half on straight line segments (300-1500 nm);
    ``shuffle`` mixes the two halves (one more draw from ``rng``)."""
    cx, cy = rng.uniform(0, field, n_clusters), rng.uniform(0, field, n_clusters)
    lx, ly = rng.uniform(0, field, n_lines), rng.uniform(0, field, n_lines)
    ang, length = rng.uniform(0, np.pi, n_lines), rng.uniform(300, 1500, n_lines)
    nc = n // 2
    k = rng.integers(0, n_clusters, nc)
    m = rng.integers(0, n_lines, n - nc)
    s = rng.uniform(0, 1, n - nc) * length[m]
    x = np.r_[cx[k] + rng.normal(0, 15, nc), lx[m] + s * np.cos(ang[m])]
    y = np.r_[cy[k] + rng.normal(0, 15, nc), ly[m] + s * np.sin(ang[m])]
    if shuffle:
        perm = rng.permutation(n)
        return x[perm], y[perm]
    return x, y
