"""Does the noise of the density pull the density-scale calibration, and can the halves undo it?

The physics calibration (:func:`chromarate.fit.calibrate.calibrate_scale`) picks the
multiplier ``k`` of the euchromatin baseline that makes the phase fields the steadiest state
of the model, and ``k`` sets the absolute rate (one to a few per cent of mean rate per per
cent of ``k``). If
the noise of the denoised density biased ``k`` by an amount proportional to its variance, a
map with twice the variance would move ``k`` by that bias again, and ``2 k - k_noisier``
would undo it (a bootstrap, or jackknife, bias correction).

Two independent halves of the localizations (blocks of frames,
:func:`chromarate.split_half.half_density_maps`) give such maps: the halves sum to the
whole, so the whole plus the halves' difference, ``(a + b) + (a - b) = 2 a``, is the whole's
signal with twice its noise variance, blinking and background included, and the
calibration, which is free of the density's units, reads it as the half ``a``. For each case
(``seedN``: ``chromarate simulate --seed N`` through ``experiments/cli_seeds.py``'s cache;
``NAME@SEED``: a localization case of the suite) this calibrates the nucleus' density as the
pipeline does (``k0``) and each half of ``--splits`` random splits (its share of the
background subtracted; ``k_halves``, with ``halves_interior``: whether each half's misfit
has its minimum inside the admissible scan, which the clipping bound ``MAX_CLIPPED`` can
cut short, so that the scale sits on the bound's grid point). It scores the bias of the
mean of the balance estimate
(0.55 domain spacings, the fit's prior; its mean follows the fit's) over the nucleus eroded
by 0.3 um against the truth at ``k0`` and at ``2 k0 - mean(k_halves)``. With ``--clips``
it also calibrates with ``phi_h`` clipped at each given upper value instead of the model's
``phi_max`` while the scale is chosen (the fields are then mapped at that scale as usual),
to see how much the clipping of noisy heterochromatin pixels sets the scale
(``by_clip``: the scale and the bias of the balance estimate mapped as usual, and
``bias_clipped_alike`` with the balance's fields clipped at the same value). With
``--censored`` it also calibrates with the pixels clipped at ``phi_max`` left out of the
misfit (``phase.calibration: physics_censored``; ``k_censored``, ``bias_censored``, and
each half's ``k_halves_censored``), so one run compares the two. Prints one line per
case. Usage::

    python experiments/calibration_noise.py seed0 seed4 domains-box-loc1M@404 --splits 3 \\
        --json experiments/results/calibration_noise.json
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, largest_nucleus, localization_case, parser,  # noqa: E402
                      write_json)


def run_case(name: str, cache: str, cli_cache, splits: int = 3, quick: bool = False,
             clips=(), censored: bool = False) -> dict:
    """Calibrate one case's largest nucleus as it is and per half (and, for each of
    ``clips``, with that upper clip of ``phi_h`` while the scale is chosen)."""
    from scipy import ndimage as ndi

    from chromarate.analysis.compare import resample_to_grid
    from chromarate.fit.calibrate import calibrate_scale
    from chromarate.fit.prior import balance_rate, domain_spacing_um
    from chromarate.phase import phase_fields
    from chromarate.calibrated_phase import calibrated_phase_fields
    from chromarate.pipeline import _level, phase_density
    from chromarate.split_half import half_density_maps

    t0 = time.perf_counter()
    locs, cfg, rate, truth_px, truth_origin = localization_case(name, cache, cli_cache, quick=quick)
    task = largest_nucleus(locs, cfg)
    density = phase_density(task)

    def calibration(d, config=cfg):
        return calibrated_phase_fields(d, task.mask, config).meta["calibration"]

    cens_cfg = cfg.model_copy(update={"phase": cfg.phase.model_copy(update={
        "calibration": "physics_censored"})})

    fields = calibrated_phase_fields(density, task.mask, cfg)
    first = fields.meta["calibration"]
    k0 = float(first["scale"])
    mask = np.asarray(fields.mask, dtype=bool)
    px = fields.pixel_size_nm / 1000.0
    true = resample_to_grid(rate, src_pixel_nm=truth_px, src_origin_nm=truth_origin,
                            shape=mask.shape, pixel_nm=fields.pixel_size_nm,
                            origin_nm=fields.origin_nm)
    sel = ndi.binary_erosion(mask, iterations=int(round(0.3 / px))) & np.isfinite(true)
    spacing = domain_spacing_um(fields.phi_h, mask, px)

    def fields_at(k: float, phi_max: float | None = None):
        """The fields at scale ``k``, ``phi_h`` clipped at ``phi_max`` (default: the model's)."""
        update = {"baseline_scale": k * cfg.phase.baseline_scale}
        return phase_fields(density, task.mask, cfg.phase.model_copy(update=update),
                            phi_max=cfg.fit.physics.phi_max if phi_max is None else phi_max)

    def bias_at(k: float, phi_max: float | None = None) -> float:
        f = fields_at(k, phi_max)
        b = balance_rate(f.phi_h, f.phi_e, mask, 0.55 * spacing / px)
        return float(b[sel].mean() / true[sel].mean() - 1.0)

    halves_k, interior, halves_k_cens = [], [], []
    for seed in range(splits):
        # the raw table: the default pipeline's filters keep every simulated localization
        halves = half_density_maps(locs, task.denoised, cfg, seed=seed)
        if halves is None:
            break
        level = _level(task) / 2.0
        for h in halves:
            half = replace(h, data=h.data - level)
            cal = calibration(half)
            halves_k.append(float(cal["scale"]))
            interior.append(bool(cal.get("interior_minimum")))
            if censored:
                halves_k_cens.append(float(calibration(half, cens_cfg)["scale"]))
    row = {"case": name, "calibrated": first.get("method") == "physics" and not first.get("skipped"),
           "interior_minimum": bool(first.get("interior_minimum")), "k0": k0,
           "k_halves": halves_k, "halves_interior": interior, "bias_k0": bias_at(k0),
           "seconds": 0.0}
    if censored:  # the pixels clipped at phi_max left out of the misfit
        k_cens = float(calibration(density, cens_cfg)["scale"])
        row.update(k_censored=k_cens, bias_censored=bias_at(k_cens),
                   k_halves_censored=halves_k_cens)
    row["by_clip"] = {}
    for clip in clips:
        k = float(calibrate_scale(lambda k, c=float(clip): fields_at(k, c), cfg.fit).scale)
        row["by_clip"][str(clip)] = {"k": k, "bias": bias_at(k),
                                     "bias_clipped_alike": bias_at(k, float(clip))}
    if halves_k:
        k_corr = 2.0 * k0 - float(np.mean(halves_k))
        row.update(k_corrected=k_corr, bias_k_corrected=bias_at(k_corr))
    row["seconds"] = time.perf_counter() - t0
    return row


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    add_case_options(ap)
    ap.add_argument("--splits", type=int, default=3, help="random splits into halves")
    ap.add_argument("--clips", type=float, nargs="+", default=[], metavar="PHI",
                    help="also calibrate with phi_h clipped at these upper values")
    ap.add_argument("--censored", action="store_true",
                    help="also calibrate leaving the pixels clipped at phi_max out of the misfit")
    ap.add_argument("--cli-cache", default=str(Path(tempfile.gettempdir()) / "chromarate-cli-seeds"))
    args = ap.parse_args(argv)
    rows = []
    for name in args.cases:
        row = run_case(name, args.cache, args.cli_cache, args.splits, quick=args.quick,
                       clips=args.clips, censored=args.censored)
        rows.append(row)
        hk = np.array(row["k_halves"])
        line = (f"{name:28s} k0 {row['k0']:.3f}  halves {hk.mean():.3f} +- {hk.std():.3f}  "
                f"bias {row['bias_k0']:+.1%}" if hk.size else
                f"{name:28s} k0 {row['k0']:.3f}  (no split)  bias {row['bias_k0']:+.1%}")
        if "k_corrected" in row:
            line += f" -> {row['bias_k_corrected']:+.1%} at 2 k0 - k_halves = {row['k_corrected']:.3f}"
            pinned = row["halves_interior"].count(False)
            line += f"  ({pinned} of {len(hk)} halves at the end of the scan)" if pinned else ""
        if "k_censored" in row:
            line += (f"; clipped pixels censored: k {row['k_censored']:.3f}, "
                     f"bias {row['bias_censored']:+.1%}")
            if row["k_halves_censored"]:
                line += f", halves {np.mean(row['k_halves_censored']):.3f}"
        for clip, c in row["by_clip"].items():
            line += (f"; clipped at {float(clip):g} while choosing: k {c['k']:.3f}, bias {c['bias']:+.1%}"
                     f" (clipped alike in the balance too: {c['bias_clipped_alike']:+.1%})")
        print(line + ("" if row["calibrated"] else "  (not calibrated)") + f"  [{row['seconds']:.0f} s]",
              flush=True)
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
