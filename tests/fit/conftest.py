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


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run torch on one intra-op thread for the module, then restore the setting.

    The default run targets 2 CPU cores shared with other work; with two intra-op threads
    on a busy 2-core machine the small fits here were measured 2-6x slower than with one
    (thread oversubscription), and one thread also keeps the runs bit-for-bit repeatable.
    """
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
