"""What a benchmark inverse problem provides: the plug-in protocol and shared helpers.

A problem is a PDE (or ODE) ``R(u, lambda) = 0`` with a known solution ``u`` observed on a
regular grid and an unknown, positive parameter field ``lambda`` to infer. A *plug-in*
(:class:`ProblemPlugin`) tells the generic fit (:func:`chromarate.fit.problems.fit_problem`,
which trains through :mod:`chromarate.fit.engine`) everything problem-specific:

- the forward solver (:meth:`ProblemPlugin.make`: ground truth and a noisy observation);
- the fields and operators the residual needs (``derivatives``, named as the derivative
  backends name them: ``u``, ``lap`` in 2-D, ``u``, ``u_t`` in 1-D) and the highest order;
- the residual terms (:meth:`ProblemPlugin.residual`) and their scale;
- the closed-form inversion from the fitted operators (:meth:`ProblemPlugin.closed_form`);
- a derivative-free constant start for lambda (:meth:`ProblemPlugin.initial_rate`).

A new PDE is one module defining a plug-in and calling :func:`register`; nothing in the
training changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from ...errors import ConfigError

__all__ = ["Problem", "ProblemPlugin", "TimeSeries", "TimeSeriesPlugin", "fine_nodes", "get_plugin", "interior_mask", "metrics", "plugins", "register"]


@runtime_checkable
class Problem(Protocol):
    """One problem instance: the grid, the observation and the truth.

    Attributes
    ----------
    kind : str
        Name of the plug-in that made it.
    shape : tuple of int
        Grid shape, ``(n,)`` in 1-D or ``(n, n)`` in 2-D.
    u_obs, u_true, lambda_true : ndarray
        Observation, noise-free solution and true parameter on the grid.
    """

    kind: str
    shape: tuple[int, ...]
    u_obs: np.ndarray
    u_true: np.ndarray
    lambda_true: np.ndarray


class ProblemPlugin(Protocol):
    """The problem-specific part of a PINN fit (see the module docstring).

    Attributes
    ----------
    kind : str
        Registry name (``problem.kind`` of the problems it makes).
    ndim : int
        1 (``t``) or 2 (``x, y``).
    derivatives : tuple of str
        Backend operators of ``u`` the residual and the closed form need.
    max_order : int
        Highest derivative order among them (the mollifier kernels are built to it).
    defaults : dict
        Fit defaults: ``radius_px``, ``fourier_scale`` (u network), ``rate_fourier`` and
        ``rate_scale`` (lambda network), ``residual_weight``.
    """

    kind: str
    ndim: int
    derivatives: tuple[str, ...]
    max_order: int
    defaults: Mapping[str, float]

    def make(self, n: int | None = None, *, noise: float = 0.0, seed: int = 0) -> Any:
        """Forward solve for the true parameter; ``n`` None: the default size."""

    def spacing(self, problem) -> float:
        """Grid spacing (the grid starts at 0 along every axis)."""

    def extent(self, problem) -> tuple[tuple[float, ...], float, float]:
        """``(centre, half_width, length)`` of the domain (networks see ``[-1, 1]``)."""

    def initial_rate(self, problem) -> float:
        """A constant estimate of lambda that needs no derivative of the data."""

    def known(self, problem, device, dtype) -> dict:
        """Known tensors the residual uses (sources, coefficients) on ``device``."""

    def residual(self, ops: dict, lam, known: dict):
        """Residual on the grid from the operators of ``u`` (channel 0) and lambda."""

    def residual_scale(self, problem, lam0: float) -> float:
        """Typical size of the residual's terms (the residual loss is divided by its square)."""

    def closed_form(self, ops: dict, known: dict):
        """lambda from the operators of ``u`` by solving the residual for it."""


_PLUGINS: dict[str, ProblemPlugin] = {}


@dataclass(frozen=True, eq=False)
class TimeSeries:
    """Shared part of the 1-D problems: ``n`` samples ``t`` on ``[0, T]`` (spacing ``dt``)
    of the noise-free solution ``u_true`` and its observation ``u_obs``; a problem's
    dataclass adds its own fields after these."""

    n: int
    T: float
    dt: float
    t: np.ndarray
    u_true: np.ndarray
    u_obs: np.ndarray

    @property
    def shape(self) -> tuple[int]:
        return (self.n,)


def fine_nodes(n: int, refine: int, noise: float, needs: str) -> int:
    """Check a forward solve's sizes; the nodes ``refine (n - 1) + 1`` of its fine grid.

    Raises :class:`~chromarate.errors.ConfigError` for ``n < 8`` (the message ``needs``,
    then the value), ``refine < 1`` or ``noise < 0``.
    """
    if n < 8:
        raise ConfigError(f"{needs}, got {n}")
    if refine < 1:
        raise ConfigError(f"refine must be >= 1, got {refine}")
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    return refine * (n - 1) + 1


class TimeSeriesPlugin:
    """Shared part of the 1-D plug-ins on a uniform time grid ``problem.t`` (spacing
    ``problem.dt``, length ``problem.T``): the derivatives they use, the default fit
    settings, the grid and the network's coordinate scaling. A subclass sets ``kind``,
    ``make_fn`` (``make_fn(n, noise=..., seed=...)``), ``initial_rate``, ``residual``,
    ``residual_scale``, ``closed_form`` and, if it has known inputs, ``known``."""

    ndim = 1
    derivatives = ("u", "u_t")
    max_order = 1
    defaults = {"radius_px": 8.0, "fourier_scale": 2.0, "rate_fourier": 16, "rate_scale": 2.0,
                "residual_weight": 1.0}
    #: Default number of time samples.
    default_n = 256

    def make(self, n=None, *, noise=0.0, seed=0):
        return type(self).make_fn(self.default_n if n is None else n, noise=noise, seed=seed)

    def spacing(self, problem):
        return problem.dt

    def extent(self, problem):
        return (0.5 * problem.T,), 0.5 * problem.T, problem.T

    def known(self, problem, device, dtype):
        return {}


def register(plugin: ProblemPlugin) -> ProblemPlugin:
    """Make a plug-in known to :func:`fit_problem` under ``plugin.kind``; returns it."""
    _PLUGINS[plugin.kind] = plugin
    return plugin


def get_plugin(kind: str) -> ProblemPlugin:
    """The registered plug-in of a problem kind.

    Raises
    ------
    ConfigError
        For an unknown kind.
    """
    if kind not in _PLUGINS:
        raise ConfigError(f"unknown problem kind {kind!r}; known: {sorted(_PLUGINS)}")
    return _PLUGINS[kind]


def plugins() -> dict[str, ProblemPlugin]:
    """All registered plug-ins by kind."""
    return dict(_PLUGINS)


def interior_mask(shape, margin: int) -> np.ndarray:
    """bool array, True at nodes at least ``margin`` nodes from every edge (1-D or 2-D)."""
    mask = np.zeros(shape, dtype=bool)
    sl = tuple(slice(margin, s - margin) for s in shape)
    mask[sl] = True
    return mask


def metrics(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(Pearson correlation, relative L2 error) of ``estimate`` vs ``truth`` over ``mask``."""
    e = np.asarray(estimate, dtype=np.float64)[mask]
    t = np.asarray(truth, dtype=np.float64)[mask]
    if not np.all(np.isfinite(e)):
        return float("nan"), float("nan")
    corr = float(np.corrcoef(e, t)[0, 1]) if np.std(e) > 0 else float("nan")
    return corr, float(np.linalg.norm(e - t) / np.linalg.norm(t))
