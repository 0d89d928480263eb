"""rapidSTORM localization text output.

Layout: the first line is a comment holding an XML description of the columns::

    # <localizations insequence="true" repetitions="variable"><field
      identifier="Position-0-0" syntax="floating point ..." semantic="position in sample
      space in X" unit="nanometer" min="0 m" max="3.27e-005 m" /> ... </localizations>

followed by whitespace-separated rows, one value per ``<field>`` in order. Each field's
``unit`` attribute gives its unit; length units nanometer, micrometer and meter are
converted to nm, pixel units need ``pixel_size_nm``, and any other unit of a length column is
refused unless ``units=`` states it.

Mapping by identifier:

- ``Position-0-0``, ``Position-1-0``, ``Position-2-0`` -> ``x_nm``, ``y_nm``, ``z_nm``
- ``Position-0-0-uncertainty``/``Position-1-0-uncertainty`` -> ``precision_nm`` (mean of x, y)
- ``ImageNumber-0-0`` -> ``frame``; rapidSTORM counts frames from 0 (its headers declare
  ``min="0 fr"``, and the public sample holds frame 0), so ``frame_base=0`` by default.
- ``PSFWidth-0-0``/``PSFWidth-1-0`` (FWHM, per the field semantics) -> ``sigma_nm`` =
  mean FWHM / (2 sqrt(2 ln 2))
- ``Amplitude-0-0`` -> ``photons`` and ``LocalBackground-0-0`` -> ``background`` only when
  their unit is photon; in A/D counts (the usual case) they are left out and named in
  ``meta["skipped_columns"]``.

Track files: when the header nests a second ``<localizations>`` element, each row is one
track: the outer fields (the merged localization), then the number k of its points, then k
groups of the inner fields. ``tracks="merged"`` (default) returns one localization per
track from the outer fields (``frame`` is then the track's last frame, as rapidSTORM
writes it); ``tracks="points"`` returns every point, track after track, with
``meta["track_sizes"]`` giving the number of points of each track.

Options: ``pixel_size_nm``, ``units``, ``frame_base`` (default 0), ``tracks``.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chromarate._types import Localizations
from chromarate.errors import ConfigError, InputFormatError

from chromarate.io._options import reader_options

from . import _text as g
from ._docs import TEXT, reader_doc

FORMAT = "rapidstorm"

__all__ = ["FORMAT", "detect", "read"]

_FRAME_BASE = 0  # the first frame number the software writes
_TRACKS_DOC = ('{"merged", "points"}, optional',
               "One localization per track (default) or every point of every track.")

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_PHOTON_UNITS = {"photon", "photons", "photon count", "photoelectron"}
_HEADER_START = re.compile(r"^\s*#\s*<localizations[\s>]")


@dataclass(frozen=True)
class _Field:
    identifier: str
    unit: str | None
    semantic: str
    minimum: str | None = None  # the ``min`` attribute as written (e.g. "0 fr")


def detect(path: Path, head: bytes) -> bool:
    """The first line is a comment starting ``# <localizations``."""
    try:
        line = g.first_line(head)
        return line is not None and bool(_HEADER_START.match(line))
    except Exception:  # noqa: BLE001 - detection never raises
        return False


def _parse_header(line: str, path: Path) -> tuple[list[_Field], list[_Field] | None]:
    if not _HEADER_START.match(line):
        raise InputFormatError(
            "the first line is not a rapidSTORM header; expected '# <localizations ...>' "
            "describing the columns",
            path=path,
        )
    xml = line.strip()[1:].strip()
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InputFormatError(f"the rapidSTORM header is not valid XML ({exc}); expected "
                               "'# <localizations><field identifier=... unit=... />...</localizations>'",
                               path=path) from None

    def fields_of(el: ET.Element) -> list[_Field]:
        out = []
        for f in el.findall("field"):
            ident = f.get("identifier")
            if not ident:
                raise InputFormatError("a <field> of the rapidSTORM header has no identifier", path=path)
            unit = f.get("unit")
            out.append(_Field(ident, unit.strip() if unit else None, f.get("semantic") or "",
                              f.get("min")))
        return out

    outer = fields_of(root)
    nested = root.findall("localizations")
    if len(nested) > 1 or any(n.findall("localizations") for n in nested):
        raise InputFormatError("rapidSTORM header nests localizations more than one level deep; "
                               "only tracks of localizations are supported", path=path)
    inner = fields_of(nested[0]) if nested else None
    if not outer:
        raise InputFormatError("the rapidSTORM header declares no <field> columns", path=path)
    for fields in (outer, inner or []):
        seen: set[str] = set()
        for f in fields:
            if f.identifier in seen:
                raise InputFormatError(f'duplicated field "{f.identifier}" in the rapidSTORM header',
                                       path=path)
            seen.add(f.identifier)
    return outer, inner


def _plan(fields: list[_Field], *, units, pixel_size_nm,
          path) -> tuple[g.Planner, tuple[int, str] | None, dict]:
    """Map rapidSTORM fields to canonical columns."""
    by_id = {f.identifier: i for i, f in enumerate(fields)}
    planner = g.Planner(FORMAT, path, units, pixel_size_nm)
    skipped: dict[str, str] = {}

    def add_length(canonical: str, ids: tuple[str, ...], extra: float = 1.0) -> None:
        idx = [by_id[i] for i in ids if i in by_id]
        if idx:
            planner.length(canonical, [(i, fields[i].identifier, fields[i].unit) for i in idx], extra,
                           what="fields")

    for canonical, ident in (("x_nm", "Position-0-0"), ("y_nm", "Position-1-0")):
        if ident not in by_id:
            found = ", ".join(f.identifier for f in fields)
            raise InputFormatError(f'no "{ident}" field ({canonical[0]} position) in the rapidSTORM '
                                   f"header; fields: {found}", path=path)
        add_length(canonical, (ident,))
    add_length("z_nm", ("Position-2-0",))
    add_length("precision_nm", ("Position-0-0-uncertainty", "Position-1-0-uncertainty"))
    add_length("sigma_nm", ("PSFWidth-0-0", "PSFWidth-1-0"), 1.0 / _FWHM_PER_SIGMA)
    for canonical, ident in (("photons", "Amplitude-0-0"), ("background", "LocalBackground-0-0")):
        if ident in by_id:
            unit = (fields[by_id[ident]].unit or "").lower()
            if unit in _PHOTON_UNITS:
                planner.column(canonical, by_id[ident], ident, "photon")
            else:
                skipped[ident] = f"unit {fields[by_id[ident]].unit!r} is not photon"
    frame = None
    if "ImageNumber-0-0" in by_id:
        i = by_id["ImageNumber-0-0"]
        unit = (fields[i].unit or "frame").lower()
        if unit not in ("frame", "frames", "fr"):
            raise InputFormatError(f'field "ImageNumber-0-0" has unit {fields[i].unit!r}; expected "frame"',
                                   path=path)
        frame = (i, "ImageNumber-0-0")
    return planner, frame, skipped


_MIN_FRAME = re.compile(r"\s*(-?\d+)\s*fr")


def _declared_min_frame(fields: list[_Field]) -> int | None:
    """The first frame number the header declares: the ``min`` of the first
    ``ImageNumber-0-0`` field that has one in frames (``min="0 fr"``), or None.

    Read from the parsed header (``fields``), so the work is linear in the header's length
    whatever it holds (a pattern searched over the raw line was quadratic in the number of
    ``identifier="ImageNumber-0-0"`` texts in it).
    """
    for f in fields:
        if f.identifier == "ImageNumber-0-0" and f.minimum is not None:
            m = _MIN_FRAME.match(f.minimum)
            if m:
                return int(m.group(1))
    return None


@reader_doc(TEXT, frame_base=_FRAME_BASE, tracks=_TRACKS_DOC)
def read(path: str | Path, *, tracks: str = "merged", frame_base: int | None = None,
         pixel_size_nm: float | None = None, units: str | None = None) -> Localizations:
    """Read a rapidSTORM localization or track file (see the module docstring)."""
    path = Path(path)
    pixel_size_nm, units, frame_base = reader_options(pixel_size_nm, units, frame_base, _FRAME_BASE)
    if tracks not in ("merged", "points"):
        raise ConfigError(f"tracks must be 'merged' or 'points', got {tracks!r}")

    # header and body decoded apart: the whole text is never held next to the body
    tf, header, body, first = g.read_body(path, what="a rapidSTORM localization file")
    outer, inner = _parse_header(header, path)
    declared_min_frame = _declared_min_frame(outer + (inner or []))

    if inner is None:
        planner, frame, skipped = _plan(outer, units=units, pixel_size_nm=pixel_size_nm, path=path)
        names = [f.identifier for f in outer]
        data, lines, _, _ = g.parse_planned(path, body, first, sep="ws", names=names, plans=planner.plans,
                                            frame=frame, fmt=FORMAT)
        meta = tf.meta(names, declared_min_frame=declared_min_frame, tracks=None)
        line_of = lines.line
    else:
        fields = outer if tracks == "merged" else inner
        planner, frame, skipped = _plan(fields, units=units, pixel_size_nm=pixel_size_nm, path=path)
        outer_rows, inner_rows, sizes, outer_lines, inner_lines = _parse_tracks(
            path, body, first, outer, inner)
        if tracks == "merged":
            data = {i: outer_rows[:, i] for i in range(len(outer))}
            line_numbers = outer_lines
        else:
            data = {i: inner_rows[:, i] for i in range(len(inner))}
            line_numbers = inner_lines
        if len(line_numbers) == 0:
            raise InputFormatError("no localizations: the track file holds no points", path=path)
        meta = tf.meta(
            [f.identifier for f in outer] + ["(number of points)"]
            + [f"{f.identifier} (track point)" for f in inner],
            declared_min_frame=declared_min_frame, tracks=tracks, n_tracks=int(len(sizes)),
        )
        if tracks == "points":
            meta["track_sizes"] = [int(s) for s in sizes]
        line_of = lambda row: int(line_numbers[row])  # noqa: E731
    return g.assemble(path, data, line_of, planner.assembly(frame, frame_base, meta, skipped))


def _parse_tracks(path: Path, body: str, first: int, outer: list[_Field], inner: list[_Field]):
    n_out, n_in = len(outer), len(inner)
    outer_rows: list[list[float]] = []
    inner_rows: list[list[float]] = []
    sizes: list[int] = []
    outer_lines: list[int] = []
    inner_lines: list[int] = []
    for offset, line in enumerate(g.iter_lines(body)):
        tokens = line.split()
        if not tokens:
            continue
        lineno = first + offset
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            k = next(j for j, t in enumerate(tokens) if not _is_float(t))
            raise InputFormatError(
                f"non-numeric value {g.shown(tokens[k])!r} (field {k + 1}) at line {lineno}; "
                "expected a number",
                path=path,
            ) from None
        if len(values) <= n_out:
            raise InputFormatError(
                f"line {lineno} has {len(values)} fields; expected {n_out} track fields, the "
                f"number of points, then {n_in} fields per point",
                path=path,
            )
        count = values[n_out]
        expected = n_out + 1 + count * n_in if math.isfinite(count) else -1
        if not (math.isfinite(count) and count >= 0 and count == int(count)) or len(values) != expected:
            raise InputFormatError(
                f"line {lineno} has {len(values)} fields but declares {tokens[n_out]} track points "
                f"of {n_in} fields each after {n_out} track fields (expected "
                f"{n_out} + 1 + points x {n_in} fields)",
                path=path,
            )
        k = int(count)
        outer_rows.append(values[:n_out])
        outer_lines.append(lineno)
        sizes.append(k)
        pts = values[n_out + 1:]
        for j in range(k):
            inner_rows.append(pts[j * n_in:(j + 1) * n_in])
            inner_lines.append(lineno)
    if not outer_rows:
        raise InputFormatError("no localizations: the file has a header but no data rows", path=path)
    o = np.asarray(outer_rows, dtype=np.float64).reshape(-1, n_out)
    i = np.asarray(inner_rows, dtype=np.float64).reshape(-1, n_in)
    return o, i, np.asarray(sizes), np.asarray(outer_lines), np.asarray(inner_lines)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
