"""Does the fine-window rule want the misfit at the noise rule's radius?

The window rule of ``fit/regularise.py`` narrows the test window from 0.15 to 0.1 um for
the cleanest fields (J at most ``J_FINE`` = 0.005, widening back at ``J_FINE_END`` = 0.02).
Those thresholds were set on J measured at the noise rule's kernel radius; since the radius
search, J is read at the searched radius (8 px on fields cases), where the same 1 % noise
reads 0.011-0.066, so the 1 % fields cases get 0.127-0.15 um windows. This script fits
each case twice: with the default rule, and with the window read from J at the noise rule's
radius (``misfit_at_upper_radius`` of the regularisation record), everything else as
chosen. It prints r, r against the resolvable part, the bias of the mean, the interval's
coverage, the closed form's r and the window of each arm.

    python experiments/fine_window_upper.py domains-box-n1@10000 step-box-n1@101 \\
        --json experiments/results/fine_window_upper_dev.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import set_threads, write_json  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "chromarate-validation"


def upper_window_rule(original):
    """``choose_regularisation`` with the fine window read from J at the upper radius."""
    from chromarate.fit import regularise as reg

    def choose(fields, config):
        chosen, record = original(fields, config)
        ju = record.get("misfit_at_upper_radius")
        if record.get("criterion") != "steadiness" or ju is None:
            return chosen, record
        floor = float(record.get("strength_floor", 0.0))
        if not (floor <= reg.prior_strength(record["misfit"]) and ju < reg.J_FINE_END):
            return chosen, record
        u = reg._log_position(float(ju), reg.J_FINE, reg.J_FINE_END)
        window = float(round((1 - u) * reg.FINE_WINDOW_UM + u * reg.WEAK[1], 4))
        fourier = reg.rate_fourier_scale(chosen.prior.model_copy(
            update={"test_window_um": window, "rate_fourier_scale_per_um": None}))
        chosen = chosen.model_copy(update={"prior": chosen.prior.model_copy(
            update={"test_window_um": window, "rate_fourier_scale_per_um": fourier})})
        return chosen, {**record, "test_window_um": window, "rate_fourier_scale_per_um": fourier,
                        "window_from": "upper radius"}

    return choose


def run(name: str, variant: bool) -> dict:
    from chromarate.fit import loop
    from chromarate.validation.run import run_case
    from chromarate.validation.suite import suite

    base, seed = name.rsplit("@", 1)
    case = {c.name: c for c in suite([int(seed)])}[name]
    t0 = time.perf_counter()
    if variant:
        with mock.patch.object(loop, "choose_regularisation",
                               upper_window_rule(loop.choose_regularisation)):
            row = run_case(case, cache_dir=CACHE, baseline=True).row()
    else:
        row = run_case(case, cache_dir=CACHE, baseline=True).row()
    reg = row.get("regularisation") or {}
    return {"case": name, "arm": "upper" if variant else "default", "r": row["r"],
            "r_resolvable": row.get("r_resolvable"), "bias": row["bias"],
            "coverage90": row["coverage90"], "baseline_r": row["baseline_r"],
            "status": row["status"], "window": reg.get("test_window_um"),
            "misfit": reg.get("misfit"), "misfit_upper": reg.get("misfit_at_upper_radius"),
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="+", help="NAME@SEED")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    rows = []
    print(f"{'case':34s} {'arm':8s} {'window':>6s} {'J':>7s} {'J_up':>7s} {'r':>6s} "
          f"{'r_res':>6s} {'CF r':>6s} {'bias':>7s} {'cov':>5s} status")
    for name in args.cases:
        for variant in (False, True):
            row = run(name, variant)
            rows.append(row)
            print(f"{name:34s} {row['arm']:8s} {row['window'] or float('nan'):6.3f} "
                  f"{row['misfit'] or float('nan'):7.4f} {row['misfit_upper'] or float('nan'):7.4f} "
                  f"{row['r']:6.3f} {row['r_resolvable']:6.3f} {row['baseline_r']:6.3f} "
                  f"{100 * row['bias']:+6.1f}% {row['coverage90']:5.2f} {row['status']}", flush=True)
            if args.json:
                write_json(args.json, rows)


if __name__ == "__main__":
    main()
