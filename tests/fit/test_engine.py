"""The one training engine (chromarate.fit.engine) and the fits that run through it.

The chromatin fit's member training moved onto the engine with identical numerics: the
reference below is the hand-written loop it replaced (verbatim apart from names), run on
the same problem, seed and losses; the rate maps must agree exactly.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from chromarate.config import FitConfig, MollifierConfig, NetworkConfig  # noqa: E402
from chromarate.errors import FitDivergedError  # noqa: E402
from chromarate.fit import loop as fit_loop  # noqa: E402
from chromarate.fit.engine import (  # noqa: E402
    ParamGroup,
    TrainDone,
    TrainProgress,
    TrainSettings,
    iter_train,
    train,
)
from chromarate.fit.networks import RateNetwork  # noqa: E402
from chromarate.fit.regularise import rate_fourier_scale  # noqa: E402

from ._helpers import PIXEL_UM, disk_mask, fields_from_state  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _quadratic(target):
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))

    def loss_fn(step):
        d = ((w - target) ** 2).sum()
        return d, {"data": d}

    return w, loss_fn


# ------------------------------------------------------------------------------ engine


def test_engine_trains_logs_and_polishes():
    w, loss_fn = _quadratic(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    seen = []
    events = list(iter_train([ParamGroup([w], 0.1)], loss_fn,
                             TrainSettings(steps=50, log_every=20, lbfgs_steps=5), monitor=seen.append))
    progress = [e for e in events if isinstance(e, TrainProgress)]
    assert [e.step for e in progress] == [20, 40, 50] == seen
    assert isinstance(events[-1], TrainDone) and events[-1].steps_run == 50
    assert progress[-1].loss < progress[0].loss
    assert events[-1].polish_loss < 1e-12  # L-BFGS solves the quadratic
    np.testing.assert_allclose(w.detach().numpy(), [1.0, -2.0, 0.5], atol=1e-6)


def test_engine_groups_have_their_own_learning_rates():
    a = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def loss_fn(step):
        t = ((a - 1) ** 2 + (b - 1) ** 2).sum()
        return t, {}

    train([ParamGroup([a], 1e-3), ParamGroup([b], 1e-2)], loss_fn, TrainSettings(steps=1))
    # Adam's first step moves each parameter by its learning rate
    assert float(a.detach()) == pytest.approx(1e-3) and float(b.detach()) == pytest.approx(1e-2)


def test_engine_stops_on_non_finite_loss_naming_step_and_terms():
    w = torch.nn.Parameter(torch.zeros(2))

    def loss_fn(step):
        r = (w**2).sum() + (float("nan") if step == 4 else 0.0)
        return r, {"residual": r}

    with pytest.raises(FitDivergedError, match=r"loss became non-finite at step 4 \(residual=nan\)"):
        train([ParamGroup([w], 0.1)], loss_fn, TrainSettings(steps=10))


def test_engine_early_stopping_and_history():
    w = torch.nn.Parameter(torch.ones(1))

    def loss_fn(step):  # improves for three steps, then stays flat
        t = (w * 0).sum() + max(1.0, 4.0 - step)
        return t, {"data": t}

    done = train([ParamGroup([w], 0.1)], loss_fn, TrainSettings(steps=100, log_every=50, patience=5))
    assert done.early_stop == 8 and done.steps_run == 8
    assert done.history["step"] == [8] and done.history["data"] == [1.0]


# ------------------------------------------------- chromatin fit: identical to the old loop


def _legacy_train_member(prob, seed):
    """The member training loop before the engine (Adam, cosine, early stopping, L-BFGS)."""
    cfg, dev, dtype = prob.config, prob.dev, prob.dtype
    tr = cfg.training
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(seed)
    field_net = fit_loop._FieldNet(prob.base, cfg, gen).to(device=dev, dtype=dtype)
    rate_net = RateNetwork(initial_rate=prob.initial_rate, width=32, depth=2,
                           n_fourier=cfg.prior.rate_fourier_features,
                           scale_per_um=rate_fourier_scale(cfg.prior),
                           generator=gen).to(device=dev, dtype=dtype)
    params = list(field_net.parameters()) + list(rate_net.parameters())
    opt = torch.optim.Adam([
        {"params": list(field_net.parameters()), "lr": tr.learning_rate},
        {"params": list(rate_net.parameters()), "lr": tr.learning_rate * tr.rate_learning_rate_factor},
    ])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=tr.steps, eta_min=0.0)
    autocast = contextlib.nullcontext
    patched = tr.patch_size is not None and (tr.patch_size < prob.grid.ny or tr.patch_size < prob.grid.nx)
    best, best_step, losses = float("inf"), 0, []
    for step in range(1, tr.steps + 1):
        window = prob.random_window(tr.patch_size, rng) if patched else prob.full_window()
        opt.zero_grad(set_to_none=True)
        total, terms, _ = prob.losses(field_net, rate_net, window, autocast)
        total.backward()
        opt.step()
        sched.step()
        loss = float(total.detach())
        if loss < best * (1.0 - 1e-3):
            best, best_step = loss, step
        stop = tr.early_stopping_patience is not None and step - best_step >= tr.early_stopping_patience
        if step % tr.log_every == 0 or step == tr.steps or stop:
            losses.append(loss)
        if stop:
            break
    if tr.lbfgs_steps > 0:
        lbfgs = torch.optim.LBFGS(params, lr=1.0, max_iter=tr.lbfgs_steps, line_search_fn="strong_wolfe")
        window = prob.full_window() if not patched else prob.random_window(tr.patch_size, rng)

        def closure():
            lbfgs.zero_grad(set_to_none=True)
            tot, _, _ = prob.losses(field_net, rate_net, window, autocast)
            tot.backward()
            return tot

        lbfgs.step(closure)
    return field_net, rate_net, losses


@pytest.mark.parametrize("extra", [{}, {"lbfgs_steps": 3}, {"patch_size": 24},
                                   {"early_stopping_patience": 2, "steps": 30}])  # training
def test_member_training_identical_to_the_hand_written_loop(constant_state, extra):
    fields = fields_from_state(constant_state, disk_mask((64, 64), (24, 40), 20), PIXEL_UM)
    cfg = FitConfig(device="cpu", dtype="float64", seed=5,
                    training={**dict(steps=8, log_every=3), **extra},
                    network=NetworkConfig(width=16, depth=1, fourier_features=8),
                    mollifier=MollifierConfig(radius_px=4.0), prior=dict(regularisation="manual"))
    prob = fit_loop._Problem(fields, cfg, torch.device("cpu"), torch.float64)
    history = {"step": [], "loss": [], "data": [], "residual": [], "smooth": []}
    events = list(fit_loop._train_member(prob, 5, 0, 0.0, history, {}))
    new = fit_loop._assemble(prob, *events[-1])[0]
    old_field, old_rate, old_losses = _legacy_train_member(prob, 5)
    old = fit_loop._assemble(prob, old_field, old_rate)[0]
    np.testing.assert_array_equal(new, old)
    assert history["loss"] == old_losses


# ------------------------------------------------------------- benchmark problems' fit


def test_fit_problem_monitor_and_pirate_network():
    from chromarate.fit.problems import fit_problem, make_langevin_problem

    seen = []
    fit = fit_problem(make_langevin_problem(48), backend="finite-difference", network="pirate",
                      steps=6, radius_px=4.0, log_every=3,
                      monitor=lambda step, t, rate: seen.append((step, t, rate())))
    assert [s for s, _, _ in seen] == [3, 6]
    assert 0 <= seen[0][1] <= seen[1][1] <= fit.train_s
    np.testing.assert_allclose(seen[-1][2], fit.lambda_hat, rtol=1e-6)
    assert fit.history["step"] == [3, 6] and fit.settings["blocks"] is None
