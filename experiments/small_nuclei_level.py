"""The absolute level of nuclei too small for the density-scale calibration.

The physics calibration (:func:`chromarate.fit.calibrate.calibrate_scale`) needs
``MIN_TRUSTED_PIXELS`` pixels one kernel support inside the envelope; below that the
percentile baseline is used as it is (scale 1) and the nucleus is flagged. This script
asks what level such nuclei get, and what other fallbacks would give. For each rendered
validation case ``NAME@SEED`` it prepares the largest nucleus as the pipeline does
(render, denoise, segmentation, background) and scores the windowed closed form (default
settings, regularisation chosen from the data) at the density scale each rule picks:

- ``fallback``: the pipeline's own choice (scale 1 where the calibration is skipped);
- ``forced``: the calibration run anyway at the kernel radius it would use, the size
  limit lifted;
- ``forced_rN``: the same at a mollifier radius of N px (``--radii``), the size limit
  lifted (the kernel then fits more pixels inside, at more noise); only the calibration
  uses that radius, the closed form that scores its scale keeps the default one;
- ``fixed_K``: a fixed scale K (``--fixed``), e.g. the scale most calibrated nuclei get;
- ``oracle``: the smallest scale on the calibration's grid where the closed form's mean
  crosses the truth's, interpolated linearly (what a rule that knew the answer would
  pick; where the mean is not monotonic in the scale the interpolated point need not
  be exact, and where it never crosses on the grid there is none).

It prints per case the chosen scale and the bias of the closed form's mean λ for each
rule, and per rule the RMS and worst bias over the cases. With ``--pipeline`` it also
runs the whole default pipeline (the PINN fit and its quality gate, as the validation
suite runs a case) twice per case, as shipped and with the calibration's size limit
lifted, and reports r and the bias of the mean of both (``pipeline`` and
``pipeline_forced``): the closed form is only a proxy for the level the PINN reports.
Usage::

    python experiments/small_nuclei_level.py cli-size96-loc250k@101 bump-irr-env-loc50k@101 \\
        --radii 12 16 --fixed 0.85 --json out.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, bias_summary, largest_nucleus, parser,  # noqa: E402
                      simulated_case, with_level_factor, write_json)


def _closed_form(fields, syn, target, direct) -> dict:
    """r and bias of the windowed closed form on ``fields``."""
    from chromarate.fit.direct import invert_direct
    from chromarate.validation.run import score_fit

    s = score_fit(invert_direct(fields, direct), fields, syn, target)
    return {"r": s.pearson_r, "bias": s.bias}


def _forced(den, mask, cfg, radius_px: float | None) -> dict:
    """The calibration with its size limit lifted to 16 pixels, the least the misfit
    itself needs (and at ``radius_px`` where given); ``skipped`` says why where even that
    is not met."""
    import chromarate.fit.calibrate as calibrate
    from chromarate.calibrated_phase import fields_at_scale

    fit = cfg.fit
    if radius_px is not None:
        fit = fit.model_copy(update={"mollifier": fit.mollifier.model_copy(
            update={"radius_px": float(radius_px)})})
    limit = calibrate.MIN_TRUSTED_PIXELS
    calibrate.MIN_TRUSTED_PIXELS = 16
    try:
        cal = calibrate.calibrate_scale(lambda k: fields_at_scale(den, mask, cfg, k), fit,
                                        censored_level=cfg.phase.censored_level,
                                        level_share=cfg.phase.censored_level_share)
    finally:
        calibrate.MIN_TRUSTED_PIXELS = limit
    return {"scale": cal.scale, "level_factor": cal.level_factor,
            "interior_minimum": cal.interior_minimum, "skipped": cal.skipped}


def _pipeline(name: str, cache: str, quick: bool, *, forced: bool) -> dict:
    """r, bias, status and calibration of the whole default pipeline on one case (the
    validation suite's :func:`~chromarate.validation.run_case`), with the calibration's
    size limit lifted to 16 pixels where ``forced``."""
    import chromarate.fit.calibrate as calibrate
    from chromarate.validation import run_case
    from chromarate.validation.suite import case_by_name

    limit = calibrate.MIN_TRUSTED_PIXELS
    if forced:
        calibrate.MIN_TRUSTED_PIXELS = 16
    try:
        res = run_case(case_by_name(name, quick=quick), cache_dir=cache, baseline=False)
    finally:
        calibrate.MIN_TRUSTED_PIXELS = limit
    row = res.row()
    cal = row["meta"].get("calibration") or {}
    return {"r": row["r"], "bias": row["bias"], "status": row["status"],
            "reasons": row["reasons"], "scale": cal.get("scale"),
            "skipped": cal.get("skipped", "")}


def _oracle(biases: list[tuple[float, float]]) -> float | None:
    """The smallest scale where the bias crosses zero (linear between neighbouring grid
    points, both finite), or None; a NaN point between two of opposite sign hides that
    crossing."""
    biases = sorted(biases)
    for (k0, b0), (k1, b1) in zip(biases, biases[1:]):
        if np.isfinite(b0) and np.isfinite(b1) and b0 * b1 <= 0 and b0 != b1:
            return float(k0 + (k1 - k0) * b0 / (b0 - b1))
    return None


def study(name: str, cache: str, *, radii=(), fixed=(), quick: bool = False,
          pipeline: bool = False) -> dict:
    """The figures of one case (see the module docstring)."""
    from chromarate.fit.calibrate import SCALE_GRID
    from chromarate.calibrated_phase import calibrated_phase_fields, fields_at_scale
    from chromarate.pipeline import phase_density
    from chromarate.validation.run import target_rate

    _, syn, cfg = simulated_case(name, cache, quick=quick)
    task = largest_nucleus(syn.localizations, cfg)
    den, mask = phase_density(task), task.mask
    target, _ = target_rate(syn)
    direct = cfg.fit.model_copy(update={"method": "direct"})

    def at(scale: float, factor: float = 1.0) -> dict:
        out = _closed_form(fields_at_scale(den, mask, cfg, scale), syn, target, direct)
        return {"scale": float(scale), "r": out["r"],
                "bias": with_level_factor(out["bias"], factor)}

    own = calibrated_phase_fields(den, mask, cfg)
    cal = own.meta["calibration"]
    rules = {"fallback": {**_closed_form(own, syn, target, direct), "scale": cal["scale"],
                          "skipped": cal.get("skipped", "")}}
    rules["fallback"]["bias"] = with_level_factor(rules["fallback"]["bias"],
                                                  cal.get("level_factor", 1.0))
    for key, radius in [("forced", None)] + [(f"forced_r{r:g}", r) for r in radii]:
        f = _forced(den, mask, cfg, radius)
        rules[key] = {**at(f["scale"], f["level_factor"]),
                      "interior_minimum": f["interior_minimum"], "skipped": f["skipped"]}
    for k in fixed:
        rules[f"fixed_{k:g}"] = at(k)
    grid = [(float(k), at(float(k))["bias"]) for k in SCALE_GRID]
    k_star = _oracle(grid)
    rules["oracle"] = at(k_star) if k_star is not None else {"scale": None, "r": None, "bias": None}
    if pipeline:
        rules["pipeline"] = _pipeline(name, cache, quick, forced=False)
        rules["pipeline_forced"] = _pipeline(name, cache, quick, forced=True)
    out = {"case": name, "nucleus_px": int(mask.sum()), "rules": rules,
           "bias_on_grid": grid}
    print(f"{name}: {out['nucleus_px']} px; "
          + "; ".join(f"{key} k={_f(v['scale'], '.3f')} bias {_f(v['bias'], '+.3f')}"
                      for key, v in rules.items()), flush=True)
    return out


def _f(x, spec: str) -> str:
    return "-" if x is None or not np.isfinite(x) else format(x, spec)


def main() -> None:
    ap = parser(__doc__)
    add_case_options(ap)
    ap.add_argument("--radii", type=float, nargs="+", default=[], metavar="PX",
                    help="also calibrate at these mollifier radii (px), the size limit lifted")
    ap.add_argument("--fixed", type=float, nargs="+", default=[], metavar="K",
                    help="also these fixed density scales")
    ap.add_argument("--pipeline", action="store_true",
                    help="also the whole pipeline (PINN), as shipped and with the size limit lifted")
    args = ap.parse_args()
    rows = [study(n, args.cache, radii=args.radii, fixed=args.fixed, quick=args.quick,
                  pipeline=args.pipeline) for n in args.cases]
    print()
    for key in rows[0]["rules"] if rows else []:
        b = [r["rules"][key]["bias"] for r in rows if r["rules"][key].get("bias") is not None]
        s = bias_summary(b) if b else {}
        print(f"{key:12s} n={len(b):<3} mean {_f(s.get('mean'), '+.3f')}  RMS {_f(s.get('rms'), '.3f')}  "
              f"worst {_f(s.get('worst'), '+.3f')}")
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
