"""Shared simulated ground truth for the fit tests (built once per session).

The steady states come from :func:`chromarate.fit.simulate.steady_state`, whose correctness
is checked independently in ``test_simulate.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from chromarate.fit.simulate import steady_state

from ._helpers import PIXEL_UM


@pytest.fixture(scope="session")
def constant_state():
    """64 x 64 steady state for a constant rate lambda = 1.5 (phase-separated domains)."""
    state = steady_state(np.full((64, 64), 1.5), pixel_um=PIXEL_UM, tol=1e-6)
    assert state.converged
    return state


@pytest.fixture(scope="session")
def ramp_case():
    """80 x 80 steady state for a linear ramp lambda = 1 .. 2 along x; returns (rate, state)."""
    n = 80
    _, xx = np.mgrid[:n, :n]
    rate = 1.0 + xx / (n - 1.0)
    state = steady_state(rate, pixel_um=PIXEL_UM, tol=1e-6)
    assert state.converged
    return rate, state
