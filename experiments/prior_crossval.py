"""Can two halves of the localizations choose between the balance and the closed form?

The fit's rate prior is either the local heterochromatin balance (smooth, reproducible,
wrong where chromatin flows through its window) or the windowed closed form (the physics,
noisy). The shipped rule keeps the balance unless the halves' closed forms depart from it
together. This script tries a cross-validated choice instead: each estimator made from one
half is scored by how well it predicts the other half's closed form, an estimate with
independent noise. With ``rho`` the halves' closed-form agreement and ``x`` the mean
correlation of one half's balance with the other half's closed form, and if the halves'
errors were independent, the closed form of the whole would reach ``sqrt(2 rho / (1 +
rho))`` against the truth (Spearman-Brown) and the balance ``x / sqrt(rho)`` (``x``
disattenuated by the closed form's reliability); the rule picks the larger. Both
estimators are also scored against the truth, so the rule's pick can be checked.

It also reports the shipped rule's departure figure as this script measures it
(:func:`chromarate.fit.prior.departure_ratio`, the halves' shared departure of the closed
form from the balance relative to the balance's own reproducible variation) and the same
shared departure relative to the balance's mean (``shared_departure_over_mean``: the
amplitude, as a fraction of the rate, of the structure the halves' closed forms agree on
and the balance does not have), and where that shared departure lies: its correlation with
the heterochromatin fraction and with the interface density, both smoothed over the
balance window (``departure_phi_h_r``, ``departure_interface_r``; a calibration-shaped
error of the closed form would follow the heterochromatin pattern, a flux the balance
misses need not).

It also builds the default fit's own problem on the nucleus (its data-chosen settings, the
pipeline's split-half floor; nothing is trained) and records the two figures the fit reads
(``fit_departure``, ``fit_shared_departure``) and the prior it picks with
``fit.prior.shared_departure_limit`` (the config's, or ``--limit``: ``fit_prior``) and with
the ratio alone (``fit_prior_ratio_only``).

Cases are ``seedN`` (``chromarate simulate --seed N`` through ``experiments/cli_seeds.py``'s
cache ``--cli-cache``; ``seedN-nM``: the same nucleus drawn with M localizations) or
localization cases ``NAME@SEED`` of the suite; the largest
nucleus of each, mapped as the pipeline maps it (calibrated; each half on its own under
the default calibration), with
the closed form at the settings the data choose for the whole and the balance at 0.55
domain spacings (the fit's prior), all scored over the closed form's trusted pixels.
Prints one line per case. Usage::

    python experiments/prior_crossval.py seed0 seed5 domains-box-loc1M@1212 \\
        --json experiments/results/prior_crossval.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, corr, largest_nucleus, localization_case,  # noqa: E402
                      parser, write_json)


def fit_figures(fields, half_fields, cfg, limit: float) -> dict:
    """The departure figures the default fit itself reads on ``fields`` (its data-chosen
    settings, the pipeline's split-half floor) and the prior it picks with
    ``fit.prior.shared_departure_limit`` at ``limit`` (``fit_prior``) and off (the ratio
    alone, ``fit_prior_ratio_only``), without training anything."""
    import torch

    from chromarate.fit.chromatin_problem import _Problem
    from chromarate.fit.regularise import choose_regularisation
    from chromarate.halves import split_half_floor

    fit_cfg, _ = split_half_floor(fields, half_fields, cfg.fit)
    # the limit does not enter the data-chosen settings: chosen once, the problem built
    # once per limit
    chosen_cfg, chosen = choose_regularisation(fields, fit_cfg)
    picks = {}
    for label, value in (("ratio_only", None), ("limit", limit)):
        config = chosen_cfg.model_copy(update={"prior": chosen_cfg.prior.model_copy(
            update={"shared_departure_limit": value})})
        prob = _Problem(fields, config, torch.device("cpu"), torch.float64,
                        report_radius=chosen.get("report_radius_px"), halves=half_fields)
        picks[label] = prob.rate_prior
    return {"fit_departure": prob.prior_departure,
            "fit_shared_departure": prob.prior_shared_departure,
            "fit_prior_ratio_only": picks["ratio_only"], "fit_prior": picks["limit"]}


def departure_pattern(departures, phi_h, where, window_px: float) -> dict:
    """Where the halves' shared departure of the closed form from the balance lies: its
    correlation with the heterochromatin fraction and with the interface density
    ``|grad phi_h|``, both smoothed over the balance window, on ``where``. A calibration-
    shaped error of the closed form follows the heterochromatin pattern; a flux that the
    balance misses need not."""
    from scipy import ndimage as ndi

    shared = 0.5 * (departures[0] + departures[1])
    h = np.nan_to_num(np.asarray(phi_h, dtype=float))
    gy, gx = np.gradient(h)
    smooth = ndi.gaussian_filter(h, window_px)
    interfaces = ndi.gaussian_filter(np.hypot(gx, gy), window_px)
    sel = np.asarray(where, dtype=bool) & np.isfinite(shared)
    return {"departure_phi_h_r": corr(shared[sel], smooth[sel]),
            "departure_interface_r": corr(shared[sel], interfaces[sel])}


def cross_validated_pick(rho: float, x: float) -> tuple[float, float, str]:
    """``(closed form's attainable r, balance's estimated r, pick)`` from the halves'
    closed-form agreement ``rho`` and the balance-to-other-half agreement ``x``."""
    if not rho > 0:  # the halves' closed forms share nothing: it cannot be the better one
        return 0.0, float("nan"), "balance"
    attainable = float(np.sqrt(2.0 * rho / (1.0 + rho)))
    balance = float(x / np.sqrt(rho))
    return attainable, balance, "closed_form" if attainable > balance else "balance"


def run_case(name: str, cache: str, cli_cache, quick: bool = False,
             limit: float | None = None) -> dict:
    """Both estimators of one case, from the whole and from each half, scored."""
    from chromarate.analysis.compare import resample_to_grid
    from chromarate.fit.direct import closed_form_settings, invert_direct
    from chromarate.fit.prior import (balance_rate, departure_ratio, domain_spacing_um,
                                      shared_departure)
    from chromarate.calibrated_phase import calibrated_phase_fields
    from chromarate.halves import half_phase_fields, halves_scale
    from chromarate.pipeline import _level, phase_density

    locs, cfg, rate, truth_px, truth_origin = localization_case(name, cache, cli_cache, quick=quick)
    limit = cfg.fit.prior.shared_departure_limit if limit is None else limit
    task = largest_nucleus(locs, cfg)
    fields = calibrated_phase_fields(phase_density(task), task.mask, cfg)
    halves = None if task.halves is None else half_phase_fields(
        task.halves, fields.mask, cfg, _level(task), scale=halves_scale(fields))
    if halves is None:
        raise SystemExit(f"{name}: no halves (too few localizations or no frame column)")
    mask = np.asarray(fields.mask, dtype=bool)
    px = fields.pixel_size_nm / 1000.0
    true = resample_to_grid(rate, src_pixel_nm=truth_px, src_origin_nm=truth_origin,
                            shape=mask.shape, pixel_nm=fields.pixel_size_nm,
                            origin_nm=fields.origin_nm)
    closed = invert_direct(fields, cfg.fit)
    settings = closed_form_settings(cfg.fit, closed.meta.get("regularisation") or {},
                                    closed.meta.get("mollifier_radius_px"))
    half_fits = [invert_direct(h, settings) for h in halves]
    ca, cb = (f.rate for f in half_fits)
    window = 0.55 * domain_spacing_um(fields.phi_h, mask, px) / px
    bw, ba, bb = (balance_rate(f.phi_h, f.phi_e, mask, window) for f in (fields, *halves))
    sel = closed.trusted & np.isfinite(true)
    rho = corr(ca[sel], cb[sel])
    x = 0.5 * (corr(ba[sel], cb[sel]) + corr(bb[sel], ca[sel]))
    attainable, balance_est, pick = cross_validated_pick(rho, x)
    where = closed.trusted & half_fits[0].trusted & half_fits[1].trusted
    departure = departure_ratio((ba, bb), (ca, cb), where)
    over_mean = shared_departure((ba, bb), (ca, cb), where)
    pattern = departure_pattern((ca - ba, cb - bb), fields.phi_h, where, window)
    r_closed, r_balance = corr(closed.rate[sel], true[sel]), corr(bw[sel], true[sel])
    return {"case": name, "r_closed_form": r_closed, "r_balance": r_balance,
            "halves_closed_form_r": rho, "halves_balance_r": corr(ba[sel], bb[sel]),
            "balance_vs_other_half_closed_form_r": x, "closed_form_attainable_r": attainable,
            "balance_estimated_r": balance_est, "pick": pick, "departure": departure,
            "shared_departure_over_mean": over_mean,
            "better": "closed_form" if r_closed > r_balance else "balance", **pattern,
            **fit_figures(fields, halves, cfg, limit)}


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    add_case_options(ap)
    ap.add_argument("--cli-cache", default=str(Path(tempfile.gettempdir()) / "chromarate-cli-seeds"))
    ap.add_argument("--limit", type=float, default=None,
                    help="fit.prior.shared_departure_limit of the fit's pick (default: the config's)")
    args = ap.parse_args(argv)
    rows = []
    for name in args.cases:
        row = run_case(name, args.cache, args.cli_cache, quick=args.quick, limit=args.limit)
        rows.append(row)
        print(f"{name:28s} truth: closed form {row['r_closed_form']:.3f}, balance "
              f"{row['r_balance']:.3f} | halves' closed forms {row['halves_closed_form_r']:.3f}, "
              f"balance x other half {row['balance_vs_other_half_closed_form_r']:.3f} | "
              f"estimated {row['closed_form_attainable_r']:.3f} / {row['balance_estimated_r']:.3f}"
              f" -> {row['pick']} (better: {row['better']}) | departure {row['departure']:.2f}, "
              f"shared departure / mean {row['shared_departure_over_mean']:.3f} | the fit's "
              f"{_fmt(row['fit_departure'])} / {_fmt(row['fit_shared_departure'])}: "
              f"{row['fit_prior_ratio_only']} -> {row['fit_prior']}", flush=True)
    right = sum(r["pick"] == r["better"] for r in rows)
    print(f"the cross-validated pick is the better estimator on {right} of {len(rows)}")
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
