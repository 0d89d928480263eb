"""The batch summary page: one self-contained HTML file that links the report's PNGs."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import __version__

__all__ = ["summary_page"]

#: Columns of the per-nucleus table shown on the page (all are in nuclei.csv).
PAGE_COLUMNS = (
    "name", "nucleus_id", "area_um2", "n_localizations", "heterochromatin_fraction",
    "rate_mean", "rate_median", "rate_q05", "rate_q95", "rate_heterochromatin",
    "rate_euchromatin", "rate_balance", "n_domains", "n_interior_domains",
    "domain_radius_um", "domain_spacing_um", "lab_lambda", "rate_territory",
    "rate_corr_truth", "truth_rate_mean",
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f2f2f2; } td.l { text-align: left; }
.figs img { max-width: 32%; margin: 0.3em; border: 1px solid #ddd; }
.nucleus img { width: 100%; max-width: 1400px; border: 1px solid #ddd; }
.failed { color: #a00; }
"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, columns: Sequence[str]) -> str:
    cols = [c for c in columns if c in df.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in df[cols].itertuples(index=False):
        cells = "".join(
            f'<td class="l">{_fmt(v)}</td>' if isinstance(v, str) else f"<td>{_fmt(v)}</td>"
            for v in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def summary_page(*, folder: str, table: pd.DataFrame, failures: pd.DataFrame,
                 batch_figures: Sequence[str], nucleus_figures: Mapping[tuple, str],
                 skipped: Sequence[str] = ()) -> str:
    """HTML text of the summary page.

    Parameters
    ----------
    folder : str
        The result folder the report is about.
    table : pandas.DataFrame
        The per-nucleus statistics (:func:`chromarate.analysis.nucleus_table`).
    failures : pandas.DataFrame
        Failed rows of the batch summary (``input``, ``nucleus_id``, ``error``).
    batch_figures : sequence of str
        Relative paths of the batch-level PNGs.
    nucleus_figures : mapping
        ``(name, nucleus_id) -> relative PNG path``.
    skipped : sequence of str
        Result stores that could not be read.
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    hashes = sorted(set(table.get("config_hash", pd.Series(dtype=str)).dropna().astype(str)))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>chromarate report: {html.escape(folder)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>chromarate report: {html.escape(folder)}</h1>",
        f"<p>{len(table)} nucleus result(s) from {table['name'].nunique() if len(table) else 0} "
        f"input(s); {len(failures)} failure(s). Config hash(es): "
        f"{html.escape(', '.join(hashes) or '-')}. Made {now} by chromarate {__version__}. "
        "Per-nucleus values are in <a href=\"../nuclei.csv\">nuclei.csv</a>, per-domain values "
        "in <a href=\"domains.csv\">domains.csv</a>.</p>",
    ]
    if batch_figures:
        parts.append("<h2>Rate distributions</h2><div class=\"figs\">")
        parts += [f'<a href="{html.escape(f)}"><img src="{html.escape(f)}" alt="{html.escape(f)}">'
                  "</a>" for f in batch_figures]
        parts.append("</div>")
    parts.append("<h2>Nuclei</h2>")
    parts.append(_table(table, PAGE_COLUMNS) if len(table) else "<p>No nucleus results.</p>")
    if len(failures) or skipped:
        parts.append('<h2 class="failed">Failures</h2>')
        if len(failures):
            parts.append(_table(failures, ("input", "nucleus_id", "error")))
        if skipped:
            parts.append("<p>Unreadable result stores:</p><ul>"
                         + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>")
    if nucleus_figures:
        parts.append("<h2>Per-nucleus figures</h2>")
        for (name, nid), f in nucleus_figures.items():
            parts.append(f'<div class="nucleus"><h3>{html.escape(str(name))} nucleus {nid}</h3>'
                         f'<a href="{html.escape(f)}"><img src="{html.escape(f)}" '
                         f'alt="{html.escape(str(name))} {nid}"></a></div>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
