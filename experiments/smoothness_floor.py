"""What the smoothness floor from the rate's variation reads, and what the weight does.

For each validation case ``NAME@SEED`` on the fields path (the noisy fields the suite
fits), with the floor turned off (``fit.prior.rate_variation_reference: null``):

- the steadiness misfit J and the closed form's relative variation v exactly as the fit
  reads them (:func:`chromarate.fit.regularise.choose_regularisation`, then the fit's
  problem, ``closed_variation``), and the floor the shipped reference would set;
- r of the default fit with the weak end's smoothness weight set to each ``--weights``
  value (a study: the module constant ``WEAK`` is patched for the run; only fits at the
  weak end, strength 0, feel it);
- with ``--seeds``, r of the weak-end fit for each network seed and the correlation of the
  first two seeds' maps (is the error the optimiser's or the data's?);
- with ``--smooth-nm``, r of the first weak-end map after a Gaussian of each width over
  the fit's trusted pixels (:func:`chromarate.fit.uncertainty.local_mean`), and the
  correlation of the map's error with the truth's unresolved part (the truth less its
  resolvable part: is the error fine structure the scoring filters out?).

r is the suite's score (:func:`chromarate.validation.run.score_fit`); the smoothed maps
are scored against the same target on the fields' grid. Usage::

    python experiments/smoothness_floor.py fine-env-15nm-n1@9500 --weights 0.001 0.003 0.01 \\
        --seeds 0 1 2 3 --smooth-nm 60 120 --json experiments/results/smoothness_floor.json
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import add_case_options, corr, parser, simulated_case, write_json  # noqa: E402


@contextmanager
def weak_weight(weight: float):
    """The weak end's smoothness weight patched to ``weight`` for the block (a study)."""
    from chromarate.fit import regularise

    kept = regularise.WEAK
    regularise.WEAK = (float(weight), kept[1])
    try:
        yield
    finally:
        regularise.WEAK = kept


def read_variation(syn, cfg) -> dict:
    """J, v and the floor exactly as the fit reads them (no training)."""
    import torch

    from chromarate.fit.chromatin_problem import _Problem
    from chromarate.fit.regularise import choose_regularisation, variation_smoothness_floor

    chosen, record = choose_regularisation(syn.fields, cfg.fit)
    prob = _Problem(syn.fields, chosen, "cpu", torch.float64,
                    report_radius=record.get("report_radius_px"))
    v = prob.closed_variation
    ref = type(cfg.fit.prior).model_fields["rate_variation_reference"].default
    return {"misfit": float(record["misfit"]), "strength": float(record["strength"]),
            "rate_variation": v, "rate_prior": prob.rate_prior,
            "shipped_floor": variation_smoothness_floor(v if v is not None else np.nan, ref)}


def study(name: str, cache: str, weights, seeds, smooth_nm, quick: bool = False) -> dict:
    """One case's row (see the module docstring)."""
    from chromarate.config import with_overrides
    from chromarate.fit.loop import fit_rates
    from chromarate.fit.uncertainty import local_mean
    from chromarate.validation.run import score_fit, target_rate, truth_on_grid
    from chromarate.validation.scoring import resolvable_part

    case, syn, cfg = simulated_case(name, cache, quick=quick, path="fields")
    cfg = with_overrides(cfg, {"fit.prior.rate_variation_reference": None})
    target, _ = target_rate(syn)
    row = {"case": name, **read_variation(syn, cfg)}
    row["r_at_weight"] = {}
    for w in weights:
        with weak_weight(w):
            fit = fit_rates(syn.fields, cfg.fit)
        row["r_at_weight"][str(w)] = float(score_fit(fit, syn.fields, syn, target).pearson_r)
    if not seeds and not smooth_nm:
        return row
    maps, fit0 = [], None
    for s in (seeds or [cfg.fit.seed]):
        fit = fit_rates(syn.fields, with_overrides(cfg, {"fit.seed": int(s)}).fit)
        if fit0 is None:
            fit0 = fit
        maps.append(np.asarray(fit.rate, np.float64))
        row.setdefault("r_per_seed", []).append(
            float(score_fit(fit, syn.fields, syn, target).pearson_r))
    where = np.asarray(fit0.trusted, bool)
    if len(maps) > 1:
        row["seed_map_r"] = corr(maps[0][where], maps[1][where])
    truth = truth_on_grid(target, syn, syn.fields)
    where &= np.isfinite(truth)
    px_nm = syn.fields.pixel_size_nm
    row["r_smoothed"] = {str(nm): corr(local_mean(maps[0], where, nm / px_nm)[where], truth[where])
                         for nm in smooth_nm}
    resolvable = truth_on_grid(resolvable_part(syn.rate, pixel_nm=syn.pixel_size_nm), syn, syn.fields)
    unresolved = truth_on_grid(syn.rate, syn, syn.fields) - resolvable
    row["error_vs_unresolved_r"] = corr((maps[0] - resolvable)[where], unresolved[where])
    return row


def main() -> None:
    ap = parser(__doc__)
    add_case_options(ap)
    ap.add_argument("--weights", type=float, nargs="*", default=[0.001, 0.003, 0.01],
                    help="weak-end smoothness weights to fit with (none: only read J and v)")
    ap.add_argument("--seeds", type=int, nargs="*", default=[],
                    help="network seeds of the weak-end fit (default: none)")
    ap.add_argument("--smooth-nm", type=float, nargs="*", default=[],
                    help="Gaussian widths (nm) to smooth the weak-end map by")
    args = ap.parse_args()
    rows = []
    for name in args.cases:
        row = study(name, args.cache, args.weights, args.seeds, args.smooth_nm, quick=args.quick)
        rows.append(row)
        v = row["rate_variation"]
        print(f"{name}: J {row['misfit']:.4f}, strength {row['strength']:.2f}, v "
              f"{'-' if v is None else f'{v:.4f}'}, shipped floor {row['shipped_floor']:g}, prior "
              f"{row['rate_prior']}" + ("; r at weak-end weight " if row["r_at_weight"] else "")
              + ", ".join(f"{w}: {r:.3f}" for w, r in row["r_at_weight"].items()), flush=True)
        if "r_per_seed" in row:
            print("   r per seed " + " ".join(f"{r:.3f}" for r in row["r_per_seed"])
                  + (f", seed maps agree at r {row['seed_map_r']:.3f}" if "seed_map_r" in row else "")
                  + "; smoothed " + ", ".join(f"{k} nm: {r:.3f}" for k, r in row["r_smoothed"].items())
                  + f"; error vs unresolved truth r {row['error_vs_unresolved_r']:.3f}", flush=True)
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
