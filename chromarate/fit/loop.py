"""The mollifier-layer PINN fit, written once as a generator of events.

``iter_fit`` yields :class:`~chromarate._types.FitProgress` events while it trains and a
final :class:`~chromarate._types.FitDone` carrying the :class:`FitResult`; ``fit_rates``
is the plain wrapper. Device and dtype come from the config (or the ``device`` argument);
all tensors are created on that device, never through global defaults.

Model: a coordinate network ``g`` (Fourier MLP, MLP or PirateNet) gives the two phase
fields (phi_d, phi_w) on the grid plus a halo -- by default *anchored*: the observation,
denoised by total variation at the estimated noise level (``fit.prior.field_prior``), plus the
network's correction; a separate, low-frequency network gives lambda >= 0 (softplus).
Both networks are evaluated on a lattice of every ``stride``-th pixel and interpolated
bicubically (``network.evaluation_stride``). The mollifier layer convolves once with
grid-exact kernels; on the FFT path the whole residual costs one inverse transform.
Residual, default weak form::

    r_eps = M (lap_eps * (f'(phi_h) - phi_e) - l^2 bilap_eps * phi_d) + eta_eps * 2 (lambda phi_e - phi_h)

(or the strong form on the mollified fields). The residual is weighted by a smooth taper
that vanishes at the edge of the trusted region and, with ``prior.test_window_um`` set
(default), tested against Gaussian windows ``G * (w r)`` (a Petrov-Galerkin weak form):
both move the fourth-order derivatives off the noise by integration by parts. Loss terms,
each normalised so that 1 means "at the expected size"::

    data     = mean_mask |g - observed|^2 / sigma^2     (sigma: estimated pixel noise)
    residual = sum |G * (w r)|^2 / (sum |G * w|^2 s^2)  (s: size of the reaction term)
    smooth   = mean_mask |grad (lambda - lambda_b)|^2    (um^-2; lambda_b: the local balance
               estimate G*phi_h / G*phi_e with fit.prior.rate_prior "balance", the windowed
               closed form with "closed_form", one of the two chosen per nucleus with
               "auto", 0 with "flat")
    loss     = data_weight * data + residual_weight * residual + prior.rate_smoothness * smooth

Training runs on the whole grid, or on random patches plus the kernel halo when
``training.patch_size`` is set and smaller than the grid (memory then depends on the patch only);
the final maps are assembled tile by tile. An ensemble gives ``rate_std``: by default a
parametric bootstrap (members 1.. fit the denoised fields plus fresh noise at the data's
local noise level), or plain seed spread (``fit.uncertainty.method``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import numpy as np
import torch

from .._types import FitDone, FitProgress, FitResult, PhaseFields
from ..config import FitConfig
from ..device import describe_device, resolve_device, resolve_dtype
# the problem and the grid operations live in their own modules; the names are re-exported
# here for callers that used them from this module
from .chromatin_problem import FIELD_DERIVATIVES, _evaluation, _FieldNet, _Problem  # noqa: F401
from .blur import observation_blur_nm
from .direct import check_fields, closed_form_settings, invert_direct, rate_terms, sandwich_std
from .engine import ParamGroup, TrainProgress, TrainSettings, iter_train, train
from .lattice import _blur  # noqa: F401
from .networks import RateNetwork
from .prior import denoise_fields
from .regularise import (choose_regularisation, hold_to_balance, raise_smoothness_floor,
                         rate_fourier_scale)
from .uncertainty import SPLIT_HALF_SMOOTHING_WINDOWS, interval_std, local_rms, smoothing_bias
from .width import noise_map

__all__ = ["iter_fit", "fit_rates", "FIELD_DERIVATIVES"]

def _with_prior(config: FitConfig, rate_prior: str) -> FitConfig:
    """``config`` with the rate prior the first member used: the bootstrap members of an
    ensemble keep its choice (re-choosing on each resampled field would mix estimators)."""
    return config.model_copy(update={"prior": config.prior.model_copy(
        update={"rate_prior": rate_prior})})


def _balance_kept(prob: _Problem, config: FitConfig, chosen: dict) -> bool:
    """Whether the halves' departure kept the balance prior on a data-chosen
    regularisation (``fit.prior.balance_full_strength``)."""
    return (config.prior.balance_full_strength and prob.rate_prior == "balance"
            and prob.prior_departure is not None and chosen.get("criterion") != "manual")


def _train_member(prob: _Problem, seed: int, member: int, t_start: float, history: dict,
                  timings: dict, monitor=None) -> Iterator[FitProgress | tuple]:
    """Train one ensemble member through the engine (:mod:`chromarate.fit.engine`); yields
    progress events, finally ``(field_net, rate_net)``. Adds the pre-training time (if
    any) to ``timings["pretrain"]``."""
    cfg, dev, dtype = prob.config, prob.dev, prob.dtype
    tr = cfg.training
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(seed)
    field_net = _FieldNet(prob.base, cfg, gen).to(device=dev, dtype=dtype)
    rate_net = RateNetwork(initial_rate=prob.initial_rate, width=32, depth=2,
                           n_fourier=cfg.prior.rate_fourier_features,
                           scale_per_um=rate_fourier_scale(cfg.prior),
                           generator=gen).to(device=dev, dtype=dtype)
    if tr.pretrain_steps:
        t0 = time.perf_counter()
        _pretrain_field(prob, field_net, tr.pretrain_steps, gen)
        timings["pretrain"] = timings.get("pretrain", 0.0) + time.perf_counter() - t0
    use_amp = tr.mixed_precision and dev.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    patched = tr.patch_size is not None and (tr.patch_size < prob.grid.ny or tr.patch_size < prob.grid.nx)

    def loss_fn(step):  # a fresh random patch per step (or the whole grid)
        window = prob.random_window(tr.patch_size, rng) if patched else prob.full_window()
        return prob.losses(field_net, rate_net, window, autocast)[:2]

    def polish_loss():  # one window for the whole polish, drawn after the Adam steps
        window = prob.full_window() if not patched else prob.random_window(tr.patch_size, rng)
        return lambda step: prob.losses(field_net, rate_net, window, autocast)[:2]

    # the small, smooth rate network gets a larger step: its output must travel O(1) from
    # the mean-relation start, while the field correction stays small
    groups = [ParamGroup(list(field_net.parameters()), tr.learning_rate),
              ParamGroup(list(rate_net.parameters()), tr.learning_rate * tr.rate_learning_rate_factor)]
    settings = TrainSettings(steps=tr.steps, log_every=tr.log_every,
                             patience=tr.early_stopping_patience, lbfgs_steps=tr.lbfgs_steps)
    watch = None if monitor is None else \
        (lambda step: monitor(member * tr.steps + step, lambda: _rate_preview(prob, rate_net)))
    total_steps = tr.steps * cfg.uncertainty.ensemble
    for ev in iter_train(groups, loss_fn, settings, polish_loss=polish_loss,
                         evaluation=lambda: _evaluation(prob), monitor=watch):
        if isinstance(ev, TrainProgress):
            global_step = member * tr.steps + ev.step
            history["step"].append(global_step)
            history["loss"].append(ev.loss)
            for k, v in ev.terms.items():
                history[k].append(v)
            yield FitProgress(step=global_step, total_steps=total_steps, loss=ev.loss,
                              terms=dict(ev.terms), elapsed_s=time.perf_counter() - t_start)
        else:
            if ev.early_stop is not None:
                history.setdefault("early_stop", []).append(ev.early_stop)
            if ev.polish_loss is not None:
                history.setdefault("lbfgs_loss", []).append(ev.polish_loss)
    yield (field_net, rate_net)


def _rate_preview(prob: _Problem, rate_net) -> np.ndarray:
    """The rate network's current map on the grid (NaN outside the nucleus)."""
    g = prob.grid
    with torch.no_grad():
        lam = rate_net(g.coords(prob.dev, prob.dtype)).view(g.ny, g.nx)
    return np.where(prob.mask_np, lam.cpu().numpy().astype(np.float64), np.nan)


#: Pre-training uses at most this many random nucleus pixels per step (memory bound).
PRETRAIN_BATCH = 65536


def _pretrain_field(prob: _Problem, field_net, steps: int, gen: torch.Generator) -> None:
    """Fit the field network's values at the nucleus pixels to the observation (data only,
    no derivative, so the same for every backend): the warm start of a free network.
    Large nuclei are fitted on random batches of ``PRETRAIN_BATCH`` pixels."""
    cfg = prob.config
    coords = prob.grid.coords(prob.dev, prob.dtype)[prob.mask.reshape(-1)]
    target = prob.obs[:, prob.mask].T
    n = coords.shape[0]

    def loss_fn(step):
        xy, t = coords, target
        if n > PRETRAIN_BATCH:
            idx = torch.randperm(n, generator=gen)[:PRETRAIN_BATCH].to(prob.dev)
            xy, t = coords[idx], target[idx]
        loss = ((field_net(xy) - t) ** 2).mean() / prob.sigma**2
        return loss, {"data": loss}

    train([ParamGroup(list(field_net.parameters()), cfg.training.learning_rate)], loss_fn,
          TrainSettings(steps=steps, label="field pre-training loss"))


def _bootstrap_fields(fields: PhaseFields, prob: _Problem, seed: int, config: FitConfig,
                      ) -> PhaseFields:
    """A parametric-bootstrap replicate of the observation.

    The denoised fields (the best estimate of the truth) plus fresh Gaussian noise with
    the *local* noise level of the data (:func:`~chromarate.fit.width.noise_map`), phi_w's
    noise correlated with phi_d's as in the data. Fitting replicates shows how much the
    estimate moves under the data's own noise, where that noise is.
    """
    obs = np.stack([fields.phi_d, fields.phi_w]).astype(np.float64)
    anchor = getattr(prob, "anchor_np", None)
    if anchor is None:
        anchor = np.stack(denoise_fields(fields.phi_d, fields.phi_w, prob.mask_np, prob.noise,
                                         method="tv", strength=config.prior.field_prior_strength))
    window = (config.prior.test_window_um or 0.15) / prob.pixel_um
    sd_d = noise_map(obs[0], prob.mask_np, window)
    sd_w = noise_map(obs[1], prob.mask_np, window)
    res = (obs - anchor)[:, prob.mask_np]
    rho = float(np.corrcoef(res)[0, 1]) if res.shape[1] > 2 and np.all(res.std(axis=1) > 0) else 0.0
    rho = float(np.clip(np.nan_to_num(rho), -1.0, 1.0))
    rng = np.random.default_rng([seed, 7919])
    e1, e2 = rng.standard_normal((2,) + obs.shape[1:])
    phi_d = anchor[0] + sd_d * e1
    phi_w = anchor[1] + sd_w * (rho * e1 + np.sqrt(1.0 - rho * rho) * e2)
    # the observation's meta travels with the replicate (its blur, fit.blur)
    return PhaseFields(phi_w=phi_w, phi_d=phi_d, mask=fields.mask,
                       pixel_size_nm=fields.pixel_size_nm, origin_nm=fields.origin_nm,
                       meta=dict(fields.meta))


def _assemble(prob: _Problem, field_net, rate_net):
    """Rate, fitted phi_d and residual on the whole grid, tile by tile, without gradients."""
    ny, nx = prob.grid.ny, prob.grid.nx
    rate = np.full((ny, nx), np.nan)
    fitted = np.full((ny, nx), np.nan)
    resid = np.full((ny, nx), np.nan)
    terms_acc: dict[str, float] = {}
    with _evaluation(prob):
        for w in prob.tiles(prob.config.training.patch_size):
            _, terms, (f, lam, r) = prob.losses(field_net, rate_net, w)
            iy, ix = w.inner()
            rate[iy, ix] = lam.detach().cpu().numpy()
            fitted[iy, ix] = f.detach().cpu().numpy()
            resid[iy, ix] = r.detach().cpu().numpy()
            for k, v in terms.items():
                terms_acc[k] = terms_acc.get(k, 0.0) + float(v.detach()) * (w.nh * w.nw) / (ny * nx)
    return rate, fitted, resid, terms_acc


def _single_fit_rate_std(fields: PhaseFields, config: FitConfig, rate: np.ndarray,
                         trusted: np.ndarray, closed_config: FitConfig,
                         report_radius_px: float | None = None) -> np.ndarray:
    """``rate_std`` of a single fit: a noise part and the smoothing bias of a rate that
    answers a residual tested against the window (the window smooths it twice), in
    quadrature (:mod:`chromarate.fit.uncertainty`).

    The noise part is the local RMS disagreement of the fit with the windowed closed form
    on the same fields and settings (over ``SPLIT_HALF_SMOOTHING_WINDOWS`` test windows):
    two estimators of the same map whose difference holds the closed form's noise and what
    the fit's prior moves it away from the data's answer. The residual sandwich
    (:func:`chromarate.fit.direct.sandwich_std`) stands in where the closed form is
    undefined; ``closed_config`` (:func:`chromarate.fit.direct.closed_form_settings`) is
    the closed form the quality gate compares the fit with. On its own the sandwich was 2-5
    times too wide, because the fitted map absorbs the low-frequency noise that sets the
    interval (docs/numerics.md)."""
    terms = rate_terms(fields, config)
    std, window = sandwich_std(fields, config, terms, rate, report_radius_px)
    closed = invert_direct(fields, closed_config).rate
    apart = local_rms(np.asarray(rate, np.float64) - closed, trusted,
                      SPLIT_HALF_SMOOTHING_WINDOWS * window)
    noise = np.where(np.isfinite(apart), apart, std)
    bias = smoothing_bias(rate, trusted, window, passes=2)
    return np.where(trusted, interval_std(noise, bias), np.nan)


def iter_fit(fields: PhaseFields, config: FitConfig = FitConfig(), *,
             device: str | None = None, monitor=None,
             halves: tuple[PhaseFields, PhaseFields] | None = None
             ) -> Iterator[FitProgress | FitDone]:
    """Fit the rate map of one nucleus, yielding progress events.

    Parameters
    ----------
    fields : PhaseFields
        Observed phase fields of one nucleus.
    config : FitConfig
    device : str, optional
        Overrides ``config.device`` ("auto", "cpu", "cuda:0", ...).
    monitor : callable, optional
        ``monitor(step, rate_map)`` is called at every logged step, before the progress
        event; ``rate_map()`` returns the rate network's current map on the grid (numpy,
        NaN outside the nucleus; the rate network is evaluated at every pixel, not on the
        lattice). For convergence studies and live previews; time spent in it counts in
        the fit's timings.
    halves : (PhaseFields, PhaseFields), optional
        Fields of two independent halves of the localizations on the same grid (the
        pipeline's split). With ``fit.prior.rate_prior="auto"`` they decide the prior:
        the closed form when its departure from the balance estimate, in the part the
        halves share, is at least
        :data:`chromarate.fit.chromatin_problem.DEPARTURE_RATIO` times the balance
        estimate's reproducible variation (:func:`chromarate.fit.prior.departure_ratio`,
        recorded as ``prior_departure``) or, below that, when the same shared departure
        is at least ``fit.prior.shared_departure_limit`` of the rate
        (:func:`chromarate.fit.prior.shared_departure`, recorded as
        ``prior_shared_departure``; the record then says ``prior_ambiguous``); without
        them, or on fields whose density-scale
        calibration was skipped (``meta["calibration"]["method"] == "none"``), the sign
        of ``prior_agreement`` decides.

    Yields
    ------
    FitProgress
        Every ``config.training.log_every`` steps and at the last step of each ensemble member.
    FitDone
        Once, at the end, with the :class:`FitResult`.

    Raises
    ------
    FitDivergedError
        If the loss becomes non-finite (the message names the step and the terms).
    StageError
        If the fields are inconsistent or the nucleus is too small for the mollifier.
    """
    check_fields(fields)
    if config.method == "direct":
        yield FitDone(invert_direct(fields, config))
        return
    t_start = time.perf_counter()
    given = config
    config, chosen = choose_regularisation(fields, config)
    dev = resolve_device(device if device is not None else config.device)
    dtype = resolve_dtype(config.dtype)
    report = chosen.get("report_radius_px")
    prob = _Problem(fields, config, dev, dtype, report_radius=report, halves=halves)
    decided = prob  # the build that read the halves' figures and chose the prior
    if _balance_kept(prob, config, chosen):
        config, chosen = hold_to_balance(given, config, chosen,
                                         config.prior.balance_kept_smoothness)
        # built again with the prior fixed (no second departure figure): 0.09 s against
        # the 0.7 s of the first build with the halves on a simulate nucleus
        prob = _Problem(fields, _with_prior(config, "balance"), dev, dtype,
                        radius_noise=(decided.radius, decided.noise), report_radius=report)
    elif decided.closed_variation is not None:
        config, chosen = raise_smoothness_floor(config, chosen, decided.closed_variation)
        if config.prior.rate_smoothness != decided.config.prior.rate_smoothness:
            prob = decided.with_smoothness(config.prior.rate_smoothness)
    chosen = {**chosen, "rate_prior": prob.rate_prior,
              "prior_agreement": decided.prior_agreement,
              "prior_departure": decided.prior_departure,
              "prior_shared_departure": decided.prior_shared_departure,
              **({"prior_ambiguous": True} if decided.prior_ambiguous else {}),
              "balance_window_um": prob.balance_sigma_um}
    history: dict[str, list] = {"step": [], "loss": [], "data": [], "residual": [], "smooth": []}
    timings: dict[str, float] = {}
    rates, fitted_all, resid_all, terms_all = [], [], [], []
    t_train = time.perf_counter()
    for member in range(config.uncertainty.ensemble):
        nets = None
        member_prob = prob if member == 0 or config.uncertainty.method == "seeds" else \
            _Problem(_bootstrap_fields(fields, prob, config.seed + member, config),
                     _with_prior(config, prob.rate_prior), dev, dtype,
                     radius_noise=(prob.radius, prob.noise), report_radius=report)
        for item in _train_member(member_prob, config.seed + member, member, t_start, history,
                                  timings, monitor):
            if isinstance(item, FitProgress):
                yield item
            else:
                nets = item
        rate, fitted, resid, terms = _assemble(member_prob, *nets)
        rates.append(rate)
        fitted_all.append(fitted)
        resid_all.append(resid)
        terms_all.append(terms)
    train_s = time.perf_counter() - t_train
    # residuals are scored on prob.trusted_np; the rate is reported as trusted where the
    # data determine it (prob.rate_trusted_np, a subset)
    mask_np, trusted_np = prob.mask_np, prob.rate_trusted_np
    if config.uncertainty.method == "seeds" or len(rates) == 1:
        rate = np.mean(rates, axis=0)
        rate_std = np.std(rates, axis=0, ddof=1) if len(rates) > 1 else None
    else:  # parametric bootstrap: estimate from the data, spread of the replicates about it
        rate = rates[0]
        rate_std = np.sqrt(np.mean([(r - rate) ** 2 for r in rates[1:]], axis=0))
    rate_std_source = None if rate_std is None else config.uncertainty.method
    if rate_std is None and config.prior.test_window_um is not None:
        rate_std_source = "disagreement"
        t_unc = time.perf_counter()
        rate_std = _single_fit_rate_std(fields, config, rate, trusted_np,
                                        closed_form_settings(given, chosen, prob.radius), report)
        timings["uncertainty"] = time.perf_counter() - t_unc
    result = FitResult(
        rate=np.where(mask_np, rate, np.nan).astype(np.float32),
        phi_d_fit=np.mean(fitted_all, axis=0).astype(np.float32),
        residual=np.where(prob.trusted_np, np.mean(resid_all, axis=0), np.nan).astype(np.float32),
        trusted=trusted_np,
        rate_std=None if rate_std is None else np.where(mask_np, rate_std, np.nan).astype(np.float32),
        history=history,
        timings={"fit": time.perf_counter() - t_start, "train": train_s, **timings},
        device=describe_device(dev),
        config=config.model_dump(mode="json"),
        meta={"method": "pinn", "residual_form": config.residual_form,
              "mollifier_radius_px": prob.radius, "noise_phi_d": prob.noise,
              "initial_rate": prob.initial_rate, "ensemble": config.uncertainty.ensemble,
              "residual_pixels": int(prob.trusted_np.sum()),
              "test_window_px": prob.window_px,
              "rate_std_source": rate_std_source,
              "regularisation": chosen,
              "observation_blur_nm": observation_blur_nm(fields.meta, config.observation_blur_nm),
              "final_terms": {k: float(np.mean([t[k] for t in terms_all])) for k in terms_all[0]},
              "final_loss": float(history["loss"][-1]) if history["loss"] else None},
    )
    yield FitDone(result)


def fit_rates(fields: PhaseFields, config: FitConfig = FitConfig(), *,
              device: str | None = None,
              halves: tuple[PhaseFields, PhaseFields] | None = None) -> FitResult:
    """Infer the rate map lambda = Gamma_me / Gamma_ac of one nucleus.

    Plain wrapper over :func:`iter_fit` (see there for parameters).

    Returns
    -------
    FitResult
    """
    for event in iter_fit(fields, config, device=device, halves=halves):
        if isinstance(event, FitDone):
            return event.result
    raise RuntimeError("iter_fit ended without a result")  # pragma: no cover
