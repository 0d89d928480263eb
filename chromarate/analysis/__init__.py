"""Per-nucleus analysis of batch results.

- :mod:`~chromarate.analysis.nuclei`: :func:`iter_nuclei` yields the nuclei of a result
  folder as :class:`Nucleus` objects (maps, mask, provenance, observation model);
- :mod:`~chromarate.analysis.table`: :func:`nucleus_table`, one statistics row per nucleus
  (area, localizations, heterochromatin fraction, rate statistics inside and outside
  heterochromatin, the balance estimate of the mean rate, domain count, radius and spacing,
  the Shenoy-lab closed-form lambda next to the inferred one);
- :mod:`~chromarate.analysis.domains`: :func:`find_domains` and :func:`lab_lambda`;
- :mod:`~chromarate.analysis.rates`: rate summaries and :func:`rate_balance`;
- :mod:`~chromarate.analysis.compare`: comparison with a ground truth on another grid.

See ``docs/batch.md`` for scripting examples.
"""

from __future__ import annotations

from .compare import rate_correlation, resample_to_grid
from .config import AnalysisConfig
from .domains import Domains, find_domains, lab_lambda
from .nuclei import Nucleus, iter_nuclei, load_nucleus
from .rates import rate_balance, rate_summary
from .table import (domain_table, nucleus_columns, nucleus_domains, nucleus_statistics,
                    nucleus_table, write_nucleus_table)

# The user-facing names (docs/api.md). Helpers such as find_results, finite_values,
# rate_quantiles, domain_rows and DOMAIN_COLUMNS are imported from their modules.
__all__ = [
    "AnalysisConfig",
    "Domains",
    "Nucleus",
    "domain_table",
    "find_domains",
    "iter_nuclei",
    "lab_lambda",
    "load_nucleus",
    "nucleus_columns",
    "nucleus_domains",
    "nucleus_statistics",
    "nucleus_table",
    "rate_balance",
    "rate_correlation",
    "rate_summary",
    "resample_to_grid",
    "write_nucleus_table",
]
