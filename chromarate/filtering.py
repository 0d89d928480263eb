"""Filter localization tables and merge blinking events.

Two pure functions on :class:`~chromarate._types.Localizations`:

- :func:`filter_localizations` drops rows by localization precision, photon count, frame
  range and region, in that order, and records how many rows each filter removed;
- :func:`merge_blinking` links localizations of one fluorophore that lights up in
  consecutive frames (allowing short gaps) and replaces each such event by one
  precision-weighted localization.

Tables keep their canonical columns (``x_nm``, ``y_nm``, ``frame``, ...); the returned
table has a fresh 0-based index and the input's ``meta`` plus a record of what was done.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from ._types import Localizations
from .config import FilterConfig
from .errors import StageError

__all__ = ["filter_localizations", "merge_blinking"]


def filter_localizations(
    locs: Localizations, config: FilterConfig = FilterConfig()
) -> Localizations:
    """Drop localizations by precision, photons, frame and region; optionally merge blinks.

    Parameters
    ----------
    locs : Localizations
        Input table (nm). A filter that is switched on needs its column: ``precision_nm``
        for ``max_precision_nm``, ``photons`` for ``min_photons``, ``frame`` for
        ``frame_range`` (and for ``merge_blinking``); ``region_nm`` uses ``x_nm``/``y_nm``.
    config : FilterConfig, optional
        Every filter is off by default, so the default returns the table unchanged.

    Returns
    -------
    Localizations
        The kept rows (fresh index). ``meta["filters"]`` is a dict with ``n_before``,
        ``n_after`` and, for each filter that was on, the number of rows it removed
        (``precision``, ``photons``, ``frame_range``, ``region``). The filters run in that
        order, so each count is of rows still present when the filter ran. Rows whose
        filtered value is NaN are removed by that filter. When ``merge_blinking`` is on it
        runs after the filters and adds ``meta["merge_blinking"]``.

    Raises
    ------
    StageError
        If a filter that is on needs a column the table lacks, or a column is not numeric.
    TypeError
        If ``locs`` or ``config`` have the wrong type.

    Examples
    --------
    >>> import pandas as pd
    >>> from chromarate import Localizations
    >>> from chromarate.config import FilterConfig
    >>> locs = Localizations(pd.DataFrame({"x_nm": [0.0, 10.0, 20.0], "y_nm": [0.0, 0.0, 0.0],
    ...                                    "precision_nm": [5.0, 25.0, 8.0]}))
    >>> out = filter_localizations(locs, FilterConfig(max_precision_nm=10.0))
    >>> out.table["x_nm"].tolist(), out.meta["filters"]["precision"]
    ([0.0, 20.0], 1)
    """
    _check_types(locs)
    if not isinstance(config, FilterConfig):
        raise TypeError(f"config must be a FilterConfig, got {type(config).__name__}")
    table = locs.table
    keep = np.ones(len(table), dtype=bool)
    record: dict[str, Any] = {"n_before": int(len(table))}

    def apply(name: str, ok: np.ndarray) -> None:
        nonlocal keep
        new = keep & ok
        record[name] = int(keep.sum() - new.sum())
        keep = new

    if config.max_precision_nm is not None:
        p = _column(table, "precision_nm", "max_precision_nm")
        apply("precision", p <= config.max_precision_nm)  # NaN compares False: removed
    if config.min_photons is not None:
        ph = _column(table, "photons", "min_photons")
        apply("photons", ph >= config.min_photons)
    if config.frame_range is not None:
        f = _column(table, "frame", "frame_range")
        start, stop = config.frame_range
        apply("frame_range", (f >= start) & (f < stop))
    if config.region_nm is not None:
        (y0, x0), (y1, x1) = config.region_nm
        x = _column(table, "x_nm", "region_nm")
        y = _column(table, "y_nm", "region_nm")
        apply("region", (y >= y0) & (y < y1) & (x >= x0) & (x < x1))

    if config.merge_blinking:
        _column(table, "frame", "merge_blinking")  # fail before doing any work
    out_table = table[keep].reset_index(drop=True)
    record["n_after"] = int(len(out_table))
    meta = dict(locs.meta)
    meta["filters"] = record
    out = Localizations(table=out_table, meta=meta)
    if config.merge_blinking:
        out = merge_blinking(out, radius_nm=config.merge_radius_nm,
                             max_gap_frames=config.merge_max_gap_frames)
    return out


def merge_blinking(locs: Localizations, *, radius_nm: float = 30.0,
                   max_gap_frames: int = 1) -> Localizations:
    """Merge localizations of one blinking event into a single localization.

    Two localizations are linked when they are at most ``radius_nm`` apart (in x, y) and
    their frames differ by 1 to ``max_gap_frames + 1``. Linking is a one-to-one matching
    between earlier and later localizations: each localization gets at most one successor
    and one predecessor, chosen by fewest skipped frames and then smallest distance
    (mutually best candidates are matched first, repeated until no candidate is left).
    So an event is a chain with at most one localization per frame, and two nearby
    emitters that are on in the same frame are never merged into one.

    Each chain becomes one row:

    - ``x_nm``, ``y_nm`` (and ``z_nm``): mean weighted by ``1 / precision_nm**2`` when every
      row has a finite positive ``precision_nm``; otherwise the plain mean;
    - ``precision_nm``: ``1 / sqrt(sum(1 / p**2))`` over the rows with a valid precision
      (NaN if none), the precision of the weighted mean;
    - ``photons``: sum; ``frame``: first frame;
    - every other numeric column: plain mean; other columns: value of the first row.

    Parameters
    ----------
    locs : Localizations
        Table with ``x_nm``, ``y_nm`` and ``frame``.
    radius_nm : float
        Linking radius (> 0).
    max_gap_frames : int
        Number of missing frames tolerated inside one event (>= 0).

    Returns
    -------
    Localizations
        One row per event, sorted by frame (fresh index). ``meta["merge_blinking"]`` holds
        ``n_before``, ``n_after``, ``radius_nm``, ``max_gap_frames``, ``weighting``
        (``"precision"`` or ``"uniform"``) and ``max_chain_length``.

    Raises
    ------
    StageError
        If ``frame``, ``x_nm`` or ``y_nm`` is missing, not numeric or not finite.
    ValueError
        If ``radius_nm <= 0`` or ``max_gap_frames < 0``.

    Notes
    -----
    Candidate pairs come from a spatial hash (cells of side ``radius_nm`` sorted by cell and
    frame), so all frame pairs are searched at once with a few vectorised binary searches;
    a million localizations take a few seconds.

    Examples
    --------
    >>> import pandas as pd
    >>> from chromarate._types import Localizations
    >>> t = pd.DataFrame({"x_nm": [0.0, 4.0, 500.0], "y_nm": [0.0, 0.0, 0.0],
    ...                   "frame": [3, 4, 4], "precision_nm": [10.0, 10.0, 10.0]})
    >>> out = merge_blinking(Localizations(t), radius_nm=30.0, max_gap_frames=0)
    >>> out.table[["x_nm", "frame"]].values.tolist()
    [[2.0, 3.0], [500.0, 4.0]]
    >>> round(float(out.table["precision_nm"][0]), 4)
    7.0711
    """
    _check_types(locs)
    radius_nm = float(radius_nm)
    if not radius_nm > 0 or not np.isfinite(radius_nm):
        raise ValueError(f"radius_nm must be a positive finite number, got {radius_nm}")
    if int(max_gap_frames) != max_gap_frames or max_gap_frames < 0:
        raise ValueError(f"max_gap_frames must be a non-negative integer, got {max_gap_frames}")
    max_gap_frames = int(max_gap_frames)
    table = locs.table
    frame = _column(table, "frame", "merge_blinking")
    x = _column(table, "x_nm", "merge_blinking")
    y = _column(table, "y_nm", "merge_blinking")
    finite = np.isfinite(frame) & np.isfinite(x) & np.isfinite(y)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise StageError(
            f"merge_blinking needs finite frame, x_nm and y_nm; {int((~finite).sum())} rows "
            f"are not (first at row {first})"
        )
    n = len(table)

    if n:
        i, j = _candidate_pairs(x, y, frame, radius_nm, max_gap_frames)
        succ = _match_chains(i, j, frame, x, y, n)
        labels = _chain_labels(succ, n)
    else:
        labels = np.zeros(0, dtype=np.int64)
    out_table, weighting = _aggregate(table, labels, frame)

    meta = dict(locs.meta)
    meta["merge_blinking"] = {
        "n_before": int(n),
        "n_after": int(len(out_table)),
        "radius_nm": radius_nm,
        "max_gap_frames": max_gap_frames,
        "weighting": weighting,
        "max_chain_length": int(np.bincount(labels).max()) if n else 0,
    }
    return Localizations(table=out_table, meta=meta)


# --------------------------------------------------------------------------- helpers


def _check_types(locs) -> None:
    if not isinstance(locs, Localizations):
        raise TypeError(f"locs must be a chromarate Localizations, got {type(locs).__name__}")


def _column(table: pd.DataFrame, name: str, needed_by: str) -> np.ndarray:
    if name not in table.columns:
        raise StageError(
            f"filter {needed_by!r} needs column {name!r}, which the localization table lacks "
            f"(has {list(map(str, table.columns))})"
        )
    try:
        return table[name].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StageError(
            f"column {name!r} (needed by {needed_by!r}) must be numeric: {exc}"
        ) from exc


def _candidate_pairs(x, y, frame, radius, max_gap):
    """All (earlier, later) index pairs within ``radius`` in x, y and 1..max_gap+1 frames.

    Spatial hashing: localizations are sorted by (cell, frame) with square cells of side
    >= radius, so the candidates of one localization in one neighbouring cell and frames
    f+1..f+max_gap+1 form one contiguous run of the sorted order (two searchsorted calls
    per neighbour cell, for all localizations at once).
    """
    f = frame.astype(np.int64)
    f -= f.min()
    n_f = int(f.max()) + max_gap + 3  # room so frame offsets never spill into the next cell
    x0, y0 = x.min(), y.min()
    cell = radius
    while True:
        ncx = int((x.max() - x0) // cell) + 1
        ncy = int((y.max() - y0) // cell) + 1
        if (ncx + 2) * (ncy + 2) * n_f < 2**62:
            break
        cell *= 2.0
    # +1 so that the neighbours cx - 1 and cx + 1 stay inside the padded row (no wrap).
    cx = ((x - x0) // cell).astype(np.int64) + 1
    cy = ((y - y0) // cell).astype(np.int64) + 1
    row = ncx + 2
    cid = cy * row + cx
    key = cid * n_f + f
    order = np.argsort(key)
    skey = key[order]
    scid = cid[order]
    sf = f[order]
    src_all, dst_all = [], []
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            # Queries in sorted order (monotone in skey) keep the binary searches fast.
            base = (scid + (oy * row + ox)) * n_f + sf
            lo = np.searchsorted(skey, base + 1, side="left")
            hi = np.searchsorted(skey, base + (max_gap + 1), side="right")
            cnt = hi - lo
            has = np.flatnonzero(cnt > 0)
            if has.size == 0:
                continue
            c = cnt[has]
            src = np.repeat(has, c)
            # sorted positions lo[has] + 0..c-1, flattened
            pos = np.repeat(lo[has] - np.cumsum(c) + c, c) + np.arange(src.size)
            src_all.append(order[src])
            dst_all.append(order[pos])
    if not src_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = np.concatenate(src_all)
    b = np.concatenate(dst_all)
    d2 = (x[a] - x[b]) ** 2 + (y[a] - y[b]) ** 2
    ok = d2 <= radius * radius
    return a[ok], b[ok]


def _match_chains(i, j, frame, x, y, n):
    """Greedy one-to-one matching of earlier ``i`` to later ``j``; returns successor array."""
    succ = np.full(n, -1, dtype=np.int64)
    if i.size == 0:
        return succ
    df = frame[j] - frame[i]
    d = np.hypot(x[i] - x[j], y[i] - y[j])
    # Lexicographic cost: fewer skipped frames first, then distance (d <= radius < 2 * dmax).
    order = np.argsort(df * (2.0 * d.max() + 1.0) + d, kind="stable")
    i, j = i[order], j[order]
    rank = np.arange(i.size)
    has_succ = np.zeros(n, dtype=bool)
    has_pred = np.zeros(n, dtype=bool)
    alive = np.ones(i.size, dtype=bool)
    while alive.any():
        ii, jj, rr = i[alive], j[alive], rank[alive]
        big = np.iinfo(np.int64).max
        best_i = np.full(n, big, dtype=np.int64)
        best_j = np.full(n, big, dtype=np.int64)
        np.minimum.at(best_i, ii, rr)
        np.minimum.at(best_j, jj, rr)
        mutual = (best_i[ii] == rr) & (best_j[jj] == rr)
        mi, mj = ii[mutual], jj[mutual]
        succ[mi] = mj
        has_succ[mi] = True
        has_pred[mj] = True
        alive &= ~(has_succ[i] | has_pred[j])
    return succ


def _chain_labels(succ: np.ndarray, n: int) -> np.ndarray:
    """Chain id per localization (0..n_chains-1) from the successor array."""
    src = np.flatnonzero(succ >= 0)
    graph = sparse.coo_matrix((np.ones(src.size, np.int8), (src, succ[src])), shape=(n, n))
    _, labels = csgraph.connected_components(graph, directed=True, connection="weak")
    return labels.astype(np.int64)


def _aggregate(table: pd.DataFrame, labels: np.ndarray, frame: np.ndarray):
    """One row per label (ordered by first frame), following merge_blinking's rules."""
    n = len(table)
    n_ev = int(labels.max()) + 1 if n else 0
    counts = np.bincount(labels, minlength=n_ev).astype(np.float64)

    weighting = "uniform"
    inv_var = None
    if "precision_nm" in table.columns:
        p = pd.to_numeric(table["precision_nm"], errors="coerce").to_numpy(dtype=np.float64)
        valid = np.isfinite(p) & (p > 0)
        inv_var = np.where(valid, 1.0 / np.where(valid, p, 1.0) ** 2, 0.0)
        if n and valid.all():
            weighting = "precision"
    w = inv_var if weighting == "precision" else np.ones(n)
    wsum = np.bincount(labels, weights=w, minlength=n_ev)

    # Representative row of each event: its first localization (earliest frame).
    by_frame = np.argsort(frame, kind="stable")
    order = by_frame[np.argsort(labels[by_frame], kind="stable")]
    first_idx = order[np.r_[0, np.flatnonzero(np.diff(labels[order])) + 1]] if n else order

    out: dict[str, Any] = {}
    for col in table.columns:
        s = table[col]
        if col in ("x_nm", "y_nm", "z_nm") and pd.api.types.is_numeric_dtype(s):
            v = s.to_numpy(dtype=np.float64)
            out[col] = np.bincount(labels, weights=w * v, minlength=n_ev) / wsum
        elif col == "precision_nm" and inv_var is not None:
            tot = np.bincount(labels, weights=inv_var, minlength=n_ev)
            with np.errstate(divide="ignore"):
                out[col] = np.where(tot > 0, 1.0 / np.sqrt(np.where(tot > 0, tot, 1.0)), np.nan)
        elif col == "photons" and pd.api.types.is_numeric_dtype(s):
            out[col] = np.bincount(labels, weights=s.to_numpy(dtype=np.float64), minlength=n_ev)
        elif col == "frame":
            out[col] = s.to_numpy()[first_idx]
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            v = s.to_numpy(dtype=np.float64)
            out[col] = np.bincount(labels, weights=v, minlength=n_ev) / counts
        else:
            out[col] = s.to_numpy()[first_idx]
    result = pd.DataFrame(out, columns=list(table.columns))
    # Events in time order (first frame, then first row).
    # first_idx is increasing within equal frames after a stable sort by frame of the
    # events taken in first_idx order, so this orders events by (first frame, first row).
    ev = np.argsort(first_idx, kind="stable")
    ev = ev[np.argsort(frame[first_idx][ev], kind="stable")]
    result = result.iloc[ev].reset_index(drop=True)
    return result, weighting
