"""The one training engine of every fit in the package.

Every network fit -- the chromatin rate map (:mod:`chromarate.fit.loop`), the field
pre-training, the paper's benchmark problems (:mod:`chromarate.fit.problems`) -- trains
through :func:`iter_train`: Adam on parameter groups with their own learning rates, a
cosine learning-rate schedule, early stopping, an optional L-BFGS polish and a
non-finite-loss stop. The caller supplies only the loss::

    loss_fn(step) -> (total, {"term": tensor, ...})

called once per Adam step (``step`` counts from 1) after the gradients are cleared; the
engine does the backward pass and the updates. Order of operations per step::

    zero_grad -> loss_fn(step) -> finite check -> backward -> Adam step -> schedule step
    -> early-stopping bookkeeping -> progress event (every ``log_every`` steps)

so a caller that draws random numbers inside ``loss_fn`` draws them in the same order as
a hand-written loop would.

The engine is a generator: it yields a :class:`TrainProgress` at each logged step and,
last, one :class:`TrainDone`. :func:`train` runs it to the end and returns the
:class:`TrainDone` with a history dict.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from ..errors import FitDivergedError

__all__ = ["LossFn", "ParamGroup", "TrainDone", "TrainProgress", "TrainSettings", "iter_train",
           "train", "terms_text"]

#: ``loss_fn(step) -> (total, terms)``: a scalar tensor and a dict of named scalar tensors.
LossFn = Callable[[int], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


@dataclass(frozen=True)
class ParamGroup:
    """Parameters trained with one learning rate.

    Attributes
    ----------
    params : sequence of torch.nn.Parameter
    lr : float
        Peak Adam learning rate of the group.
    """

    params: Sequence[torch.nn.Parameter]
    lr: float


@dataclass(frozen=True)
class TrainSettings:
    """How :func:`iter_train` trains.

    Attributes
    ----------
    steps : int
        Adam steps (the cosine schedule spans them all, even if training stops early).
    eta_min : float
        Learning rate the cosine schedule reaches at ``steps`` (absolute, every group).
    log_every : int, optional
        A :class:`TrainProgress` every this many steps, at the last step and at an early
        stop; None: no progress events.
    patience : int, optional
        Early stopping: stop when the loss has not dropped by ``rel_improvement`` of its
        best value for this many steps (None: never).
    rel_improvement : float
        Relative drop that counts as an improvement for early stopping.
    lbfgs_steps : int
        L-BFGS iterations after Adam (0: no polish); strong-Wolfe line search.
    lbfgs_history : int
        L-BFGS history size.
    lbfgs_tolerance_grad, lbfgs_tolerance_change : float
        L-BFGS stopping tolerances (torch's defaults 1e-7 and 1e-9).
    label : str
        What the non-finite message calls the loss ("loss became non-finite at step ...").
    """

    steps: int
    eta_min: float = 0.0
    log_every: int | None = None
    patience: int | None = None
    rel_improvement: float = 1e-3
    lbfgs_steps: int = 0
    lbfgs_history: int = 100
    lbfgs_tolerance_grad: float = 1e-7
    lbfgs_tolerance_change: float = 1e-9
    label: str = "loss"


@dataclass(frozen=True)
class TrainProgress:
    """A logged Adam step.

    Attributes
    ----------
    step : int
        Adam step (from 1).
    loss : float
        Total loss at this step (before the update).
    terms : dict of str to float
        The named loss terms at this step.
    stopped : bool
        True when early stopping ends training at this step.
    """

    step: int
    loss: float
    terms: dict[str, float]
    stopped: bool = False


@dataclass
class TrainDone:
    """The end of training.

    Attributes
    ----------
    steps_run : int
        Adam steps taken.
    early_stop : int, optional
        Step at which early stopping ended training (None: it ran all steps).
    polish_loss : float, optional
        Loss after the L-BFGS polish (None: no polish).
    polish_terms : dict of str to float
        Terms after the polish (empty without one).
    history : dict of list
        Filled by :func:`train` only: ``step``, ``loss`` and each term at the logged
        steps, and after a polish one more entry at ``steps_run + lbfgs_steps``.
    """

    steps_run: int
    early_stop: int | None = None
    polish_loss: float | None = None
    polish_terms: dict[str, float] = field(default_factory=dict)
    history: dict[str, list] = field(default_factory=dict)


def terms_text(terms) -> str:
    """``"a=1, b=2"`` of a dict of scalar tensors or floats (for error messages)."""
    return ", ".join(f"{k}={float(v.detach() if torch.is_tensor(v) else v):.4g}"
                     for k, v in terms.items())


def _floats(terms) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in terms.items()}


def iter_train(groups: Sequence[ParamGroup], loss_fn: LossFn, settings: TrainSettings, *,
               polish_loss: Callable[[], LossFn] | None = None,
               evaluation: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
               monitor: Callable[[int], None] | None = None,
               ) -> Iterator[TrainProgress | TrainDone]:
    """Train the parameters of ``groups`` on ``loss_fn``; a generator of events.

    Parameters
    ----------
    groups : sequence of ParamGroup
        Adam parameter groups, each with its own peak learning rate.
    loss_fn : callable
        ``loss_fn(step) -> (total, terms)`` for Adam step ``step`` (1 .. ``settings.steps``).
    settings : TrainSettings
    polish_loss : callable, optional
        Called once when the L-BFGS polish starts; returns the (fixed) loss the polish
        minimises, ``f(step) -> (total, terms)`` (called with ``step = steps_run + 1``).
        Default: ``loss_fn`` itself. Lets a caller draw, e.g., a random patch for the
        polish only after the Adam steps have drawn theirs.
    evaluation : callable
        Context for the evaluation after the polish (e.g. ``torch.no_grad``; the default
        keeps gradients on, which nested-autograd losses need).
    monitor : callable, optional
        ``monitor(step)`` is called at every logged step, before its event is yielded.

    Yields
    ------
    TrainProgress
        At every logged step (see :class:`TrainSettings`).
    TrainDone
        Once, last.

    Raises
    ------
    FitDivergedError
        When the loss is non-finite; the message names the step (or the polish) and the
        terms.
    """
    s = settings
    params = [p for g in groups for p in g.params]
    opt = torch.optim.Adam([{"params": list(g.params), "lr": g.lr} for g in groups])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.steps, eta_min=s.eta_min)
    best, best_step, steps_run, early = float("inf"), 0, 0, None
    for step in range(1, s.steps + 1):
        opt.zero_grad(set_to_none=True)
        total, terms = loss_fn(step)
        if not torch.isfinite(total):
            raise FitDivergedError(f"{s.label} became non-finite at step {step} ({terms_text(terms)})")
        total.backward()
        opt.step()
        sched.step()
        steps_run = step
        loss = float(total.detach())
        if loss < best * (1.0 - s.rel_improvement):
            best, best_step = loss, step
        stop = s.patience is not None and step - best_step >= s.patience
        if s.log_every is not None and (step % s.log_every == 0 or step == s.steps or stop):
            if monitor is not None:
                monitor(step)
            yield TrainProgress(step=step, loss=loss, terms=_floats(terms), stopped=stop)
        if stop:
            early = step
            break
    done = TrainDone(steps_run=steps_run, early_stop=early)
    if s.lbfgs_steps > 0:
        polish = loss_fn if polish_loss is None else polish_loss()
        lbfgs = torch.optim.LBFGS(params, lr=1.0, max_iter=s.lbfgs_steps, history_size=s.lbfgs_history,
                                  tolerance_grad=s.lbfgs_tolerance_grad,
                                  tolerance_change=s.lbfgs_tolerance_change,
                                  line_search_fn="strong_wolfe")

        def closure():
            lbfgs.zero_grad(set_to_none=True)
            tot, _ = polish(steps_run + 1)
            tot.backward()
            return tot

        lbfgs.step(closure)
        with evaluation():
            tot, terms = polish(steps_run + 1)
        if not torch.isfinite(tot):
            raise FitDivergedError(f"{s.label} became non-finite in the L-BFGS polish "
                                   f"({terms_text(terms)})")
        done.polish_loss, done.polish_terms = float(tot.detach()), _floats(terms)
    yield done


def train(groups: Sequence[ParamGroup], loss_fn: LossFn, settings: TrainSettings,
          **kwargs) -> TrainDone:
    """Run :func:`iter_train` to the end; the result carries a history.

    Parameters
    ----------
    groups, loss_fn, settings, **kwargs
        As for :func:`iter_train`.

    Returns
    -------
    TrainDone
        With ``history``: ``step``, ``loss`` and each term at the logged steps, plus one
        entry after an L-BFGS polish (at step ``steps_run + lbfgs_steps``).
    """
    history: dict[str, list] = {"step": [], "loss": []}

    def record(step, loss, terms):
        history["step"].append(step)
        history["loss"].append(loss)
        for k, v in terms.items():
            history.setdefault(k, []).append(v)

    for ev in iter_train(groups, loss_fn, settings, **kwargs):
        if isinstance(ev, TrainProgress):
            record(ev.step, ev.loss, ev.terms)
        else:
            if ev.polish_loss is not None:
                record(ev.steps_run + settings.lbfgs_steps, ev.polish_loss, ev.polish_terms)
            ev.history = history
            return ev
    raise RuntimeError("iter_train ended without TrainDone")  # pragma: no cover
