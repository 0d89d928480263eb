"""Does the pixel noise bias the double well, and does correcting it help the rate map?

The residual applies the double well's derivative ``f'(phi_h)`` (a cubic) pointwise to the
denoised fields before the mollifier. With zero-mean noise ``n`` of variance ``s2`` in
``phi_h``, ``E[f'(phi_h + n)] = f'(phi_h) + (s2 / 2) f'''(phi_h)`` exactly (for a cubic and
symmetric noise), a bias that follows the density (Poisson noise grows with the counts)
and so the chromatin pattern. On a ``chromarate simulate --seed N`` nucleus (``seedN``,
through ``experiments/cli_seeds.py``'s cache) or a localization case of the validation
suite (``NAME@SEED``) this script maps the density as the default pipeline does and fits
it (windowed closed form, and with ``--pinn`` the default PINN) with the bias subtracted
from ``f'`` in several ways, scoring each map against the truth (r and the bias of the
mean over the fit's trusted pixels):

- ``plain``: no noise correction (the default pipeline's fields and fit);
- ``halves-local``: ``s2`` measured from the two halves of the localizations (the local
  mean of ``(phi_a - phi_b)^2 / 4`` over a 3 px Gaussian), ``f' - s2/2 f'''``;
- ``poisson``: ``s2 = c rho`` with the density ``rho`` smoothed by 2 px and one constant
  ``c`` fitted to the halves' squared difference (Poisson noise), ``f' - s2/2 f'''``;
- ``exact``: the expectation of ``f'`` over Gaussian noise of that ``s2`` *with the phase
  mapping's clipping to [0, phi_max]*, at the fields smoothed by 1.5 px (Gauss-Hermite,
  24 nodes), subtracted less ``f'`` of the smoothed fields;
- ``unclipped`` and ``unclipped-poisson``: the same density mapped by the calibrated line
  without clipping ``phi_h`` to [0, phi_max], without and with the ``poisson`` correction;
- ``poisson-recalibrated``: the ``poisson`` correction with the density scale calibrated
  again under it (``s2`` follows each trial scale: ``a^2 c' rho`` with ``a`` the line of the
  fields being judged and ``c'`` the halves' squared difference per count).

The correction rides on the fit's observation-blur term (``chromarate.fit.blur``), which is
patched for the run; the density-scale calibration is the pipeline's (not redone under the
corrected model). Usage::

    python experiments/noise_bias.py seed4 seed5 seed0 seed2 --pinn --json out.json
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, add_threads_option, largest_nucleus,  # noqa: E402
                      localization_case, parser, set_threads, write_json)

VARIANTS = ("plain", "halves-local", "poisson", "exact", "unclipped", "unclipped-poisson",
            "poisson-recalibrated")
#: Gauss-Hermite nodes of the ``exact`` variant.
GH_NODES = 24


def _local_mean(x: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """:func:`chromarate.fit.uncertainty.local_mean` inside ``mask``, 0 outside."""
    from chromarate.fit.uncertainty import local_mean

    return np.where(mask, np.nan_to_num(local_mean(x, mask, sigma_px)), 0.0)


def _line(rho: np.ndarray, phi_h: np.ndarray, mask: np.ndarray, phi_max: float) -> tuple[float, float]:
    """The line ``phi_h = a rho + b`` of a phase mapping, from the pixels its clipping left alone."""
    inner = mask & (phi_h > 0.02) & (phi_h < 0.95 * phi_max)
    a, b = np.polyfit(rho[inner], phi_h[inner], 1)
    return float(a), float(b)


def _corrections(variant: str, s2, mask: np.ndarray):
    """A replacement of :func:`chromarate.fit.blur.blur_correction` that also subtracts the
    noise bias of ``f'`` for ``variant`` (``s2``: the noise variance map of phi_h, or a
    function of phi_h and phi_max giving it)."""
    from chromarate.fit import blur
    from chromarate.fit.physics import f_prime, f_third

    z, w = np.polynomial.hermite_e.hermegauss(GH_NODES)
    w = w / w.sum()
    original = blur.blur_correction

    def corrected(phi_d, phi_w, conv, blur_um, phi_max):
        c = original(phi_d, phi_w, conv, blur_um, phi_max)
        phi_h = 0.5 * (1.0 - np.asarray(phi_w, np.float64) + np.asarray(phi_d, np.float64))
        var = s2(phi_h, phi_max) if callable(s2) else s2
        if var is None or var.shape != np.shape(phi_d):
            return c
        if variant != "exact":
            return c - 0.5 * var * f_third(phi_h, phi_max)
        bar = _local_mean(phi_h, mask, 1.5)
        sd = np.sqrt(var)
        expected = sum(wi * f_prime(np.clip(bar + zi * sd, 0.0, phi_max), phi_max) for zi, wi in zip(z, w))
        return c - np.where(mask, expected - f_prime(np.clip(bar, 0.0, phi_max), phi_max), 0.0)

    return corrected


def _score(rate, trusted, true) -> dict:
    sel = np.asarray(trusted, bool) & np.isfinite(true) & np.isfinite(rate)
    return {"r": float(np.corrcoef(rate[sel], true[sel])[0, 1]),
            "bias": float(rate[sel].mean() / true[sel].mean() - 1.0)}


def _agreement(fields, cf) -> float:
    """The ``rate_prior="auto"`` rule's figure for closed form ``cf`` of ``fields``: its
    correlation with the balance estimate over one domain spacing, on its trusted pixels."""
    from chromarate.fit.chromatin_problem import AGREEMENT_WINDOW_SPACINGS, balance_window_um
    from chromarate.fit.prior import balance_rate, prior_agreement

    mask = np.asarray(fields.mask, bool)
    pixel_um = fields.pixel_size_nm / 1000.0
    window = (cf.meta.get("regularisation") or {}).get("test_window_um")
    sigma_um = balance_window_um(fields, mask, pixel_um, window, spacings=AGREEMENT_WINDOW_SPACINGS)
    lam = balance_rate(fields.phi_h, fields.phi_e, mask, sigma_um / pixel_um)
    return prior_agreement(lam, np.asarray(cf.rate, float), np.asarray(cf.trusted, bool))


def run_case(name: str, cache: str, cli_cache: Path, variants, pinn: bool, quick: bool = False) -> dict:
    """The figures of one nucleus (see the module docstring)."""
    from chromarate.analysis.compare import resample_to_grid
    from chromarate.fit import chromatin_problem, direct
    from chromarate.fit.direct import invert_direct
    from chromarate.fit.loop import fit_rates
    from chromarate.calibrated_phase import calibrated_phase_fields
    from chromarate.pipeline import phase_density

    locs, cfg, target, target_pixel, target_origin = localization_case(name, cache, cli_cache, quick)
    task = largest_nucleus(locs, cfg)
    den, mask = phase_density(task), np.asarray(task.mask, bool)
    fields = calibrated_phase_fields(den, mask, cfg)
    rho, phi_h = np.asarray(den.data, float), np.asarray(fields.phi_h, float)
    phi_max, phi_e0 = cfg.fit.physics.phi_max, cfg.phase.phi_e0
    a, b = _line(rho, phi_h, mask, phi_max)  # the calibrated mapping's line
    if task.halves is None:
        raise SystemExit(f"{name}: the localizations cannot be split into halves")
    ha, hb = (np.asarray(h.data, float) for h in task.halves)
    whole = np.asarray(task.denoised.data, float)
    diff2 = (a * (ha - hb)) ** 2  # (phi_a - phi_b)^2 / 4 with phi of a half = a * 2 * half
    local = np.where(mask, _local_mean(diff2, mask, 3.0), 0.0)
    c = float(np.sum(diff2[mask]) / np.sum(whole[mask]))
    smooth_whole = np.where(mask, _local_mean(whole, mask, 2.0), 0.0)
    poisson = c * smooth_whole
    per_count = float(np.sum((ha - hb)[mask] ** 2) / np.sum(whole[mask]))

    def following(phi_h_trial, phi_max_trial):  # s2 of the fields at any trial scale
        if phi_h_trial.shape != mask.shape:
            return None
        return _line(rho, phi_h_trial, mask, phi_max_trial)[0] ** 2 * per_count * smooth_whole
    unclipped_h = np.where(mask, a * rho + b, 0.0)
    unclipped = replace(fields, phi_d=(unclipped_h - phi_e0).astype(fields.phi_d.dtype),
                        phi_w=(1.0 - unclipped_h - phi_e0).astype(fields.phi_w.dtype))
    setups = {"plain": (None, fields), "halves-local": (local, fields), "poisson": (poisson, fields),
              "exact": (poisson, fields), "unclipped": (None, unclipped),
              "unclipped-poisson": (poisson, unclipped), "poisson-recalibrated": (following, None)}
    true = resample_to_grid(target, src_pixel_nm=target_pixel, src_origin_nm=target_origin,
                            shape=fields.mask.shape, pixel_nm=fields.pixel_size_nm,
                            origin_nm=fields.origin_nm)
    out = {"case": name, "line_a": float(a),
           "noise_sd_phi_median": float(np.sqrt(np.median(local[mask]))),
           "poisson_c": c, "variants": {}}
    print(f"{name}: median noise sd of phi_h {out['noise_sd_phi_median']:.4f}", flush=True)
    closed_cfg = cfg.fit.model_copy(update={"method": "direct"})
    for name in variants:
        s2, f = setups[name]
        patch = _corrections(name, s2, mask)
        with mock.patch.object(direct, "blur_correction", patch), \
                mock.patch.object(chromatin_problem, "blur_correction", patch):
            if f is None:  # calibrated again under the corrected model
                f = calibrated_phase_fields(den, mask, cfg)
            cf = invert_direct(f, closed_cfg)
            row = {"closed_form": _score(cf.rate, cf.trusted, true),
                   "calibration_scale": (f.meta.get("calibration") or {}).get("scale"),
                   "prior_agreement": _agreement(f, cf)}
            if pinn:
                fit = fit_rates(f, cfg.fit)
                row["pinn"] = _score(fit.rate, fit.trusted, true)
        out["variants"][name] = row
        print(f"   {name:20s} scale {row['calibration_scale']}  agreement {row['prior_agreement']:+.3f}  "
              + "  ".join(f"{k} r {v['r']:.3f} bias {100 * v['bias']:+.1f} %"
                          for k, v in row.items() if isinstance(v, dict)), flush=True)
    return out


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    add_case_options(ap)
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--pinn", action="store_true", help="also fit the default PINN per variant")
    ap.add_argument("--cli-cache", type=Path, default=Path(tempfile.gettempdir()) / "chromarate-cli-seeds",
                    help="cache of the seedN nuclei")
    add_threads_option(ap, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    rows = [run_case(name, args.cache, args.cli_cache, args.variants, args.pinn, quick=args.quick)
            for name in args.cases]
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
