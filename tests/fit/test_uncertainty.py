"""The ensemble uncertainty ``rate_std`` of the PINN fit (FitConfig.ensemble, .uncertainty).

Default ``uncertainty="bootstrap"``: member 0 fits the data; the other members fit
parametric-bootstrap replicates (denoised fields plus fresh noise at the data's *local*
noise level) and ``rate_std`` is their RMS deviation from member 0's rate.

History: with the earlier seed-only ensemble the noise-contrast property did not hold
(median rate_std noisy/clean 1.09 with 4 members, noise 0.05 % of the span on the right
half; the seed spread was a near-uniform offset). Measured with the bootstrap ensemble
(64 x 64 constant-rate state, 20 nm pixels, noise 1 % of the span on the right half,
radius 6 px, test window 0.08 um, rate Fourier scale 1 cycle/um, rate smoothness 1e-3
(white noise), 150 steps, 4 members,
one thread): median rate_std clean 0.148, noisy 0.574, ratio 3.9 (the configuration of
``test_rate_std_larger_where_data_are_noisier`` below, 49 s).
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


def test_rate_std_larger_where_data_are_noisier(constant_state):
    """Noise sd 1 % of the span on the right half only; bootstrap ensemble of 4."""
    n = 64
    mask = disk_mask((n, n), (n / 2, n / 2), 30)
    fields = _noisy_right_half(constant_state, mask, frac=0.01)
    cfg = FitConfig(device="cpu", steps=150, ensemble=4, seed=0, network=SMALL_NET,
                    mollifier=MollifierConfig(radius_px=6.0), test_window_um=0.08,
                    rate_fourier_scale_per_um=1.0, rate_smoothness=1e-3,
                    regularisation="manual")
    res = fit_rates(fields, cfg)
    tr = res.trusted
    xx = np.broadcast_to(np.arange(n)[None, :], (n, n))
    clean, noisy = tr & (xx < n // 2 - 4), tr & (xx >= n // 2 + 4)
    assert clean.sum() > 200 and noisy.sum() > 200
    s = res.rate_std.astype(np.float64)
    assert np.all(np.isfinite(s[tr])) and np.all(s[tr] >= 0.0)
    ratio = float(np.median(s[noisy]) / np.median(s[clean]))
    assert ratio > 2.0, f"median rate_std noisy/clean = {ratio:.3g}"


def test_seed_ensemble_gives_mean_and_spread(disk_fields):
    """``uncertainty="seeds"``: the rate is the members' mean, rate_std their spread."""
    res = fit_rates(disk_fields, _tiny(ensemble=3, uncertainty="seeds"))
    m = disk_fields.mask
    assert res.rate_std is not None and np.all(res.rate_std[m] >= 0.0)
    singles = [fit_rates(disk_fields, _tiny(ensemble=1, seed=k)).rate for k in range(3)]
    np.testing.assert_allclose(res.rate[m], np.mean(singles, axis=0)[m], rtol=1e-5, atol=1e-6)
