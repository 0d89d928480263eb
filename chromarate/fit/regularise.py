"""Regularisation of the rate chosen from the nucleus itself.

How strongly the rate map must be smoothed depends on how far the observed fields are
from a steady state of the model that a smooth rate explains: clean fields need almost
no prior (the physics pins lambda down pixel by pixel), while phase fields rendered from a
few hundred thousand localizations carry noise that the fourth-order operator turns into
spurious rate structure. Which kind of noise (white pixel noise or noise correlated by
rendering and denoising) does not matter here: the criterion is measured on the actual
fields through the actual operators.

Criterion (``"steadiness"``, the default): the relative misfit ``J`` of the weak residual
against the windowed closed form (:func:`chromarate.fit.calibrate.scale_misfit`), the
share of the residual that no smooth rate explains. ``J`` is about 3e-4 for noise-free
simulated steady states, 1e-3 to 5e-3 with 1 % white noise, 0.01 to 0.05 with 5 %, and
0.12 to 0.39 for fields rendered from 50k-1M localizations (validation suite and
``simulate`` nuclei). The rate prior and the test
window are interpolated on a log scale of ``J`` between the weak setting
(``rate_smoothness`` 1e-3, 0.15 um windows; measured best for white noise up to 5 %) below
``J_WEAK`` and the strong one (1.0, 0.3 um; measured best on the rendered ``simulate``
nuclei at J >= 0.3) above ``J_STRONG``. ``J_WEAK`` is 0.15: rendered suite nuclei at
J ~ 0.21 recovered lambda best with ``rate_smoothness`` 0.01-0.03 (docs/validation-studies.md).
Below ``J_FINE_END`` the window narrows towards ``FINE_WINDOW_UM`` (0.1 um at ``J_FINE``):
with little noise in the fourth-order terms a narrower window resolves more of lambda.
J measures the noise only; how rough lambda is, which also sets the best prior, it cannot
see. The rate network's frequency scale follows the window
(:func:`fourier_scale_for_window`): its random frequencies reach as far as the weak form
resolves. The number of Adam steps grows from ``fit.training.steps`` (strong prior) to
``WEAK_STEPS_FACTOR`` times that (weak prior): a weakly regularised rate travels further
from its start.

**A floor from the rate's variation.** Where the fit solves the windowed closed form, its
relative variation sets a floor under the chosen ``rate_smoothness``
(:func:`variation_smoothness_floor`): the weight a Gaussian prior on the gradients calls
for grows as the noise over the signal's variance, and the weak end's weight was set on
rates varying by 10-40 % of their level. It binds only on clean fields (a strength under a
third) that still carry noise (J above ``J_FINE``) of a rate that varies by less than
``fit.prior.rate_variation_reference`` (8 %).

The mollifier radius is chosen from the same ``J`` (:func:`choose_kernel_radius`, with
``mollifier.radius_px="auto"``): the smallest radius from 8 px whose ``J`` stays at or
below ``J_WEAK``, bounded by the noise rule. The prior is then set from ``J`` at that
radius. The figures above (and the thresholds) were measured at the noise rule's radius;
at 8 px the same noise reads higher (1 % white noise 0.009-0.056 on the development
suite, so those fields get 0.12-0.15 um windows rather than 0.1 um; the validation suite
measured the result).

**The split-half floor.** J reads the noise of the fields through the operators, and it
falls as the localizations grow, down to the level where rendered nuclei with domain-scale
lambda want a weak prior; a nucleus with a smooth, nearly flat lambda drawn with many
localizations then gets a weak prior and loses its map (a ``simulate`` nucleus with 1M
localizations: r 0.601 against 0.924 with the strong prior; docs/validation-studies.md). Where two
independent halves of the localizations exist (the pipeline's split, blocks of frames),
:func:`split_half_strength` measures how reproducible the windowed closed form is at each
prior strength on a grid from the weak end (0) to the strong one (1): the agreement of the
two halves' maps rises as the smoothing removes noise, and stops rising once it starts to
remove signal. The smallest strength whose agreement is within
``SPLIT_HALF_TOLERANCE`` of the best is a floor under the strength J gives
(``fit.prior.strength_floor``, set per nucleus by the pipeline unless
``fit.prior.split_half_floor`` is false). It can only strengthen the prior.

A second criterion, ``"pixel_noise"``, uses the pixel-noise estimate of phi_d relative to
its range (Immerkaer's estimator, which assumes white noise) on the same scale. It is kept
for comparison: rendering and denoising correlate the noise, the high-pass estimator then
sees little of it, and the weak prior is chosen where the strong one is needed (see
docs/numerics.md for the measured comparison).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._types import PhaseFields
from ..config import FitConfig
from ..errors import StageError
from .calibrate import scale_misfit
from .direct import min_radius_px, resolve_radius
from .width import estimate_noise

__all__ = ["choose_kernel_radius", "choose_regularisation", "fourier_scale_for_window",
           "hold_to_balance", "raise_smoothness_floor", "raise_strength_floor",
           "rate_fourier_scale", "regularisation_from_misfit", "settings_at_strength",
           "split_half_strength", "variation_smoothness_floor"]

#: Misfit at and below which the weak prior is used.
J_WEAK = 0.15
#: Misfit at and above which the strong prior is used.
J_STRONG = 0.3
#: The weak prior trains this many times ``fit.training.steps`` (the strong prior
#: ``fit.training.steps``).
WEAK_STEPS_FACTOR = 4.0
#: Prior strengths (0 weak, 1 strong) at which :func:`split_half_strength` compares halves.
SPLIT_HALF_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: A strength is as reproducible as the best when its halves' agreement is within this.
SPLIT_HALF_TOLERANCE = 0.02
#: (rate_smoothness, test_window_um) at the two ends.
WEAK = (1e-3, 0.15)
STRONG = (1.0, 0.3)
#: Largest factor by which a rate that varies little raises the weak end's smoothness
#: (:func:`variation_smoothness_floor`): the floor reaches at most 1e-2.
VARIATION_FLOOR_MAX_FACTOR = 10.0
#: Test window (um) for the cleanest fields, at and below a misfit of ``J_FINE``; it widens
#: to the weak end's window at ``J_FINE_END``. Where the fourth-order terms carry little
#: noise a narrower window resolves more of lambda (measured on the 1 % noise dev cases, J
#: 0.002-0.004: r 0.890 -> 0.902, 0.878 -> 0.900, 0.689 -> 0.744 with 0.1 instead of
#: 0.15 um), while at 5 % noise it lets noise through (0.708 -> 0.657). The suite's 5 %
#: cases measure J 0.023-0.084, so they keep 0.15 um; 5 % fields with J between 0.005 and
#: 0.02 (0.013 was measured once) get a window in between.
FINE_WINDOW_UM = 0.1
J_FINE = 0.005
J_FINE_END = 0.02
#: Product of the rate network's frequency scale (cycles/um) and the test window (um):
#: the scale is this divided by the chosen window, so that the network's random
#: frequencies (standard deviation ``scale`` per axis) lie where the window passes most of
#: a map (the Gaussian window's transfer at one standard deviation is 0.85). 0.09 keeps the
#: 0.3 cycles/um that the strong prior's 0.3 um window (the sample nucleus, ``simulate``
#: seeds 0 and 4) was validated with and gives 0.6 cycles/um at 0.15 um (the suite's
#: rendered nuclei, at 0.17-0.27 um windows, get 0.33-0.52). Chosen on the dev set
#: (docs/validation-studies.md): fine-scale lambda gained (0.834 -> 0.859) and no other case moved
#: by more than 0.006; on the unseen set no case moved by more than 0.004 (fine-scale
#: lambda 0.970 -> 0.967: the gain did not carry over).
FOURIER_REACH = 0.09
#: Fourier scale (cycles/um) of a manual prior without a configured one: the scale every
#: fixed-prior figure in the documentation was measured with. The window rule is tuned
#: with the searched kernels of the automatic choice; with the noise rule's 24 px kernel
#: and the manual white-noise prior of experiments/recovery.py (0.15 um windows) it cost
#: r 0.969 -> 0.955 at 1 % and 0.936 -> 0.923 at 5 % noise (docs/numerics.md).
MANUAL_FOURIER_SCALE = 0.3
#: Smallest mollifier radius (pixels) the steadiness search tries, and its step.
RADIUS_SEARCH_MIN_PX = 8.0
RADIUS_SEARCH_STEP_PX = 2.0


def _log_position(misfit: float, lo: float, hi: float) -> float:
    """Where ``misfit`` lies between ``lo`` (0) and ``hi`` (1) on a log scale, clipped."""
    t = (np.log10(max(misfit, 1e-12)) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
    return float(np.clip(t, 0.0, 1.0))


def prior_strength(misfit: float) -> float:
    """Where a steadiness misfit lies between the weak (0) and the strong (1) prior."""
    return _log_position(misfit, J_WEAK, J_STRONG) if np.isfinite(misfit) else 1.0


def settings_at_strength(t: float) -> tuple[float, float]:
    """``(rate_smoothness, test_window_um)`` at prior strength ``t`` (0 the weak end, 1 the
    strong end; log-interpolated smoothness, linear window).

    Examples
    --------
    >>> settings_at_strength(0.0)
    (0.001, 0.15)
    >>> settings_at_strength(0.5)
    (0.031623, 0.225)
    >>> settings_at_strength(1.0)
    (1.0, 0.3)
    """
    t = float(np.clip(t, 0.0, 1.0))
    log_s = (1 - t) * np.log10(WEAK[0]) + t * np.log10(STRONG[0])
    window = (1 - t) * WEAK[1] + t * STRONG[1]
    return float(round(10.0**log_s, 6)), float(round(window, 4))


def regularisation_from_misfit(misfit: float, floor: float = 0.0) -> tuple[float, float]:
    """``(rate_smoothness, test_window_um)`` for a steadiness misfit, at a prior strength
    of at least ``floor`` (:func:`split_half_strength`).

    Examples
    --------
    >>> regularisation_from_misfit(0.001)
    (0.001, 0.1)
    >>> regularisation_from_misfit(0.05)
    (0.001, 0.15)
    >>> regularisation_from_misfit(1.0)
    (1.0, 0.3)
    >>> regularisation_from_misfit(0.16, floor=1.0)
    (1.0, 0.3)
    """
    t = prior_strength(misfit)
    smooth, window = settings_at_strength(max(t, floor))
    if floor <= t and np.isfinite(misfit) and misfit < J_FINE_END:
        u = _log_position(misfit, J_FINE, J_FINE_END)
        window = float(round((1 - u) * FINE_WINDOW_UM + u * WEAK[1], 4))
    return smooth, window


def fourier_scale_for_window(window_um: float | None) -> float:
    """The rate network's Fourier frequency scale (cycles/um) for a test window.

    Parameters
    ----------
    window_um : float or None
        Standard deviation of the test window in um (None: pointwise residual, which gets
        the strong prior's scale).

    Examples
    --------
    >>> fourier_scale_for_window(0.3)
    0.3
    >>> fourier_scale_for_window(0.15)
    0.6
    >>> fourier_scale_for_window(None)
    0.3
    """
    if window_um is None or not window_um > 0:
        window_um = STRONG[1]
    return float(round(FOURIER_REACH / float(window_um), 4))


def rate_fourier_scale(prior) -> float:
    """The Fourier scale a rate network built from ``prior`` (a
    :class:`~chromarate.config.PriorConfig`) uses: the configured one; by default
    :func:`fourier_scale_for_window` of its test window when the regularisation is chosen
    from the data, and ``MANUAL_FOURIER_SCALE`` with ``regularisation="manual"``."""
    if prior.rate_fourier_scale_per_um is not None:
        return float(prior.rate_fourier_scale_per_um)
    if prior.regularisation == "manual":
        return MANUAL_FOURIER_SCALE
    return fourier_scale_for_window(prior.test_window_um)


class KernelRadius(NamedTuple):
    """The mollifier radius a fit uses and how it was chosen (:func:`choose_kernel_radius`)."""

    #: Radius the fit uses (pixels).
    radius: float
    #: The noise rule's radius (pixels); the rate is reported where its kernels are trusted.
    upper: float
    #: Steadiness misfit at ``radius`` and at ``upper`` (NaN when the radius is configured).
    misfit: float
    misfit_upper: float


def choose_kernel_radius(fields: PhaseFields, config: FitConfig) -> KernelRadius:
    """The mollifier radius of a fit: the smallest that keeps the fields steady.

    The noise rule (:func:`chromarate.fit.direct.resolve_radius`) bounds the radius from
    above: it asks that pixel noise through the bilaplacian kernel stays below a quarter of
    the reaction term *at a pixel*, and so ignores that the weak form averages the residual
    over test windows many pixels wide. On fields given directly with 1-5 % noise it ends at
    or near its cap (22-24 px on most of the validation suite's cases), where the kernels'
    bias flattens domain-scale lambda. The steadiness misfit ``J``
    (:func:`chromarate.fit.calibrate.scale_misfit`) measures the noise after that
    averaging: the radius is the smallest one from
    ``RADIUS_SEARCH_MIN_PX`` (or the polynomial degree's minimum) in steps of
    ``RADIUS_SEARCH_STEP_PX`` whose misfit stays at or below ``J_WEAK``, the level up to
    which the weak prior is used. Fields that are not that steady at the upper radius
    (rendered from localizations) keep it.

    Parameters
    ----------
    fields : PhaseFields
    config : FitConfig
        A configured ``mollifier.radius_px`` is used as given.

    Returns
    -------
    KernelRadius
    """
    upper, _ = resolve_radius(fields, config)
    if config.mollifier.radius_px != "auto":
        return KernelRadius(upper, upper, float("nan"), float("nan"))
    j_upper = scale_misfit(fields, config, radius_px=upper)
    if not j_upper <= J_WEAK:
        return KernelRadius(upper, upper, j_upper, j_upper)
    r = max(RADIUS_SEARCH_MIN_PX, min_radius_px(config.mollifier))
    while r < upper - 1e-9:
        try:
            j = scale_misfit(fields, config, radius_px=r)
        except StageError:  # defensive: a smaller kernel trusts more pixels than `upper`
            j = float("inf")
        if j <= J_WEAK:
            return KernelRadius(float(r), upper, j, j_upper)
        r += RADIUS_SEARCH_STEP_PX
    return KernelRadius(upper, upper, j_upper, j_upper)


def split_half_strength(halves: tuple[PhaseFields, PhaseFields], config: FitConfig,
                        radius_px: float) -> tuple[float, dict[str, Any]]:
    """The least prior strength at which two halves' closed-form maps are as reproducible
    as at any strength of ``SPLIT_HALF_STRENGTHS``.

    Each half (phase fields mapped from an independent half of the localizations, with
    its own density-scale calibration) is inverted by the windowed closed form with the
    test window of each strength (:func:`settings_at_strength`; the closed form has no
    smoothness penalty, so the window is what is probed) and the mollifier radius
    ``radius_px``; the agreement is the Pearson correlation of the two maps over the
    pixels both trust. Smoothing first removes noise (the agreement rises) and then
    signal (it stops rising); the floor is the smallest strength whose agreement is within
    ``SPLIT_HALF_TOLERANCE`` of the best. Once the window is capped on a small nucleus
    (:func:`chromarate.fit.prior.fit_scales`) the wider ones are the same window, and
    their agreement is that of the first capped one (not computed again).

    Parameters
    ----------
    halves : (PhaseFields, PhaseFields)
    config : FitConfig
        The fit's configuration (physics, mollifier kernel, residual form).
    radius_px : float
        Kernel radius of the closed forms (the noise rule's, as the fit reports on).

    Returns
    -------
    (float, dict)
        The floor (0 when no strength gives a finite agreement) and a record:
        ``split_half_agreement`` (one figure per strength, None where not finite).
    """
    from .direct import invert_direct

    agreements: list[float] = []
    pixel_um = halves[0].pixel_size_nm / 1000.0
    for t in SPLIT_HALF_STRENGTHS:
        smooth, window = settings_at_strength(t)
        cfg = config.model_copy(update={
            "method": "direct",
            "prior": config.prior.model_copy(update={
                "regularisation": "manual", "rate_smoothness": smooth, "test_window_um": window}),
            "mollifier": config.mollifier.model_copy(update={"radius_px": float(radius_px)})})
        a, b = (invert_direct(h, cfg) for h in halves)
        sel = (np.asarray(a.trusted, bool) & np.asarray(b.trusted, bool)
               & np.isfinite(a.rate) & np.isfinite(b.rate))
        ok = sel.sum() >= 3 and np.std(a.rate[sel]) > 0 and np.std(b.rate[sel]) > 0
        agreements.append(float(np.corrcoef(a.rate[sel], b.rate[sel])[0, 1]) if ok else np.nan)
        used = a.meta.get("test_window_px")
        if used is not None and float(used) < window / pixel_um - 1e-6:  # capped: the rest alike
            agreements += [agreements[-1]] * (len(SPLIT_HALF_STRENGTHS) - len(agreements))
            break
    finite = np.isfinite(agreements)
    record = {"split_half_agreement": [round(x, 4) if np.isfinite(x) else None for x in agreements]}
    if not finite.any():
        return 0.0, record
    best = float(np.nanmax(agreements))
    floor = next(t for t, x in zip(SPLIT_HALF_STRENGTHS, agreements)
                 if np.isfinite(x) and x >= best - SPLIT_HALF_TOLERANCE)
    return float(floor), record


def choose_regularisation(fields: PhaseFields, config: FitConfig) -> tuple[FitConfig, dict[str, Any]]:
    """The fit configuration with the rate prior and test window chosen from the data.

    Parameters
    ----------
    fields : PhaseFields
    config : FitConfig
        With ``prior.regularisation="manual"`` it is returned unchanged. Otherwise the
        strength J gives is raised to ``prior.strength_floor`` where that is higher.

    Returns
    -------
    (FitConfig, dict)
        The configuration to fit with and a record of the choice (criterion, its value,
        the steadiness misfit it stands for (``misfit``), ``strength`` and
        ``strength_floor``, ``rate_smoothness``, ``test_window_um`` and
        ``rate_fourier_scale_per_um``, the last from the window by
        :func:`fourier_scale_for_window` unless configured, and ``steps``), stored
        in ``FitResult.meta``. The returned configuration always carries a number as its
        Fourier scale. With the steadiness criterion the configuration's
        ``mollifier.radius_px`` is the searched radius (:func:`choose_kernel_radius`) and
        the record adds ``mollifier_radius_px``, ``report_radius_px`` (the noise rule's
        radius, whose trusted region the rate is reported on) and
        ``misfit_at_upper_radius``; refitting from that configuration alone would not
        restrict the report to that region.
    """
    prior = config.prior
    if prior.regularisation == "manual":
        fourier = rate_fourier_scale(prior)
        if prior.rate_fourier_scale_per_um is None:
            config = config.model_copy(update={"prior": prior.model_copy(
                update={"rate_fourier_scale_per_um": fourier})})
        return config, {"criterion": "manual", "rate_smoothness": prior.rate_smoothness,
                        "test_window_um": prior.test_window_um,
                        "rate_fourier_scale_per_um": fourier}
    radius_record: dict[str, Any] = {}
    if prior.regularisation == "pixel_noise":
        span = float(np.ptp(np.asarray(fields.phi_d)[np.asarray(fields.mask, bool)])) or 1.0
        value = estimate_noise(fields.phi_d, fields.mask) / span
        # 1 % white noise reads 0.01 and gives J ~ 2e-3; 5 % reads 0.05 and J ~ 0.02 (J at
        # the noise rule's radius: this criterion does not search the kernel radius)
        misfit_equiv = 0.4 * value
    else:
        kr = choose_kernel_radius(fields, config)
        value = misfit_equiv = kr.misfit if np.isfinite(kr.misfit) else scale_misfit(fields, config)
        radius_record.update({"mollifier_radius_px": kr.radius, "report_radius_px": kr.upper,
                      "misfit_at_upper_radius": kr.misfit_upper})
        config = config.model_copy(update={"mollifier": config.mollifier.model_copy(
            update={"radius_px": kr.radius})})
    chosen, record = _settle(config, prior.regularisation, float(value), misfit_equiv,
                             float(prior.strength_floor))
    return chosen, {**record, **radius_record}


def _settle(config: FitConfig, criterion: str, value: float, misfit_equiv: float,
            floor: float) -> tuple[FitConfig, dict[str, Any]]:
    """The prior, window, Fourier scale and steps at the strength a misfit gives, raised
    to ``floor``; ``config`` carries the radius to fit with and the configured steps."""
    prior = config.prior
    smooth, window = regularisation_from_misfit(misfit_equiv, floor)
    strength = max(prior_strength(misfit_equiv), floor)
    fourier = rate_fourier_scale(prior.model_copy(update={"test_window_um": window}))
    # a weak prior lets the rate travel far from its start (domain-scale structure): Adam
    # needs more steps to get there (measured on a 1 % noise envelope case: r = -0.01 after
    # 250 steps, 0.95 after 1000)
    steps = int(round(config.training.steps
                      * (1.0 + (WEAK_STEPS_FACTOR - 1.0) * (1.0 - strength))))
    # model_copy, not validation: the chosen values are not the defaults the validator
    # requires of a non-manual regularisation
    chosen = config.model_copy(update={
        "prior": prior.model_copy(update={"rate_smoothness": smooth, "test_window_um": window,
                                          "rate_fourier_scale_per_um": fourier}),
        "training": config.training.model_copy(update={"steps": steps})})
    return chosen, {"criterion": criterion, "value": value, "misfit": float(misfit_equiv),
                    "strength": round(strength, 4), "strength_floor": floor,
                    "rate_smoothness": smooth, "test_window_um": window,
                    "rate_fourier_scale_per_um": fourier, "steps": steps}


def raise_strength_floor(given: FitConfig, chosen: FitConfig, record: dict[str, Any],
                         floor: float) -> tuple[FitConfig, dict[str, Any]]:
    """A choice of :func:`choose_regularisation` settled again at a higher strength floor,
    without measuring the nucleus again.

    Parameters
    ----------
    given : FitConfig
        The configuration :func:`choose_regularisation` was given.
    chosen : FitConfig
        The configuration it returned (its kernel radius is kept).
    record : dict
        The record it returned.
    floor : float
        The new floor (0-1); the record's floor is kept where it is higher.

    Returns
    -------
    (FitConfig, dict)
        As :func:`choose_regularisation`; a manual choice is returned unchanged.
    """
    if record.get("criterion") == "manual":
        return chosen, record
    floor = max(float(floor), float(record["strength_floor"]))
    base = given.model_copy(update={"mollifier": chosen.mollifier})
    config, settled = _settle(base, record["criterion"], record["value"], record["misfit"],
                              floor)
    return config, {**record, **settled}


def variation_smoothness_floor(variation: float, reference: float | None) -> float:
    """The least ``rate_smoothness`` for a rate whose relative variation is ``variation``.

    The penalty weight a Gaussian prior on the rate's gradients calls for grows as the
    noise over the signal's variance. J (:func:`regularisation_from_misfit`) reads the
    noise side; this reads the signal side: ``WEAK[0] * (reference / variation)**2``,
    clipped to 1-``VARIATION_FLOOR_MAX_FACTOR`` times the weak end's penalty.

    Parameters
    ----------
    variation : float
        The closed form's relative variation (:func:`chromarate.fit.prior.rate_variation`).
    reference : float or None
        ``fit.prior.rate_variation_reference``: the variation at and above which the floor
        is the weak end's penalty. None: no floor (0).

    Returns
    -------
    float
        0 without a reference or a finite variation.

    Examples
    --------
    >>> variation_smoothness_floor(0.2, 0.08), variation_smoothness_floor(0.04, 0.08)
    (0.001, 0.004)
    >>> variation_smoothness_floor(0.001, 0.08), variation_smoothness_floor(0.04, None)
    (0.01, 0.0)
    """
    if reference is None or not np.isfinite(variation):
        return 0.0
    factor = (float(reference) / max(float(variation), 1e-12)) ** 2
    factor = min(max(factor, 1.0), VARIATION_FLOOR_MAX_FACTOR)
    return float(round(WEAK[0] * factor, 6))


def raise_smoothness_floor(config: FitConfig, record: dict[str, Any],
                           variation: float) -> tuple[FitConfig, dict[str, Any]]:
    """A data-chosen fit configuration with its ``rate_smoothness`` raised, where it is
    lower, to the floor the rate's variation sets (:func:`variation_smoothness_floor`).

    Parameters
    ----------
    config : FitConfig
        As :func:`choose_regularisation` returned it (or :func:`raise_strength_floor`).
    record : dict
        Its record.
    variation : float
        The closed form's relative variation.

    Returns
    -------
    (FitConfig, dict)
        The record adds ``rate_variation`` (None when not finite) and
        ``smoothness_floor`` (0 where the misfit J is at most ``J_FINE``, the cleanest
        fields keeping the weak end, and without a reference or a finite variation), and
        carries the raised ``rate_smoothness``; the strength, window, Fourier scale and steps stay. A
        manual choice is returned unchanged.
    """
    if record.get("criterion") == "manual":
        return config, record
    floor = variation_smoothness_floor(variation, config.prior.rate_variation_reference)
    if not float(record.get("misfit", np.nan)) > J_FINE:
        # fields this clean carry no noise for a prior to remove: the physics pins the rate
        # (a noise-free constant rate held to a structured balance estimate lost its flatness)
        floor = 0.0
    record = {**record, "rate_variation": None if not np.isfinite(variation) else round(float(variation), 5),
              "smoothness_floor": floor}
    if floor <= config.prior.rate_smoothness:
        return config, record
    config = config.model_copy(update={"prior": config.prior.model_copy(
        update={"rate_smoothness": floor})})
    return config, {**record, "rate_smoothness": floor}


def hold_to_balance(given: FitConfig, chosen: FitConfig, record: dict[str, Any],
                    smoothness: float) -> tuple[FitConfig, dict[str, Any]]:
    """A choice of :func:`choose_regularisation` moved to the strong end with the rate's
    smoothness weight ``smoothness``: the fit of a nucleus whose halves' departure kept the
    balance prior (``fit.prior.balance_full_strength``).

    Parameters
    ----------
    given, chosen, record
        As :func:`raise_strength_floor`.
    smoothness : float
        ``rate_smoothness`` at the strong end (``fit.prior.balance_kept_smoothness``).

    Returns
    -------
    (FitConfig, dict)
        As :func:`choose_regularisation`, at strength 1 (the strong end's window, Fourier
        scale and steps). The record adds ``balance_full_strength`` (true where the strength
        was raised to 1, false where the data chose it) and ``balance_kept_smoothness``; a
        manual choice is returned unchanged.
    """
    if record.get("criterion") == "manual":
        return chosen, record
    raised = float(record["strength"]) < 1.0
    config, record = raise_strength_floor(given, chosen, record, 1.0) if raised else (
        chosen, dict(record))
    config = config.model_copy(update={"prior": config.prior.model_copy(
        update={"rate_smoothness": float(smoothness)})})
    return config, {**record, "rate_smoothness": float(smoothness),
                    "balance_full_strength": raised,
                    "balance_kept_smoothness": float(smoothness)}
