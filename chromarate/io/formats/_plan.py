"""Column plans of the text readers: which file columns make each canonical column, in
which unit, and the checked canonical table built from them (not public).

Used through :mod:`chromarate.io.formats._text`, which re-exports these names:

- :class:`Plan`: one canonical column as the mean of source columns times a scale;
- :class:`Planner`: gathers a reader's plans, converting length columns through
  :func:`chromarate.io._units.length_scale` and noting which were in pixels;
- :class:`Assembly` and :func:`assemble`: check the values (finite coordinates, non-negative
  lengths, integer frames from the format's first frame) and build the
  :class:`~chromarate._types.Localizations` with its ``meta``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import InputFormatError
from chromarate.io._units import length_scale
from chromarate.io.formats._binary import check_non_negative

__all__ = ["Assembly", "Plan", "Planner", "assemble", "values_of"]

_COORDINATES = ("x_nm", "y_nm", "z_nm")
_NON_NEGATIVE = ("precision_nm", "sigma_nm")


@dataclass
class Plan:
    """How one canonical column is computed: mean of source columns times a scale."""

    canonical: str
    sources: tuple[int, ...]
    names: tuple[str, ...]
    scale: float = 1.0
    unit: str | None = None


@dataclass
class Assembly:
    """Everything :func:`assemble` needs besides the parsed data."""

    fmt: str
    plans: list[Plan]
    frame: tuple[int, str] | None = None  # (column position, header name)
    frame_base: int = 0
    pixel_size_nm: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)  # column -> why it is not kept


def values_of(data: pd.DataFrame | Mapping[int, np.ndarray], plan: Plan) -> np.ndarray:
    arrays = [np.asarray(data[i], dtype=np.float64) for i in plan.sources]
    out = arrays[0] if len(arrays) == 1 else np.mean(np.vstack(arrays), axis=0)
    return out * plan.scale if plan.scale != 1.0 else out


def assemble(
    path: Path,
    data: pd.DataFrame | Mapping[int, np.ndarray],
    lines: Callable[[int], int],
    spec: Assembly,
    *,
    keep: np.ndarray | None = None,
) -> Localizations:
    """Check values and build the canonical table and meta.

    ``lines(row)`` gives the file line of a row for messages; ``keep`` optionally selects
    rows (e.g. one channel) after all rows were checked.
    """
    table: dict[str, np.ndarray] = {}
    for plan in spec.plans:
        values = values_of(data, plan)
        label = " + ".join(f'"{n}"' for n in plan.names)
        if plan.canonical in _COORDINATES:
            bad = ~np.isfinite(values)
            if bad.any():
                i = int(np.argmax(bad))
                what = "missing or NaN value" if np.isnan(values[i]) else f"infinite value {values[i]}"
                raise InputFormatError(
                    f"{what} in coordinate column {label} at line {lines(i)}; expected finite numbers",
                    path=path,
                )
        elif plan.canonical in _NON_NEGATIVE:
            check_non_negative(values, f"column {label}", path, at=lambda i: f"line {lines(i)}", spec="")
        table[plan.canonical] = values
    if spec.frame is not None:
        idx, name = spec.frame
        values = np.asarray(data[idx], dtype=np.float64)
        base = spec.frame_base
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.round(values)) | (values < base) | (values > 2.0**53)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputFormatError(
                f'invalid frame number {values[i]} in column "{name}" at line {lines(i)}; expected '
                f"integers >= {base} (format {spec.fmt!r} counts frames from {base}; pass "
                "frame_base= if this file does not)",
                path=path,
            )
        table["frame"] = values.astype(np.int64) - base

    if keep is not None:
        table = {k: v[keep] for k, v in table.items()}
    ordered = {c: table[c] for c in CANONICAL_COLUMNS if c in table}
    frame_df = pd.DataFrame(ordered, copy=False)
    column_map = {p.canonical: " + ".join(p.names) for p in spec.plans}
    if spec.frame is not None:
        column_map["frame"] = spec.frame[1]
    column_map = {c: column_map[c] for c in CANONICAL_COLUMNS if c in column_map}
    units = {p.canonical: p.unit for p in spec.plans if p.unit is not None}
    meta: dict[str, Any] = {
        "source": str(path),
        "format": spec.fmt,
        "pixel_size_nm": spec.pixel_size_nm,
        "frame_base": spec.frame_base,
        "n_rows": int(len(frame_df)),
        "column_map": column_map,
        "units": units,
    }
    meta.update(spec.meta)
    if spec.skipped:
        meta["skipped_columns"] = dict(spec.skipped)
    return Localizations(table=frame_df, meta=meta)


@dataclass
class Planner:
    """The plans of one reader, built column by column.

    Parameters
    ----------
    fmt : str
        The format's name, for messages.
    path : pathlib.Path
        The file, for messages.
    units : str or None
        The reader's ``units=`` option (checked), for length columns of no known unit.
    pixel_size_nm : float or None
        The reader's ``pixel_size_nm=`` option (checked), for length columns in pixels.

    Notes
    -----
    Whether pixels were converted (:attr:`used_pixels`, hence the pixel size in ``meta``)
    follows the plans held when asked: a plan taken out with :meth:`drop` (a z column of
    zeros) no longer counts.
    """

    fmt: str
    path: Path
    units: str | None
    pixel_size_nm: float | None
    plans: list[Plan] = field(default_factory=list)
    in_pixels: set[str] = field(default_factory=set)  # canonical names of plans in pixels

    @property
    def used_pixels(self) -> bool:
        """True when a plan still held converts a length column from camera pixels."""
        return any(p.canonical in self.in_pixels for p in self.plans)

    def length(self, canonical: str, columns: Sequence[tuple[int, str, str | None]],
               factor: float = 1.0, what: str = "columns") -> None:
        """Plan ``canonical`` as the mean of length ``columns`` -- (position, name, the unit
        the file states or None) -- times ``factor``; they must share one unit."""
        scales = [length_scale(unit, column=name, units=self.units, pixel_size_nm=self.pixel_size_nm,
                               path=self.path, fmt=self.fmt) for _, name, unit in columns]
        names = tuple(name for _, name, _ in columns)
        if len({s[0] for s in scales}) != 1:
            raise InputFormatError(f"{what} {', '.join(names)} have different units", path=self.path)
        scale, unit, in_pixels = scales[0]
        if in_pixels:
            self.in_pixels.add(canonical)
        self.plans.append(Plan(canonical, tuple(i for i, _, _ in columns), names, scale * factor, unit))

    def column(self, canonical: str, position: int, name: str, unit: str | None = None) -> None:
        """Plan ``canonical`` as one column taken as it is (photons, background)."""
        self.plans.append(Plan(canonical, (position,), (name,), 1.0, unit))

    def drop(self, plan: Plan) -> None:
        """Take ``plan`` out (its column is not kept); it no longer counts for
        :attr:`used_pixels`."""
        self.plans.remove(plan)

    def assembly(self, frame: tuple[int, str] | None, frame_base: int, meta: dict[str, Any],
                 skipped: Mapping[str, str] | None = None) -> Assembly:
        """The :class:`Assembly` of these plans; its pixel size is the option's when a plan
        held converts a length column from pixels (:attr:`used_pixels`), else None."""
        return Assembly(self.fmt, self.plans, frame, frame_base,
                        self.pixel_size_nm if self.used_pixels else None, meta, skipped or {})
