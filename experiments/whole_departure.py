"""Does the whole data's departure from the balance see what the halves' covariance misses?

The ``auto`` rate prior reads the closed form's departure from the balance estimate in the
part two halves of the localizations share: ``cov(D_a, D_b)`` with ``D = closed - balance``
in each half (:func:`chromarate.fit.prior.departure_ratio`). On some rendered box nuclei
with domains that figure is 0 while the whole data's closed form follows the truth far
better than the balance (``domains-box-loc1M@9700``: closed form r 0.661, the fit held to
the balance 0.249): each half's closed form, from half the localizations, is so noisy
that its share of the signal is lost. This study reads a second estimate of the same
shared part from the whole data: ``var(D_w) - var(D_a - D_b) / 4`` (the whole's
departure less its noise variance, which is a quarter of the halves' difference's when
each half carries twice the whole's noise variance). For a linear estimator the two
estimates agree in expectation; the closed form is not linear, so they may not.

For each nucleus (``seedN`` as in ``experiments/cli_seeds.py``, or ``NAME@SEED`` of the
suite) it prepares the default pipeline up to the rate prior's choice (no fit), and prints
the recorded figure, the whole-data figure, the prior chosen, and the correlation with the
truth of the whole data's balance estimate and closed form over the pixels compared.
Usage::

    python experiments/whole_departure.py domains-box-loc1M@9700 seed5 \\
        --json experiments/results/whole_departure.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, add_threads_option, corr, localization_case,  # noqa: E402
                      parser, set_threads, write_json)


class _Stop(BaseException):
    """Raised once the prior's figures are read, so that no fit runs."""


def _figures(whole_b, whole_c, balances, closeds, where) -> dict:
    """The recorded and the whole-data figures over ``where`` (module docstring)."""
    sel = np.asarray(where, bool)
    for m in (whole_b, whole_c, *balances, *closeds):
        sel &= np.isfinite(m)
    d_a, d_b = (closeds[0] - balances[0])[sel], (closeds[1] - balances[1])[sel]
    d_w = (whole_c - whole_b)[sel]
    b_a, b_b = balances[0][sel], balances[1][sel]
    cov_b = float(np.cov(b_a, b_b)[0, 1])
    shared = float(np.cov(d_a, d_b)[0, 1])
    noise = float(np.var(d_a - d_b)) / 4.0
    whole = float(np.var(d_w)) - noise
    mean_b = float(np.mean(0.5 * (b_a + b_b)))
    c_a, c_b = closeds[0][sel], closeds[1][sel]
    rho = float(np.corrcoef(c_a, c_b)[0, 1])
    cross = 0.5 * (float(np.corrcoef(b_a, c_b)[0, 1]) + float(np.corrcoef(b_b, c_a)[0, 1]))
    est_c = float(np.sqrt(2.0 * max(rho, 0.0) / (1.0 + max(rho, 0.0))))
    est_b = float(cross / np.sqrt(rho)) if rho > 0 else float("nan")
    return {"pixels": int(sel.sum()), "cov_balance": cov_b, "shared_cov": shared,
            "whole_var": float(np.var(d_w)), "noise_var": noise, "whole_signal": whole,
            "ratio_halves": float(np.sqrt(max(shared, 0.0) / cov_b)) if cov_b > 0 else float("nan"),
            "ratio_whole": float(np.sqrt(max(whole, 0.0) / cov_b)) if cov_b > 0 else float("nan"),
            "shared_halves": float(np.sqrt(max(shared, 0.0)) / mean_b),
            "shared_whole": float(np.sqrt(max(whole, 0.0)) / mean_b),
            "snr_whole": float(np.var(d_w) / noise) if noise > 0 else float("nan"),
            "closed_halves_r": rho, "balance_cross_r": cross, "est_r_closed": est_c,
            "est_r_balance": est_b}


def run_case(name: str, cache: str, cli_cache: Path, quick: bool, whole_scale: bool = False) -> dict:
    """Prepare one nucleus up to the prior's choice and read its figures (with
    ``whole_scale``, the halves mapped at the whole nucleus' calibrated scale)."""
    from chromarate import pipeline as pl
    from chromarate.analysis.compare import resample_to_grid
    from chromarate.fit import chromatin_problem as cp
    from chromarate.fit.prior import balance_rate
    from chromarate.pipeline import Pipeline

    locs, cfg, target, t_pixel, t_origin = localization_case(name, cache, cli_cache, quick)
    seen: dict = {}
    original = cp._half_departure

    def patched(halves, reported, config, radius_px, balance_sigma_px):
        figures = original(halves, reported, config, radius_px, balance_sigma_px)
        caller = sys._getframe(1).f_locals
        prob, closed = caller["self"], caller["closed"]
        fields = caller["fields"]
        mask = np.asarray(fields.mask, bool)
        whole_b = balance_rate(fields.phi_h, fields.phi_e, mask, balance_sigma_px)
        balances, closeds, where = [], [], np.asarray(reported, bool)
        for half in halves or ():
            c, rep = cp.closed_form_prior(half, config, radius_px)
            balances.append(balance_rate(half.phi_h, half.phi_e, np.asarray(half.mask, bool),
                                         balance_sigma_px))
            closeds.append(c)
            where = where & rep
        true = resample_to_grid(target, src_pixel_nm=t_pixel, src_origin_nm=t_origin,
                                shape=mask.shape, pixel_nm=fields.pixel_size_nm,
                                origin_nm=fields.origin_nm)
        sel = where & np.asarray(prob.rate_trusted_np, bool)
        scales = [float((f.meta.get("calibration") or {}).get("scale", np.nan))
                  for f in (fields, *(halves or ()))]
        seen.update(recorded=figures, pixels_nucleus=int(mask.sum()), scales=scales,
                    r_balance=corr(np.where(sel, whole_b, np.nan), true),
                    r_closed=corr(np.where(sel, closed, np.nan), true))
        if len(balances) == 2:
            seen.update(_figures(whole_b, closed, balances, closeds, sel))
        raise _Stop

    cp._half_departure = patched
    own_scale = pl.halves_scale
    if whole_scale:
        pl.halves_scale = lambda f: float((f.meta.get("calibration") or {})["scale"])
    try:
        for _ in Pipeline(cfg).run(locs):
            pass
    except _Stop:
        pass
    finally:
        cp._half_departure = original
        pl.halves_scale = own_scale
    row = {"case": name, **seen}
    if not seen:
        print(f"{name:28s} the auto rule did not read the halves here (no halves, an "
              "uncalibrated scale, or no closed form): nothing to compare", flush=True)
        return row
    rec = seen.get("recorded") or (None, None)
    print(f"{name:28s} recorded {_f(rec[0])} / {_f(rec[1], 3)}  halves {_f(seen.get('ratio_halves'))}"
          f" / {_f(seen.get('shared_halves'), 3)}  whole {_f(seen.get('ratio_whole'))} / "
          f"{_f(seen.get('shared_whole'), 3)}  snr {_f(seen.get('snr_whole'))}  "
          f"r balance {_f(seen.get('r_balance'), 3)}  r closed {_f(seen.get('r_closed'), 3)}  "
          f"est balance {_f(seen.get('est_r_balance'), 3)}  est closed {_f(seen.get('est_r_closed'), 3)}"
          f" (halves {_f(seen.get('closed_halves_r'), 3)}, cross {_f(seen.get('balance_cross_r'), 3)})"
          f"  scales {' '.join(_f(x, 3) for x in seen.get('scales', ()))}",
          flush=True)
    return row


def _f(x, digits: int = 2) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    add_case_options(ap)
    ap.add_argument("--cli-cache", type=Path, default=Path(tempfile.gettempdir()) / "chromarate-cli-seeds",
                    help="cache of the seedN nuclei")
    ap.add_argument("--whole-scale", action="store_true",
                    help="map the halves at the whole nucleus' calibrated scale")
    add_threads_option(ap, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    rows = [run_case(name, args.cache, args.cli_cache, args.quick, args.whole_scale)
            for name in args.cases]
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
