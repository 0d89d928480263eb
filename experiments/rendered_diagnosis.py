"""Where a rendered validation nucleus loses its rate map: noise, the mapping, or the region.

For localization cases of the validation suite (named ``NAME@SEED``) this runs the shared
pipeline stages (render, denoise, segmentation) and compares the denoised density of the
largest nucleus with the true chromatin density ``phi_h + phi_e0`` blurred by the map's
recorded blur: a least-squares line ``observed = gain * truth + offset`` over the nucleus
eroded by 150 nm, its offset relative to the euchromatin level, the scatter about it
relative to the signal, and how far the means of ten quantile bins of the truth lie from
the line (in units of the truth, phi). It then scores the windowed closed form (default settings, the
regularisation chosen from the data) on phase fields made four ways:

- ``calibrated``: the pipeline's own (percentile baseline times the calibrated scale);
- ``oracle affine``: the observed density mapped with the true gain and offset;
- ``truth, calibrated``: the blurred true density with no noise, calibrated as usual;
- ``truth, exact``: the blurred true density mapped with the true scale;
- ``truth, unblurred``: the true density itself (no blur, none corrected), the true scale.

and prints the share of the nucleus the rate is reported on. A case named ``seedN`` is the
nucleus of ``chromarate simulate --seed N`` with the default pipeline (simulated through
``experiments/cli_seeds.py``'s cache, ``--cli-cache``), ``seedN-nM`` the same nucleus drawn
with M localizations. ``--scales K ...`` adds the closed form at fixed density scales (the
multiplier of the baseline percentile, no calibration) on the observed density and on the
blurred true density. Usage::

    python experiments/rendered_diagnosis.py hetero-irr-env-loc250k@303 seed5 --json out.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, largest_nucleus, seed_name, simulated_case,  # noqa: E402
                      parser, write_json)


def _fields(rho: np.ndarray, mask: np.ndarray, like, phi_e0: float, phi_max: float,
            blur_nm: float | None = None):
    """Phase fields for a density already in units of the chromatin fraction (with the
    blur of ``like``, or ``blur_nm`` where given)."""
    from chromarate._types import PhaseFields

    ph = np.zeros_like(rho, dtype=np.float64)
    ph[mask] = np.clip(rho[mask] - phi_e0, 0.0, phi_max)
    meta = {k: v for k, v in like.meta.items() if k != "calibration"}
    if blur_nm is not None:
        meta["blur_nm"] = float(blur_nm)
    return PhaseFields(phi_w=1.0 - ph - phi_e0, phi_d=ph - phi_e0, mask=mask,
                       pixel_size_nm=like.pixel_size_nm, origin_nm=like.origin_nm, meta=meta)


def _seed_case(name: str, cli_cache: str):
    """(truth and localizations, default config) of ``seedN``: ``chromarate simulate
    --seed N`` scored as the suite scores a case (the truth's grid, mask and rate)."""
    from types import SimpleNamespace

    import cli_seeds
    from chromarate.config import PipelineConfig

    seed, count = seed_name(name)
    locs, t = cli_seeds._simulate(seed, Path(cli_cache), count)
    syn = SimpleNamespace(
        localizations=locs, rate=np.asarray(t["rate"], float), phi_d=np.asarray(t["phi_d"], float),
        mask=np.asarray(t["mask"], bool), pixel_size_nm=float(t["pixel_size_nm"]),
        origin_nm=tuple(t["origin_nm"]), case=SimpleNamespace(family="simulate"))
    return syn, PipelineConfig()


def diagnose(name: str, cache: str, *, quick: bool = False, cli_cache: str | None = None,
             scales=()) -> dict:
    """The figures of one ``NAME@SEED`` case or ``seedN`` nucleus (see the module
    docstring); ``quick``: the suite's small version of the case (a smoke test)."""
    from dataclasses import replace

    from scipy import ndimage as ndi

    from chromarate.analysis.compare import resample_to_grid
    from chromarate.fit.direct import invert_direct
    from chromarate.phase import phase_fields
    from chromarate.calibrated_phase import calibrated_phase_fields
    from chromarate.pipeline import phase_density
    from chromarate.validation.cases import PHI_E0
    from chromarate.validation.run import score_fit, target_rate

    if name.startswith("seed"):
        syn, cfg = _seed_case(name, cli_cache or str(Path(cache).parent / "chromarate-cli-seeds"))
    else:
        _, syn, cfg = simulated_case(name, cache, quick=quick)
    phi_max = cfg.fit.physics.phi_max
    task = largest_nucleus(syn.localizations, cfg)
    den, mask = phase_density(task), task.mask  # less the background, as the pipeline maps it
    p = den.pixel_size_nm
    true_density = np.where(syn.mask, np.clip(syn.phi_d + PHI_E0, 0.0, None) + PHI_E0, 0.0)
    on_grid = resample_to_grid(true_density, src_pixel_nm=syn.pixel_size_nm,
                               src_origin_nm=syn.origin_nm, shape=den.data.shape, pixel_nm=p,
                               origin_nm=den.origin_nm)
    blur_nm = float(den.meta.get("blur_nm", 0.0))
    truth = ndi.gaussian_filter(np.nan_to_num(on_grid), blur_nm / p)
    inner = ndi.binary_erosion(mask, iterations=max(1, int(round(150.0 / p))))
    x, y = truth[inner], np.asarray(den.data, float)[inner]
    (gain, offset), *_ = np.linalg.lstsq(np.c_[x, np.ones_like(x)], y, rcond=None)
    scatter = float(np.std(y - (gain * x + offset)) / np.std(gain * x))
    # how straight the relation is: means of the observed density in ten quantile bins of
    # the truth, their largest distance from the line, in units of the truth (phi)
    edges = np.quantile(x, np.linspace(0.0, 1.0, 11))
    bins = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 9)
    binned = [(x[bins == b].mean(), y[bins == b].mean()) for b in range(10) if np.any(bins == b)]
    line_dev = max(abs(my - (gain * mx + offset)) / gain for mx, my in binned)
    target, _ = target_rate(syn)
    calibrated = calibrated_phase_fields(den, mask, cfg)
    direct = cfg.fit.model_copy(update={"method": "direct"})

    def closed_form(fields) -> dict:
        fit = invert_direct(fields, direct)
        s = score_fit(fit, fields, syn, target)
        return {"r": s.pearson_r, "bias": s.bias,
                "window_um": fit.meta["regularisation"].get("test_window_um"),
                "reported_fraction": float(np.sum(fit.trusted)) / float(np.sum(mask))}

    observed = np.asarray(den.data, float)
    truth_map = replace(den, data=truth.astype(np.float32))
    out = {
        "case": name, "pixel_nm": p, "blur_nm": blur_nm, "gain": float(gain),
        "offset_over_euchromatin": float(offset / (gain * PHI_E0)),
        "scatter_over_signal": scatter, "binned_line_deviation_phi": float(line_dev),
        "calibration_scale": calibrated.meta["calibration"]["scale"],
        "calibrated": closed_form(calibrated),
        "oracle_affine": closed_form(_fields((observed - offset) / gain, mask, calibrated,
                                             PHI_E0, phi_max)),
        "truth_calibrated": closed_form(calibrated_phase_fields(truth_map, mask, cfg)),
        "truth_exact": closed_form(_fields(truth, mask, calibrated, PHI_E0, phi_max)),
        "truth_unblurred": closed_form(_fields(np.nan_to_num(on_grid), mask, calibrated, PHI_E0,
                                               phi_max, blur_nm=0.0)),
    }
    for k in scales:  # fixed density scales, observed and noise-free
        fixed = cfg.phase.model_copy(update={"calibration": "none", "baseline_scale": float(k)})
        row = {"scale": float(k)}
        for key, dmap, like in (("observed", den, calibrated),
                                ("truth_blurred", truth_map, calibrated)):
            f = phase_fields(dmap, mask, fixed, phi_max=phi_max)
            f = replace(f, meta={**{a: b for a, b in like.meta.items() if a != "calibration"},
                                 **{a: b for a, b in f.meta.items() if a != "calibration"}})
            row[key] = closed_form(f)
        out.setdefault("fixed_scales", []).append(row)
    rel = 100 * out["offset_over_euchromatin"]
    print(f"{name}: observed = {gain:.2f} truth + {offset:.2f} (offset {rel:+.1f} % "
          f"of euchromatin), scatter / signal {scatter:.3f}, binned means off the line by at most "
          f"{line_dev:.4f} phi, calibrated scale {out['calibration_scale']}")
    for key in ("calibrated", "oracle_affine", "truth_calibrated", "truth_exact", "truth_unblurred"):
        v = out[key]
        print(f"   {key:17s} r {v['r']:.3f}  bias {100 * v['bias']:+.1f} %  window {v['window_um']} um  "
              f"reported on {100 * v['reported_fraction']:.0f} % of the nucleus")
    for row in out.get("fixed_scales", []):
        print(f"   scale {row['scale']:<5g} observed r {row['observed']['r']:.3f} "
              f"(bias {100 * row['observed']['bias']:+.1f} %), blurred truth r "
              f"{row['truth_blurred']['r']:.3f} (bias {100 * row['truth_blurred']['bias']:+.1f} %)")
    return out


def main() -> None:
    ap = parser(__doc__)
    add_case_options(ap)
    ap.add_argument("--cli-cache", default=None,
                    help="cache of the seedN nuclei (default: chromarate-cli-seeds beside --cache)")
    ap.add_argument("--scales", type=float, nargs="+", default=[], metavar="K",
                    help="also the closed form at these fixed density scales")
    args = ap.parse_args()
    rows = [diagnose(name, args.cache, quick=args.quick, cli_cache=args.cli_cache,
                     scales=args.scales) for name in args.cases]
    if args.json:
        write_json(args.json, rows, indent=1)

if __name__ == "__main__":
    main()
