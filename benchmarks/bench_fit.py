"""One optimisation step of the fit's strong-form chromatin loss per derivative backend."""

from __future__ import annotations

from ._common import PIXEL_NM, one_torch_thread, smooth_fields

#: Mollifier radius (px) of the ``mollifier`` backend: the radius of experiments/backends.py.
RADIUS_PX = 8.0

#: Adam steps of the engine's schedule: more than asv ever times, so the events never end.
ENGINE_STEPS = 10**9


class FitStep:
    """One step of the fit's training engine (``chromarate.fit.engine.iter_train``: forward,
    backward, Adam update, schedule) of ``data + mean(r^2) / s^2`` on the pixel
    grid of a ``side`` x ``side`` synthetic field at 10 nm, ``r`` the fourth-order
    ``chromarate.fit.physics.chromatin_residual`` of the fields and derivatives that the
    backend (``chromarate.fit.derivatives.make_backend``) returns for a ``FourierMLP`` of the
    default ``NetworkConfig`` sizes (2 outputs), with a constant rate parameter. One torch
    thread; one untimed warm-up step in setup.

    All four backends on 24 x 24 (nested autograd needs about 0.7 MB per point at these
    sizes, experiments/fit_cpu.py); the grid backends also on 96 x 96. A larger autograd grid
    does not fit a micro-benchmark: experiments/backends.py and experiments/scaling.py say
    how far it goes.
    """

    params = (["mollifier", "finite-difference", "spectral", "autograd"], [24, 96])
    param_names = ["backend", "side"]
    timeout = 120

    def setup(self, backend, side):
        if backend == "autograd" and side > 32:
            raise NotImplementedError("nested autograd: too much memory for a micro-benchmark")
        import numpy as np
        import torch

        from chromarate.config import FitConfig
        from chromarate.fit.derivatives import make_backend, make_grid
        from chromarate.fit.engine import ParamGroup, TrainSettings, iter_train
        from chromarate.fit.loop import FIELD_DERIVATIVES
        from chromarate.fit.networks import FourierMLP
        from chromarate.fit.physics import ChromatinParams, chromatin_residual

        one_torch_thread()
        cfg = FitConfig()
        dtype = torch.float32
        pixel_um = PIXEL_NM / 1000.0
        params = ChromatinParams.from_config(cfg.physics)
        deriv = make_backend(backend, pixel=pixel_um, device=torch.device("cpu"), dtype=dtype,
                             radius_px=RADIUS_PX)
        phi_d, phi_w, mask_np = smooth_fields(side)
        grid = make_grid((side, side), pixel_um)
        obs = torch.as_tensor(np.stack([phi_d, phi_w]), dtype=dtype)
        mask = torch.as_tensor(mask_np)
        phi_h = 0.5 * (1 - phi_w + phi_d)[mask_np]
        phi_e = 0.5 * (1 - phi_w - phi_d)[mask_np]
        scale_r = max(2.0 * float(phi_h.mean()), 1e-3)
        sigma = 0.01
        n = cfg.network
        net = FourierMLP(2, width=n.width, depth=n.depth, n_fourier=n.fourier_features,
                         scale_per_um=n.fourier_scale_per_um,
                         generator=torch.Generator().manual_seed(0))
        base = obs[:, mask].mean(dim=1).view(1, 2)

        class Field(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.mlp = net

            def forward(self, xy):
                return self.mlp(xy) + base

        field = Field()
        rate = torch.nn.Parameter(torch.tensor(float(phi_h.mean() / max(phi_e.mean(), 1e-3)),
                                               dtype=dtype))

        def loss_fn(_step):
            f = deriv.fields(field, grid, FIELD_DERIVATIVES)
            r = chromatin_residual({k: v[0] for k, v in f.items()},
                                   {k: v[1] for k, v in f.items()}, rate, params)
            loss = ((f["u"] - obs) ** 2)[:, mask].mean() / sigma**2 + (r**2).mean() / scale_r**2
            return loss, {}

        # the fit's training engine, one Adam step per event (a schedule far longer than asv
        # runs, so the learning rate stays at its peak)
        groups = [ParamGroup(list(field.parameters()) + [rate], cfg.training.learning_rate)]
        events = iter_train(groups, loss_fn, TrainSettings(steps=ENGINE_STEPS, log_every=1))
        self.step = lambda: next(events)
        self.step()  # warm-up: lazy initialisation of torch kernels, not timed

    def time_step(self, backend, side):
        self.step()

    def peakmem_step(self, backend, side):
        self.step()
