"""The fast weak-form loss equals a straightforward reference computation.

``_Problem.losses`` evaluates the networks only where the loss depends on them, fuses all
convolutions of one step into one batched FFT pair and caches the step-independent
tensors. The reference below is the plain computation it replaced: both networks on the
whole lattice, one FFT per operator, the test-window normalisation recomputed, boolean
masks. Loss terms and gradients must agree to float roundoff.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch

from chromarate.config import FitConfig
from chromarate.fit.derivatives import Grid, MollifierBackend
from chromarate.fit.loop import _FieldNet, _Problem, fit_rates
from chromarate.fit.mollifier import make_kernels
from chromarate.fit.networks import RateNetwork
from chromarate.fit.physics import chromatin_weak_operator_terms

from ._helpers import PIXEL_UM, disk_mask, fields_from_state


def _reference_lattice(net, grid: Grid, stride: int, dev, dtype) -> torch.Tensor:
    """One network on the whole lattice, upsampled bicubically (the former ``_on_lattice``)."""
    def evaluate(g: Grid) -> torch.Tensor:
        out = net(g.coords(dev, dtype)).to(dtype)
        return (out[:, None] if out.ndim == 1 else out).T.reshape(-1, g.ny, g.nx)

    if stride <= 1:
        return evaluate(grid)
    cy = -(-(grid.ny - 1) // stride) + 1
    cx = -(-(grid.nx - 1) // stride) + 1
    out = evaluate(Grid(cy, cx, grid.h * stride, grid.y0, grid.x0)).unsqueeze(0)
    fine = torch.nn.functional.interpolate(out, size=((cy - 1) * stride + 1, (cx - 1) * stride + 1),
                                           mode="bicubic", align_corners=True)
    return fine[0, :, :grid.ny, :grid.nx]


def _reference_blur(a: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable zero-padded convolution, transform exactly field + kernel long."""
    p = (k.numel() - 1) // 2
    ny, nx = a.shape
    fy, fx = ny + 2 * p, nx + 2 * p
    spec = torch.fft.rfft2(a, s=(fy, fx))
    out = torch.fft.irfft2(spec * torch.fft.fft(k, n=fy)[:, None] * torch.fft.rfft(k, n=fx)[None, :],
                           s=(fy, fx))
    return out[p:p + ny, p:p + nx]


def _reference_losses(prob: _Problem, field_net, rate_net, w):
    """The weak-form loss of ``_Problem.losses`` computed the plain way."""
    cfg, h = prob.config, prob.halo
    iy, ix = w.inner()
    obs, mask = prob.obs[:, iy, ix], prob.mask[iy, ix]
    pg = prob._padded_grid(w)
    wgt = prob._weight(w)
    g = _reference_lattice(field_net, pg, prob.stride, prob.dev, prob.dtype)
    lam_pad = _reference_lattice(rate_net, pg, prob.stride, prob.dev, prob.dtype)[0]
    if prob.offset is not None:
        g = g + prob.offset[:, w.r0:w.r0 + w.nh + 2 * h, w.c0:w.c0 + w.nw + 2 * h]
    r = None
    for name, field, coef in chromatin_weak_operator_terms(g[0], g[1], lam_pad, prob.params):
        t = coef * prob.backend.convolve(field.unsqueeze(0), (name,))[name][0]  # one FFT each
        r = t if r is None else r + t
    fitted = prob.backend.convolve(g[:1], ("u",))["u"][0]
    lam = lam_pad[h:h + w.nh, h:h + w.nw]
    data = ((g[:, h:h + w.nh, h:h + w.nw] - obs) ** 2)[:, mask].mean() / prob.sigma**2
    tested = _reference_blur(wgt * r, prob.test_kernel)
    norm = _reference_blur(wgt, prob.test_kernel)
    res = (tested * tested).sum() / ((norm * norm).sum() * prob.scale_r**2)
    dev_lam = lam if prob.lam_b is None else lam - prob.lam_b[iy, ix]
    gy = (dev_lam[1:, :] - dev_lam[:-1, :])[mask[1:, :] & mask[:-1, :]] / prob.pixel_um
    gx = (dev_lam[:, 1:] - dev_lam[:, :-1])[mask[:, 1:] & mask[:, :-1]] / prob.pixel_um
    smooth = 0.5 * ((gy**2).mean() + (gx**2).mean())
    total = cfg.data_weight * data + cfg.residual_weight * res + cfg.prior.rate_smoothness * smooth
    return total, {"data": data, "residual": res, "smooth": smooth}, (fitted, lam, r)


@pytest.fixture(scope="module")
def disk_fields(constant_state):
    mask = disk_mask((64, 64), (32, 32), 27)
    return fields_from_state(constant_state, mask, PIXEL_UM)


def _problem_and_nets(fields, dtype=torch.float64, stride=2, seed=3, **kw):
    config = FitConfig(prior={"regularisation": "manual", "test_window_um": 0.15},
                       mollifier={"radius_px": 6.0},
                       network={"evaluation_stride": stride}, **kw)
    prob = _Problem(fields, config, torch.device("cpu"), dtype)
    gen = torch.Generator().manual_seed(seed)
    field_net = _FieldNet(prob.base, config, gen).to(dtype=dtype)
    rate_net = RateNetwork(initial_rate=prob.initial_rate, width=16, depth=2, n_fourier=8,
                           scale_per_um=0.5, generator=gen).to(dtype=dtype)
    with torch.no_grad():  # a non-zero field correction (the anchored head starts at 0)
        field_net.net.head.weight.normal_(0.0, 0.05, generator=gen)
    return prob, field_net, rate_net


def _loss_and_grads(fn, prob, field_net, rate_net, w):
    params = list(field_net.parameters()) + list(rate_net.parameters())
    for p in params:
        p.grad = None
    total, terms, outs = fn(prob, field_net, rate_net, w)
    total.backward()
    return total.detach(), {k: v.detach() for k, v in terms.items()}, \
        [None if p.grad is None else p.grad.clone() for p in params], outs


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_losses_and_gradients_equal_the_reference(disk_fields, stride, dtype, rtol):
    """In float64 both ways agree to 1e-10. In float32 the plain computation itself is off
    by up to ~1e-3 of a parameter's largest gradient entry and ~1e-4 in the residual term
    (FFT roundoff through the fourth-order kernels; with stride 3 also torch's inexact
    interpolation phases), so there the fast terms and gradients must be as close to the
    float64 values of the same networks as the plain ones are (or within ``rtol``)."""
    prob, field_net, rate_net = _problem_and_nets(disk_fields, dtype=dtype, stride=stride)
    assert prob.restrict_networks and prob.halo > 0
    w = prob.full_window()
    fast = _loss_and_grads(lambda p, f, r, w: p.losses(f, r, w), prob, field_net, rate_net, w)
    ref = _loss_and_grads(_reference_losses, prob, field_net, rate_net, w)
    exact = ref
    if dtype != torch.float64:
        prob64, _, _ = _problem_and_nets(disk_fields, dtype=torch.float64, stride=stride)
        exact = _loss_and_grads(_reference_losses, prob64, copy.deepcopy(field_net).double(),
                                copy.deepcopy(rate_net).double(), w)
    for k in ref[1]:
        t = float(exact[1][k])
        err_fast, err_ref = abs(float(fast[1][k]) - t), abs(float(ref[1][k]) - t)
        assert err_fast <= max(3.0 * err_ref, rtol * abs(t)), k
    for gf, gr, gt in zip(fast[2], ref[2], exact[2]):
        assert (gf is None) == (gr is None)
        if gr is not None:
            scale = float(gt.abs().max()) or 1.0
            err_fast = float((gf.double() - gt).abs().max())
            err_ref = float((gr.double() - gt).abs().max())
            assert err_fast <= max(3.0 * err_ref, rtol * scale)
    # the restricted evaluation leaves out lattice points off the nucleus ...
    box = prob._window_constants(w).box
    assert box is not None
    idx = box.idx
    n_lattice = (-(-(prob._padded_grid(w).ny - 1) // stride) + 1) * \
        (-(-(prob._padded_grid(w).nx - 1) // stride) + 1)
    assert idx.numel() < n_lattice
    # ... and the outputs agree where the loss reads them; without gradients everywhere
    trusted = prob._weight(w) > 0  # where the residual has weight
    mask = torch.as_tensor(prob.mask_np)
    (f_fast, lam_fast, r_fast), (f_ref, lam_ref, r_ref) = fast[3], ref[3]
    tol = rtol * 10
    assert torch.allclose(r_fast[trusted], r_ref[trusted], rtol=tol, atol=tol * float(r_ref.detach().abs().max()))
    assert torch.allclose(lam_fast[mask], lam_ref[mask], rtol=tol)
    with torch.no_grad():
        _, _, (f_all, lam_all, r_all) = prob.losses(field_net, rate_net, w)
        _, _, (f_ref, lam_ref, r_ref) = _reference_losses(prob, field_net, rate_net, w)
    for a, b in ((f_all, f_ref), (lam_all, lam_ref), (r_all, r_ref)):
        assert torch.allclose(a, b, rtol=tol, atol=tol * float(b.abs().max()))


def test_patches_use_their_own_constants(disk_fields):
    prob, field_net, rate_net = _problem_and_nets(disk_fields)
    rng = np.random.default_rng(0)
    for _ in range(3):
        w = prob.random_window(40, rng)
        fast = _loss_and_grads(lambda p, f, r, w: p.losses(f, r, w), prob, field_net, rate_net, w)
        ref = _loss_and_grads(_reference_losses, prob, field_net, rate_net, w)
        assert float(fast[0]) == pytest.approx(float(ref[0]), rel=1e-10)
        for gf, gr in zip(fast[2], ref[2]):
            if gr is not None:
                assert float((gf - gr).abs().max()) <= 1e-10 * (float(gr.abs().max()) or 1.0)


def test_restricted_and_full_network_evaluation_fit_the_same_rates(disk_fields):
    # float64: in float32 Adam amplifies roundoff-level gradient differences (different
    # transform sizes) to ~1e-4 in the rate after 30 steps on this small, steep problem
    config = FitConfig(prior={"regularisation": "manual", "test_window_um": 0.15},
                       training={"steps": 30}, mollifier={"radius_px": 6.0}, seed=1,
                       dtype="float64")
    fast = fit_rates(disk_fields, config, device="cpu").rate
    orig = _Problem.__init__

    def full_everywhere(self, *a, **kw):
        orig(self, *a, **kw)
        self.restrict_networks = False

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_Problem, "__init__", full_everywhere)
        full = fit_rates(disk_fields, config, device="cpu").rate
    inside = np.isfinite(full)
    assert inside.any()
    np.testing.assert_allclose(fast[inside], full[inside], rtol=1e-5)


def test_combine_with_reuses_a_terms_transform_and_matches_single_convolutions():
    ks = make_kernels("bump", 9.0, max_order=4, pixel=0.02)
    backend = MollifierBackend(ks, torch.device("cpu"), torch.float64, method="fft")
    gen = torch.Generator().manual_seed(0)
    n = 40 + 2 * backend.halo
    a, b, c = (torch.randn(n, n, generator=gen, dtype=torch.float64) for _ in range(3))
    terms = [("lap", a, 0.3), ("bilap", b, -2e-3), ("u", c, 1.0)]
    total, (ub, ua) = backend.combine_with(terms, extra=(("u", b), ("u", a.clone())))
    ref = sum(coef * backend.convolve(f.unsqueeze(0), (name,))[name][0] for name, f, coef in terms)
    assert torch.allclose(total, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))
    assert torch.allclose(ub, backend.convolve(b.unsqueeze(0), ("u",))["u"][0], atol=1e-12)
    assert torch.allclose(ua, backend.convolve(a.unsqueeze(0), ("u",))["u"][0], atol=1e-12)
    assert torch.allclose(backend.combine(terms), total, atol=1e-12 * float(ref.abs().max()))
    # coefficients that are tensors (not cached) work as well
    t_terms = [(n_, f, torch.tensor(cf, dtype=torch.float64)) for n_, f, cf in terms]
    assert torch.allclose(backend.combine(t_terms), total, atol=1e-12 * float(ref.abs().max()))
    direct = MollifierBackend(ks, torch.device("cpu"), torch.float64, method="direct")
    d_total, (d_ub,) = direct.combine_with(terms, extra=(("u", b),))
    assert torch.allclose(d_total, total, atol=1e-9 * float(ref.abs().max()))
    assert torch.allclose(d_ub, ub, atol=1e-9)


def test_losses_use_no_autocast_state(disk_fields):
    """``autocast`` is entered around the networks only (a no-op context here)."""
    prob, field_net, rate_net = _problem_and_nets(disk_fields)
    entered = []

    @contextlib.contextmanager
    def autocast():
        entered.append(True)
        yield

    prob.losses(field_net, rate_net, prob.full_window(), autocast)
    assert entered == [True]


@pytest.mark.parametrize("shape,n_kernel", [((17, 23), 7), ((40, 33), 31), ((5, 64), 11)])
def test_blur_with_short_transforms_equals_full_zero_padding(shape, n_kernel):
    from chromarate.fit.loop import _blur

    gen = torch.Generator().manual_seed(1)
    a = torch.randn(*shape, generator=gen, dtype=torch.float64)
    k = torch.rand(n_kernel, generator=gen, dtype=torch.float64)
    cache: dict = {}
    ref = _reference_blur(a, k)
    # direct sum over the kernel (a convolution: flipped), zero outside the field
    p = (n_kernel - 1) // 2
    padded = torch.nn.functional.pad(a, (p, p, p, p))
    direct = sum(k[2 * p - i] * k[2 * p - j] * padded[i:i + shape[0], j:j + shape[1]]
                 for i in range(n_kernel) for j in range(n_kernel))
    for _ in range(2):  # the second call uses the cached kernel spectrum
        out = _blur(a, k, cache)
        assert torch.allclose(out, ref, atol=1e-12)
        assert torch.allclose(out, direct, atol=1e-12)
    assert len(cache) == 1


def test_fourier_features_are_reused_only_for_the_same_unchanged_points():
    from chromarate.fit.networks import FourierMLP

    net = FourierMLP(2, width=8, depth=1, n_fourier=4, scale_per_um=1.0,
                     generator=torch.Generator().manual_seed(0))
    xy = torch.randn(6, 2)
    first = net.features(xy)
    assert net.features(xy) is first  # same tensor, unchanged: cached
    assert net.features(xy.clone()) is not first  # another tensor: recomputed
    xy2 = xy.clone()
    f2 = net.features(xy2)
    xy2.add_(0.5)  # changed in place: recomputed
    assert not torch.allclose(net.features(xy2), f2)
    net.freqs.mul_(2.0)  # frequencies changed in place: recomputed
    expect = torch.cat([torch.cos(2 * np.pi * xy2 @ net.freqs), torch.sin(2 * np.pi * xy2 @ net.freqs)], -1)
    assert torch.allclose(net.features(xy2), expect, atol=1e-6)
    probe = xy2.detach().requires_grad_(True)  # nested autograd needs the graph: no cache
    out = net.features(probe)
    assert out.requires_grad and net.features(probe) is not out
