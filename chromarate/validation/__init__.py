"""Validation suite of the rate inference on synthetic nuclei with a known rate map (issue 12).

- :mod:`~chromarate.validation.cases`: :class:`Case`, the rate-map families
  (:func:`make_case_rate`), envelopes and :func:`simulate_case` (with a steady-state cache);
- :mod:`~chromarate.validation.suite`: the fixed case list :func:`suite` and the seed sets
  :data:`DEV_SEEDS` (for tuning) and :data:`UNSEEN_SEEDS` (held out: never run or inspect
  it while tuning);
- :mod:`~chromarate.validation.scoring`: :func:`score` (Pearson r, Spearman rho, bias,
  RMSE, side of lambda = 1, 90 % coverage) and :func:`summarise`;
- :mod:`~chromarate.validation.run`: :func:`run_case`, which fits through the public API
  only (:func:`chromarate.fit_rates`, :func:`chromarate.invert_direct`,
  :class:`chromarate.Pipeline`) and so measures whatever those currently do.

Importing this package does not import torch (the fit is imported when a case runs).
The runner is ``experiments/validation.py``.
"""

from __future__ import annotations

from .cases import Case, simulate_case
from .run import CaseResult, default_config, run_case
from .scoring import Scores, score, summarise
from .suite import DEV_SEEDS, UNSEEN_SEEDS, suite

# The names a validation run is scripted with (docs/api.md); the rate-map families, the
# masks, the scoring helpers and the size limits are imported from their modules.
__all__ = [
    "Case",
    "CaseResult",
    "DEV_SEEDS",
    "Scores",
    "UNSEEN_SEEDS",
    "default_config",
    "run_case",
    "score",
    "simulate_case",
    "suite",
    "summarise",
]
