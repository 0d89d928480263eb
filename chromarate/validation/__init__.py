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
The runner is ``benchmarks/validation.py``.
"""

from __future__ import annotations

from .cases import (FAMILIES, PHI_E0, Case, SyntheticCase, irregular_mask, make_case_mask,
                    make_case_rate, quick_version, simulate_case, truth_key)
from .run import QUICK_STEPS, CaseResult, default_config, run_case
from .scoring import (RESOLUTION_UM, Scores, peak_rss_mb, qc_status, resolvable_part, score,
                      summarise)
from .suite import (DEV_SEEDS, QUICK_MAX_PX, QUICK_MAX_PX_LOCALIZATIONS, UNSEEN_SEEDS, suite,
                    suite_for_set)

__all__ = [
    "FAMILIES", "PHI_E0", "Case", "SyntheticCase", "irregular_mask", "make_case_mask",
    "make_case_rate", "quick_version", "simulate_case", "truth_key",
    "QUICK_STEPS", "CaseResult", "default_config", "run_case",
    "RESOLUTION_UM", "Scores", "peak_rss_mb", "qc_status", "resolvable_part", "score",
    "summarise",
    "DEV_SEEDS", "QUICK_MAX_PX", "QUICK_MAX_PX_LOCALIZATIONS", "UNSEEN_SEEDS", "suite",
    "suite_for_set",
]
