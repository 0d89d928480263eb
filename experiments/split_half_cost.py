"""What the quality gate's split-half check costs per nucleus, against the rest of it.

For localization cases of the validation suite (``NAME@SEED``) this runs the pipeline on
the case's localizations and times, in the same process and run, the parts of one nucleus'
work: the split of the acquisition into two frame-block halves, the rendering and
denoising of both halves on the nucleus' crop, the two calibrations and closed forms of
the check (the quality report with the halves minus the report without them), and the
whole of the nucleus' fit, quality and export (``Pipeline.iter_nucleus``). The ratio of
the check to the nucleus' work is the figure to read (it holds on a noisy machine; the
seconds do not). Usage::

    python experiments/split_half_cost.py hetero-irr-env-loc250k@101 domains-box-loc1M@101
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, largest_task, simulated_case, parser, set_threads,  # noqa: E402
                      write_json)


def _best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def measure(name: str, cache: str, *, quick: bool = False, repeats: int = 3) -> dict:
    """Seconds of each part of one nucleus' work for a ``NAME@SEED`` case (the largest
    nucleus), and the check's share of the nucleus' work."""
    from chromarate.pipeline import NucleusResult, NucleusTask, Pipeline, fields_quality
    from chromarate.split_half import half_density_maps, half_labels

    case, syn, cfg = simulated_case(name, cache, quick=quick)
    pipe = Pipeline(cfg)
    locs = syn.localizations
    prepare_s, tasks = _best_of(
        lambda: [t for t in pipe.iter_prepare(locs) if isinstance(t, NucleusTask)], 1)
    task = largest_task(tasks)
    split_s, side = _best_of(lambda: half_labels(locs), repeats)
    halves_s, halves = _best_of(lambda: half_density_maps(locs, task.denoised, cfg, side=side),
                                repeats)
    nucleus_s, events = _best_of(lambda: list(pipe.iter_nucleus(task)), 1)
    (res,) = [e for e in events if isinstance(e, NucleusResult)]
    level = task.background.level if task.background is not None else 0.0
    with_s, q = _best_of(lambda: fields_quality(res.fields, res.fit, cfg, halves=halves,
                                                background=level), repeats)
    without_s, _ = _best_of(lambda: fields_quality(res.fields, res.fit, cfg), repeats)
    closed_s = max(with_s - without_s, 0.0)
    check_s = split_s + halves_s + closed_s
    out = {
        "case": name, "n_localizations": int(len(locs.table)), "nucleus_px": int(task.mask.sum()),
        "crop_px": list(task.denoised.data.shape), "prepare_s": prepare_s, "split_s": split_s,
        "halves_render_denoise_s": halves_s, "halves_closed_forms_s": closed_s,
        "check_s": check_s, "nucleus_s": nucleus_s, "check_over_nucleus": check_s / nucleus_s,
        "split_half_r": q.metrics.get("split_half_r"),
    }
    print(f"{name}: {out['n_localizations']} localizations, crop {out['crop_px']} px; split "
          f"{split_s:.3f} s, halves rendered+denoised {halves_s:.3f} s, their closed forms "
          f"{closed_s:.2f} s: check {check_s:.2f} s against {nucleus_s:.1f} s of the nucleus' "
          f"fit+quality+export ({100 * check_s / nucleus_s:.0f} %; prepare of the whole "
          f"acquisition {prepare_s:.2f} s)")
    return out


def main() -> None:
    ap = parser(__doc__)
    add_case_options(ap)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many for the check's parts")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    args = ap.parse_args()
    set_threads(args.threads)
    rows = [measure(name, args.cache, quick=args.quick, repeats=args.repeats) for name in args.cases]
    if args.json:
        write_json(args.json, rows, indent=1)

if __name__ == "__main__":
    main()
