"""Tests of the torch derivative backends of chromarate.fit.derivatives (docs/design.md s.7).

The mollifier backend must give the same numbers as the numpy reference of
:mod:`chromarate.fit.mollifier` on both convolution paths, and agree with nested autograd
(exact derivatives of an analytic network) up to its smoothing bias.
"""

from __future__ import annotations

import numpy as np
import pytest

from chromarate.errors import ConfigError
from chromarate.fit.mollifier import apply_2d_numpy, make_kernels

torch = pytest.importorskip("torch")
from chromarate.fit.derivatives import AutogradBackend, MollifierBackend, make_grid  # noqa: E402

NAMES = ("u", "u_x", "u_y", "u_xx", "u_yy", "u_xy", "lap", "bilap")


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("kind,radius,degree", [("bump", 5.0, 6), ("wendland", 7.5, None)])
def test_torch_backend_matches_numpy(kind, radius, degree, method):
    ks = make_kernels(kind, radius, degree=degree, pixel=0.01)
    rng = np.random.default_rng(0)
    g = rng.standard_normal((2, 40, 51))
    backend = MollifierBackend(ks, torch.device("cpu"), torch.float64, method=method)
    assert backend.halo == ks.half_width
    out = backend.convolve(torch.as_tensor(g), NAMES)
    for name in NAMES:
        assert out[name].dtype == torch.float64
        for c in range(2):
            ref = apply_2d_numpy(g[c], ks, name, mode="valid")
            got = out[name][c].numpy()
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


class _SinCos(torch.nn.Module):
    """Analytic network: (sin(a x) cos(b y), 2 sin(a x) cos(b y)) with a dummy parameter."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, xy):
        u = torch.sin(self.a * xy[:, 0]) * torch.cos(self.b * xy[:, 1]) + self.dummy
        return torch.stack([u, 2.0 * u], dim=-1)


def test_autograd_and_mollifier_backends_agree_on_smooth_field():
    h = 0.01
    a, b = 2 * np.pi / 0.6, 2 * np.pi / 0.45
    net = _SinCos(a, b)
    grid = make_grid((40, 46), h)
    names = ("u", "u_x", "lap", "bilap")
    f_ag = AutogradBackend().fields(net, grid, names)
    ks = make_kernels("bump", 5.0, degree=6, pixel=h)
    f_mo = MollifierBackend(ks, torch.device("cpu"), torch.float64).fields(net, grid, names)
    y = grid.y0 + h * np.arange(grid.ny)
    x = grid.x0 + h * np.arange(grid.nx)
    Y, X = np.meshgrid(y, x, indexing="ij")
    u = np.sin(a * X) * np.cos(b * Y)
    K2 = a * a + b * b
    exact = {"u": u, "u_x": a * np.cos(a * X) * np.cos(b * Y), "lap": -K2 * u, "bilap": K2**2 * u}
    # measured: autograd ~5e-16, mollifier <= 2.5e-5 (bilap), relative to the field's max
    for name in names:
        for c in range(2):
            want = (c + 1) * exact[name]
            scale = np.abs(want).max()
            ag = f_ag[name][c].detach().numpy()
            mo = f_mo[name][c].detach().numpy()
            assert ag.shape == mo.shape == want.shape
            assert np.abs(ag - want).max() < 1e-12 * scale, name
            assert np.abs(mo - want).max() < 1e-4 * scale, name
            assert np.abs(mo - ag).max() < 1e-4 * scale, name


def test_mollifier_backend_gradient_reaches_network_once():
    """Backprop through the convolution: d(sum lap u)/d(dummy) is sum(lap of 1) = 0 exactly,
    and d(sum u)/d(dummy) = number of outputs per channel times the channel factor."""
    h = 0.01
    net = _SinCos(3.0, 4.0)
    grid = make_grid((20, 24), h)
    ks = make_kernels("bump", 4.0, pixel=h)
    backend = MollifierBackend(ks, torch.device("cpu"), torch.float64)
    f = backend.fields(net, grid, ("u", "lap"))
    (g_u,) = torch.autograd.grad(f["u"].sum(), net.dummy, retain_graph=True)
    (g_lap,) = torch.autograd.grad(f["lap"].sum(), net.dummy)
    assert float(g_u) == pytest.approx(3.0 * grid.ny * grid.nx, rel=1e-12)
    assert abs(float(g_lap)) < 1e-6 * float(np.abs(ks.kernels[2]).sum()) * grid.ny * grid.nx


def test_backend_rejects_unknown_names_and_methods():
    ks = make_kernels("bump", 4.0, max_order=2, degree=4)
    backend = MollifierBackend(ks, torch.device("cpu"), torch.float64)
    g = torch.zeros(1, 20, 20, dtype=torch.float64)
    with pytest.raises(ConfigError):
        backend.convolve(g, ("curl",))
    with pytest.raises(ConfigError):  # bilap needs order-4 kernels
        backend.convolve(g, ("bilap",))
    with pytest.raises(ConfigError):
        MollifierBackend(ks, torch.device("cpu"), torch.float64, method="wavelet")


def test_autograd_forms_derivatives_only_where_asked():
    """``where`` limits nested autograd to the scored pixels: same values there, zeros
    elsewhere, ``u`` everywhere, and gradients reach the network through both."""
    from chromarate.fit.networks import FourierMLP

    net = FourierMLP(2, width=16, depth=2, n_fourier=8, scale_per_um=2.0,
                     generator=torch.Generator().manual_seed(0)).double()
    grid = make_grid((12, 10), 0.05)
    names = ("u", "u_x", "u_y", "lap", "bilap")
    full = AutogradBackend().fields(net, grid, names)
    where = torch.zeros(12, 10, dtype=torch.bool)
    where[3:9, 2:7] = True
    part = AutogradBackend().fields(net, grid, names, where=where)
    torch.testing.assert_close(part["u"], full["u"])
    for n in names[1:]:
        torch.testing.assert_close(part[n][:, where], full[n][:, where])
        assert torch.all(part[n][:, ~where] == 0)
    (part["bilap"].sum() + part["u"].sum()).backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in net.parameters())
