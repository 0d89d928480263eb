"""The balance estimate of the rate on its own, at several window widths, on `simulate` nuclei.

For each ``chromarate simulate --seed N`` nucleus (simulated through
``experiments/cli_seeds.py``'s cache) this runs the default pipeline's shared stages and
phase mapping, then scores the balance estimate ``G * phi_h / G * phi_e``
(:func:`chromarate.fit.prior.balance_rate`) against the true rate over the nucleus eroded
by 0.3 um, for Gaussian windows of several standard deviations: Pearson r, the bias of the
mean, and how well the maps of two independent halves of the localizations agree. With
``--closed-form`` it adds the windowed closed form at the same windows (the closed form
caps its window to the nucleus). With ``--flux`` it adds the balance with the flux through
the window's edge put back (:func:`flux_balance`). ``--windows-spacings`` gives the windows in
domain spacings of each nucleus instead of micrometres. Prints one line per seed and window.

Usage::

    python experiments/balance_window.py --seeds 0 1 2 3 4 5 --json experiments/results/balance_window.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import corr, largest_nucleus, parser, write_json  # noqa: E402

WINDOWS_UM = (0.3, 0.45, 0.6, 0.9, 1.2)
ERODE_UM = 0.3


def flux_balance(phi_h: np.ndarray, phi_e: np.ndarray, mask: np.ndarray, sigma_px: float,
                 pixel_um: float) -> np.ndarray:
    """The balance estimate with the window-integrated flux term.

    The steady state ``M lap(mu) + 2 (lambda phi_e - phi_h) = 0`` integrated against a
    Gaussian ``G`` gives ``G * (lambda phi_e) = G * phi_h - (M / 2) lap(G * mu)`` (the
    derivatives move onto the window; exact where the window does not reach an envelope),
    with ``mu = -phi_e + f'(phi_h) - l^2 lap(phi_d)`` and ``phi_d = phi_h - phi_e``. For a
    lambda smooth on the window's scale this is
    ``lambda ~ [G * phi_h - (M / 2) lap(G * mu)] / G * phi_e``: the balance estimate
    (:func:`chromarate.fit.prior.balance_rate`, the same masked window sums) without its
    no-flux assumption, and a windowed closed form whose derivatives all fall on the wide
    Gaussian. For the flux term the fields are extended outside ``mask`` by their nearest
    values, an approximation within a window of the envelope. Outside ``mask`` each pixel
    takes the value of the nearest pixel inside, as :func:`balance_rate` does, so the two
    are interchangeable.
    """
    from scipy import ndimage as ndi

    from chromarate.config import PhysicsConfig
    from chromarate.fit.physics import f_prime
    from chromarate.fit.prior import fill_nearest

    phys = PhysicsConfig()
    m = np.asarray(mask, dtype=bool)
    ph, pe = (fill_nearest(np.where(m, f, np.nan)) for f in (phi_h, phi_e))

    def lap_g(x):  # lap(G * x), per um^2, of a field extended by its nearest values
        return (ndi.gaussian_filter(x, sigma_px, order=(2, 0), mode="nearest")
                + ndi.gaussian_filter(x, sigma_px, order=(0, 2), mode="nearest")) / pixel_um ** 2

    def window(x):  # G * x, as balance_rate sums
        return ndi.gaussian_filter(x, sigma_px, mode="constant")

    lap2 = ndi.laplace(lap_g(ph - pe), mode="nearest") / pixel_um ** 2  # lap^2 (G * phi_d)
    lap_mu = lap_g(-pe + f_prime(ph, phys.phi_max)) - phys.interface_um ** 2 * lap2
    weight = window(m.astype(np.float64))
    num = window(np.where(m, phi_h, 0.0)) - 0.5 * phys.mobility * lap_mu * weight
    den = window(np.where(m, phi_e, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return fill_nearest(np.where(m & (den > 1e-9), num / den, np.nan))


def quick_case():
    """(localizations, truth) of a small nucleus (96 x 96 px at 20 nm, 40k localizations):
    the ``--quick`` smoke run, simulated in memory."""
    from chromarate.config import SimulateConfig
    from chromarate.data import simulate_nucleus

    syn = simulate_nucleus(SimulateConfig(shape=(96, 96), pixel_size_nm=20.0,
                                          nucleus_radii_um=(0.85, 0.75), n_localizations=40_000,
                                          tolerance=1e-2, rate_length_um=1.0, seed=3))
    truth = {"rate": syn.rate, "pixel_size_nm": syn.pixel_size_nm, "origin_nm": syn.origin_nm}
    return syn.localizations, truth


def score_seed(seed: int, cache: Path, windows=WINDOWS_UM, closed_form: bool = False, *,
               flux: bool = False, in_spacings: bool = False) -> dict:
    """Balance estimate (and optionally the closed form) at ``windows`` on one seed."""
    import cli_seeds

    locs, truth = cli_seeds._simulate(seed, cache)
    return {"seed": seed, **score(locs, truth, windows, closed_form, flux=flux,
                                  in_spacings=in_spacings)}


def score(locs, truth, windows=WINDOWS_UM, closed_form: bool = False, *, flux: bool = False,
          in_spacings: bool = False) -> dict:
    """Balance estimate (and optionally the closed form, and with ``flux`` the
    flux-corrected balance of :func:`flux_balance`) at ``windows`` (in domain spacings with
    ``in_spacings``, else um) on the largest nucleus of ``locs``, scored against ``truth``
    (``rate``, ``pixel_size_nm``, ``origin_nm``)."""
    from scipy import ndimage as ndi

    from chromarate.analysis.compare import resample_to_grid
    from chromarate.config import PipelineConfig
    from chromarate.calibrated_phase import calibrated_phase_fields
    from chromarate.fit.prior import balance_rate, domain_spacing_um
    from chromarate.halves import half_phase_fields, halves_scale
    from chromarate.pipeline import _level, phase_density

    cfg = PipelineConfig()
    task = largest_nucleus(locs, cfg)
    fields = calibrated_phase_fields(phase_density(task), task.mask, cfg)
    halves = half_phase_fields(task.halves, fields.mask, cfg, _level(task),
                               scale=halves_scale(fields))
    px = fields.pixel_size_nm / 1000.0
    true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                            src_origin_nm=truth["origin_nm"], shape=fields.mask.shape,
                            pixel_nm=fields.pixel_size_nm, origin_nm=fields.origin_nm)
    mask = np.asarray(fields.mask, dtype=bool)
    sel = ndi.binary_erosion(mask, iterations=int(round(ERODE_UM / px))) & np.isfinite(true)
    spacing = domain_spacing_um(fields.phi_h, mask, px)
    row = {"domain_spacing_um": spacing,
           "true_mean": float(true[sel].mean()), "true_sd": float(true[sel].std()),
           "balance": {}, "closed_form": {}, **({"flux_balance": {}} if flux else {}),
           **({"window_spacings": list(windows)} if in_spacings else {})}
    windows = [w * spacing for w in windows] if in_spacings else list(windows)
    for w in windows:
        whole = balance_rate(fields.phi_h, fields.phi_e, mask, w / px)
        a, b = (balance_rate(h.phi_h, h.phi_e, mask, w / px) for h in halves)
        row["balance"][str(w)] = {"r": corr(whole[sel], true[sel]),
                                  "bias": float(whole[sel].mean() / true[sel].mean() - 1.0),
                                  "halves_r": corr(a[sel], b[sel])}
        if flux:
            f, fa, fb = (flux_balance(h.phi_h, h.phi_e, mask, w / px, px)
                         for h in (fields, *halves))
            ok = sel & np.isfinite(f)
            row["flux_balance"][str(w)] = {"r": corr(f[ok], true[ok]),
                                           "bias": float(f[ok].mean() / true[ok].mean() - 1.0),
                                           "halves_r": corr(fa[sel], fb[sel])}
    if closed_form:
        from chromarate.fit.direct import invert_direct

        for w in windows:
            fc = cfg.fit.model_copy(update={"prior": cfg.fit.prior.model_copy(update={
                "regularisation": "manual", "test_window_um": w, "split_half_floor": False})})
            fit = invert_direct(fields, fc)
            c = fit.rate
            ok = sel & np.isfinite(c)
            row["closed_form"][str(w)] = {"r": corr(c[ok], true[ok]),
                                          "bias": float(c[ok].mean() / true[ok].mean() - 1.0),
                                          "window_px_used": fit.meta.get("test_window_px")}
    return row


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--windows", type=float, nargs="+", default=list(WINDOWS_UM), metavar="UM")
    ap.add_argument("--closed-form", action="store_true", help="also the windowed closed form")
    ap.add_argument("--flux", action="store_true",
                    help="also the balance with the flux through the window's edge")
    ap.add_argument("--windows-spacings", action="store_true",
                    help="--windows in domain spacings of each nucleus, not um")
    ap.add_argument("--quick", action="store_true",
                    help="a small simulated nucleus instead of the seeds (smoke run)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "chromarate-cli-seeds")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    opts = {"flux": args.flux, "in_spacings": args.windows_spacings}
    cases = ([("quick", lambda: {"seed": "quick", **score(*quick_case(), args.windows,
                                                           args.closed_form, **opts)})]
             if args.quick else
             [(seed, lambda seed=seed: score_seed(seed, args.cache, args.windows,
                                                  args.closed_form, **opts))
              for seed in args.seeds])
    for name, run in cases:
        row = run()
        rows.append(row)
        print(f"seed {name}: domain spacing {row['domain_spacing_um']:.2f} um, "
              f"true lambda {row['true_mean']:.2f} +- {row['true_sd']:.2f}")
        for kind in ("balance", "flux_balance", "closed_form"):
            for w, s in row.get(kind, {}).items():
                extra = f"  halves agree {s['halves_r']:.3f}" if "halves_r" in s else ""
                print(f"  {kind:11s} window {float(w):4.2f} um: r {s['r']:.3f}  "
                      f"bias {s['bias']:+.1%}{extra}")
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
