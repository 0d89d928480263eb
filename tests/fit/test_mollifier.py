"""Tests of chromarate.fit.mollifier and the derivative backends (docs/design.md section 7).

The kernels must be exact on the pixel grid: each 1-D kernel of derivative order ``a``
reproduces the derivatives of every polynomial of degree <= a + 2 (or the requested degree)
to rounding error, the 2-D operators (tensor products) reproduce those of 2-D polynomials,
and derivatives of smooth fields converge to their closed forms as the radius shrinks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chromarate.errors import ConfigError
from chromarate.fit.mollifier import (
    MollifierKernels,
    apply_2d_numpy,
    kernel_1d,
    kernel_weights,
    make_kernels,
)

KINDS = ("bump", "wendland")


def _exact_degree(order: int, degree: int | None) -> int:
    # default: one degree for every order, the highest order (4) + 2
    return 6 if degree is None else degree


# --------------------------------------------------------------------------- 1-D kernels


@pytest.mark.parametrize("degree", [None, 6])
@pytest.mark.parametrize("pixel", [1.0, 0.02])
@pytest.mark.parametrize("radius", [4.0, 6.5, 8.0, 12.0])
@pytest.mark.parametrize("kind", KINDS)
def test_kernel_1d_exact_on_polynomials(kind, radius, pixel, degree):
    """k @ f(x0 + j h) == f^(a)(x0) for all monomials up to the kernel's degree."""
    ks = make_kernels(kind, radius, degree=degree, max_order=4, pixel=pixel)
    assert ks.degree == (6 if degree is None else degree)
    L = radius * pixel  # physical radius: keeps the polynomial values O(1)
    x0 = 17.37 * pixel  # off-grid evaluation point
    c = x0 - 0.7 * L  # expansion centre, so that no derivative vanishes at x0
    for a in range(5):
        k = ks.kernels[a]
        half = (len(k) - 1) // 2
        assert half == ks.half_width
        x = x0 + pixel * np.arange(-half, half + 1)
        for m in range(_exact_degree(a, degree) + 1):
            f = ((x - c) / L) ** m
            got = float(k @ f)
            if m >= a:
                exact = math.factorial(m) / math.factorial(m - a) * (x0 - c) ** (m - a) / L**m
                assert got == pytest.approx(exact, rel=1e-9), (a, m)
            else:  # derivative of a lower-degree monomial: zero up to rounding
                assert abs(got) <= 1e-9 * float(np.abs(k) @ np.abs(f)), (a, m)


@pytest.mark.parametrize("degree", [None, 6])
@pytest.mark.parametrize("kind", KINDS)
def test_kernel_1d_not_exact_beyond_its_degree(kind, degree):
    """Control: the exactness above is a property of the degree, not of the test."""
    ks = make_kernels(kind, 8.0, degree=degree)
    j = np.arange(-ks.half_width, ks.half_width + 1) / 8.0
    for a in range(5):
        q = _exact_degree(a, degree)
        m = q + 1 if (q + 1 - a) % 2 == 0 else q + 2  # first moment symmetry does not kill
        moment = float(ks.kernels[a] @ j**m) * 8.0**a
        assert abs(moment) > 1e-6, (a, m)


def test_kernels_are_symmetric_and_normalised():
    ks = make_kernels("bump", 7.5, pixel=0.02)
    for a, k in enumerate(ks.kernels):
        np.testing.assert_allclose(k, (-1) ** a * k[::-1], atol=1e-12 * np.abs(k).max())
    assert ks.kernels[0].sum() == pytest.approx(1.0, abs=1e-13)
    # kernels scale as pixel^-order
    k1 = make_kernels("bump", 7.5, pixel=1.0)
    for a in range(5):
        np.testing.assert_allclose(ks.kernels[a], k1.kernels[a] / 0.02**a, rtol=1e-12)


def test_design_counter_example_fourth_derivative():
    """docs/design.md s.7: the order-4 kernel of radius 8 px on x^4/24 must give 1 (not -21)."""
    for k in (kernel_1d("bump", 8.0, 4, 6), make_kernels("bump", 8.0).kernels[4]):
        h = (len(k) - 1) // 2
        x = np.arange(-h, h + 1, dtype=float)
        assert float(k @ (x**4 / 24.0)) == pytest.approx(1.0, abs=1e-10)
    for r in (8.0, 12.0):  # the 2-D bilaplacian of x^4/24 is 1 as well
        ks = make_kernels("bump", r)
        n = 2 * ks.half_width + 5
        xx = np.broadcast_to(np.arange(n, dtype=float) - n // 2, (n, n))
        out = apply_2d_numpy(xx**4 / 24.0, ks, "bilap", mode="valid")
        np.testing.assert_allclose(out, 1.0, atol=1e-9)


def test_weights_support_and_shape():
    j, w = kernel_weights("bump", 6.5)
    assert j[0] == -6 and j[-1] == 6
    assert np.all(w > 0) and np.argmax(w) == 6
    j, w = kernel_weights("wendland", 4.0)  # |j| < 4 only
    assert list(j) == [-3, -2, -1, 0, 1, 2, 3]


# --------------------------------------------------------------------------- 2-D operators


def _abs_scale(field, ks, name):
    """Rounding-error scale of an operator: the same sums with |kernels| and |field|."""
    ka = MollifierKernels(ks.kind, ks.radius_px, ks.degree, ks.pixel,
                          tuple(np.abs(k) for k in ks.kernels))
    return apply_2d_numpy(np.abs(field), ka, name, mode="valid")


def _poly_cases(h):
    ny, nx = 40, 44
    y = (np.arange(ny) - 19.6) * h
    x = (np.arange(nx) - 21.3) * h
    Y, X = np.meshgrid(y, x, indexing="ij")
    zero = np.zeros_like(X)
    return {
        "x^2 y^2": (X**2 * Y**2, {"u": X**2 * Y**2, "u_x": 2 * X * Y**2, "u_y": 2 * X**2 * Y,
                                  "lap": 2 * X**2 + 2 * Y**2, "bilap": zero + 8.0,
                                  "u_xy": 4 * X * Y}),
        "x^4/24 + y^3": (X**4 / 24 + Y**3, {"u_x": X**3 / 6, "u_y": 3 * Y**2,
                                            "lap": X**2 / 2 + 6 * Y, "bilap": zero + 1.0,
                                            "u_yy": 6 * Y}),
        "x^3 y": (X**3 * Y, {"u": X**3 * Y, "u_x": 3 * X**2 * Y, "u_y": X**3,
                             "lap": 6 * X * Y, "bilap": zero, "u_xx": 6 * X * Y}),
    }


@pytest.mark.parametrize("degree", [None, 6])
@pytest.mark.parametrize("pixel", [1.0, 0.02])
@pytest.mark.parametrize("radius", [4.0, 6.5, 8.0])
@pytest.mark.parametrize("kind", KINDS)
def test_2d_operators_exact_on_polynomials(kind, radius, pixel, degree):
    ks = make_kernels(kind, radius, degree=degree, pixel=pixel)
    hw = ks.half_width
    for label, (field, ops) in _poly_cases(pixel).items():
        for name, exact in ops.items():
            got = apply_2d_numpy(field, ks, name, mode="valid")
            want = exact[hw:-hw, hw:-hw]
            assert got.shape == want.shape
            err = np.abs(got - want)
            # exact up to rounding (measured <= 1.3e-13 of the rounding scale)
            assert np.all(err <= 1e-10 * _abs_scale(field, ks, name) + 1e-300), (label, name)
            if radius >= 8.0:  # well-conditioned sizes: plain relative error
                # (measured <= 2.5e-8 for bilap at pixel 0.02: rounding amplified by h^-4)
                assert err.max() <= 1e-7 * max(1.0, np.abs(want).max()), (label, name)


def test_apply_2d_same_mode_matches_valid_in_interior():
    ks = make_kernels("bump", 5.0, pixel=0.01)
    rng = np.random.default_rng(1)
    f = rng.standard_normal((30, 33))
    hw = ks.half_width
    for name in ("u", "lap", "bilap", "u_x"):
        valid = apply_2d_numpy(f, ks, name, mode="valid")
        same = apply_2d_numpy(f, ks, name, mode="same")
        assert same.shape == f.shape
        np.testing.assert_allclose(same[hw:-hw, hw:-hw], valid, rtol=0, atol=1e-12 * np.abs(valid).max())


# --------------------------------------------------------------------------- smooth fields

H_SMOOTH = 0.01  # 10 nm grid in um


def _smooth_fields():
    n = 96
    y = np.arange(n) * H_SMOOTH + 0.123
    x = np.arange(n + 10) * H_SMOOTH - 0.31
    Y, X = np.meshgrid(y, x, indexing="ij")
    kx, ly = 2 * np.pi / 0.6, 2 * np.pi / 0.45  # wavelengths 600 and 450 nm
    K2 = kx**2 + ly**2
    s = np.sin(kx * X) * np.cos(ly * Y)
    sig = 0.15
    r2 = (X - X.mean()) ** 2 + (Y - Y.mean()) ** 2
    g = np.exp(-r2 / (2 * sig**2))
    return {
        "sincos": (s, {"lap": -K2 * s, "bilap": K2**2 * s,
                       "u_x": kx * np.cos(kx * X) * np.cos(ly * Y),
                       "u_y": -ly * np.sin(kx * X) * np.sin(ly * Y)}),
        "gauss": (g, {"lap": g * (r2 / sig**4 - 2 / sig**2),
                      "bilap": g * (r2**2 / sig**8 - 8 * r2 / sig**6 + 8 / sig**4)}),
    }


def _max_rel_err(field, exact, ks, name):
    hw = ks.half_width
    got = apply_2d_numpy(field, ks, name, mode="valid")
    want = exact[hw:-hw, hw:-hw]
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize("degree", [None, 6])
@pytest.mark.parametrize("radius", [4.0, 6.0])
@pytest.mark.parametrize("kind", KINDS)
def test_smooth_fields_match_closed_forms(kind, radius, degree):
    """Resolved fields (>= 45 px per wavelength): max relative error < 1e-3.

    Measured: degree None <= 5.7e-4 (radius 6), degree 6 <= 2.0e-4.
    """
    ks = make_kernels(kind, radius, degree=degree, pixel=H_SMOOTH)
    for label, (field, ops) in _smooth_fields().items():
        for name, exact in ops.items():
            assert _max_rel_err(field, exact, ks, name) < 1e-3, (label, name)


@pytest.mark.parametrize("kind", KINDS)
def test_smoothing_bias_small_and_growing_with_radius(kind):
    """Default kernels (K_0 exact to degree 6, derivatives = exact differences of the
    mollified field): on a resolved sin*cos field the relative error of lap and bilap stays
    below 1e-5 for radii 4..12 px (measured: lap 9e-9 .. 2.1e-6, bilap 5.0e-6 .. 7.1e-6, the
    bilap floor being the difference stencil's h^6 term); the smoothing bias of lap grows
    with the radius."""
    field, ops = _smooth_fields()["sincos"]
    radii = np.array([4.0, 6.0, 8.0, 12.0])
    for name in ("lap", "bilap"):
        errs = [_max_rel_err(field, ops[name], make_kernels(kind, r, pixel=H_SMOOTH), name)
                for r in radii]
        assert max(errs) < 1e-5, (name, errs)
        if name == "lap":
            assert np.all(np.diff(errs) > 0), errs


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call",
    [
        lambda: make_kernels("gauss", 6.0),
        lambda: make_kernels("bump", 1.0),
        lambda: make_kernels("bump", 0.5),
        lambda: make_kernels("bump", float("nan")),
        lambda: make_kernels("bump", 2.0, degree=6),  # 3 samples cannot fit degree 6
        lambda: make_kernels("wendland", 2.5),  # default order-4 kernel needs 7 samples
        lambda: make_kernels("bump", 8.0, degree=3, max_order=4),
        lambda: kernel_1d("bump", 8.0, 5, 4),
        lambda: kernel_weights("triangle", 4.0),
        lambda: apply_2d_numpy(np.zeros((30, 30)), make_kernels("bump", 4.0), "curl"),
        lambda: apply_2d_numpy(np.zeros((30, 30)), make_kernels("bump", 4.0), "lap", mode="full"),
    ],
)
def test_bad_kernel_requests_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()


def test_config_error_is_value_error_and_names_the_fix():
    with pytest.raises(ValueError, match="radius"):
        make_kernels("bump", 2.0, degree=6)
