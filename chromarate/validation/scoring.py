"""Scores of an inferred rate map against the truth, and the summary of a suite run."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np
from scipy import ndimage as ndi
from scipy import stats

from ..analysis.compare import resample_to_grid

__all__ = [
    "BASELINE_MARGIN",
    "CONSTANT_RTOL",
    "COVERAGE_RANGE",
    "RESOLUTION_UM",
    "SIDE_MARGIN",
    "Z90",
    "Scores",
    "coverage_summary",
    "peak_rss_mb",
    "qc_status",
    "reason_kind",
    "resolvable_part",
    "score",
    "summarise",
]

#: Resolution scale (um) of the "fine" family's score: the truth is low-pass filtered by
#: a Gaussian of this standard deviation before it is compared (see :func:`resolvable_part`).
RESOLUTION_UM = 0.15

#: A truth whose standard deviation over the scored pixels is at most this times
#: max(1, its largest absolute value) is constant: it has no r or rho.
CONSTANT_RTOL = 1e-9

#: Pixels whose true rate is within this of 1 are left out of the side-of-1 score.
SIDE_MARGIN = 0.05

#: The coverage of the nominal 90 % interval a case should have (issue 12: 80-98 %).
COVERAGE_RANGE = (0.80, 0.98)

#: How far below the closed form's r the fit may lie ("never worse than the baseline").
BASELINE_MARGIN = 0.02

#: Half-width of the nominal 90 % interval in standard deviations.
Z90 = 1.645


@dataclass(frozen=True)
class Scores:
    """Agreement of an inferred rate map with the truth over the scored pixels.

    Attributes
    ----------
    pearson_r, spearman_rho : float
        Correlations (NaN with fewer than 3 pixels, a constant estimate, or a truth
        constant to within :data:`CONSTANT_RTOL`, e.g. the "constant" family's, also
        after a filter).
    bias : float
        Relative bias of the mean, ``(mean(est) - mean(true)) / mean(true)``.
    rmse : float
        Root-mean-square error of lambda.
    side_of_one : float
        Fraction of the pixels with ``|true - 1| > SIDE_MARGIN`` whose estimate lies on the
        same side of lambda = 1 (NaN when there are none).
    coverage90 : float
        Fraction of pixels with ``|est - true| <= 1.645 rate_std`` (NaN without rate_std).
    n_pixels : int
        Number of scored pixels (trusted, finite, inside the true nucleus).
    """

    pearson_r: float
    spearman_rho: float
    bias: float
    rmse: float
    side_of_one: float
    coverage90: float
    n_pixels: int

    def as_dict(self) -> dict[str, Any]:
        """The scores as a dict."""
        return asdict(self)


def resolvable_part(rate: np.ndarray, *, pixel_nm: float,
                    resolution_um: float = RESOLUTION_UM) -> np.ndarray:
    """The part of a rate map a fit can resolve: the map low-pass filtered by a Gaussian.

    Used as the target of the "fine" family: the fit's resolution is set by its mollifier
    radius and test window, and structure finer than about two mollifier radii is not in
    the data. The scale is a fixed :data:`RESOLUTION_UM` = 0.15 um by default (not the
    value a particular fit reports), so scores of different fit settings share a target.

    Parameters
    ----------
    rate : numpy.ndarray
        True lambda on its grid.
    pixel_nm : float
        Pixel size of that grid.
    resolution_um : float
        Standard deviation of the Gaussian.

    Returns
    -------
    numpy.ndarray
        Same shape (reflecting boundary).
    """
    sigma_px = resolution_um * 1000.0 / float(pixel_nm)
    return ndi.gaussian_filter(np.asarray(rate, dtype=np.float64), sigma_px, mode="reflect")


def score(rate: np.ndarray, trusted: np.ndarray, rate_std: np.ndarray | None,
          truth_rate: np.ndarray, *, pixel_nm: float, origin_nm=(0.0, 0.0),
          truth_pixel_nm: float | None = None, truth_origin_nm=(0.0, 0.0),
          truth_mask: np.ndarray | None = None) -> Scores:
    """Score an inferred rate map against the true one.

    The truth is resampled (bilinear, :func:`chromarate.analysis.compare.resample_to_grid`)
    from its grid onto the result grid; pixels are scored where the fit trusts them, both
    maps are finite and (when ``truth_mask`` is given) the true nucleus covers the pixel.

    Parameters
    ----------
    rate : numpy.ndarray
        Inferred lambda (ny, nx).
    trusted : numpy.ndarray
        bool (ny, nx), the fit's trusted interior.
    rate_std : numpy.ndarray or None
        Standard deviation of the estimate; None makes ``coverage90`` NaN.
    truth_rate : numpy.ndarray
        True lambda on its own grid (or the resolvable part of it, see
        :func:`resolvable_part`).
    pixel_nm, origin_nm
        Grid of the result: pixel size and (y, x) corner of pixel (0, 0) in nm.
    truth_pixel_nm, truth_origin_nm
        Grid of the truth (default: the result's pixel size, origin (0, 0)).
    truth_mask : numpy.ndarray, optional
        True nucleus on the truth grid.

    Returns
    -------
    Scores
    """
    rate = np.asarray(rate, dtype=np.float64)
    tp = float(pixel_nm if truth_pixel_nm is None else truth_pixel_nm)
    grid = dict(src_pixel_nm=tp, src_origin_nm=tuple(truth_origin_nm), shape=rate.shape,
                pixel_nm=float(pixel_nm), origin_nm=tuple(origin_nm))
    true = resample_to_grid(truth_rate, **grid)
    sel = np.asarray(trusted, bool) & np.isfinite(rate) & np.isfinite(true)
    if truth_mask is not None:
        inside = resample_to_grid(np.asarray(truth_mask, dtype=np.float64), order=0, **grid)
        sel &= np.nan_to_num(inside) > 0.5
    est, tru = rate[sel], true[sel]
    n = int(sel.sum())
    nan = float("nan")
    if n == 0:
        return Scores(nan, nan, nan, nan, nan, nan, 0)
    # a constant truth has no r, also where filtering it (the resolvable part) left
    # rounding-level ripples
    flat = np.std(tru) <= CONSTANT_RTOL * max(1.0, float(np.abs(tru).max()))
    corr_ok = n >= 3 and np.std(est) > 0 and not flat
    r = float(np.corrcoef(est, tru)[0, 1]) if corr_ok else nan
    rho = float(stats.spearmanr(est, tru)[0]) if corr_ok else nan
    bias = float((est.mean() - tru.mean()) / tru.mean())
    rmse = float(np.sqrt(np.mean((est - tru) ** 2)))
    far = np.abs(tru - 1.0) > SIDE_MARGIN
    side = float(np.mean(np.sign(est[far] - 1.0) == np.sign(tru[far] - 1.0))) if far.any() else nan
    coverage = nan
    if rate_std is not None:
        sd = np.asarray(rate_std, dtype=np.float64)[sel]
        ok = np.isfinite(sd)
        if ok.any():
            coverage = float(np.mean(np.abs(est[ok] - tru[ok]) <= Z90 * sd[ok]))
    return Scores(r, rho, bias, rmse, side, coverage, n)


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (high-water mark, MB; NaN where
    :mod:`resource` is missing). Sees torch's and numpy's allocations alike, but it only
    ever grows: a stage that stays below an earlier peak adds nothing to it."""
    try:
        import resource
        import sys
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0


def qc_status(qc: Any) -> tuple[str, list[str]]:
    """Status and reasons from whatever quality-control block a result carries.

    Accepts None (``"unchecked"``), a string status, or a mapping with ``status`` (or a
    boolean ``ok``/``passed``) and ``reasons`` (or ``flags``); a mapping with reasons but no
    status counts as ``"flagged"``.

    Returns
    -------
    tuple of (str, list of str)
    """
    if qc is None:
        return "unchecked", []
    if isinstance(qc, str):
        return qc, []
    if isinstance(qc, Mapping):
        reasons = qc.get("reasons", qc.get("flags", []))
        if isinstance(reasons, str):
            reasons = [reasons]
        elif isinstance(reasons, Mapping):
            reasons = [f"{k}: {v}" for k, v in reasons.items()]
        reasons = [str(x) for x in (reasons or [])]
        status = qc.get("status")
        if status is None:
            ok = qc.get("ok", qc.get("passed"))
            status = ("ok" if ok else "flagged") if ok is not None else \
                ("flagged" if reasons else "unchecked")
        return str(status), reasons
    return str(qc), []


def _finite(values: Iterable[Any]) -> np.ndarray:
    out = np.array([v for v in values if v is not None], dtype=np.float64)
    return out[np.isfinite(out)]


def _stats(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    r = _finite(row.get("r") for row in rows)
    r_res = _finite(row.get("r_resolvable") for row in rows)  # absent from older rows
    b = np.abs(_finite(row.get("bias") for row in rows))
    nan = float("nan")
    return {"n": len(rows),
            "median_r": float(np.median(r)) if r.size else nan,
            "min_r": float(np.min(r)) if r.size else nan,
            "median_r_resolvable": float(np.median(r_res)) if r_res.size else nan,
            "min_r_resolvable": float(np.min(r_res)) if r_res.size else nan,
            "n_r": int(r.size), "n_r_resolvable": int(r_res.size),
            "worst_abs_bias": float(np.max(b)) if b.size else nan,
            "median_abs_bias": float(np.median(b)) if b.size else nan}


def _group(status: str) -> str:
    s = status.lower()
    return s if s in ("ok", "unchecked", "failed") else "flagged"


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def reason_kind(reason: str) -> str:
    """A QC reason with its numbers replaced by ``#``, so reasons of one kind count together."""
    return _NUMBER.sub("#", str(reason))


def summarise(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Summary of a suite run from its per-case rows.

    Median and minimum Pearson r (and of ``r_resolvable``, r against the truth's resolvable
    part, where the rows have it), worst and median |bias| (NaN values, e.g. r of a
    constant truth, left out), over all cases and per status group: ``ok``, ``flagged``
    (any other QC status), ``unchecked`` (no QC block), ``failed`` (the run raised); the
    number of flagged cases with a count of each reason, the cases where the fit's r
    is below the closed-form baseline's (``worse_than_baseline``) and more than
    :data:`BASELINE_MARGIN` below it (``below_baseline_margin``), and the nominal 90 %
    interval's coverage (``coverage``, :func:`coverage_summary`). Reasons are counted by
    kind (:func:`reason_kind`: numbers replaced by ``#``); the rows keep them verbatim.

    Parameters
    ----------
    rows : list of dict
        Rows as made by :meth:`chromarate.validation.CaseResult.row` (keys ``case``, ``r``,
        ``bias``, ``status``, ``reasons``, ``baseline_r``).

    Returns
    -------
    dict
    """
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(_group(str(row.get("status", "unchecked"))), []).append(row)
    reasons = Counter(reason_kind(x) for row in groups.get("flagged", [])
                      for x in row.get("reasons", []))
    paired = [row for row in rows
              if row.get("r") is not None and row.get("baseline_r") is not None
              and math.isfinite(row["r"]) and math.isfinite(row["baseline_r"])]
    return {"all": _stats(list(rows)),
            "by_status": {g: _stats(v) for g, v in sorted(groups.items())},
            "n_flagged": len(groups.get("flagged", [])),
            "flag_reasons": dict(reasons),
            "n_failed": len(groups.get("failed", [])),
            "worse_than_baseline": [row["case"] for row in paired
                                    if row["r"] < row["baseline_r"]],
            "below_baseline_margin": [row["case"] for row in paired
                                      if row["r"] < row["baseline_r"] - BASELINE_MARGIN],
            "coverage": coverage_summary(rows)}


def coverage_summary(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """How the nominal 90 % interval covers, over the rows that record ``coverage90``.

    Parameters
    ----------
    rows : list of dict
        Rows with ``coverage90`` (None or NaN: left out) and ``n_pixels``.

    Returns
    -------
    dict
        ``n`` (rows with a coverage), ``in_range`` (covering 80-98 % of their pixels,
        :data:`COVERAGE_RANGE`), ``wider`` (more), ``narrower`` (less), ``mean`` (the
        rows' coverages averaged, each row alike) and ``pooled``: the coverage over all
        their pixels (each row's coverage weighted by its ``n_pixels``; a row without a
        finite pixel count counts in the others but not here). ``mean`` and ``pooled``
        are NaN without rows or pixels.
    """
    lo, hi = COVERAGE_RANGE

    def n_pixels(row) -> int:
        n = row.get("n_pixels")
        return int(n) if n is not None and math.isfinite(float(n)) else 0

    c = [(float(r["coverage90"]), n_pixels(r)) for r in rows
         if r.get("coverage90") is not None and math.isfinite(float(r["coverage90"]))]
    total = sum(n for _, n in c)
    nan = float("nan")
    return {"n": len(c), "in_range": sum(lo <= x <= hi for x, _ in c),
            "wider": sum(x > hi for x, _ in c), "narrower": sum(x < lo for x, _ in c),
            "mean": sum(x for x, _ in c) / len(c) if c else nan,
            "pooled": sum(x * n for x, n in c) / total if total else nan}
