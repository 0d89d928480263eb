"""PINN fit of any registered benchmark problem, trained by the one engine.

A coordinate network ``u_theta`` (tanh MLP, optionally with random Fourier features; its
inputs are scaled to [-1, 1] and its output to the data range) and a separate positive
network ``lambda_theta`` (softplus, started at the plug-in's derivative-free constant
estimate). Loss, each term dimensionless::

    data     = mean |u_fit - u_obs|^2 / range(u_obs)^2   (u_fit mollified for the mollifier backend)
    residual = mean_interior r^2 / s^2                   (s: the plug-in's residual scale)
    smooth   = mean |grad lambda|^2 L^2 / lambda0^2      (L: domain length)
    loss     = data_weight data + residual_weight residual + smooth_weight smooth

Derivatives come from a backend: in 2-D :func:`chromarate.fit.derivatives.make_backend`
("autograd", "finite-difference", "spectral") or, for "mollifier", a
:class:`~chromarate.fit.derivatives.MollifierBackend` with kernels up to the plug-in's
order only (``make_backend`` builds orders up to 4 for the chromatin problem, i.e. a higher
polynomial degree and wider kernels than a second-order problem needs); in 1-D the
backends of :mod:`.backends_1d` with the same interface. Every backend gets the same
networks, seeds, steps and collocation points: the residual is scored, and the metrics
computed, on the nodes at least :func:`problem_margin` from the boundary; the data term
uses every node. Training: :func:`chromarate.fit.engine.train` (Adam, cosine decay to 5 %
of the learning rate, optional L-BFGS polish).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...device import resolve_device
from ...errors import ConfigError
from ..derivatives import Grid, MollifierBackend, make_backend
from ..engine import ParamGroup, TrainSettings, train
from ..mollifier import make_kernels
from ..networks import FourierMLP, PirateNet, RateNetwork
from .backends_1d import Grid1D, make_backend_1d, mollifier_kernels_1d
from .base import get_plugin, interior_mask, metrics

__all__ = ["ProblemFit", "fit_problem", "problem_margin"]


class _Scaled(nn.Module):
    """``out_offset + out_scale * inner((x - centre) / half_width)``; 1-D inputs get a zero column.

    Keeps the networks' inputs in [-1, 1] and outputs O(1) while the backends differentiate
    with respect to the physical coordinates. ``FourierMLP`` takes 2-D inputs; a 1-D
    coordinate is lifted to ``(s, 0)`` (the zero column only adds unused weights).
    """

    def __init__(self, inner: nn.Module, centre, half_width: float, out_scale: float = 1.0,
                 out_offset: float = 0.0) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("centre", torch.as_tensor(np.asarray(centre, dtype=np.float64)).view(1, -1))
        self.half_width = float(half_width)
        self.out_scale = float(out_scale)
        self.out_offset = float(out_offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x - self.centre) / self.half_width
        if s.shape[-1] == 1:
            s = torch.cat([s, torch.zeros_like(s)], dim=-1)
        return self.out_offset + self.out_scale * self.inner(s)


@dataclass(frozen=True, eq=False)
class ProblemFit:
    """Outcome of :func:`fit_problem`.

    Attributes
    ----------
    problem : str
        The problem's kind ("heat", "langevin", "allen-cahn", ...).
    backend, network : str
    lambda_hat : ndarray
        Estimated parameter on the problem grid (all nodes).
    u_fit : ndarray
        Fitted field on the grid (mollified for the mollifier backend).
    lambda_from_u : ndarray
        The plug-in's closed form applied to the fitted u with the backend's derivatives: a
        diagnostic of how much of the error comes from the u fit and how much from the
        lambda network.
    interior : ndarray of bool
        Nodes at least one kernel radius from the boundary: residual collocation points and
        where the metrics are computed.
    correlation, rel_l2 : float
        Pearson correlation and ||lambda_hat - lambda|| / ||lambda|| over ``interior``.
    correlation_from_u, rel_l2_from_u : float
        The same for ``lambda_from_u``.
    time_per_step_s, train_s, total_s : float
        Mean optimiser step time, training time, total time including setup.
    history : dict of list
        ``step``, ``loss``, ``data``, ``residual``, ``smooth`` every ``log_every`` steps.
    steps, seed : int
    radius_px : float
    device, dtype : str
    settings : dict
        The remaining fit settings.
    """

    problem: str
    backend: str
    network: str
    lambda_hat: np.ndarray
    u_fit: np.ndarray
    lambda_from_u: np.ndarray
    interior: np.ndarray
    correlation: float
    rel_l2: float
    correlation_from_u: float
    rel_l2_from_u: float
    time_per_step_s: float
    train_s: float
    total_s: float
    history: dict
    steps: int
    seed: int
    radius_px: float
    device: str
    dtype: str
    settings: dict = field(default_factory=dict)


def problem_margin(problem, radius_px: float, *, kernel: str = "bump", degree: int | None = None) -> int:
    """Interior margin (nodes) for a mollifier radius: ``max(ceil(radius), kernel half-width)``.

    The half-width is that of the mollifier kernels the fit uses for this problem (orders up
    to the plug-in's ``max_order``, each a central difference composed with the mollifier,
    so a few nodes wider than the radius). Every backend scores the residual and the
    metrics on the nodes at least this far from the boundary.
    """
    plugin = get_plugin(problem.kind)
    if plugin.ndim == 2:
        half = make_kernels(kernel, radius_px, degree=degree, max_order=plugin.max_order,
                            pixel=plugin.spacing(problem)).half_width
    else:
        half = (len(mollifier_kernels_1d(kernel, radius_px, max_order=plugin.max_order,
                                         degree=degree)[0]) - 1) // 2
    return max(int(math.ceil(radius_px)), half)


def _resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"unsupported dtype {dtype}; use float32 or float64")
        return dtype
    table = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in table:
        raise ConfigError(f"unsupported dtype {dtype!r}; use float32 or float64")
    return table[dtype]


def _backend(plugin, problem, backend, radius, kernel, degree, dev, dt):
    """(grid, derivative backend) of a problem."""
    pixel = plugin.spacing(problem)
    if plugin.ndim == 1:
        be = make_backend_1d(backend, pixel=pixel, device=dev, dtype=dt, kernel=kernel,
                             radius_px=radius, degree=degree, max_order=plugin.max_order)
        return Grid1D(problem.shape[0], pixel, 0.0), be
    if backend == "mollifier":
        be = MollifierBackend(make_kernels(kernel, radius, degree=degree, max_order=plugin.max_order,
                                           pixel=pixel), dev, dt)
    else:
        be = make_backend(backend, pixel=pixel, device=dev, dtype=dt, kernel=kernel, radius_px=radius,
                          degree=degree)
    return Grid(*problem.shape, pixel, 0.0, 0.0), be


def _smoothness(lam: torch.Tensor, pixel: float) -> torch.Tensor:
    """Mean squared gradient of lambda (forward differences; 2-D: mean of both axes)."""
    if lam.ndim == 1:
        return (((lam[1:] - lam[:-1]) / pixel) ** 2).mean()
    gy = (lam[1:, :] - lam[:-1, :]) / pixel
    gx = (lam[:, 1:] - lam[:, :-1]) / pixel
    return 0.5 * ((gy**2).mean() + (gx**2).mean())


def fit_problem(problem, *, backend: str, network: str = "mlp", steps: int = 1000, lr: float = 1e-2,
                seed: int = 0, radius_px: float | None = None, kernel: str = "bump",
                degree: int | None = None, device="cpu", dtype=torch.float32, width: int = 64,
                depth: int = 3, n_fourier: int = 32, fourier_scale: float | None = None,
                data_weight: float = 1.0, residual_weight: float | None = None,
                smooth_weight: float = 1e-4, lbfgs_steps: int = 0, log_every: int = 50,
                blocks: int | None = None, monitor=None) -> ProblemFit:
    """Fit a PINN (u network + positive lambda network) to a benchmark problem.

    Parameters
    ----------
    problem : Problem
        Made by a registered plug-in (``problem.kind`` names it), e.g. a
        :class:`~chromarate.fit.problems.HeatProblem` or
        :class:`~chromarate.fit.problems.LangevinProblem`.
    backend : str
        Derivative backend: 2-D "mollifier", "autograd", "finite-difference", "spectral";
        1-D "mollifier", "autograd", "finite-difference".
    network : {"mlp", "fourier", "pirate"}
        u network: plain tanh MLP on the scaled coordinates, or with ``n_fourier`` random
        Fourier features of std ``fourier_scale``, or a PirateNet of ``blocks`` gated blocks
        (default ``depth - 1``).
    steps, lr, seed
        Adam steps (cosine decay to 5 % of ``lr``), learning rate, seed of the initial weights.
    radius_px : float, optional
        Mollifier radius in nodes (default: the plug-in's, 6 for heat, 8 for Langevin).
        Also sets the interior margin (:func:`problem_margin`) for every backend, so all
        backends share the collocation points and the scored region.
    kernel, degree
        Mollifier weight and polynomial degree (see :mod:`chromarate.fit.mollifier`).
    device, dtype
        Where and in which precision to train (``device``: a torch device or a string for
        :func:`chromarate.device.resolve_device`, e.g. "cpu", "cuda", "auto"; ``dtype``: a
        torch dtype or "float32"/"float64").
    width, depth : int
        u network size (the lambda network is 32 wide, 2 deep).
    data_weight, residual_weight, smooth_weight : float
        Loss weights (terms defined in the module docstring); ``residual_weight`` defaults to
        the plug-in's (0.01 for heat, 1 for Langevin).
    lbfgs_steps : int
        Optional L-BFGS iterations after the Adam steps (0: none).
    log_every : int
        History interval.
    blocks : int, optional
        PirateNet blocks (``network="pirate"`` only).
    monitor : callable, optional
        ``monitor(step, train_s, rate_map)`` at every logged step: ``train_s`` is the
        training time so far (the monitor's own time excluded, also from ``train_s`` of the
        result), ``rate_map()`` the current lambda on the grid (numpy).

    Returns
    -------
    ProblemFit
    """
    plugin = get_plugin(getattr(problem, "kind", None))
    if network not in ("mlp", "fourier", "pirate"):
        raise ConfigError(f"unknown network {network!r}; use mlp, fourier or pirate")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    t_start = time.perf_counter()
    defaults = plugin.defaults
    radius = float(defaults["radius_px"] if radius_px is None else radius_px)
    fscale = float(defaults["fourier_scale"] if fourier_scale is None else fourier_scale)
    if residual_weight is None:
        residual_weight = defaults["residual_weight"]
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    dt = _resolve_dtype(dtype)
    gen = torch.Generator().manual_seed(int(seed))

    margin = problem_margin(problem, radius, kernel=kernel, degree=degree)
    interior_np = interior_mask(problem.shape, margin)
    if interior_np.sum() < 16:
        raise ConfigError(f"radius {radius:g} leaves fewer than 16 interior nodes on a grid of "
                          f"{problem.shape}")
    interior = torch.as_tensor(interior_np, device=dev)
    obs = torch.tensor(np.array(problem.u_obs), device=dev, dtype=dt)
    u_range = float(np.ptp(problem.u_obs)) or 1.0
    u_mean = float(np.mean(problem.u_obs))
    lam0 = max(plugin.initial_rate(problem), 1e-2)
    grid, be = _backend(plugin, problem, backend, radius, kernel, degree, dev, dt)
    pixel = plugin.spacing(problem)
    centre, half, length = plugin.extent(problem)
    known = plugin.known(problem, dev, dt)
    r_scale = plugin.residual_scale(problem, lam0)

    n_f = n_fourier if network == "fourier" else 0
    if network == "pirate":
        inner = PirateNet(1, width=width, n_blocks=blocks or max(depth - 1, 1), scale_per_um=fscale,
                          generator=gen)
    else:
        inner = FourierMLP(1, width=width, depth=depth, n_fourier=n_f, scale_per_um=fscale, generator=gen)
    u_net = _Scaled(inner, centre, half, out_scale=u_range, out_offset=u_mean)
    rate_net = _Scaled(RateNetwork(initial_rate=lam0, width=32, depth=2, n_fourier=defaults["rate_fourier"],
                                   scale_per_um=defaults["rate_scale"], generator=gen), centre, half)
    u_net = u_net.to(device=dev, dtype=dt)
    rate_net = rate_net.to(device=dev, dtype=dt)
    coords = grid.coords(dev, dt)

    def losses(closed_form: bool = False):
        ops = {k: v[0] for k, v in be.fields(u_net, grid, plugin.derivatives).items()}
        lam = rate_net(coords).view(problem.shape)
        r = plugin.residual(ops, lam, known)
        data = ((ops["u"] - obs) ** 2).mean() / u_range**2
        res = (r[interior] ** 2).mean() / r_scale**2
        smooth = _smoothness(lam, pixel) * length**2 / lam0**2
        total = data_weight * data + residual_weight * res + smooth_weight * smooth
        closed = plugin.closed_form(ops, known) if closed_form else None
        return total, {"data": data, "residual": res, "smooth": smooth}, (ops["u"], lam, closed)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def rate_map():
        with torch.no_grad():
            return rate_net(coords).view(problem.shape).cpu().numpy().astype(np.float64)

    spent = [0.0]  # time inside the monitor, not training

    def watch(step):
        sync()
        t0 = time.perf_counter()
        monitor(step, t0 - t_train - spent[0], rate_map)
        spent[0] += time.perf_counter() - t0

    t_train = time.perf_counter()
    done = train([ParamGroup(list(u_net.parameters()) + list(rate_net.parameters()), lr)],
                 lambda step: losses()[:2],
                 TrainSettings(steps=steps, eta_min=0.05 * lr, log_every=log_every,
                               lbfgs_steps=lbfgs_steps, lbfgs_history=50, lbfgs_tolerance_grad=0.0,
                               lbfgs_tolerance_change=0.0),
                 monitor=None if monitor is None else watch)
    sync()
    train_s = time.perf_counter() - t_train - spent[0]

    # the autograd backends need gradients enabled to differentiate the network
    _, _, (u, lam, closed) = losses(closed_form=True)
    lam_np = lam.detach().cpu().numpy().astype(np.float64)
    u_np = u.detach().cpu().numpy().astype(np.float64)
    closed_np = closed.detach().cpu().numpy().astype(np.float64)
    corr, rel = metrics(lam_np, problem.lambda_true, interior_np)
    corr_u, rel_u = metrics(closed_np, problem.lambda_true, interior_np)
    return ProblemFit(
        problem=problem.kind, backend=backend, network=network, lambda_hat=lam_np, u_fit=u_np,
        lambda_from_u=closed_np, interior=interior_np, correlation=corr, rel_l2=rel,
        correlation_from_u=corr_u, rel_l2_from_u=rel_u, time_per_step_s=train_s / steps,
        train_s=train_s, total_s=time.perf_counter() - t_start,
        history={k: done.history.get(k, []) for k in ("step", "loss", "data", "residual", "smooth")},
        steps=int(steps), seed=int(seed), radius_px=radius, device=str(dev),
        dtype=str(dt).replace("torch.", ""),
        settings={"lr": lr, "kernel": kernel, "degree": degree, "width": width, "depth": depth,
                  "blocks": blocks,
                  "n_fourier": n_f, "fourier_scale": fscale, "data_weight": data_weight,
                  "residual_weight": residual_weight, "smooth_weight": smooth_weight,
                  "initial_rate": lam0, "margin": margin},
    )
