"""Which rate prior recovers lambda best on a validation case, and can the data tell?

The default fit chooses its rate prior from the steadiness misfit J (a noise measure,
``chromarate.fit.regularise``). This study measures, on named development cases of the
validation suite, what the choice costs against fixed priors, and whether the best prior
can be read from the data. Four kinds of run, each printing one line per case and setting:

``--priors S:W ...``
    The default PINN (``fit_rates`` / the pipeline) with ``regularisation: manual``,
    ``rate_smoothness`` S and ``test_window_um`` W, 1000 Adam steps: r against the truth,
    the closed form's r at the same window, the bias of the mean and the coverage.
``--fit-seeds N``
    The default fit with fit seeds 0 ... N-1, and the r of their mean map (does an ensemble
    help r?).
``--fourier-scales F ...``
    The default fit with the rate network's Fourier scale F (cycles/um).
``--density-scales K ...``
    The default fit with the physics calibration of the density scale off and the
    multiplier of the percentile baseline fixed at K (localization cases): how the rate
    map depends on the density scale.
``--observation-variants``
    The default pipeline on a localization case as drawn and with one observation setting
    changed at a time (no background, no blinking, four times the localizations, 10 nm
    precision), same truth: how much the rendered path's result depends on the draw.
``--radii PX ...``
    The default fit with the mollifier radius fixed at PX pixels (its prior chosen from
    the steadiness misfit at that radius), scored on its own trusted region and on the
    region the default fit reports (``chromarate.fit.regularise.choose_kernel_radius``;
    "-" on rendered cases, whose crop depends on the kernel).
``--interval-area``
    The default fit's single-fit interval: the correlation area its sandwich uses (the
    central lobe of the residual's autocorrelation), the level of the residual's spectrum
    in the band the fitted map does not absorb (1.5-2.5 / s for a window of s pixels), and
    the area that would make the nominal 90 % interval cover exactly 90 % of the scored
    pixels, with the coverage of each (and of the smoothing bias alone).
``--surrogate S ...`` (with ``--window W``)
    A linear surrogate of the PINN's rate problem, fast enough to scan many priors: the
    fields held at their denoised values, lambda a free value per nucleus pixel, and the
    PINN's loss otherwise (the weak residual tested against Gaussian windows, normalised
    as in the fit, plus ``S`` times the mean squared gradient of lambda minus the balance
    prior), solved by conjugate gradients. Prints r against the truth for each S and, with
    ``--cv``, a block cross-validation score of each S (the held-out tested residual,
    blocks of one window or kernel radius, with and without a guard band of one kernel
    radius plus one window around the held-out blocks).

``--truth-blur NM ...`` (strengths ``--surrogate``, window ``--window``)
    The surrogate on the case's true fields with phi_h blurred by Gaussians of NM nm,
    without and with the residual's blur correction (``chromarate.fit.blur``): r against
    the truth and the bias of the mean per strength; ``--radius`` fixes the kernel radius
    (a rendered nucleus gets larger kernels than its clean true fields).

Cases are those of the suite (``--set dev``, the
default; use the unseen set only to report, never to choose) or ``seedN`` for
``chromarate simulate --seed N`` (through ``experiments/cli_seeds.py``'s cache).

    python experiments/prior_sweep.py --cases step-box-n1@101 bump-env-n1@101 \\
        --priors 1e-4:0.15 1e-3:0.15 1e-2:0.15 1e-3:0.1
    python experiments/prior_sweep.py --cases hetero-irr-env-loc250k@101 --fit-seeds 3
    python experiments/prior_sweep.py --cases step-box-n1@101 --surrogate 1e-4 1e-3 1e-2 0.1 1 \\
        --window 0.15 --cv
"""

from __future__ import annotations

import sys
import tempfile
import time
from functools import cached_property
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import add_json_option, add_threads_option, parser, set_threads, write_json  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "chromarate-validation"
CLI_CACHE = Path(tempfile.gettempdir()) / "chromarate-cli-seeds"
#: Prior strengths of ``--truth-blur`` when ``--surrogate`` gives none.
STRENGTHS = (1e-4, 1e-3, 1e-2, 0.1, 1.0)


# --------------------------------------------------------------------------------------
# PINN runs
# --------------------------------------------------------------------------------------

def _with_fit(cfg, *, prior=None, training=None, **fit):
    """``cfg`` with the fit's prior / training groups and top-level fields updated."""
    f = cfg.fit
    update = dict(fit)
    if prior:
        update["prior"] = f.prior.model_copy(update=prior)
    if training:
        update["training"] = f.training.model_copy(update=training)
    return cfg.model_copy(update={"fit": f.model_copy(update=update)})


def _suite_case(name: str, seed_set: str, quick: bool):
    from chromarate.validation.suite import suite, suite_for_set

    if seed_set == "any":  # a case of any seed, named with its @seed
        seed = name.rsplit("@", 1)[1] if "@" in name else ""
        if not seed.isdigit():
            raise SystemExit(f"--set any needs cases named with their seed (NAME@SEED), got {name!r}")
        cases = {c.name: c for c in suite([int(seed)], quick=quick)}
    else:
        cases = {c.name: c for c in suite_for_set(seed_set, quick=quick)}
    if name not in cases:
        raise SystemExit(f"no case {name!r} in the {seed_set} set; cases: {', '.join(cases)}")
    return cases[name]


def _run(case, cfg, *, baseline: bool = True) -> dict:
    from chromarate.validation.run import run_case

    t0 = time.perf_counter()
    res = run_case(case, config=cfg, cache_dir=CACHE, baseline=baseline)
    row = res.row()
    cal = (row.get("meta") or {}).get("calibration") or {}
    return {"r": row["r"], "baseline_r": row["baseline_r"], "bias": row["bias"],
            "coverage90": row["coverage90"], "calibration_scale": cal.get("scale"),
            "seconds": time.perf_counter() - t0,
            "_maps": (np.where(res.trusted, res.rate, np.nan), res.target, res.trusted),
            "_chosen": dict(row.get("regularisation") or {})}


def run_priors(case, settings, steps: int) -> list[dict]:
    """The PINN with each fixed (rate_smoothness, window) pair."""
    from chromarate.validation.run import default_config

    out = []
    for s, w in settings:
        cfg = _with_fit(default_config(case),
                        prior={"regularisation": "manual", "rate_smoothness": s, "test_window_um": w},
                        training={"steps": steps})
        out.append({"rate_smoothness": s, "test_window_um": w, **_run(case, cfg)})
    return out


def run_fit_seeds(case, n: int) -> list[dict]:
    """The default fit with fit seeds 0 ... n-1 and the r of the mean of their maps."""
    from chromarate.validation.run import default_config

    out, maps = [], []
    for seed in range(n):
        row = _run(case, _with_fit(default_config(case), seed=seed), baseline=False)
        maps.append(row["_maps"])
        out.append({"fit_seed": seed, **row})
    rate = np.nanmean(np.stack([m[0] for m in maps]), axis=0)
    target, trusted = maps[0][1], maps[0][2]
    sel = trusted & np.isfinite(rate) & np.isfinite(target)
    out.append({"fit_seed": "mean map", "r": float(np.corrcoef(rate[sel], target[sel])[0, 1])})
    return out


def run_fourier(case, scales) -> list[dict]:
    """The default fit with other (fixed) Fourier scales of the rate network, in place of
    the one the default regularisation derives from the chosen window."""
    from chromarate.fit import regularise
    from chromarate.validation.run import default_config

    out = []
    for f in scales:
        with mock.patch.object(regularise, "fourier_scale_for_window",
                               lambda window_um, f=f: float(f)):
            row = _run(case, default_config(case), baseline=False)
        chosen_scale = row.pop("_chosen").get("rate_fourier_scale_per_um")
        out.append({"rate_fourier_scale_per_um": f, **row, "chosen_fourier": chosen_scale})
    return out


def run_density_scales(case, scales) -> list[dict]:
    """The default fit with the density scale fixed (calibration off) at each multiplier."""
    from chromarate.validation.run import default_config

    out = []
    for k in scales:
        cfg = default_config(case)
        cfg = cfg.model_copy(update={"phase": cfg.phase.model_copy(
            update={"calibration": "none", "baseline_scale": float(k)})})
        out.append({"baseline_scale": float(k), **_run(case, cfg)})
    return out


#: The observation changes of ``--observation-variants`` (one at a time): a label and the
#: case fields to replace, from the case as drawn.
OBSERVATION_VARIANTS = (
    ("as drawn", lambda c: {}),
    ("no background", lambda c: {"background_fraction": 0.0}),
    ("no blinking", lambda c: {"blinking": 1.0}),
    ("4x localizations", lambda c: {"n_localizations": 4 * c.n_localizations}),
    ("precision 10 nm", lambda c: {"precision_nm": (10.0, 10.0)}),
)


def run_observation_variants(case) -> list[dict]:
    """The default pipeline on ``case`` and on copies with one observation setting changed
    (the truth is shared: the steady-state cache ignores observation fields)."""
    import dataclasses

    from chromarate.validation.run import default_config

    out = []
    for label, change in OBSERVATION_VARIANTS:
        variant = dataclasses.replace(case, **change(case))
        out.append({"variant": label, **_run(variant, default_config(variant))})
    return out


def _r_on(rate, target, region) -> float:
    if np.shape(rate) != np.shape(region):  # a rendered nucleus' crop depends on the kernel
        return float("nan")
    sel = region & np.isfinite(rate) & np.isfinite(target)
    return float(np.corrcoef(rate[sel], target[sel])[0, 1]) if sel.sum() > 2 else float("nan")


def run_radii(case, radii) -> list[dict]:
    """The default fit, then the fit at each fixed mollifier radius on both regions."""
    from chromarate.validation.run import default_config

    auto = _run(case, default_config(case), baseline=False)
    region = auto["_maps"][2]
    out = [{"radius_px": "auto", "r_on_default_region": auto["r"], **auto}]
    for radius in radii:
        cfg = default_config(case)
        cfg = _with_fit(cfg, mollifier=cfg.fit.mollifier.model_copy(update={"radius_px": radius}))
        row = _run(case, cfg, baseline=False)
        rate, target, _ = row["_maps"]
        out.append({"radius_px": radius, "r_on_default_region": _r_on(rate, target, region),
                    "n_own": int(row["_maps"][2].sum()), **row})
    out[0]["n_own"] = int(region.sum())
    return out


def _band_area(e: np.ndarray, support: np.ndarray, sigma_px: float, lo: float = 1.5,
               hi: float = 2.5) -> float:
    """Power of ``e`` (mean-free on ``support``) in the angular-frequency band
    ``[lo, hi) / sigma_px`` over its variance: the correlation area (px^2) of noise whose
    spectrum is flat at that level."""
    x = np.where(support, e - e[support].mean(), 0.0)
    shape = [2 * n for n in x.shape]
    power = np.abs(np.fft.fft2(x, shape)) ** 2 / support.sum()
    k = np.hypot(*np.meshgrid(2 * np.pi * np.fft.fftfreq(shape[0]),
                              2 * np.pi * np.fft.fftfreq(shape[1]), indexing="ij")) * sigma_px
    band = (k >= lo) & (k < hi)
    return float(power[band].mean() / np.mean(x[support] ** 2))


def run_interval_area(case) -> dict:
    """The default fit's interval under the correlation area it uses, the band estimate
    and the area that would cover exactly 90 % (bisection on a log scale)."""
    import chromarate.fit.direct as direct
    import chromarate.fit.loop as loop
    from chromarate.fit import uncertainty
    from chromarate.validation.run import default_config

    seen: dict = {}
    real_std, real_bias, real_sandwich = direct.windowed_rate_std, loop.smoothing_bias, loop.sandwich_std

    def sandwich_spy(*args, **kw):  # the PINN's interval, not the quality gate's closed form
        seen["in_fit"] = True
        try:
            return real_sandwich(*args, **kw)
        finally:
            seen["in_fit"] = False

    def std_spy(num, den, weight, window, rate, **kw):
        if seen.get("in_fit"):
            seen.update(num=num, den=den, weight=weight, window=window, rate=rate)
        return real_std(num, den, weight, window, rate, **kw)

    def bias_spy(rate, support, window, passes=1):
        seen["bias"] = real_bias(rate, support, window, passes=passes)
        return seen["bias"]

    with mock.patch.object(direct, "windowed_rate_std", std_spy), \
            mock.patch.object(loop, "smoothing_bias", bias_spy), \
            mock.patch.object(loop, "sandwich_std", sandwich_spy):
        row = _run(case, default_config(case), baseline=False)
    if "num" not in seen:
        raise SystemExit(f"{case.name}: the fit computed no single-fit interval")
    rate, target, trusted = row["_maps"]
    sel = trusted & np.isfinite(rate) & np.isfinite(target)
    err = np.abs(rate - target)[sel]
    num, den, weight, window = seen["num"], seen["den"], seen["weight"], seen["window"]
    ok_px = (weight > 0) & np.isfinite(seen["rate"])
    e = np.where(ok_px, np.nan_to_num(num) - np.nan_to_num(seen["rate"]) * np.nan_to_num(den), 0.0)
    support = ok_px & (weight > 0.5)

    def coverage(area: float) -> float:
        with mock.patch.object(uncertainty, "correlation_area", lambda *a, **k: area):
            std = real_std(num, den, weight, window, seen["rate"])
        return float(np.mean(err <= 1.645 * np.hypot(std, seen["bias"])[sel]))

    central = uncertainty.correlation_area(e, support)
    band = _band_area(e, support, window)
    lo, hi = 1e-3, 1e4
    if coverage(lo) >= 0.9:
        hi = lo
    for _ in range(40 if hi > lo else 0):
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if coverage(mid) < 0.9 else (lo, mid)
    return {"window_px": float(window), "area_central": central,
            "coverage_central": coverage(central), "area_band": band,
            "coverage_band": coverage(band), "area_90": hi,
            "coverage_bias_only": float(np.mean(err <= 1.645 * seen["bias"][sel])),
            "r": row["r"], "seconds": row["seconds"]}


# --------------------------------------------------------------------------------------
# linear surrogate
# --------------------------------------------------------------------------------------

def case_fields(name: str, seed_set: str, quick: bool):
    """(phase fields, truth on their grid) of a suite case or a ``seedN`` simulate nucleus;
    localization cases go through the default pipeline (closed form, for speed;
    :func:`case_localizations`)."""
    if not name.startswith("seed"):
        from chromarate.validation.cases import simulate_case
        from chromarate.validation.run import target_rate

        case = _suite_case(name, seed_set, quick)
        if case.path == "fields":
            syn = simulate_case(case, cache_dir=CACHE)
            return syn.fields, target_rate(syn)[0]
    _, _, truth, nr = case_localizations(name, seed_set, quick)
    return nr.fields, truth


class Surrogate:
    """The PINN's rate problem with the fields fixed: a linear least-squares problem.

    Minimises ``sum (G * (w (den lam - num)))^2 / (N scale^2) + s * smooth`` over a value
    of lambda per nucleus pixel, with the fit's terms (``rate_terms``), taper ``w``, test
    window ``G``, normalisation ``N = sum (G * w)^2`` and ``scale = 2 mean(phi_h)``, and
    ``smooth`` the mean squared forward difference (per um) of ``lam - lam_b`` over pixel
    pairs inside the nucleus, ``lam_b`` the balance prior.
    """

    def __init__(self, fields, window_um: float, radius_px: float | None = None):
        from scipy import ndimage as ndi

        from chromarate.config import FitConfig
        from chromarate.fit.chromatin_problem import balance_window_um
        from chromarate.fit.direct import rate_terms
        from chromarate.fit.prior import balance_rate

        self.terms = terms = rate_terms(fields, FitConfig(), radius_px=radius_px)
        self.weight, self.window = terms.window_weight(window_um)
        self.mask = m = np.asarray(fields.mask, bool)
        self.idx = np.flatnonzero(m)
        self.pixel_um = terms.pixel_um
        sigma_b = balance_window_um(fields, m, self.pixel_um, window_um,
                                    spacings=FitConfig().prior.balance_window_spacings) / self.pixel_um
        self.lam_b = balance_rate(fields.phi_h, fields.phi_e, m, sigma_b)
        scale = max(2.0 * float(np.mean(fields.phi_h[m])), 1e-3)
        self.blur = lambda z: ndi.gaussian_filter(z, self.window, mode="constant")
        self.wden = self.weight * np.nan_to_num(terms.den)
        self.y = self.blur(self.weight * np.nan_to_num(terms.num))
        self.c = 2.0 / (float(np.sum(self.blur(self.weight) ** 2)) * scale**2)
        self.pair_y, self.pair_x = m[1:, :] & m[:-1, :], m[:, 1:] & m[:, :-1]

    def _lap(self, v):
        """Gradient of the smoothness term (without s): D^T D v / (n p^2), both axes."""
        out = np.zeros_like(v)
        p2 = self.pixel_um**2
        dy = (v[1:, :] - v[:-1, :]) * self.pair_y / (self.pair_y.sum() * p2)
        out[1:, :] += dy
        out[:-1, :] -= dy
        dx = (v[:, 1:] - v[:, :-1]) * self.pair_x / (self.pair_x.sum() * p2)
        out[:, 1:] += dx
        out[:, :-1] -= dx
        return out

    def solve(self, s: float, rows: np.ndarray | None = None) -> np.ndarray:
        """lambda for prior strength ``s``, the residual counted only on ``rows``."""
        from scipy.sparse.linalg import LinearOperator, cg

        keep = np.ones(self.mask.shape) if rows is None else rows.astype(float)

        def full(x):
            v = np.zeros(self.mask.shape)
            v.flat[self.idx] = x
            return v

        def matvec(x):
            v = full(x)
            return (self.c * self.wden * self.blur(keep * self.blur(self.wden * v))
                    + s * self._lap(v)).flat[self.idx]

        rhs = (self.c * self.wden * self.blur(keep * self.y) + s * self._lap(self.lam_b)).flat[self.idx]
        n = self.idx.size
        x, _ = cg(LinearOperator((n, n), matvec=matvec, dtype=float), rhs, rtol=1e-6, maxiter=2000)
        return full(x)

    @cached_property
    def region(self) -> np.ndarray:
        """The pixels the fit reports (residual pixels with window support)."""
        from chromarate.fit.width import window_support

        return self.terms.trusted & window_support(self.weight, self.window)

    @cached_property
    def rows(self) -> np.ndarray:
        """The pixels where the tested residual is counted (the blurred weight's support)."""
        tested = self.blur(self.weight)
        return tested > 1e-3 * tested.max()

    def r(self, lam: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None) -> float:
        """Pearson r against ``truth`` on ``region`` (default :attr:`region`)."""
        sel = (self.region if region is None else region) & np.isfinite(truth) & np.isfinite(lam)
        return float(np.corrcoef(lam[sel], truth[sel])[0, 1])

    def cv(self, strengths, *, guard: bool, folds: int = 4, seed: int = 0) -> np.ndarray:
        """Held-out tested residual per strength, relative to ``sum y^2`` (block CV)."""
        from scipy import ndimage as ndi

        rows = self.rows
        radius = float(self.terms.radius)
        side = int(np.ceil(max(2.0 * self.window, radius)))
        ny, nx = self.mask.shape
        labels = np.random.default_rng(seed).integers(0, folds, size=(ny // side + 1, nx // side + 1))
        fold = np.kron(labels, np.ones((side, side), int))[:ny, :nx]
        gap = (radius + self.window) if guard else 0.0
        err = np.zeros(len(strengths))
        for k in range(folds):
            held = (fold == k) & rows
            if not held.any():
                continue
            train = rows & (ndi.distance_transform_edt(~held) > gap)
            for i, s in enumerate(strengths):
                pred = self.blur(self.wden * self.solve(s, train)) - self.y
                err[i] += float(np.sum(pred[held] ** 2))
        return err / float(np.sum(self.y[rows] ** 2))


def case_localizations(name: str, seed_set: str, quick: bool):
    """(localizations, pipeline config, truth on the nucleus grid, full-data result) of a
    localization case or a ``seedN`` simulate nucleus; the result is the default pipeline's
    (closed form) largest nucleus."""
    from chromarate.analysis.compare import resample_to_grid
    from chromarate.config import PipelineConfig
    from chromarate.pipeline import NucleusResult, Pipeline
    from chromarate.validation.cases import simulate_case
    from chromarate.validation.run import default_config, target_rate, truth_on_grid

    if name.startswith("seed"):
        import cli_seeds

        locs, truth = cli_seeds._simulate(int(name[4:]), CLI_CACHE)
        cfg = PipelineConfig()
    else:
        case = _suite_case(name, seed_set, quick)
        if case.path == "fields":
            raise SystemExit(f"{name} gives fields directly: no localizations to split")
        syn = simulate_case(case, cache_dir=CACHE)
        locs, cfg = syn.localizations, default_config(case)
    cfg = _with_fit(cfg, method="direct")
    done = [r for r in Pipeline(cfg).run(locs) if isinstance(r, NucleusResult)]
    nr = max(done, key=lambda r: int(r.fields.mask.sum()))
    f = nr.fields
    if name.startswith("seed"):
        true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                                src_origin_nm=truth["origin_nm"], shape=f.mask.shape,
                                pixel_nm=f.pixel_size_nm, origin_nm=f.origin_nm)
    else:
        true = truth_on_grid(target_rate(syn)[0], syn, f)
    return locs, cfg, true, nr


def half_fields(locs, keep, cfg, nr):
    """Phase fields of the localizations ``keep`` on the full result's nucleus grid and mask,
    with the full data's calibrated density scale and resolution."""
    from dataclasses import replace

    from chromarate._types import Localizations
    from chromarate.denoise import denoise_density
    from chromarate.phase import phase_fields
    from chromarate.render import render_density

    f = nr.fields
    sub = Localizations(table=locs.table.loc[keep].reset_index(drop=True), meta=dict(locs.meta))
    (y0, x0), (ny, nx) = f.origin_nm, f.mask.shape
    p = f.pixel_size_nm
    dens = render_density(sub, cfg.render.model_copy(update={"supersample": 1}),
                          bounds_nm=((y0, x0), (y0 + ny * p, x0 + nx * p)))
    dens = replace(dens, data=dens.data[:ny, :nx],
                   meta={**dict(dens.meta), "resolution_nm": nr.stack.provenance.get("qc", {})
                         .get("metrics", {}).get("resolution_nm")})
    den = denoise_density(dens, cfg.denoise)
    cal = f.meta.get("calibration") or {}
    scale = float(cal.get("scale", 1.0)) * cfg.phase.baseline_scale
    return phase_fields(den, f.mask, cfg.phase.model_copy(update={"baseline_scale": scale}),
                        phi_max=cfg.fit.physics.phi_max)


def run_split_half(name: str, strengths, window: float, seed_set: str, quick: bool,
                   block_frames: int = 500) -> dict:
    """Split-half validation of the prior on the surrogate: fit half A (frames in
    alternating blocks of ``block_frames``), score the tested residual of half B with it,
    and the other way round; also the full data's surrogate r per strength."""
    locs, cfg, truth, nr = case_localizations(name, seed_set, quick)
    frames = locs.table["frame"].to_numpy()
    half = (frames // block_frames) % 2 == 0
    full = Surrogate(nr.fields, window)
    # the halves with the full data's kernels, so that the three solve the same problem
    sur = {k: Surrogate(half_fields(locs, sel, cfg, nr), window, radius_px=full.terms.radius)
           for k, sel in (("a", half), ("b", ~half))}
    rows = full.rows
    from chromarate.fit.prior import windowed_ratio

    region = full.region
    score = np.zeros(len(strengths))
    score_lam = np.zeros(len(strengths))
    corr = np.zeros(len(strengths))
    for fit_on, test_on in (("a", "b"), ("b", "a")):
        s_fit, s_test = sur[fit_on], sur[test_on]
        # the other half's closed form: noisy, but its noise is independent of the fit's
        ref = windowed_ratio(s_test.terms.num, s_test.terms.den, s_test.weight, s_test.window)
        sel = region & np.isfinite(ref)
        lo, hi = np.percentile(ref[sel], [1.0, 99.0])
        ref_c = np.clip(ref[sel], lo, hi)
        for i, s in enumerate(strengths):
            lam = s_fit.solve(s)
            pred = s_test.blur(s_test.wden * lam) - s_test.y
            score[i] += float(np.sum(pred[rows] ** 2)) / float(np.sum(s_test.y[rows] ** 2))
            score_lam[i] += float(np.mean((lam[sel] - ref[sel]) ** 2))
            # the correlation with an independent noisy copy of lambda is proportional to the
            # correlation with lambda itself (the factor does not depend on s)
            corr[i] += float(np.corrcoef(lam[sel], ref_c)[0, 1])
    return {"window_um": window, "strengths": list(strengths), "split_score": (score / 2).tolist(),
            "split_score_lambda": (score_lam / 2).tolist(), "split_corr": (corr / 2).tolist(),
            "r_full": [full.r(full.solve(s), truth) for s in strengths],
            "r_half_a": [sur["a"].r(sur["a"].solve(s), truth, full.region) for s in strengths]}


def run_truth_blur(name: str, strengths, window: float, blurs_nm, seed_set: str = "dev",
                   quick: bool = False, radius_px: float | None = None) -> list[dict]:
    """The surrogate on a nucleus' true fields (a suite case or ``seedN``) with phi_h
    blurred by a Gaussian of each standard deviation (nm): how much of the rendered data's
    error is blur alone, and how much of it the blur correction of the residual
    (:mod:`chromarate.fit.blur`) removes (``r_corrected``, the fields carrying their blur).
    ``radius_px``: the kernel radius (default: the automatic choice for the fields)."""
    from scipy import ndimage as ndi

    from chromarate._types import PhaseFields

    if name.startswith("seed"):
        import cli_seeds
        from chromarate.io.truth import read_truth

        cli_seeds._simulate(int(name[4:]), CLI_CACHE)  # make sure the truth is cached
        t = read_truth(CLI_CACHE / f"{name}.truth.npz")
        mask, pixel = np.asarray(t["mask"], bool), float(t["pixel_size_nm"])
        phi_d, phi_w = np.asarray(t["phi_d"], float), np.asarray(t["phi_w"], float)
        # phi_w = 1 - phi_h - phi_e0 and phi_d = phi_h - phi_e0 give phi_e0 = (1 - phi_w - phi_d) / 2
        phi_e0 = float(np.median((1.0 - phi_w - phi_d)[mask]) / 2.0)
        phi_h, rate = phi_d + phi_e0, np.asarray(t["rate"], float)
    else:
        from chromarate.validation.cases import PHI_E0, simulate_case

        syn = simulate_case(_suite_case(name, seed_set, quick), cache_dir=CACHE)
        mask, pixel, phi_e0 = np.asarray(syn.mask, bool), float(syn.pixel_size_nm), PHI_E0
        phi_h, rate = syn.phi_h, np.asarray(syn.rate, float)
    out = []
    for blur in blurs_nm:
        ph = ndi.gaussian_filter(phi_h, blur / pixel) if blur > 0 else phi_h
        row = {"blur_nm": blur}
        for key, meta in (("r", {}), ("r_corrected", {"blur_nm": float(blur)})):
            f = PhaseFields(phi_w=1.0 - ph - phi_e0, phi_d=ph - phi_e0, mask=mask,
                            pixel_size_nm=pixel, meta=meta)
            sur = Surrogate(f, window, radius_px=radius_px)
            maps = [sur.solve(s) for s in strengths]
            sel = sur.region & np.isfinite(rate)
            row["radius_px"] = float(sur.terms.radius)
            row[key] = [sur.r(m, rate) for m in maps]
            row[key.replace("r", "bias", 1)] = [
                float(np.mean(m[sel]) / np.mean(rate[sel]) - 1.0) for m in maps]
        out.append(row)
    return out


def run_surrogate(name: str, strengths, window: float, cv: bool, seed_set: str, quick: bool):
    fields, truth = case_fields(name, seed_set, quick)
    sur = Surrogate(fields, window)
    t0 = time.perf_counter()
    maps = [sur.solve(s) for s in strengths]
    row = {"window_um": window, "strengths": list(strengths), "grid": list(fields.mask.shape),
           "seconds_per_solve": (time.perf_counter() - t0) / len(strengths),
           "r": [sur.r(lam, truth) for lam in maps]}
    if cv:
        for guard in (False, True):
            row["cv_guard" if guard else "cv_no_guard"] = sur.cv(strengths, guard=guard).tolist()
    return row


# --------------------------------------------------------------------------------------

def _f(x, spec=".3f"):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def _print_pinn(name, rows, *keys):
    for r in rows:
        label = ", ".join(f"{k}={r[k]}" for k in keys if k in r)
        print(f"{name}  {label:<40} r={_f(r['r'])}  "
              f"base={_f(r.get('baseline_r'))}  bias={_f(r.get('bias'), '+.3f')}  "
              f"cov90={_f(r.get('coverage90'), '.2f')}  {_f(r.get('seconds'), '.0f')} s", flush=True)


def main(argv=None) -> dict:
    ap = parser(__doc__, first="line")
    ap.add_argument("--cases", nargs="+", required=True, metavar="NAME")
    ap.add_argument("--set", choices=["dev", "unseen", "any"], default="dev", dest="seed_set",
                    help="the seed set of --cases; 'any': each case named with its @seed")
    ap.add_argument("--quick", action="store_true", help="the suite's small case versions")
    ap.add_argument("--priors", nargs="+", default=None, metavar="S:W")
    ap.add_argument("--steps", type=int, default=1000, help="Adam steps with --priors")
    ap.add_argument("--fit-seeds", type=int, default=None)
    ap.add_argument("--fourier-scales", type=float, nargs="+", default=None)
    ap.add_argument("--density-scales", type=float, nargs="+", default=None, metavar="K",
                    help="the default fit with the density scale fixed at these multipliers "
                         "of the percentile baseline (calibration off)")
    ap.add_argument("--observation-variants", action="store_true",
                    help="the default pipeline with one observation setting changed at a time "
                         "(localization cases)")
    ap.add_argument("--radii", type=float, nargs="+", default=None, metavar="PX",
                    help="the default fit at these fixed mollifier radii (pixels)")
    ap.add_argument("--interval-area", action="store_true",
                    help="the default fit's interval: correlation area used, band estimate, "
                         "and the area that would cover 90 %%")
    ap.add_argument("--surrogate", type=float, nargs="+", default=None, metavar="S")
    ap.add_argument("--window", type=float, default=0.15, help="test window (um) of --surrogate")
    ap.add_argument("--cv", action="store_true", help="block cross-validation with --surrogate")
    ap.add_argument("--truth-blur", type=float, nargs="+", default=None, metavar="NM",
                    help="surrogate (strengths --surrogate) on a nucleus' true fields with "
                         "phi_h blurred by these Gaussian sigmas (nm), without and with the "
                         "blur correction")
    ap.add_argument("--radius", type=float, default=None, metavar="PX",
                    help="kernel radius of --truth-blur (default: the automatic choice)")
    ap.add_argument("--split-half", type=float, nargs="+", default=None, metavar="S",
                    help="split-half validation of these strengths on the surrogate "
                         "(localization cases; window --window)")
    add_threads_option(ap)
    add_json_option(ap)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    report: dict = {"set": args.seed_set, "quick": args.quick, "cases": {}}
    for name in args.cases:
        out: dict = {}
        if args.truth_blur:
            strengths = args.surrogate or list(STRENGTHS)
            out["truth_blur"] = run_truth_blur(name, strengths, args.window, args.truth_blur,
                                               args.seed_set, args.quick, args.radius)
            for row in out["truth_blur"]:
                for key, label in (("r", "as blurred"), ("r_corrected", "corrected")):
                    line = " ".join(f"{s:g}:{_f(r)} ({b:+.3f})" for s, r, b in
                                    zip(strengths, row[key], row[key.replace("r", "bias", 1)]))
                    print(f"{name}  true fields blurred {row['blur_nm']:g} nm, {label} (kernel "
                          f"radius {row['radius_px']:.1f} px)  r (bias): {line}", flush=True)
        elif args.surrogate:
            row = run_surrogate(name, args.surrogate, args.window, args.cv, args.seed_set, args.quick)
            out["surrogate"] = row
            line = " ".join(f"{s:g}:{_f(r)}" for s, r in zip(row["strengths"], row["r"]))
            print(f"{name}  surrogate window {args.window:g} um  r: {line}  "
                  f"({row['grid'][0]}x{row['grid'][1]}, {row['seconds_per_solve']:.1f} s per solve)",
                  flush=True)
            for key in ("cv_no_guard", "cv_guard"):
                if key in row:
                    vals = " ".join(f"{v:.4f}" for v in row[key])
                    best = row["strengths"][int(np.argmin(row[key]))]
                    print(f"{name}  {key}: {vals}  -> {best:g}", flush=True)
            best_r = row["strengths"][int(np.nanargmax(row["r"]))]
            print(f"{name}  best r at {best_r:g}", flush=True)
        if args.split_half:
            row = run_split_half(name, args.split_half, args.window, args.seed_set, args.quick)
            out["split_half"] = row
            for key in ("split_score", "split_score_lambda", "split_corr", "r_full", "r_half_a"):
                vals = " ".join(f"{v:.4f}" if key.startswith("split") else _f(v) for v in row[key])
                print(f"{name}  split-half {key}: {vals}", flush=True)
            pick = row["strengths"][int(np.argmin(row["split_score"]))]
            pick_lam = row["strengths"][int(np.argmin(row["split_score_lambda"]))]
            pick_corr = row["strengths"][int(np.argmax(row["split_corr"]))]
            best = row["strengths"][int(np.nanargmax(row["r_full"]))]
            print(f"{name}  split-half picks {pick:g} (residual), {pick_lam:g} (lambda), "
                  f"{pick_corr:g} (correlation), half data; "
                  f"full-data surrogate best {best:g}", flush=True)
        if not name.startswith("seed"):
            case = _suite_case(name, args.seed_set, args.quick)
            if args.priors:
                settings = [tuple(float(v) for v in p.split(":")) for p in args.priors]
                out["priors"] = run_priors(case, settings, args.steps)
                _print_pinn(name, out["priors"], "rate_smoothness", "test_window_um")
            if args.fit_seeds:
                out["fit_seeds"] = run_fit_seeds(case, args.fit_seeds)
                _print_pinn(name, out["fit_seeds"], "fit_seed")
            if args.fourier_scales:
                out["fourier"] = run_fourier(case, args.fourier_scales)
                _print_pinn(name, out["fourier"], "rate_fourier_scale_per_um")
            if args.observation_variants:
                out["observation_variants"] = run_observation_variants(case)
                _print_pinn(name, out["observation_variants"], "variant")
            if args.density_scales:
                out["density_scales"] = run_density_scales(case, args.density_scales)
                _print_pinn(name, out["density_scales"], "baseline_scale")
            if args.interval_area:
                a = out["interval_area"] = run_interval_area(case)
                print(f"{name}  window {a['window_px']:.1f} px  area used {a['area_central']:.3g} "
                      f"(coverage {a['coverage_central']:.3f})  band {a['area_band']:.3g} "
                      f"({a['coverage_band']:.3f})  for 90 %: {a['area_90']:.3g}  "
                      f"smoothing bias alone {a['coverage_bias_only']:.3f}", flush=True)
            if args.radii:
                out["radii"] = run_radii(case, args.radii)
                for r in out["radii"]:
                    print(f"{name}  radius {r['radius_px']}  r own region {_f(r['r'])} "
                          f"({r['n_own']} px)  r on the default's region "
                          f"{_f(r['r_on_default_region'])}  bias={_f(r['bias'], '+.3f')}  "
                          f"{_f(r['seconds'], '.0f')} s", flush=True)
        for rows in out.values():
            for r in (rows if isinstance(rows, list) else []):
                r.pop("_maps", None)
                r.pop("_chosen", None)
        report["cases"][name] = out
    if args.json:
        write_json(args.json, report, indent=1, allow_nan=True, newline=True)
    return report


if __name__ == "__main__":
    main()
