"""Closed-form inversion of the chromatin model from mollified observations."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .._types import FitResult, PhaseFields
from ..config import FitConfig
from ..errors import StageError
from .blur import blur_correction, observation_blur_nm
from .mollifier import apply_2d_numpy, make_kernels
from .physics import ChromatinParams, chromatin_strong_terms, chromatin_weak_terms, rate_ratio
from .prior import denoise_fields, fill_nearest, fit_scales, smooth_taper, windowed_ratio
from .uncertainty import interval_std, smoothing_bias, windowed_rate_std
from .width import choose_radius, estimate_noise, trusted_mask, window_support

__all__ = ["RateTerms", "check_fields", "closed_form_prior", "closed_form_settings", "invert_direct",
           "min_radius_px",
           "mollified_derivatives",
           "rate_terms", "report_region", "resolve_radius", "restrict_to_report", "sandwich_std"]

#: Width (pixels) over which the residual weight rises from the edge of the trusted region.
TAPER_PX = 12.0


def check_fields(fields: PhaseFields) -> None:
    """Raise StageError unless the phase fields are consistent, finite and physical."""
    if fields.phi_d.shape != fields.phi_w.shape or fields.phi_d.shape != fields.mask.shape:
        raise StageError("phi_d, phi_w and mask must have the same shape")
    if not np.asarray(fields.mask).any():
        raise StageError("the nucleus mask is empty")
    for name in ("phi_d", "phi_w"):
        a = np.asarray(getattr(fields, name))[np.asarray(fields.mask, bool)]
        if not np.all(np.isfinite(a)):
            raise StageError(f"{name} has non-finite values inside the nucleus")
        if np.max(np.abs(a)) > 2.0:
            raise StageError(f"{name} has values outside the physical range [-1, 1] inside the "
                             f"nucleus (max |{name}| = {np.max(np.abs(a)):.3g})")


def min_radius_px(mollifier) -> float:
    """Smallest kernel radius (pixels) with enough samples for the kernels' polynomial
    degree (``mollifier``: a :class:`~chromarate.config.MollifierConfig`; the default
    degree is 6, the fourth-order model's highest derivative + 2)."""
    return ((mollifier.degree or 6) + 2) / 2.0


def resolve_radius(fields: PhaseFields, config: FitConfig) -> tuple[float, float]:
    """(radius in pixels, noise estimate of phi_d) for a fit: manual or automatic."""
    noise = estimate_noise(fields.phi_d, fields.mask)
    m = config.mollifier
    if m.radius_px != "auto":
        return float(m.radius_px), noise
    pixel_um = fields.pixel_size_nm / 1000.0
    phi_e = fields.phi_e[fields.mask]
    reaction = 2.0 * float(np.mean(fields.phi_h[fields.mask]))  # = 2 lambda phi_e on average
    r_min = max(4.0, min_radius_px(m))
    # keep a trusted interior: the kernel (radius + stencil) must fit well inside the nucleus
    inradius = float(ndi.distance_transform_edt(np.asarray(fields.mask, bool)).max())
    r_max = float(np.clip(np.floor(0.6 * inradius) - 3.0, r_min, 24.0))
    radius = choose_radius(noise, pixel_um=pixel_um, kind=m.kernel, degree=m.degree,
                           interface_um=config.physics.interface_um,
                           mobility=config.physics.mobility,
                           reaction_scale=max(reaction, 2.0 * float(np.mean(phi_e)) * 0.1),
                           r_min=r_min, r_max=r_max)
    return radius, noise


def _window_weight(trusted: np.ndarray, window_um: float,
                   pixel_um: float) -> tuple[np.ndarray, float]:
    """(smooth residual weight over ``trusted``, test window in pixels), both capped on
    small nuclei (:func:`~chromarate.fit.prior.fit_scales`)."""
    taper, window = fit_scales(trusted, TAPER_PX, window_um / pixel_um)
    return smooth_taper(trusted, taper), float(window)


def report_region(mask: np.ndarray, config: FitConfig, radius_px: float,
                  pixel_um: float) -> np.ndarray:
    """Pixels where a fit with mollifier radius ``radius_px`` reports the rate.

    The residual is trusted where the values outside the envelope cannot reach it
    (:func:`~chromarate.fit.width.trusted_mask`) and, with a test window, the rate where at
    least half of its window lies on that residual's weight
    (:func:`~chromarate.fit.width.window_support`).

    Parameters
    ----------
    mask : numpy.ndarray
        bool nucleus mask.
    config : FitConfig
        Mollifier kernel and degree, and ``prior.test_window_um``.
    radius_px, pixel_um : float

    Returns
    -------
    numpy.ndarray
        bool, same shape.
    """
    m = config.mollifier
    ks = make_kernels(m.kernel, radius_px, degree=m.degree, max_order=4, pixel=pixel_um)
    trusted = trusted_mask(mask, ks)
    window_um = config.prior.test_window_um
    if window_um is None or not trusted.any():
        return trusted
    return trusted & window_support(*_window_weight(trusted, window_um, pixel_um))


def restrict_to_report(trusted: np.ndarray, mask: np.ndarray, config: FitConfig,
                       radius_px: float, report_radius_px: float | None,
                       pixel_um: float) -> np.ndarray:
    """``trusted`` within the region a fit with the noise rule's radius
    ``report_radius_px`` reports (:func:`report_region`), when the fit's kernel
    ``radius_px`` is smaller (:func:`chromarate.fit.regularise.choose_kernel_radius`);
    unchanged otherwise. The band a smaller kernel adds near the envelope was poor on the
    development cases (docs/numerics.md)."""
    if report_radius_px is None or report_radius_px <= radius_px:
        return trusted
    return trusted & report_region(mask, config, report_radius_px, pixel_um)


def sandwich_std(fields: PhaseFields, config: FitConfig, terms: "RateTerms", rate: np.ndarray,
                 report_radius_px: float | None = None) -> tuple[np.ndarray, float]:
    """The noise part of a single fit's ``rate_std`` and the test window it is taken over.

    :func:`~chromarate.fit.uncertainty.windowed_rate_std` of ``rate`` over the fit's test
    window (from its own ``terms``). A fit whose kernel is smaller than the noise rule's
    (``report_radius_px``; :func:`chromarate.fit.regularise.choose_kernel_radius`) leaves
    residuals dominated by pixel-scale noise through its fourth-order kernel, which the
    test window averages away but the sandwich's correlation area (the central lobe of
    their autocorrelation) does not see cancel: its ``rate_std`` came out 10 to 100 times
    the error on the validation cases. The residual terms and weight are then those of the
    noise rule's kernel, whose noise is already averaged over the kernel (docs/numerics.md).

    Returns
    -------
    (numpy.ndarray, float)
        Standard deviation map, test window (pixels).
    """
    weight, window = terms.window_weight(config.prior.test_window_um)
    if report_radius_px is not None and report_radius_px > terms.radius:
        terms = rate_terms(fields, config, radius_px=report_radius_px)
        weight = terms.window_weight(config.prior.test_window_um)[0]
    return windowed_rate_std(terms.num, terms.den, weight, window, rate), window


def mollified_derivatives(field: np.ndarray, kernels) -> dict[str, np.ndarray]:
    """u, u_x, u_y, lap, bilap of a field (same shape, mirrored at the border)."""
    return {n: apply_2d_numpy(field, kernels, n, mode="same")
            for n in ("u", "u_x", "u_y", "lap", "bilap")}


@dataclass(frozen=True)
class RateTerms:
    """The residual's terms ``r = den * lambda - num`` of one nucleus, from the denoised
    fields through the mollifier kernels (what the closed form and the uncertainty use).

    Attributes
    ----------
    num, den, fitted : numpy.ndarray
        The terms, and the mollified phi_d.
    trusted : numpy.ndarray
        bool, pixels the values outside the nucleus cannot reach
        (:func:`~chromarate.fit.width.trusted_mask`).
    radius, noise : float
        Mollifier radius (pixels) and the noise estimate of phi_d.
    pixel_um : float
    """

    num: np.ndarray
    den: np.ndarray
    fitted: np.ndarray
    trusted: np.ndarray
    radius: float
    noise: float
    pixel_um: float

    def window_weight(self, window_um: float) -> tuple[np.ndarray, float]:
        """(smooth residual weight over the trusted pixels, test window in pixels)."""
        return _window_weight(self.trusted, window_um, self.pixel_um)


def rate_terms(fields: PhaseFields, config: FitConfig, *,
               radius_px: float | None = None) -> RateTerms:
    """Denoise the fields as ``config.prior.field_prior`` says and form the residual's terms
    with the mollifier kernels (weak or strong form, as ``config.residual_form`` says) of
    radius ``radius_px`` (default: the fit's choice, :func:`resolve_radius`), corrected for
    the observation blur ``config.observation_blur_nm`` (:mod:`chromarate.fit.blur`)."""
    if radius_px is None:
        radius, noise = resolve_radius(fields, config)
    else:  # the radius is given: only the noise estimate is needed
        radius, noise = float(radius_px), estimate_noise(fields.phi_d, fields.mask)
    pixel_um = fields.pixel_size_nm / 1000.0
    ks = make_kernels(config.mollifier.kernel, radius, degree=config.mollifier.degree,
                      max_order=4, pixel=pixel_um)
    params = ChromatinParams.from_config(config.physics)
    phi_d, phi_w = denoise_fields(fields.phi_d, fields.phi_w, fields.mask, noise,
                                  method=config.prior.field_prior,
                                  strength=config.prior.field_prior_strength)

    def conv(name, f):
        return apply_2d_numpy(f, ks, name, mode="same")

    if config.residual_form == "weak":
        num, den = chromatin_weak_terms(conv, phi_d, phi_w, params)
        fitted = conv("u", phi_d)
    else:
        d = mollified_derivatives(phi_d, ks)
        num, den = chromatin_strong_terms(d, mollified_derivatives(phi_w, ks), params)
        fitted = d["u"]
    blur_um = observation_blur_nm(fields.meta, config.observation_blur_nm) / 1000.0
    if blur_um > 0.0:  # r gains M lap * c, i.e. num loses (M/2) lap * c (fit.blur)
        c = blur_correction(phi_d, phi_w, conv, blur_um, params.phi_max)
        num = num - 0.5 * params.mobility * conv("lap", c)
    return RateTerms(num, den, fitted, trusted_mask(fields.mask, ks), radius, noise, pixel_um)


def invert_direct(fields: PhaseFields, config: FitConfig = FitConfig()) -> FitResult:
    """Rate map from the closed form lambda = (phi_h - (M/2) lap mu_d) / phi_e.

    The observed fields are first denoised as ``config.prior.field_prior`` says (total variation
    by default, weight from the estimated noise); all derivatives then come from the
    mollifier kernels, with no fitting. With ``residual_form="weak"`` (default) the
    derivatives are moved onto the kernels
    (:func:`~chromarate.fit.physics.chromatin_weak_terms`). With ``test_window_um`` set
    (default 0.3 um), lambda is the local least-squares solution over a Gaussian window of
    that standard deviation (:func:`~chromarate.fit.prior.windowed_ratio`); with None it is
    pointwise, which shows how much the fourth-order derivatives amplify noise.

    Parameters
    ----------
    fields : PhaseFields
    config : FitConfig
        Physics, mollifier, prior and window settings are used; the network settings are
        ignored.

    Returns
    -------
    FitResult
        ``rate`` is NaN outside the trusted interior; ``residual`` is zero there.

    Examples
    --------
    >>> from chromarate.data import simulate_nucleus
    >>> from chromarate.config import SimulateConfig
    >>> truth = simulate_nucleus(SimulateConfig(shape=(64, 64), pixel_size_nm=20.0,
    ...                          nucleus_radii_um=(0.55, 0.55), n_localizations=1000))
    >>> fields = PhaseFields(truth.phi_w, truth.phi_d, truth.mask, truth.pixel_size_nm)
    >>> result = invert_direct(fields)
    >>> result.rate.shape
    (64, 64)
    """
    from .regularise import choose_regularisation  # imports this module

    check_fields(fields)
    t0 = time.perf_counter()
    config, chosen = choose_regularisation(fields, config)
    # no rate network here: its frequency scale is not part of this fit's record
    chosen = {k: v for k, v in chosen.items() if k != "rate_fourier_scale_per_um"}
    terms = rate_terms(fields, config)
    trusted = terms.trusted
    if config.prior.test_window_um is None:
        rate = rate_ratio(terms.num, terms.den)
        rate_std = window = None
    else:
        weight, window = terms.window_weight(config.prior.test_window_um)
        rate = windowed_ratio(terms.num, terms.den, weight, window)
        # reported where the data determine the windowed rate (as for the PINN), and
        # within the noise rule's region when the kernel is smaller (as for the PINN)
        trusted = trusted & window_support(weight, window)
        report = chosen.get("report_radius_px")
        trusted = restrict_to_report(trusted, fields.mask, config, terms.radius, report,
                                     terms.pixel_um)
        std, _ = sandwich_std(fields, config, terms, rate, report)
        bias = smoothing_bias(rate, trusted, window, passes=1)
        rate_std = np.where(trusted, interval_std(std, bias), np.nan).astype(np.float32)
    rate = np.where(trusted, rate, np.nan)
    residual = np.where(trusted, 0.0, np.nan)
    radius, noise, fitted = terms.radius, terms.noise, terms.fitted
    return FitResult(
        rate=rate.astype(np.float32),
        phi_d_fit=fitted.astype(np.float32),
        residual=residual.astype(np.float32),
        trusted=trusted,
        rate_std=rate_std,
        timings={"fit": time.perf_counter() - t0},
        device="cpu",
        config=config.model_dump(mode="json"),
        meta={"method": "direct", "mollifier_radius_px": radius, "noise_phi_d": noise,
              "field_prior": config.prior.field_prior, "window_um": config.prior.test_window_um,
              "test_window_px": window,
              "rate_std_source": None if rate_std is None else "residual",
              "regularisation": chosen,
              "observation_blur_nm": observation_blur_nm(fields.meta, config.observation_blur_nm)},
    )


def closed_form_settings(config: FitConfig, chosen: dict, radius_px: float | None) -> FitConfig:
    """The closed form's settings for checking a fit: ``config`` (as the user gave it) with
    the rate prior and test window the fit chose (``chosen``, its regularisation record)
    and its mollifier radius, so that nothing is chosen again."""
    same = {k: chosen[k] for k in ("rate_smoothness", "test_window_um") if k in chosen}
    update = {"prior": config.prior.model_copy(update={**same, "regularisation": "manual"})}
    if radius_px is not None:
        update["mollifier"] = config.mollifier.model_copy(update={"radius_px": float(radius_px)})
    return config.model_copy(update=update)


def closed_form_prior(fields: PhaseFields, config: FitConfig,
                      radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The windowed closed form's rate on the whole grid, as a rate prior of the PINN.

    Solved with the prior settings in ``config`` as given (the values the fit chose) and
    the fit's kernel radius; outside the closed form's trusted region every pixel takes
    the value of the nearest trusted pixel (the penalty only needs a smooth continuation).

    Parameters
    ----------
    fields : PhaseFields
    config : FitConfig
        The fit's configuration after its regularisation was chosen.
    radius_px : float
        The fit's mollifier radius.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float64 rate, finite everywhere (the fields' mean balance ``mean(phi_h) /
        mean(phi_e)`` when the closed form reports nothing), and the bool map of the pixels
        the closed form reported.
    """
    prior = config.prior.model_copy(update={"regularisation": "manual"})
    mollifier = config.mollifier.model_copy(update={"radius_px": float(radius_px)})
    closed = config.model_copy(update={"method": "direct", "prior": prior,
                                       "mollifier": mollifier})
    rate = np.asarray(invert_direct(fields, closed).rate, dtype=np.float64)
    ok = np.isfinite(rate)
    if not ok.any():
        m = np.asarray(fields.mask, bool)
        mean = float(np.mean(fields.phi_h[m])) / max(float(np.mean(fields.phi_e[m])), 1e-3)
        return np.full(rate.shape, mean), ok
    return fill_nearest(rate), ok
