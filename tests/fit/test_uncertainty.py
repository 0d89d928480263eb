"""The ensemble uncertainty ``rate_std`` of the PINN fit (FitConfig.ensemble).

Measured on the 64 x 64 constant-rate state (lambda = 1.5, 20 nm pixels; disk of radius 30
around the centre), Gaussian noise on phi_d only in the right half (phi_w = 1 - 2*0.2 - phi_d
kept consistent), SMALL_NET, 100 Adam steps, radius 4 px, seed 0, one torch thread, trusted
pixels x < 28 ("clean") versus x >= 36 ("noisy"), 588 pixels each. Ratio = median rate_std
noisy / clean:

=============================  ========  =====  =====  =====  ============
noise sd (fraction of span)    ensemble  clean  noisy  ratio  mean rate
=============================  ========  =====  =====  =====  ============
0 (no noise anywhere)          3         0.0029 0.0033 1.14   1.499
0.0005 (~3e-4 absolute)        3         0.066  0.091  1.38   1.51
0.0005                         4         0.398  0.435  1.09   1.72
0.001                          3         0.909  0.857  0.94   1.83-1.88
0.002                          3         1.64   1.66   1.01   1.13-1.19
0.002, radius 6 px             3         0.085  0.074  0.87   1.31-1.34
0.02, radius 6 / 8 px          3         -      -      0.45 / 1.11  (rate off)
0.05                           3         0.0036 0.017  4.7    0.02 / 0.42 (rate collapsed)
=============================  ========  =====  =====  =====  ============

So the expected property does NOT hold for this fit at this size: even noise of 0.1 % of
the phi_d span on half of the image shifts the whole rate map (the rate network is
low-frequency, 0.3 cycles/um over a 1.28 um image), and the seed spread is a nearly uniform
offset that is not localised to the noisy half. The single ratio above 1.3 at noise 0.0005
(ensemble 3) falls to 1.09 when a fourth member is added; the large ratio at noise 0.05
comes with a collapsed rate (~0 in the clean half), i.e. for the wrong reason. The test
below states the property with the 4-member configuration and is marked xfail (strict), so
it turns into an error once the fit localises its uncertainty.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from chromarate._types import PhaseFields  # noqa: E402
from chromarate.config import FitConfig, MollifierConfig, NetworkConfig  # noqa: E402
from chromarate.fit.loop import fit_rates  # noqa: E402

from ._helpers import PIXEL_UM, disk_mask, fields_from_state  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SMALL_NET = NetworkConfig(width=32, depth=2, fourier_features=32)
TINY_NET = NetworkConfig(width=16, depth=1, fourier_features=8)
PHI_E0 = 0.2


def _noisy_right_half(state, mask, frac, seed=0) -> PhaseFields:
    """Observed fields with Gaussian phi_d noise (sd = frac * span) on columns >= nx/2 only."""
    phi_d = np.array(state.phi_d, dtype=np.float64)
    ny, nx = phi_d.shape
    span = float(np.ptp(phi_d[mask]))
    sd = np.zeros_like(phi_d)
    sd[:, nx // 2:] = frac * span
    noisy = phi_d + sd * np.random.default_rng(seed).standard_normal(phi_d.shape)
    return PhaseFields(phi_w=1.0 - 2.0 * PHI_E0 - noisy, phi_d=noisy,
                       mask=np.asarray(mask, dtype=bool), pixel_size_nm=PIXEL_UM * 1000.0)


@pytest.fixture(scope="module")
def disk_fields(constant_state):
    return fields_from_state(constant_state, disk_mask((64, 64), (24, 40), 20), PIXEL_UM)


def _tiny(**kw) -> FitConfig:
    base = dict(device="cpu", steps=4, log_every=2, network=TINY_NET,
                mollifier=MollifierConfig(radius_px=4.0), seed=0)
    base.update(kw)
    return FitConfig(**base)


def test_rate_std_is_none_for_a_single_member(disk_fields):
    res = fit_rates(disk_fields, _tiny(ensemble=1))
    assert res.rate_std is None
    assert res.meta["ensemble"] == 1


def test_rate_std_finite_and_non_negative_inside_the_mask(disk_fields):
    res = fit_rates(disk_fields, _tiny(ensemble=2))
    m = disk_fields.mask
    assert res.rate_std is not None and res.rate_std.shape == m.shape
    inside = res.rate_std[m]
    assert np.all(np.isfinite(inside)) and np.all(inside >= 0.0)
    assert np.all(np.isnan(res.rate_std[~m]))
    # two different seeds do not give bit-identical rates
    assert float(inside.max()) > 0.0


@pytest.mark.xfail(strict=True, reason="measured ratio 1.09 (< 1.3): the seed spread is a "
                   "near-uniform offset, not localised to the noisy half (see module docstring)")
def test_rate_std_larger_where_data_are_noisier(constant_state):
    """Noise sd 0.0005 * span on the right half only; ensemble 4, 100 steps. Measured:
    median rate_std clean 0.398, noisy 0.435, ratio 1.09 (want > 1.3)."""
    n = 64
    mask = disk_mask((n, n), (n / 2, n / 2), 30)
    fields = _noisy_right_half(constant_state, mask, frac=5e-4)
    cfg = FitConfig(device="cpu", steps=100, ensemble=4, seed=0, network=SMALL_NET,
                    mollifier=MollifierConfig(radius_px=4.0))
    res = fit_rates(fields, cfg)
    tr = res.trusted
    xx = np.broadcast_to(np.arange(n)[None, :], (n, n))
    clean, noisy = tr & (xx < n // 2 - 4), tr & (xx >= n // 2 + 4)
    assert clean.sum() > 300 and noisy.sum() > 300
    s = res.rate_std.astype(np.float64)
    assert np.all(np.isfinite(s[tr])) and np.all(s[tr] >= 0.0)
    ratio = float(np.median(s[noisy]) / np.median(s[clean]))
    assert ratio > 1.3, f"median rate_std noisy/clean = {ratio:.3g}"
