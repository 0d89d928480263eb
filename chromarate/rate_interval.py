"""The post-fit interval and level of a rate map, as the pipeline reports them.

After a single fit the pipeline replaces the noise part of its ``rate_std`` by the noise
two halves of the localizations measure (:func:`with_split_half_std`), adds the density
scale calibration's error of the absolute rate (:func:`with_calibration_std`) and applies
the calibration's level factor to the rate and its interval (:func:`with_level`). Each
returns a new :class:`chromarate.FitResult` with the change, or the fit itself where there
is nothing to change (see each function); :mod:`chromarate.fit.uncertainty` is imported
only inside the functions that need it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._types import FitResult, PhaseFields

__all__ = ["with_calibration_std", "with_level", "with_split_half_std"]


def with_split_half_std(fit: FitResult,
                        half_maps: tuple[np.ndarray, np.ndarray] | None,
                        closed: np.ndarray | None = None, *,
                        balance: tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None
                        ) -> FitResult:
    """``fit`` with the noise part of its single-fit ``rate_std`` measured by the halves.

    The noise part is :func:`chromarate.fit.uncertainty.nearest_estimator_noise` over the
    estimators the fit can be compared with: the windowed closed form (``half_maps``, the
    halves' closed-form maps, and ``closed``, the whole data's,
    :func:`chromarate.halves.closed_form_check`) and, where the fit followed the balance
    prior at full strength, the balance estimate (``balance``:
    :func:`chromarate.halves.balance_maps`). For each, the larger of its noise measured by
    the halves and the fit's RMS departure from it (over
    ``SPLIT_HALF_SMOOTHING_WINDOWS`` test windows); of the two, the smaller. The smoothing
    bias (:func:`chromarate.fit.uncertainty.smoothing_bias`) is added in quadrature. A
    fit that follows the balance prior is then charged with the balance estimate's noise
    and its departure from it, not with the closed form's noise, which its prior keeps out
    (on the ``simulate`` nuclei the closed form's made the interval cover 99-100 % of the
    pixels; docs/validation-studies.md).

    Without ``closed`` a PINN fit's own interval (``"disagreement"``: its disagreement with
    the closed form and the same bias, :mod:`chromarate.fit.loop`) stands for the closed
    form's departure: the closed-form halves' interval is kept where it is wider. A
    closed-form fit (``"residual"``) is its own closed form, and without ``closed`` the
    balance estimator is not used. Pixels where no estimator gives a figure (a half's map,
    or the whole closed form, undefined there) keep the fit's own value. An ensemble's
    ``rate_std`` (the user asked for it), a fit without ``rate_std``, without the halves'
    closed-form maps (a half too sparse to map; then the balance halves are not used
    either), and a fit that did not record its test window are returned unchanged.
    ``meta["rate_std_source"]`` becomes ``"split_half"``.
    """
    from .fit.uncertainty import (SPLIT_HALF_SMOOTHING_WINDOWS, interval_std,
                                  nearest_estimator_noise, smoothing_bias)

    source = fit.meta.get("rate_std_source")
    window = fit.meta.get("test_window_px")  # as the fit capped it on a small nucleus
    if (half_maps is None or fit.rate_std is None or not window
            or source not in ("residual", "disagreement")):
        return fit
    trusted = np.asarray(fit.trusted, dtype=bool)
    own = np.asarray(fit.rate_std, dtype=np.float64)
    if source == "residual":  # the fit is the closed form
        closed = fit.rate
    if closed is None:  # the closed-form halves' noise alone, the fit's own interval below
        estimators = [(fit.rate, half_maps)]
    else:
        estimators = [(closed, half_maps)] + ([] if balance is None else [balance])
    noise = nearest_estimator_noise(fit.rate, estimators, trusted,
                                    SPLIT_HALF_SMOOTHING_WINDOWS * float(window))
    passes = 1 if fit.meta.get("method") == "direct" else 2
    measured = interval_std(noise, smoothing_bias(fit.rate, trusted, float(window), passes=passes))
    if closed is None:
        measured = np.fmax(measured, own)
    std = np.where(np.isfinite(measured), measured, own)
    std = np.where(trusted, std, np.nan).astype(np.float32)
    return replace(fit, rate_std=std, meta={**fit.meta, "rate_std_source": "split_half"})


def with_calibration_std(fit: FitResult, fields: PhaseFields) -> FitResult:
    """``fit`` with the density-scale calibration's error of the absolute rate added to a
    single fit's ``rate_std`` in quadrature.

    The term is ``CALIBRATION_REL_STD[method]`` times the rate
    (:data:`chromarate.fit.uncertainty.CALIBRATION_REL_STD`, by the calibration method in
    ``fields.meta["calibration"]``): an error shared by the whole nucleus, which neither
    the halves nor the fit's residuals can show. Fields without a calibration record
    (given directly, or mapped with ``phase.calibration: none`` and the user's own density
    scale), an ensemble's ``rate_std`` and a fit without ``rate_std`` are returned
    unchanged, as is a fit that already carries the term. The relative figure used is
    recorded in ``meta["calibration_rel_std"]``.
    """
    from .fit.uncertainty import CALIBRATION_REL_STD, interval_std

    method = (fields.meta.get("calibration") or {}).get("method")
    rel = CALIBRATION_REL_STD.get(method) if isinstance(method, str) else None
    if (rel is None or fit.rate_std is None or "calibration_rel_std" in fit.meta
            or fit.meta.get("rate_std_source") not in ("residual", "disagreement", "split_half")):
        return fit
    std = interval_std(fit.rate_std, rel * np.abs(np.asarray(fit.rate, dtype=np.float64)))
    return replace(fit, rate_std=std.astype(np.float32),
                   meta={**fit.meta, "calibration_rel_std": float(rel)})


def with_level(fit: FitResult, fields: PhaseFields) -> FitResult:
    """``fit`` with its rate and ``rate_std`` multiplied by the calibration's level factor.

    The factor is ``level_factor`` of ``fields.meta["calibration"]``
    (:func:`chromarate.fit.calibrate.calibrate_scale` with ``censored_level``; recorded
    by default only where the calibration's minimum is pinned at its clipping bound,
    ``phase.censored_level: at_bound``): the ratio of the censored scale's mean rate to
    the calibrated scale's, raised to ``phase.censored_level_share`` (0.5 by default, so
    the mean moves halfway, in ratio, towards the censored scale's), while the pattern
    stays the one fitted at the calibrated scale. A fit without the record, or one that
    already carries ``meta["level_factor"]``, is returned unchanged; otherwise the
    factor applied is recorded there.
    """
    if "level_factor" in fit.meta:
        return fit
    factor = float((fields.meta.get("calibration") or {}).get("level_factor", 1.0))
    if not np.isfinite(factor) or factor <= 0:
        factor = 1.0
    if factor == 1.0:
        return fit
    std = None if fit.rate_std is None else (np.asarray(fit.rate_std) * factor).astype(
        np.asarray(fit.rate_std).dtype)
    rate = (np.asarray(fit.rate) * factor).astype(np.asarray(fit.rate).dtype)
    return replace(fit, rate=rate, rate_std=std, meta={**fit.meta, "level_factor": factor})
