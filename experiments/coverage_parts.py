"""Which part of a single PINN fit's 90 % interval is too wide, on fields cases of the suite.

A single fit's ``rate_std`` (no halves: fields given directly) is the local RMS
disagreement of the fit with the closed form of the same settings and the smoothing bias
read from the fit's curvature, in quadrature (``chromarate.fit.loop``). This study fits
each case once with the default configuration and scores the coverage of the nominal 90 %
interval built from each part alone and from alternatives:

- ``current``: the fit's own ``rate_std``;
- ``noise_only`` / ``bias_only``: the disagreement, or the two-pass smoothing bias, alone;
- ``debiased``: the disagreement less the bias difference of the closed form (one pass)
  and the fit (two passes), which the disagreement also holds, in quadrature with the
  two-pass bias: ``hypot(sqrt(max(d^2 - rms(b1)^2, 0)), b2)``;
- ``gauss_bias``: the bias as the difference of the fit's map and its own Gaussian
  smoothing over the two passes, in place of the second-order (curvature) term;
- ``max``: the larger of the disagreement and the bias instead of their quadrature sum.

Coverage is scored as the suite scores it (:func:`chromarate.validation.run.score_fit`).

Usage::

    python experiments/coverage_parts.py bump-env-n1@101 step-box-n1@101 \\
        --workers 2 --json experiments/results/coverage_parts_dev.json

Cases are named ``NAME@SEED`` as in the suite; only cases on the fields path.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import add_case_options, parser, set_threads, simulated_case, write_json  # noqa: E402

VARIANTS = ("current", "noise_only", "bias_only", "debiased", "gauss_bias", "max")


def intervals(rate: np.ndarray, closed: np.ndarray, trusted: np.ndarray,
              window_px: float, own: np.ndarray) -> dict[str, np.ndarray]:
    """The standard deviations of each variant (see the module docstring)."""
    import scipy.ndimage as ndi

    from chromarate.fit.prior import fill_nearest
    from chromarate.fit.uncertainty import SPLIT_HALF_SMOOTHING_WINDOWS, local_rms, smoothing_bias

    width = SPLIT_HALF_SMOOTHING_WINDOWS * window_px
    apart = local_rms(rate - closed, trusted, width)
    b1 = smoothing_bias(rate, trusted, window_px, passes=1)
    b2 = smoothing_bias(rate, trusted, window_px, passes=2)
    debiased = np.sqrt(np.maximum(apart ** 2 - local_rms(b1, trusted, width) ** 2, 0.0))
    filled = fill_nearest(np.where(trusted, rate, np.nan))
    g2 = np.abs(ndi.gaussian_filter(filled, np.sqrt(2.0) * window_px, mode="nearest") - filled)
    return {"current": own, "noise_only": apart, "bias_only": b2,
            "debiased": np.hypot(debiased, b2), "gauss_bias": np.hypot(apart, g2),
            "max": np.fmax(apart, b2)}


def run_one(name: str, cache: str, quick: bool = False) -> dict:
    """Fit one fields case and score every variant's coverage."""
    set_threads(1)
    from chromarate.fit.loop import fit_rates
    from chromarate.halves import closed_form_check
    from chromarate.validation.run import score_fit, target_rate

    _, syn, cfg = simulated_case(name, cache, quick=quick, path="fields")
    target, _ = target_rate(syn)
    fit = fit_rates(syn.fields, cfg.fit)
    trusted = np.asarray(fit.trusted, bool)
    rate = np.asarray(fit.rate, np.float64)
    closed = closed_form_check(syn.fields, fit, cfg)
    stds = intervals(rate, np.asarray(closed, np.float64), trusted,
                     float(fit.meta["test_window_px"]), np.asarray(fit.rate_std, np.float64))
    row = {"case": name, "r": score_fit(fit, syn.fields, syn, target).pearson_r}
    for key, std in stds.items():
        scored = replace(fit, rate_std=np.where(trusted, std, np.nan).astype(np.float32))
        row[key] = score_fit(scored, syn.fields, syn, target).coverage90
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    ap = parser(__doc__)
    add_case_options(ap)
    ap.add_argument("--workers", type=int, default=1, help="processes (one case each)")
    args = ap.parse_args(argv)
    from chromarate.validation.suite import case_by_name

    for name in args.cases:  # refuse a bad name before any fit
        try:
            case_by_name(name, quick=args.quick, path="fields")
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
    n = len(args.cases)
    with ProcessPoolExecutor(max(1, args.workers)) as ex:
        rows = list(ex.map(run_one, args.cases, [args.cache] * n, [args.quick] * n))
    print(f"{'case':32s} {'r':>6s} " + " ".join(f"{k:>10s}" for k in VARIANTS))
    for row in rows:
        print(f"{row['case']:32s} {row['r']:6.3f} " + " ".join(f"{row[k]:10.3f}" for k in VARIANTS))
    print("\ncases with coverage in 80-98 % / below 80 %, median:")
    for k in VARIANTS:
        xs = np.array([row[k] for row in rows])
        print(f"  {k:10s} {int(np.sum((xs >= 0.80) & (xs <= 0.98)))}/{len(xs)}  "
              f"{int(np.sum(xs < 0.80))}  {np.median(xs):.3f}")
    if args.json:
        write_json(args.json, {"cases": args.cases, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
