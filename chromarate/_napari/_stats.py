"""Per-nucleus statistics of one result stack, for the statistics widget (pure).

A thin adapter: the numbers are those of :func:`chromarate.analysis.nucleus_statistics`
(the row of the batch's nucleus table), for a result in memory, plus what the fit recorded
(final loss, seconds, device).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .._types import ResultStack
from ..analysis import Domains, Nucleus
from ..analysis import nucleus_domains as _analysis_domains
from ..analysis import nucleus_statistics as _analysis_statistics
from ..analysis.nuclei import nucleus_from_stack

__all__ = ["format_value", "nucleus_domains", "result_nucleus", "result_statistics"]


def result_nucleus(stack: ResultStack, *, name: str, path: str | Path | None = None) -> Nucleus:
    """The :class:`~chromarate.analysis.Nucleus` of a result stack in memory.

    Parameters
    ----------
    stack : ResultStack
        A chromarate result (channels of :data:`chromarate.export.CHANNELS`, label
        ``nucleus``; without the label, the pixels with a finite rate are the nucleus).
    name : str
        Name shown for it (``"<input-stem>/<nucleus-id>"``, e.g. ``"cell1/3"``).
    path : str or Path, optional
        The store it was read from, if any.
    """
    return nucleus_from_stack(stack, Path(path) if path else Path(name),
                              name=name.split("/")[0])


def result_statistics(stack: ResultStack, *, name: str, path: str | Path | None = None,
                      domains: Domains | None = None) -> dict[str, Any]:
    """Statistics of one nucleus result, in display order.

    ``domains``, if given, are its :func:`nucleus_domains` (not found again).

    Returns
    -------
    dict
        The columns of :func:`chromarate.analysis.nucleus_statistics` (area, localizations,
        heterochromatin fraction, rate quantiles, rate inside and outside heterochromatin,
        balance estimate, domains and the lab closed form, correlation with a ground
        truth), the quality gate's ``status`` and ``qc_reasons`` first (empty for results
        written before the gate), followed by ``final_loss``, ``fit_seconds``
        and ``device`` of the fit.

    Examples
    --------
    >>> import numpy as np
    >>> from chromarate._types import ResultStack
    >>> from chromarate.export import CHANNELS
    >>> maps = {c: np.zeros((20, 20), np.float32) for c in CHANNELS}
    >>> maps["rate"][:] = 2.0
    >>> s = ResultStack(maps, {"nucleus": np.ones((20, 20), np.uint8)}, 50.0, (0.0, 0.0))
    >>> st = result_statistics(s, name="cell/1")
    >>> round(st["area_um2"], 6), st["rate_mean"]
    (1.0, 2.0)
    """
    stats = _analysis_statistics(result_nucleus(stack, name=name, path=path), domains=domains)
    # the quality gate's verdict first: a low-confidence map must not be read as a result
    first = ("status", "qc_reasons")
    row = {**{k: stats[k] for k in first}, **{k: v for k, v in stats.items() if k not in first}}
    fit = (stack.provenance or {}).get("fit") or {}
    # the pipeline's fit stage, as summary.csv's fit_seconds and chromarate info give it
    timings = (stack.provenance or {}).get("timings") or {}
    row["final_loss"] = fit.get("final_loss")
    row["fit_seconds"] = timings.get("fit")
    row["device"] = fit.get("device")
    return row


def nucleus_domains(stack: ResultStack, *, name: str) -> Domains:
    """Heterochromatin domains of a result, as the nucleus table finds them
    (:func:`chromarate.analysis.nucleus_domains`)."""
    return _analysis_domains(result_nucleus(stack, name=name))


def format_value(value: Any) -> str:
    """A statistic as short text (4 significant digits; "-" for missing or NaN)."""
    if value is None or (isinstance(value, str) and not value):
        return "-"
    if isinstance(value, (float, np.floating)):
        return "-" if not math.isfinite(float(value)) else f"{float(value):.4g}"
    return str(value)
