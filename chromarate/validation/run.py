"""Running one validation case: simulate, fit (or run the pipeline), score, compare."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import PipelineConfig
from ..errors import ChromarateError
from .cases import Case, SyntheticCase, simulate_case
from .scoring import Scores, peak_rss_mb, qc_status, resolvable_part, score

__all__ = ["QUICK_STEPS", "CaseResult", "default_config", "run_case", "score_fit", "target_rate",
           "truth_on_grid"]

#: Fit steps of the quick configuration.
QUICK_STEPS = 20


@dataclass(frozen=True)
class CaseResult:
    """Outcome of :func:`run_case`.

    Attributes
    ----------
    case : Case
    method : str
        "pinn" or "direct".
    scores : Scores or None
        None when the run failed.
    baseline_r : float
        Pearson r of the closed-form inversion (:func:`chromarate.invert_direct`) on the
        same phase fields (NaN when not run or failed).
    status : str
        QC status of the result (``"unchecked"`` when it carries none, ``"failed"`` when
        the run raised or the pipeline found no nucleus).
    reasons : list of str
        QC reasons, or the error.
    simulate_s : float
        Seconds the truth took to simulate (the original cost when read from the cache).
    fit_s : float
        Seconds of the fit (measured around the call; the pipeline's fit stage on the
        localizations path).
    run_s : float
        Seconds of the whole fit call (the whole pipeline on the localizations path).
    peak_rss_mb : float
        The process's peak RSS after the fit (high-water mark, see
        :func:`~chromarate.validation.scoring.peak_rss_mb`).
    peak_rss_delta_mb : float
        Its growth during the fit (0 when an earlier stage reached a higher peak).
    regularisation : object
        ``fit.meta["regularisation"]`` when the fit reports the settings it chose.
    meta : dict
        Simulation meta (steps, residual, convergence, cache), the score target, the
        fit's mollifier radius and timings.
    rate, target, trusted : numpy.ndarray or None
        Inferred lambda, the truth it was scored against resampled onto its grid, and the
        trusted mask (for figures; not in :meth:`row`).
    r_resolvable : float
        Pearson r against the resolvable part of the true rate
        (:func:`~chromarate.validation.scoring.resolvable_part`, a Gaussian of
        :data:`~chromarate.validation.scoring.RESOLUTION_UM`) on the same pixels, for every
        family: how much of the gap to 1 is structure finer than the suite's resolution
        scale rather than error (the "fine" family's ``r`` is already this). NaN when the
        run failed or the truth is constant.
    """

    case: Case
    method: str
    scores: Scores | None
    baseline_r: float
    status: str
    reasons: list[str]
    simulate_s: float
    fit_s: float
    run_s: float
    peak_rss_mb: float
    peak_rss_delta_mb: float
    regularisation: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    rate: np.ndarray | None = None
    target: np.ndarray | None = None
    trusted: np.ndarray | None = None
    r_resolvable: float = float("nan")

    def row(self) -> dict[str, Any]:
        """A flat, JSON-serialisable row (no arrays)."""
        s = self.scores
        nan = float("nan")
        r = s.pearson_r if s else nan
        return {
            "case": self.case.name, "family": self.case.family, "path": self.case.path,
            "model": self.case.model, "envelope": self.case.envelope,
            "size_px": self.case.size_px, "pixel_nm": self.case.pixel_nm,
            "nucleus_um": self.case.nucleus_um, "method": self.method,
            "r": r, "r_resolvable": self.r_resolvable, "rho": s.spearman_rho if s else nan,
            "bias": s.bias if s else nan,
            "rmse": s.rmse if s else nan, "side_of_one": s.side_of_one if s else nan,
            "coverage90": s.coverage90 if s else nan, "n_pixels": s.n_pixels if s else 0,
            "baseline_r": self.baseline_r, "delta_r": r - self.baseline_r,
            "status": self.status, "reasons": list(self.reasons),
            "simulate_s": self.simulate_s, "fit_s": self.fit_s, "run_s": self.run_s,
            "peak_rss_mb": self.peak_rss_mb, "peak_rss_delta_mb": self.peak_rss_delta_mb,
            "regularisation": _jsonable(self.regularisation), "meta": _jsonable(self.meta),
            "params": self.case.as_dict(),
        }


def _jsonable(x: Any) -> Any:
    """Numpy scalars and arrays, tuples and mappings made JSON-serialisable."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist() if x.size <= 64 else f"<array {x.shape}>"
    if isinstance(x, np.generic):
        return x.item()
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    return str(x)


def default_config(case: Case, *, quick: bool = False) -> PipelineConfig:
    """The pipeline configuration a case runs with by default.

    The library defaults (so a change of the defaults is what the suite measures), with
    the rendering pixel size set to the case's pixel size, and with ``quick`` the fit cut
    to :data:`QUICK_STEPS` steps.

    Parameters
    ----------
    case : Case
    quick : bool

    Returns
    -------
    PipelineConfig
    """
    cfg = PipelineConfig()
    update: dict[str, Any] = {"render": cfg.render.model_copy(
        update={"pixel_size_nm": float(case.pixel_nm)})}
    if quick:
        update["fit"] = cfg.fit.model_copy(update={
            "training": cfg.fit.training.model_copy(update={"steps": QUICK_STEPS})})
    return cfg.model_copy(update=update)


def target_rate(syn: SyntheticCase) -> tuple[np.ndarray, str]:
    """What a case is scored against.

    Parameters
    ----------
    syn : SyntheticCase

    Returns
    -------
    (numpy.ndarray, str)
        The resolvable part of the true rate for the "fine" family, else the true rate, on
        the case's grid, and its name (``"resolvable_part"`` or ``"rate"``).
    """
    if syn.case.family == "fine":
        return resolvable_part(syn.rate, pixel_nm=syn.pixel_size_nm), "resolvable_part"
    return syn.rate, "rate"


def score_fit(fit, fields, syn: SyntheticCase, target: np.ndarray) -> Scores:
    """Scores of a fit's rate map against ``target`` (:func:`target_rate`).

    Parameters
    ----------
    fit : FitResult
        Its ``rate``, ``trusted`` and ``rate_std`` are scored.
    fields : PhaseFields
        The fields fitted (their grid places the map).
    syn : SyntheticCase
        The case (the grid and mask of the truth).
    target : numpy.ndarray
        The true map on the case's grid.

    Returns
    -------
    Scores
    """
    return score(fit.rate, fit.trusted, fit.rate_std, target, pixel_nm=fields.pixel_size_nm,
                 origin_nm=fields.origin_nm, truth_pixel_nm=syn.pixel_size_nm,
                 truth_origin_nm=syn.origin_nm, truth_mask=syn.mask)


def _fit_fields(fields, fit_config, method: str):
    from ..fit.direct import invert_direct
    from ..fit.loop import fit_rates

    if method == "direct":
        return invert_direct(fields, fit_config)
    return fit_rates(fields, fit_config)


def _run_pipeline(syn: SyntheticCase, config: PipelineConfig):
    """(largest nucleus result, None) or (None, error text)."""
    from ..pipeline import NucleusResult, Pipeline

    out = Pipeline(config).run(syn.localizations, provenance={"validation_case": syn.case.name})
    done = [r for r in out if isinstance(r, NucleusResult)]
    if not done:
        errors = [f"nucleus {r.nucleus_id} ({r.stage}): {r.error}" for r in out]
        return None, "; ".join(errors) or "the pipeline found no nucleus"
    return max(done, key=lambda r: int(np.asarray(r.fields.mask).sum())), None


def run_case(case: Case, *, config: PipelineConfig | None = None,
             method: Literal["pinn", "direct"] = "pinn", cache_dir: str | Path | None = None,
             baseline: bool = True) -> CaseResult:
    """Simulate a case, infer its rate map and score it.

    Fields path: :func:`chromarate.fit_rates` (or :func:`chromarate.invert_direct` with
    ``method="direct"``) on the noisy fields with ``config.fit``. Localizations path:
    :meth:`chromarate.Pipeline.run` with ``config`` (fit method set to ``method``); the
    largest nucleus found is scored, the truth resampled onto its grid through the origins
    and pixel sizes. The QC status is taken from the result stack's provenance (``qc``)
    or ``fit.meta["qc"]`` when present. The closed-form baseline runs on the same fields
    (those the pipeline produced, on the localizations path).

    Parameters
    ----------
    case : Case
    config : PipelineConfig, optional
        Default: :func:`default_config`.
    method : {"pinn", "direct"}
    cache_dir : str or Path, optional
        Steady-state cache (see :func:`~chromarate.validation.simulate_case`).
    baseline : bool
        Also run the closed-form inversion and report its r.

    Returns
    -------
    CaseResult
        A run that raises a :class:`~chromarate.errors.ChromarateError` comes back with
        status ``"failed"`` and the error as its reason.
    """
    cfg = config if config is not None else default_config(case)
    fit_cfg = cfg.fit.model_copy(update={"method": method})
    syn = simulate_case(case, cache_dir=cache_dir)
    target, target_name = target_rate(syn)
    meta: dict[str, Any] = {**{k: v for k, v in syn.meta.items() if k != "case"},
                            "target": target_name}
    sim_s = float(syn.meta.get("simulate_s", float("nan")))
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    nan = float("nan")
    try:
        if case.path == "fields":
            fields = syn.fields
            fit = _fit_fields(fields, fit_cfg, method)
            run_s = fit_s = time.perf_counter() - t0
            from ..pipeline import fields_quality

            qc = fit.meta.get("qc") or fields_quality(fields, fit, cfg.model_copy(
                update={"fit": fit_cfg})).as_dict()
        else:
            nr, error = _run_pipeline(syn, cfg.model_copy(update={"fit": fit_cfg}))
            run_s = time.perf_counter() - t0
            if nr is None:
                rss1 = peak_rss_mb()
                return CaseResult(case, method, None, nan, "failed", [error], sim_s, nan, run_s,
                                  rss1, rss1 - rss0, meta=meta)
            fit, fields = nr.fit, nr.fields
            fit_s = float(nr.timings.get("fit", nan))
            qc = nr.stack.provenance.get("qc", fit.meta.get("qc"))
            meta["n_localizations_in_nucleus"] = int(nr.n_localizations)
            meta["calibration"] = fields.meta.get("calibration")
        rss1 = peak_rss_mb()
        scores = score_fit(fit, fields, syn, target)
        r_res = (scores.pearson_r if target_name == "resolvable_part" else score_fit(
            fit, fields, syn, resolvable_part(syn.rate, pixel_nm=syn.pixel_size_nm)).pearson_r)
    except ChromarateError as exc:
        rss1 = peak_rss_mb()
        return CaseResult(case, method, None, nan, "failed", [f"{type(exc).__name__}: {exc}"],
                          sim_s, nan, time.perf_counter() - t0, rss1, rss1 - rss0, meta=meta)
    base_r = nan
    if baseline:
        try:
            from ..fit.direct import invert_direct

            base = invert_direct(fields, fit_cfg.model_copy(update={"method": "direct"}))
            base_r = score_fit(base, fields, syn, target).pearson_r
        except ChromarateError as exc:
            meta["baseline_error"] = str(exc)
    status, reasons = qc_status(qc)
    if isinstance(qc, dict) and isinstance(qc.get("metrics"), dict):
        meta["qc_metrics"] = dict(qc["metrics"])
    meta["mollifier_radius_px"] = fit.meta.get("mollifier_radius_px")
    meta["fit_timings"] = dict(fit.timings)
    true_on_grid = truth_on_grid(target, syn, fields)
    return CaseResult(case, method, scores, base_r, status, reasons, sim_s, fit_s, run_s,
                      rss1, rss1 - rss0, regularisation=fit.meta.get("regularisation"),
                      meta=meta, rate=np.asarray(fit.rate), target=true_on_grid,
                      trusted=np.asarray(fit.trusted, bool), r_resolvable=float(r_res))


def truth_on_grid(target: np.ndarray, syn: SyntheticCase, fields) -> np.ndarray:
    """The scoring target resampled onto the grid of ``fields`` (for figures)."""
    from ..analysis.compare import resample_to_grid

    return resample_to_grid(target, src_pixel_nm=syn.pixel_size_nm, src_origin_nm=syn.origin_nm,
                            shape=fields.shape, pixel_nm=fields.pixel_size_nm,
                            origin_nm=fields.origin_nm)
