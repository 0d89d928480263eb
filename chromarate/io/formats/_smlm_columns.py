"""Mapping of the columns of an SMLM (``.smlm``) table to canonical columns (not public).

Part of :mod:`chromarate.io.formats.smlm` (the archive, manifest and binary tables are read
there); see its docstring for the column mapping and units. Length units come from the
shared table of :mod:`chromarate.io._units`, plus the abbreviation ``a`` for angstrom.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from chromarate.errors import InputFormatError
from chromarate.io._units import LENGTH_UNITS, PHOTON_UNITS
from chromarate.io.formats._binary import (
    check_finite_coordinates,
    check_non_negative,
    frames_zero_based,
    mean_of,
)

__all__ = ["ColumnContext", "canonical_columns"]

# the shared length units, plus "a" (angstrom) as SMLM manifests may write it
_LENGTH_UNITS = {**LENGTH_UNITS, "a": 0.1}

_COORDS = {"x_nm": ("x", "position_x"), "y_nm": ("y", "position_y"), "z_nm": ("z", "position_z")}
_PRECISION_PAIRS = (("x_precision", "y_precision"), ("uncertainty_x", "uncertainty_y"))
_PRECISION_SINGLE = ("uncertainty_xy", "uncertainty", "precision", "localization_precision")
_SIGMA_PAIRS = (("psf_sigma_x", "psf_sigma_y"), ("sigma_x", "sigma_y"))
_SIGMA_SINGLE = ("sigma", "psf_sigma")
_PHOTON_COLUMNS = {"photons": ("intensity",), "background": ("background", "local_background", "bg")}


class ColumnContext:
    """What :func:`canonical_columns` gathers over the tables of one archive (units used,
    column map, skipped and dropped columns) and the settings it needs."""

    def __init__(self, path: Path, pixel_size: float | None, locan_units: dict[str, str], frame_base: int):
        self.path = path
        self.pixel_size = pixel_size
        self.locan_units = locan_units
        self.frame_base = frame_base
        self.used_pixels = False
        self.column_map: dict[str, str] = {}
        self.units: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self.dropped: dict[str, str] = {}

    def length_scale(self, header: str, unit: str) -> tuple[float, str]:
        """(nm per stored unit, description) for a length column."""
        u = unit.strip()
        source = "manifest"
        if u == "":
            u = self.locan_units.get(header.lower(), "")
            source = "locan metadata"
        if u == "":
            return 1.0, "nm (no unit in the manifest; the SMLM specification's default)"
        key = u.lower()
        if key not in _LENGTH_UNITS:
            raise InputFormatError(
                f"unknown unit {u!r} of column '{header}' ({source}); expected a length unit: "
                "nm, um, angstrom, mm, m or px",
                path=self.path,
            )
        factor = _LENGTH_UNITS[key]
        if factor is None:
            if self.pixel_size is None:
                raise InputFormatError(
                    f"column '{header}' is in pixels ({u!r}) and the manifest gives no pixel size; "
                    "pass pixel_size_nm=... to convert it to nm",
                    path=self.path,
                )
            self.used_pixels = True
            return self.pixel_size, "px"
        return factor, u


def canonical_columns(
    info: dict[str, Any], headers: list[str], units: list[str], values: dict[str, np.ndarray],
    ctx: ColumnContext,
) -> dict[str, np.ndarray]:
    """The canonical columns (nm, 0-based frames) of one table of an SMLM archive.

    Parameters
    ----------
    info : dict
        The table's entry in the manifest's ``files``.
    headers, units : list of str
        Its column names and units as the manifest gives them.
    values : dict of str to numpy.ndarray
        Its columns by header.
    ctx : ColumnContext
        Shared over the archive's tables; updated with units, column map, skipped and dropped columns.

    Returns
    -------
    dict of str to numpy.ndarray
    """
    by_lower = {h.lower(): (h, u) for h, u in zip(headers, units) if h in values}
    table = info.get("name")
    out: dict[str, np.ndarray] = {}

    def take_length(canonical: str, header: str, coordinate: bool) -> np.ndarray:
        h, u = by_lower[header]
        v = values[h]
        where = f"column '{h}' of table '{table}'"
        if coordinate:
            check_finite_coordinates(v, where, ctx.path)
        else:
            check_non_negative(v, where, ctx.path)
        scale, unit = ctx.length_scale(h, u)
        ctx.units.setdefault(canonical, unit)
        return v * scale if scale != 1.0 else v

    for canonical, names in _COORDS.items():
        found = next((n for n in names if n in by_lower), None)
        if found is None:
            if canonical != "z_nm":
                raise InputFormatError(
                    f"table '{table}' has no {canonical[0]} column (headers: {', '.join(headers)}); "
                    f"expected '{names[0]}' or '{names[1]}'",
                    path=ctx.path,
                )
            continue
        out[canonical] = take_length(canonical, found, coordinate=True)
        ctx.column_map.setdefault(canonical, by_lower[found][0])

    for canonical, pairs, singles in (
        ("precision_nm", _PRECISION_PAIRS, _PRECISION_SINGLE),
        ("sigma_nm", _SIGMA_PAIRS, _SIGMA_SINGLE),
    ):
        pair = next((p for p in pairs if all(n in by_lower for n in p)), None)
        if pair is not None:
            out[canonical] = mean_of([take_length(canonical, n, coordinate=False) for n in pair])
            ctx.column_map.setdefault(canonical, f"mean({by_lower[pair[0]][0]}, {by_lower[pair[1]][0]})")
            continue
        single = next((n for n in singles if n in by_lower), None)
        if single is not None:
            out[canonical] = take_length(canonical, single, coordinate=False)
            ctx.column_map.setdefault(canonical, by_lower[single][0])

    for canonical, names in _PHOTON_COLUMNS.items():
        found = next((n for n in names if n in by_lower), None)
        if found is None:
            continue
        h, u = by_lower[found]
        unit = u.strip() or ctx.locan_units.get(h.lower(), "")
        if unit.lower() in PHOTON_UNITS:
            out[canonical] = values[h]
            ctx.column_map.setdefault(canonical, h)
            ctx.units.setdefault(canonical, "photon")
        else:
            ctx.skipped[h] = f"unit {unit!r} is not photon" if unit else "no unit (photon expected)"

    if "frame" in by_lower:
        h, _ = by_lower["frame"]
        frames, reason = frames_zero_based(
            values[h], ctx.frame_base, f"column '{h}' of table '{table}'", ctx.path,
            hint=" (pass frame_base= if the file counts frames differently)",
        )
        if frames is None:
            ctx.dropped["frame"] = reason  # type: ignore[assignment]
        else:
            out["frame"] = frames
            ctx.column_map.setdefault("frame", h)
    return out


