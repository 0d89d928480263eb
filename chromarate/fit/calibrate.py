"""Physics calibration of the observation model's density scale.

The observation model maps density to heterochromatin as
``phi_h = phi_e0 (rho / rho_eu - 1)``, so the absolute rate depends on ``rho_eu``, the
density of chromatin with no heterochromatin. A low percentile of the density is a poor
estimate of it: at steady state the euchromatin phase does not sit at ``phi_h = 0`` (the
reaction term keeps it a few per cent above the well), and rendering and denoising blur the
narrow euchromatin channels upwards. Both push the percentile up, and since the spatial
mean of the steady state obeys ``mean(lambda phi_e) = mean(phi_h)``, every per cent of
error in ``rho_eu`` moves the mean rate by several per cent (measured on simulated nuclei:
the 5th percentile is 15-18 % too high, and the mean rate 20-24 % too low).

The steady state itself tells the scale apart. The chemical potential is nonlinear in
``phi_h`` (the double well fixes absolute values of the phase fractions), so across every
heterochromatin interface ``M lap(mu_d)`` cancels the sharp change of ``phi_h`` only when
``phi_h`` has its true scale; with a wrong scale the residual keeps an imprint of the
interfaces that no smooth rate can explain. :func:`calibrate_scale` therefore scans the
multiplier ``k`` of ``rho_eu``, solves the windowed closed form for a smooth rate at each
``k``, and picks the ``k`` whose weak residual, tested against small Gaussian windows, is
smallest relative to the size of the terms (a parabola through the best three points
refines the grid minimum). Scales that clip more than ``MAX_CLIPPED`` of the nucleus at 0
or at ``phi_max`` are not admissible: the model keeps ``phi_h`` in ``[0, phi_max]``, and
the flat plateaus that clipping makes look deceptively steady on small nuclei (the bound,
0.15, was set on the development nuclei; at the right scale 6-9 % clip from noise). Below
the bound the clipped pixels still count, and their plateau at ``phi_max``, the bottom of
the heterochromatin well, makes the scales that clip more look steadier. With
``censored=True`` (``phase.calibration: physics_censored``, studied, not the default) the
pixels clipped at ``phi_max`` are left out of the misfit: it takes the fit's mean-rate RMS
bias on twelve fresh rendered nuclei from 7.5 % to 4.6 %, but the scale it chooses moves
more with the noise (on two development nuclei the halves of the localizations land on
average 0.02-0.04 above the whole, against 0.01-0.02 without censoring) and it costs the
heterochromatin-tied nuclei their pattern (r 0.09-0.19 lower on four of six;
docs/validation-studies.md). What the default keeps of it
(``censored_level="at_bound"``, ``phase.censored_level: at_bound``) is the level where the
uncensored minimum is pinned at the clipping bound, the next smaller scale inadmissible:
there the censored misfit's own scale is found as well (``"always"``: on every calibrated
nucleus), and the ratio of the windowed
closed form's mean rate at that scale to its mean at the chosen one is recorded as
``level_ratio``. The two levels err on opposite sides: the clipped plateaus pull the
calibrated scale's mean rate high, and leaving the clipped pixels out keeps, near the
bound, only the pixels whose noise happened to be negative, which pulls the censored
scale's low (the more so the noisier the data). The factor the pipeline applies to the
rate fitted at the chosen scale, ``level_factor``, is the ratio raised to
``level_share`` (``phase.censored_level_share``, 0.5 by default: halfway, in ratio,
between the two levels; the pattern stays the chosen scale's). It
uses the closed form only, so it costs a fraction of a fit. The residual is corrected for
the fields' observation blur as in the fit (:mod:`chromarate.fit.blur`): the scales are
compared under the model the rate is then fitted with (measured on development nuclei:
the bias of the mean rate of ``hetero-irr-env-loc250k@101`` +7.0 % -> +2.8 %, of the
``simulate`` seeds 0, 4, 5 +4.5/+3.9/+3.0 % -> +3.8/+1.8/+2.1 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from .._types import PhaseFields
from ..config import FitConfig
from ..errors import StageError
from .direct import TAPER_PX, rate_terms, resolve_radius
from .mollifier import make_kernels
from .prior import fit_scales, smooth_taper, windowed_ratio
from .width import trusted_mask

__all__ = ["Calibration", "calibrate_scale", "scale_misfit"]

#: Multipliers of the percentile baseline scanned by :func:`calibrate_scale`.
SCALE_GRID = tuple(np.round(np.arange(0.55, 1.251, 0.05), 3))
#: Standard deviation (um) of the windows of the smooth rate the misfit is measured against.
RATE_WINDOW_UM = 0.3
#: Standard deviation (um) of the test windows of the misfit itself.
TEST_WINDOW_UM = 0.1
#: Fewer pixels than this whose whole (square) kernel support lies inside the envelope: no
#: calibration (the
#: misfit curve of nuclei of one or two domain spacings is flat and noisy; measured on
#: 1.7-2 um simulated nuclei the chosen scale then scatters by +-30 %).
MIN_TRUSTED_PIXELS = 2000
#: Largest share of the nucleus a candidate scale may clip at 0 or at phi_max.
MAX_CLIPPED = 0.15
#: Largest relative difference of the two means (``level_ratio``) the censored level may
#: act on (ratios measured on pinned nuclei: 0.80-1.00, the lowest with 100k
#: localizations); beyond it the calibrated level is kept and the record says why.
MAX_LEVEL_CHANGE = 0.25


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate_scale`.

    Attributes
    ----------
    scale : float
        Chosen multiplier of the baseline density ``rho_eu``.
    scales, misfits : tuple of float
        The scanned multipliers and their relative misfits.
    interior_minimum : bool
        False when the smallest misfit lies at an end of the admissible scan (the scale is
        then the end point and less certain).
    skipped : str
        Why the nucleus was not calibrated ("" when it was); the scale is then 1.
    level_scale : float or None
        Where ``censored_level`` asked for it (``"at_bound"``: where the minimum was
        pinned at the clipping bound; ``"always"``): the scale the misfit with the
        clipped pixels censored chooses (None otherwise).
    level_ratio : float
        The windowed closed form's mean rate at ``level_scale`` over its mean at
        ``scale`` (1 without ``level_scale``, or where it is not finite; recorded also
        where it was refused).
    level_factor : float
        ``level_ratio`` raised to the ``level_share`` asked for: the factor the pipeline
        applies to the fitted rate (:func:`chromarate.rate_interval.with_level`).
    misfits_censored : tuple of float
        The censored misfits, recorded with ``level_scale``.
    pinned : bool
        Whether the minimum was pinned at the clipping bound (recorded with
        ``level_scale``).
    level_skipped : str
        Why a factor was not applied (``level_factor`` is then 1): the two means are not
        finite and positive, or differ by more than ``MAX_LEVEL_CHANGE``.
    level_share : float
        The power ``level_ratio`` was raised to (recorded with ``level_scale``).
    """

    scale: float
    scales: tuple[float, ...] = field(default_factory=tuple)
    misfits: tuple[float, ...] = field(default_factory=tuple)
    interior_minimum: bool = True
    skipped: str = ""
    level_scale: float | None = None
    level_factor: float = 1.0
    misfits_censored: tuple[float, ...] = field(default_factory=tuple)
    pinned: bool = False
    level_skipped: str = ""
    level_ratio: float = 1.0
    level_share: float = 1.0

    def as_dict(self) -> dict:
        out = {"scale": self.scale, "scales": list(self.scales), "misfits": list(self.misfits),
               "interior_minimum": self.interior_minimum, "skipped": self.skipped}
        if self.level_scale is not None:
            out.update(level_scale=self.level_scale, level_factor=self.level_factor,
                       level_ratio=self.level_ratio, level_share=self.level_share,
                       misfits_censored=list(self.misfits_censored), pinned=self.pinned,
                       level_skipped=self.level_skipped)
        return out


def scale_misfit(fields: PhaseFields, config: FitConfig = FitConfig(), *,
                 radius_px: float | None = None, blur_corrected: bool = False,
                 censored: bool = False) -> float:
    """Relative weak-residual misfit of the phase fields against a smooth rate.

    The closed form is solved for a rate that is constant over Gaussian windows of
    ``RATE_WINDOW_UM`` (the windowed least-squares ratio); the misfit is the energy of the
    residual ``w (lambda den - num)`` tested against ``TEST_WINDOW_UM`` windows, divided by
    that of ``w num``. Small when the fields are a steady state of the model for a smooth
    rate.

    Parameters
    ----------
    fields : PhaseFields
    config : FitConfig
        Physics, mollifier and field prior settings.
    radius_px : float, optional
        Mollifier radius; default: the fit's automatic choice for these fields.
    blur_corrected : bool
        Correct the residual for the fields' observation blur
        (``config.observation_blur_nm``, :mod:`chromarate.fit.blur`), as the fit does
        (the calibration); False (default) measures the misfit of the fields as observed,
        blur included (the regularisation criterion).
    censored : bool
        Leave out of the misfit (of the windowed rate and of the residual) the pixels the
        mapping clipped at ``phi_max`` (``fields.meta["phi_max"]``, else the model's), whose
        true value is only known to lie above the bound (the calibration); False (default)
        scores every trusted pixel.

    Returns
    -------
    float
    """
    num, den, weight, window, test = _misfit_terms(fields, config, radius_px, blur_corrected)
    if censored:
        weight = _censor(weight, fields, config.physics.phi_max)
    return _misfit(num, den, weight, window, test)[0]


def _misfit_terms(fields: PhaseFields, config: FitConfig, radius_px: float | None,
                  blur_corrected: bool):
    """The closed form's terms of :func:`scale_misfit`: ``(num, den, weight, window,
    test)``, the weight the tapered trusted region and the two widths in pixels."""
    pixel_um = fields.pixel_size_nm / 1000.0
    # blur_corrected=False (fit.regularise): the misfit measures how far the observed
    # fields are from a steady state, blur included (the priors were set on it); the
    # calibration compares scales under the model the fit uses, the blur corrected
    update = {"residual_form": "weak"}
    if not blur_corrected:
        update["observation_blur_nm"] = 0.0
    terms = rate_terms(fields, config.model_copy(update=update), radius_px=radius_px)
    num, den, trusted, radius = terms.num, terms.den, terms.trusted, terms.radius
    if trusted.sum() < 16:
        raise StageError("nucleus too small for the mollifier: fewer than 16 pixels lie one "
                         f"kernel support ({radius:g} px) inside the envelope; use a smaller "
                         "kernel (--set fit.mollifier.radius_px=8) or smaller pixels "
                         "(--set render.pixel_size_nm=10)")
    taper, window = fit_scales(trusted, TAPER_PX, RATE_WINDOW_UM / pixel_um)
    weight = smooth_taper(trusted, taper)
    return num, den, weight, window, max(1.0, TEST_WINDOW_UM / pixel_um)


def _misfit(num, den, weight, window, test) -> tuple[float, np.ndarray]:
    """The relative misfit of :func:`scale_misfit` and the windowed rate it is measured
    against."""
    lam = np.nan_to_num(windowed_ratio(num, den, weight, window))
    resid = ndi.gaussian_filter(weight * (den * lam - num), test)
    ref = ndi.gaussian_filter(weight * num, test)
    return float(np.sum(resid**2) / max(np.sum(ref**2), 1e-300)), lam


def _censor(weight: np.ndarray, fields: PhaseFields, phi_max: float) -> np.ndarray:
    """``weight`` with the pixels clipped at the upper bound of ``phi_h`` set to 0 (kept
    as it is when that would leave no weight)."""
    bound = float(fields.meta.get("phi_max", phi_max))
    # phi_h is recomputed from phi_w and phi_d: allow for the rounding
    clipped = np.asarray(fields.mask, dtype=bool) & (fields.phi_h >= bound - 1e-9)
    kept = np.where(clipped, 0.0, weight)
    return kept if kept.sum() > 0.0 else weight


def calibrate_scale(fields_at: Callable[[float], PhaseFields], config: FitConfig = FitConfig(),
                    *, scales=SCALE_GRID, censored: bool = False,
                    censored_level: str = "never", level_share: float = 1.0) -> Calibration:
    """Choose the multiplier of the baseline density that makes the fields most steady.

    Parameters
    ----------
    fields_at : callable
        ``fields_at(k)`` returns the phase fields with the baseline density multiplied by
        ``k`` (``k = 1``: the percentile baseline).
    config : FitConfig
    scales : sequence of float
        Multipliers to scan (increasing).
    censored : bool
        Leave the pixels clipped at ``phi_max`` out of each misfit (see
        :func:`scale_misfit`; ``phase.calibration: physics_censored``); False (default)
        scores them as observed.
    censored_level : {"never", "at_bound", "always"}
        ``"at_bound"``: where the minimum is pinned at the clipping bound (the next
        smaller scale clips more than ``MAX_CLIPPED`` at ``phi_max``), also choose the
        scale with the clipped pixels censored and record the ratio of the windowed
        closed form's mean rate at that scale to its mean at the chosen one
        (``level_scale``, ``level_factor``; ``phase.censored_level``); ``"always"``: the
        same on every calibrated nucleus; ``"never"`` (default): neither. Ignored with
        ``censored``.
    level_share : float
        The power in [0, 1] the ratio is raised to for ``level_factor`` (1, default: the
        censored scale's level; 0.5: halfway in ratio; ``phase.censored_level_share``).

    Returns
    -------
    Calibration

    Notes
    -----
    Nuclei with fewer than ``MIN_TRUSTED_PIXELS`` trusted pixels are not calibrated
    (``scale`` 1, ``skipped`` says why). The mollifier radius is fixed at its automatic
    value for ``k = 1`` so that every multiplier is judged with the same kernels.
    """
    if censored_level not in ("never", "at_bound", "always"):
        raise ValueError(f"censored_level must be never, at_bound or always, not {censored_level!r}")
    if not 0.0 <= float(level_share) <= 1.0:
        raise ValueError(f"level_share must lie in [0, 1], not {level_share!r}")
    ks = [float(k) for k in scales]
    ref = fields_at(1.0)
    radius, _ = resolve_radius(ref, config)
    ref_ks = make_kernels(config.mollifier.kernel, radius, degree=config.mollifier.degree,
                          max_order=4, pixel=ref.pixel_size_nm / 1000.0)
    # counted with the strict criterion (the whole square support inside), as measured
    n_trusted = int(trusted_mask(ref.mask, ref_ks.half_width).sum())
    if n_trusted < MIN_TRUSTED_PIXELS:
        return Calibration(scale=1.0, interior_minimum=False,
                           skipped=f"nucleus too small: {n_trusted} pixels lie one kernel "
                                   f"support inside the envelope (< {MIN_TRUSTED_PIXELS})")
    level_wanted = censored_level != "never" and not censored
    misfits, misfits_censored, clipped, clipped_high, levels = [], [], [], [], []
    phi_max = config.physics.phi_max
    for k in ks:
        f = ref if k == 1.0 else fields_at(k)
        num, den, weight, window, test = _misfit_terms(f, config, radius, True)
        kept = _censor(weight, f, phi_max) if censored or level_wanted else weight
        misfit, lam = _misfit(num, den, kept if censored else weight, window, test)
        misfits.append(misfit)
        if level_wanted:
            misfits_censored.append(_misfit(num, den, kept, window, test)[0])
            levels.append(_level(lam, weight))
        high = float(f.meta.get("fraction_clipped_high", 0.0))
        clipped_high.append(high)
        clipped.append(max(high, float(f.meta.get("fraction_clipped_low", 0.0))))
    # the model keeps phi_h in [0, phi_max]; a scale that pushes more than a noise-sized
    # share of the nucleus outside is not a steady state (clipped plateaus look flat)
    allowed = [c <= MAX_CLIPPED for c in clipped]
    bounded = any(allowed)
    if not bounded:
        allowed = [True] * len(ks)
    best, j, interior = _minimum(ks, misfits, allowed)
    cal = Calibration(scale=round(best, 4), scales=tuple(ks),
                      misfits=tuple(round(m, 6) for m in misfits), interior_minimum=interior)
    # stopped on the grid point next to the bound: the next smaller scale clips too much
    # at phi_max (with every scale inadmissible there is no bound to stop at)
    pinned = bounded and j > 0 and clipped_high[j - 1] > MAX_CLIPPED
    if not level_wanted or (censored_level == "at_bound" and not pinned):
        return cal
    # pinned at the clipping bound, the plateaus of the clipped pixels, which look steady,
    # pull the scale low and the rate high; the censored misfit has no such pull
    level_scale = round(_minimum(ks, misfits_censored, allowed)[0], 4)

    def level_at(k: float) -> float:
        return levels[ks.index(k)] if k in ks else _level_of(fields_at(k), config, radius)

    chosen, level = level_at(cal.scale), level_at(level_scale)
    factor = level / chosen if np.isfinite(chosen) and np.isfinite(level) and chosen > 0 else np.nan
    skipped, ratio = "", round(float(factor), 4) if np.isfinite(factor) else 1.0
    if not (np.isfinite(factor) and abs(factor - 1.0) <= MAX_LEVEL_CHANGE):
        skipped = (f"the censored scale's mean rate is {factor:.3g} times the calibrated one's, "
                   f"outside 1 +- {MAX_LEVEL_CHANGE:g}: not applied")
        factor = 1.0
    return replace(cal, level_scale=level_scale, pinned=pinned, level_ratio=ratio,
                   level_share=float(level_share),
                   level_factor=round(float(factor) ** float(level_share), 4), level_skipped=skipped,
                   misfits_censored=tuple(round(m, 6) for m in misfits_censored))


def _level_of(fields: PhaseFields, config: FitConfig, radius: float) -> float:
    """The mean windowed rate :func:`scale_misfit` measures the fields against, uncensored,
    with the residual corrected for the observation blur (as the calibration scans)."""
    num, den, weight, window, test = _misfit_terms(fields, config, radius, True)
    return _level(_misfit(num, den, weight, window, test)[1], weight)


def _level(lam: np.ndarray, weight: np.ndarray) -> float:
    """Weighted mean of a windowed rate (NaN without weight)."""
    total = float(np.sum(weight))
    return float(np.sum(weight * lam) / total) if total > 0 else float("nan")


def _minimum(ks: list[float], misfits: list[float], allowed: list[bool]
             ) -> tuple[float, int, bool]:
    """The admissible scale of least misfit, refined by a parabola: ``(scale, index of
    the grid minimum, whether it is interior)``."""
    masked = [m if ok else np.inf for m, ok in zip(misfits, allowed)]
    j = int(np.argmin(masked))
    # a minimum is interior when the misfit rises on both sides (an inadmissible neighbour
    # counts: a minimum next to the clipping bound is still a minimum of the curve)
    interior = 0 < j < len(ks) - 1 and misfits[j - 1] > misfits[j] < misfits[j + 1]
    best = ks[j]
    # vertex of the parabola through the three points around the minimum, when all three
    # are admissible (an inadmissible neighbour's misfit is inf and has no parabola)
    if interior and all(np.isfinite(masked[j - 1:j + 2])):
        x0, x1, x2 = ks[j - 1:j + 2]
        y0, y1, y2 = masked[j - 1:j + 2]
        d = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / d
        b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / d
        if a > 0:
            best = float(np.clip(-b / (2 * a), x0, x2))
    return best, j, interior
