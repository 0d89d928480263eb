"""Reports of a batch result folder: per-nucleus figures and an HTML summary page.

``make_report(folder)`` writes, next to the batch's ``summary.csv``::

    nuclei.csv                    per-nucleus statistics (chromarate.analysis.nucleus_table)
    report/index.html             summary page: figures, the table, failures
    report/domains.csv            every heterochromatin domain
    report/rate_by_input.png ...  batch figures
    report/nuclei/<name>_<id>.png one five-panel figure per nucleus

matplotlib draws the figures (a dependency of chromarate; a clear error names it if it is
missing). Every file is written atomically through :mod:`chromarate.io.batch_files`, and
only inside the folder: a symbolic link at ``report/``, ``report/nuclei/`` or a file's name
(which would send the files elsewhere) is refused before anything is written.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import AnalysisConfig, load_nucleus, nucleus_domains, nucleus_statistics
from ..analysis.nuclei import find_results
from ..analysis.rates import finite_values
from ..analysis.table import concat_domain_rows, domain_rows
from ..errors import ResultStoreError
from ..io.batch_files import write_bytes, write_table, write_text
from ..io.outdir import check_inside
from .figures import batch_figures, nucleus_figure
from .page import summary_page

# The user-facing names (docs/api.md); failure_lines, a formatting helper of the command
# line, is defined here too but not exported.
__all__ = ["Report", "batch_failures", "make_report"]

log = logging.getLogger("chromarate.report")

REPORT_DIR = "report"
TABLE_NAME = "nuclei.csv"
DOMAINS_NAME = "domains.csv"
PAGE_NAME = "index.html"
NUCLEI_DIR = "nuclei"


@dataclass
class Report:
    """Files written by :func:`make_report`.

    Attributes
    ----------
    html : Path
        The summary page.
    table_path : Path
        ``nuclei.csv``.
    table : pandas.DataFrame
        The per-nucleus statistics.
    figures : list of Path
        Every PNG written.
    skipped : list of str
        Result stores that could not be read (with the reason).
    """

    html: Path
    table_path: Path
    table: pd.DataFrame
    figures: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def batch_failures(folder: str | os.PathLike) -> pd.DataFrame:
    """The failed rows of a batch folder's ``summary.csv`` (status ``"failed"``; a
    ``"low_confidence"`` nucleus has a result and is not a failure).

    Returns
    -------
    pandas.DataFrame
        Columns ``input``, ``nucleus_id`` (empty for inputs that failed whole) and
        ``error``; no rows when the folder has no readable summary.
    """
    return _failures(Path(folder))


def failure_lines(failures: pd.DataFrame) -> list[str]:
    """One line per failed input or nucleus: ``<input> [nucleus <id>]: <error>``."""
    lines = []
    for row in failures.itertuples(index=False):
        nid = "" if pd.isna(row.nucleus_id) else f" nucleus {int(row.nucleus_id)}"
        error = "" if pd.isna(row.error) else str(row.error)
        lines.append(f"{row.input}{nid}: {error}")
    return lines


def _failures(folder: Path) -> pd.DataFrame:
    """The failed rows of ``folder/summary.csv``; none when it is missing, not a regular
    file, too large (:func:`chromarate.batch.earlier.readable_summary`) or unreadable."""
    from ..batch.earlier import readable_summary
    from ..batch.runner import SUMMARY_NAME

    path = folder / SUMMARY_NAME
    try:
        if not readable_summary(path):
            return pd.DataFrame(columns=["input", "nucleus_id", "error"])
        summary = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame(columns=["input", "nucleus_id", "error"])
    if "status" not in summary.columns:
        return pd.DataFrame(columns=["input", "nucleus_id", "error"])
    failed = summary[summary["status"] == "failed"]
    return failed.reindex(columns=["input", "nucleus_id", "error"])


def _inside(folder: Path, path: Path) -> Path:
    """``path``, a file the report writes under ``folder``, once checked to stay there.

    Every part of ``path`` below ``folder`` (``report/``, ``report/nuclei/``, the file's
    own name) must not be a symbolic link, and ``path`` must resolve inside ``folder``
    (:func:`chromarate.io.outdir.check_inside`).

    Raises
    ------
    ResultStoreError
        Naming the symbolic link, or the path that resolves outside ``folder``.
    """
    part = folder
    for name in path.relative_to(folder).parts:
        part = part / name
        if part.is_symlink():
            raise ResultStoreError(
                f"is a symbolic link; chromarate report writes only inside {folder} (remove "
                "the link, or copy the results to a folder of their own)", path=part)
    return check_inside(folder, path)


def _check_targets(folder: Path) -> None:
    """Check the fixed paths of the report (:func:`_inside`) before anything is read or
    written, so a planted link stops the report at once."""
    out = folder / REPORT_DIR
    for path in (folder / TABLE_NAME, out / DOMAINS_NAME, out / PAGE_NAME, out / NUCLEI_DIR):
        _inside(folder, path)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def make_report(folder: str | os.PathLike, config: AnalysisConfig = AnalysisConfig(), *,
                figures: bool = True) -> Report:
    """Write the statistics table, figures and summary page of a result folder.

    Parameters
    ----------
    folder : str or path-like
        A batch output folder (``chromarate run ... --out folder``).
    config : AnalysisConfig
        Domain detection and statistics settings.
    figures : bool
        Also draw the per-nucleus figures (the slow part: about 0.5 s per nucleus).

    Returns
    -------
    Report

    Raises
    ------
    ResultStoreError
        If ``folder`` does not exist or holds no result store (the message lists the
        failed inputs of its ``summary.csv`` when every nucleus of the batch failed), or a
        file of the report would be written outside it (``report/``, ``nuclei.csv`` or
        another of its files is a symbolic link).
    """
    folder = Path(folder)
    paths = find_results(folder)
    if not paths:
        failed = failure_lines(_failures(folder))
        if failed:
            raise ResultStoreError(
                f"no result: all {len(failed)} input(s)/nucleus(es) of this batch failed "
                f"(summary.csv): " + "; ".join(failed), path=folder)
        raise ResultStoreError("no *.ome.zarr result under this folder; run a batch first",
                               path=folder)
    _check_targets(folder)
    out = folder / REPORT_DIR
    rows, skipped, written = [], [], []
    rates: dict[tuple, np.ndarray] = {}
    nucleus_pngs: dict[tuple, str] = {}
    domain_parts = []
    for path in paths:
        try:
            nucleus = load_nucleus(path)
        except ResultStoreError as exc:
            log.warning("skipped: %s", exc)
            skipped.append(str(exc))
            continue
        domains = nucleus_domains(nucleus, config)
        stats = nucleus_statistics(nucleus, config, domains=domains)
        rows.append(stats)
        rates[(nucleus.name, nucleus.nucleus_id)] = finite_values(nucleus.rate, nucleus.rate_region)
        domain_parts.append(domain_rows(nucleus, domains))
        if figures:
            rel = f"{NUCLEI_DIR}/{_safe(nucleus.name)}_{nucleus.nucleus_id}.png"
            written.append(write_bytes(_inside(folder, out / rel),
                                       nucleus_figure(nucleus, domains, stats)))
            nucleus_pngs[(nucleus.name, nucleus.nucleus_id)] = rel
    table = pd.DataFrame(rows)
    table_path = write_table(_inside(folder, folder / TABLE_NAME), table)
    write_table(_inside(folder, out / DOMAINS_NAME), concat_domain_rows(domain_parts))
    batch_pngs = []
    for name, png in batch_figures(table, rates).items():
        written.append(write_bytes(_inside(folder, out / name), png))
        batch_pngs.append(name)
    page = summary_page(folder=str(folder), table=table, failures=_failures(folder),
                        batch_figures=batch_pngs, nucleus_figures=nucleus_pngs,
                        skipped=skipped)
    html_path = write_text(_inside(folder, out / PAGE_NAME), page)
    return Report(html=html_path, table_path=table_path, table=table, figures=written,
                  skipped=skipped)
