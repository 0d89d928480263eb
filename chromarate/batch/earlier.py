"""The rows of an earlier run's ``summary.csv`` that a batch keeps.

A batch rewrites ``summary.csv`` from its own rows. Rows of the earlier summary describe
results that are still in the output folder when their input was not given to this run,
or when this run stopped (Ctrl-C, a crash) before it reached that input; such rows are
kept, so that an interrupted rerun, or a run over a subset of the inputs, does not empty
the summary of a folder whose results are all there. An input this run reached has only
this run's rows. A kept row whose result store is gone is dropped, and so is a failed
row whose input file is gone (as the summary names it, from the folder the run was
started in).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .tasks import SUMMARY_COLUMNS

__all__ = ["MAX_SUMMARY_BYTES", "SUMMARY_MEMORY_FACTOR", "earlier_rows", "merged_rows",
           "readable_summary"]

log = logging.getLogger("chromarate.batch")

#: An earlier summary larger than this is not read (it is replaced, as before).
MAX_SUMMARY_BYTES = 256 << 20
#: Memory a summary takes as its rows, per byte of the file (measured: a 26 MB summary of
#: 40,000 rows took 160 MB as strings and row dicts, about 6 times): one whose rows would
#: pass the read limit is not read either.
SUMMARY_MEMORY_FACTOR = 8


def readable_summary(path: Path) -> bool:
    """Whether ``path`` is a summary to read: a regular file (not a link) within
    :data:`MAX_SUMMARY_BYTES` whose rows fit the read limit; a larger one is logged."""
    from ..io.limits import current_read_limit

    try:
        if not path.is_file() or path.is_symlink():
            return False
        size = path.stat().st_size
    except OSError:
        return False
    if size > MAX_SUMMARY_BYTES or size * SUMMARY_MEMORY_FACTOR > current_read_limit():
        log.warning("%s: %d bytes, more than a summary may take (at most %d bytes, and its "
                    "rows within the read limit); not read", path, size, MAX_SUMMARY_BYTES)
        return False
    return True


def _nucleus_id(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


def earlier_rows(summary: Path, out_dir: Path) -> list[dict[str, Any]]:
    """The rows of the ``summary.csv`` an earlier run left in ``out_dir``.

    Parameters
    ----------
    summary : Path
        The summary file (it may be missing).
    out_dir : Path
        The batch's output folder: a row with a result counts only while
        ``out_dir/<name>/<nucleus_id>.ome.zarr`` exists.

    Returns
    -------
    list of dict
        Rows with the current :data:`~chromarate.batch.tasks.SUMMARY_COLUMNS` (columns the
        earlier summary lacks are empty); none where the file is missing, too large, or
        cannot be read as a summary (logged).
    """
    try:
        if not readable_summary(summary):
            return []
        table = pd.read_csv(summary, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        log.warning("%s: the earlier summary cannot be read (%s); it is replaced", summary, exc)
        return []
    if not {"name", "status", "nucleus_id"} <= set(table.columns):
        log.warning("%s: the earlier summary has no name, status and nucleus_id columns; "
                    "it is replaced", summary)
        return []
    rows = []
    for record in table.reindex(columns=list(SUMMARY_COLUMNS)).to_dict("records"):
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        row["nucleus_id"] = _nucleus_id(row["nucleus_id"])
        name = row.get("name") or ""
        if row["status"] != "failed":
            if row["nucleus_id"] is None or not os.path.isdir(
                    out_dir / name / f"{row['nucleus_id']}.ome.zarr"):
                continue  # its result is gone
        elif not row.get("input") or not os.path.lexists(str(row["input"])):
            continue  # the input that failed is gone (moved, or removed by its user)
        rows.append(row)
    return rows


def merged_rows(now: Sequence[Mapping[str, Any]], earlier: Sequence[Mapping[str, Any]],
                order: Mapping[str, int]) -> list[Mapping[str, Any]]:
    """This run's rows and the earlier rows of inputs this run has no row for, in the
    batch's input order (``order``: output folder name to position; other names after
    them, in their earlier order), nuclei by id."""
    reached = {r["name"] for r in now}
    kept = [r for r in earlier if r.get("name") not in reached]
    rank = {id(r): i for i, r in enumerate(kept)}
    last = len(order)

    def key(r: Mapping[str, Any]) -> tuple:
        nid = r.get("nucleus_id")
        return (order.get(r.get("name"), last), rank.get(id(r), -1) if r.get("name") not in order
                else -1, -1 if nid is None else nid)

    return sorted([*now, *kept], key=key)
