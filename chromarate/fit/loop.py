"""The mollifier-layer PINN fit, written once as a generator of events.

``iter_fit`` yields :class:`~chromarate._types.FitProgress` events while it trains and a
final :class:`~chromarate._types.FitDone` carrying the :class:`FitResult`; ``fit_rates``
is the plain wrapper. Device and dtype come from the config (or the ``device`` argument);
all tensors are created on that device, never through global defaults.

Model: a Fourier-feature MLP ``g`` gives the two phase fields (phi_d, phi_w) on the grid plus
a halo; the mollifier layer turns ``g`` into the mollified fields and their derivatives with
one convolution per operator; a separate, low-frequency network gives lambda >= 0
(softplus). Loss, each term normalised so that 1 means "at the expected size"::

    data     = mean_mask |u - observed|^2 / sigma^2        (sigma: pixel noise of phi_d)
    residual = mean_trusted r^2 / s^2                       (s: size of the reaction term)
    smooth   = mean_mask |grad lambda|^2                    (um^-2)
    loss     = data_weight * data + residual_weight * residual + rate_smoothness * smooth
"""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np
import torch

from .._types import FitDone, FitProgress, FitResult, PhaseFields
from ..config import FitConfig
from ..device import describe_device, resolve_device, resolve_dtype
from ..errors import FitDivergedError, StageError
from .derivatives import MollifierBackend, make_grid
from .direct import invert_direct, resolve_radius
from .mollifier import make_kernels
from .networks import FourierMLP, RateNetwork
from .physics import ChromatinParams, chromatin_residual, chromatin_weak_residual
from .width import trusted_mask

__all__ = ["iter_fit", "fit_rates", "FIELD_DERIVATIVES"]

#: Operators of the fields the chromatin residual needs.
FIELD_DERIVATIVES = ("u", "u_x", "u_y", "lap", "bilap")


class _FieldNet(torch.nn.Module):
    """Fourier MLP for (phi_d, phi_w) around a constant base state."""

    def __init__(self, base: torch.Tensor, config: FitConfig, generator: torch.Generator) -> None:
        super().__init__()
        n = config.network
        self.mlp = FourierMLP(2, width=n.width, depth=n.depth, n_fourier=n.fourier_features,
                              scale_per_um=n.fourier_scale_per_um, generator=generator)
        if n.parameterization == "anchored":
            with torch.no_grad():  # the correction starts at exactly zero
                self.mlp.head.weight.zero_()
        self.register_buffer("base", base)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.mlp(xy) + self.base


def _check_fields(fields: PhaseFields) -> None:
    if fields.phi_d.shape != fields.phi_w.shape or fields.phi_d.shape != fields.mask.shape:
        raise StageError("phi_d, phi_w and mask must have the same shape")
    if not fields.mask.any():
        raise StageError("the nucleus mask is empty")
    for name in ("phi_d", "phi_w"):
        a = getattr(fields, name)[fields.mask]
        if not np.all(np.isfinite(a)):
            raise StageError(f"{name} has non-finite values inside the nucleus")


def iter_fit(fields: PhaseFields, config: FitConfig = FitConfig(), *,
             device: str | None = None) -> Iterator[FitProgress | FitDone]:
    """Fit the rate map of one nucleus, yielding progress events.

    Parameters
    ----------
    fields : PhaseFields
        Observed phase fields of one nucleus.
    config : FitConfig
    device : str, optional
        Overrides ``config.device`` ("auto", "cpu", "cuda:0", ...).

    Yields
    ------
    FitProgress
        Every ``config.log_every`` steps and at the last step.
    FitDone
        Once, at the end, with the :class:`FitResult`.

    Raises
    ------
    FitDivergedError
        If the loss becomes non-finite (the message names the step and the terms).
    """
    _check_fields(fields)
    if config.method == "direct":
        yield FitDone(invert_direct(fields, config))
        return
    t_start = time.perf_counter()
    dev = resolve_device(device if device is not None else config.device)
    dtype = resolve_dtype(config.dtype)
    gen = torch.Generator().manual_seed(int(config.seed))

    pixel_um = fields.pixel_size_nm / 1000.0
    radius, noise = resolve_radius(fields, config)
    kernels = make_kernels(config.mollifier.kernel, radius, degree=config.mollifier.degree,
                           max_order=4, pixel=pixel_um)
    backend = MollifierBackend(kernels, dev, dtype, method=config.mollifier.method)
    grid = make_grid(fields.shape, pixel_um)
    params = ChromatinParams.from_config(config.physics)

    mask_np = np.asarray(fields.mask, dtype=bool)
    trusted_np = trusted_mask(mask_np, radius)
    if trusted_np.sum() < 16:
        raise StageError(
            f"nucleus too small for mollifier radius {radius:g} px: fewer than 16 pixels lie "
            "one radius inside the envelope; use a smaller radius or smaller pixels"
        )
    obs_np = np.stack([fields.phi_d, fields.phi_w])
    obs = torch.as_tensor(obs_np, device=dev, dtype=dtype)
    mask = torch.as_tensor(mask_np, device=dev)
    trusted = torch.as_tensor(trusted_np, device=dev)
    phi_h_mean = float(np.mean(fields.phi_h[mask_np]))
    phi_e_mean = float(np.mean(fields.phi_e[mask_np]))
    initial_rate = phi_h_mean / max(phi_e_mean, 1e-3)
    span = float(np.ptp(fields.phi_d[mask_np])) or 1.0
    sigma = max(noise, 1e-3 * span)
    scale_r = max(2.0 * phi_h_mean, 1e-3)

    halo = backend.halo
    anchored = config.network.parameterization == "anchored"
    if anchored:
        base = torch.zeros(1, 2, device=dev, dtype=dtype)
        padded = np.pad(obs_np, ((0, 0), (halo, halo), (halo, halo)), mode="reflect")
        offset = torch.as_tensor(padded, device=dev, dtype=dtype)
    else:
        base = torch.as_tensor(obs_np[:, mask_np].mean(axis=1), device=dev, dtype=dtype).view(1, 2)
        offset = None
    field_net = _FieldNet(base, config, gen).to(device=dev, dtype=dtype)
    rate_net = RateNetwork(initial_rate=initial_rate, width=32, depth=2,
                           n_fourier=config.rate_fourier_features,
                           scale_per_um=config.rate_fourier_scale_per_um,
                           generator=gen).to(device=dev, dtype=dtype)
    weak = config.residual_form == "weak"
    pgrid = grid.padded(halo)
    xy_pad = pgrid.coords(dev, dtype)
    xy_rate = xy_pad if weak else grid.coords(dev, dtype)
    inner_sl = (slice(halo, halo + grid.ny), slice(halo, halo + grid.nx))

    def conv(name, field):
        return backend.convolve(field.unsqueeze(0), (name,))[name][0]
    opt = torch.optim.Adam(list(field_net.parameters()) + list(rate_net.parameters()),
                           lr=config.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps,
                                                       eta_min=0.05 * config.learning_rate)
    inner = mask[1:, :] & mask[:-1, :]
    inner_x = mask[:, 1:] & mask[:, :-1]

    def losses():
        if weak:
            g = field_net(xy_pad).T.reshape(2, pgrid.ny, pgrid.nx)
            if offset is not None:
                g = g + offset
            lam_pad = rate_net(xy_rate).view(pgrid.ny, pgrid.nx)
            r = chromatin_weak_residual(conv, g[0], g[1], lam_pad, params)
            lam = lam_pad[inner_sl]
            g_in = g[:, inner_sl[0], inner_sl[1]]
            f = {"u": backend.convolve(g, ("u",))["u"]}
            data = ((g_in - obs) ** 2)[:, mask].mean() / sigma**2
        else:
            f = backend.fields(field_net, grid, FIELD_DERIVATIVES, offset=offset)
            d = {k: v[0] for k, v in f.items()}
            w = {k: v[1] for k, v in f.items()}
            lam = rate_net(xy_rate).view(grid.ny, grid.nx)
            r = chromatin_residual(d, w, lam, params)
            data = ((f["u"] - obs) ** 2)[:, mask].mean() / sigma**2
        res = (r[trusted] ** 2).mean() / scale_r**2
        gy = (lam[1:, :] - lam[:-1, :])[inner] / pixel_um
        gx = (lam[:, 1:] - lam[:, :-1])[inner_x] / pixel_um
        smooth = 0.5 * ((gy**2).mean() + (gx**2).mean())
        total = (config.data_weight * data + config.residual_weight * res
                 + config.rate_smoothness * smooth)
        return total, {"data": data, "residual": res, "smooth": smooth}, (f, lam, r)

    history: dict[str, list] = {"step": [], "loss": [], "data": [], "residual": [], "smooth": []}
    t_train = time.perf_counter()
    for step in range(1, config.steps + 1):
        opt.zero_grad(set_to_none=True)
        total, terms, _ = losses()
        if not torch.isfinite(total):
            vals = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            raise FitDivergedError(f"loss became non-finite at step {step} ({vals})")
        total.backward()
        opt.step()
        sched.step()
        if step % config.log_every == 0 or step == config.steps:
            vals = {k: float(v.detach()) for k, v in terms.items()}
            history["step"].append(step)
            history["loss"].append(float(total.detach()))
            for k, v in vals.items():
                history[k].append(v)
            yield FitProgress(step=step, total_steps=config.steps, loss=float(total.detach()), terms=vals,
                              elapsed_s=time.perf_counter() - t_start)
    train_s = time.perf_counter() - t_train

    with torch.no_grad():
        _, terms, (f, lam, r) = losses()
    rate = np.where(mask_np, lam.detach().cpu().numpy().astype(np.float64), np.nan)
    residual = np.where(trusted_np, r.detach().cpu().numpy(), np.nan)
    result = FitResult(
        rate=rate.astype(np.float32),
        phi_d_fit=f["u"][0].detach().cpu().numpy().astype(np.float32),
        residual=residual.astype(np.float32),
        trusted=trusted_np,
        history=history,
        timings={"fit": time.perf_counter() - t_start, "train": train_s},
        device=describe_device(dev),
        config=config.model_dump(mode="json"),
        meta={"method": "pinn", "mollifier_radius_px": radius, "noise_phi_d": noise,
              "initial_rate": initial_rate, "final_terms": {k: float(v) for k, v in terms.items()},
              "final_loss": float(history["loss"][-1]) if history["loss"] else None},
    )
    yield FitDone(result)


def fit_rates(fields: PhaseFields, config: FitConfig = FitConfig(), *,
              device: str | None = None) -> FitResult:
    """Infer the rate map lambda = Gamma_me / Gamma_ac of one nucleus.

    Plain wrapper over :func:`iter_fit` (see there for parameters).

    Returns
    -------
    FitResult
    """
    for event in iter_fit(fields, config, device=device):
        if isinstance(event, FitDone):
            return event.result
    raise RuntimeError("iter_fit ended without a result")  # pragma: no cover
