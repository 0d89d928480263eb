"""Small helpers shared by the tests of chromarate.fit (no fixtures here, see conftest.py)."""

from __future__ import annotations

import numpy as np

from chromarate._types import PhaseFields

#: Pixel size of the simulated nuclei (um); 20 nm as in the rendered STORM data.
PIXEL_UM = 0.02


def disk_mask(shape, center, radius):
    """Boolean disk of ``radius`` pixels around ``center`` (row, col), pixel centres at +0.5."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 < radius**2


def fields_from_state(state, mask, pixel_um):
    """PhaseFields observed on ``mask`` from a simulated SteadyState."""
    return PhaseFields(phi_w=np.array(state.phi_w), phi_d=np.array(state.phi_d),
                       mask=np.asarray(mask, dtype=bool), pixel_size_nm=pixel_um * 1000.0)


def pearson(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])
