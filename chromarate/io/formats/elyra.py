"""Zeiss Elyra (ZEN) localization table export.

Layout: one tab-separated header line (``Index``, ``First Frame``, ``Number Frames``,
``Frames Missing``, ``Position X [nm]``, ``Position Y [nm]``, ``Precision [nm]``,
``Number Photons``, ``Background variance``, ``Chi square``, ``PSF half width [nm]``,
``Channel``, ``Z Slice``; 3-D exports add ``Position Z [nm]``), tab-separated rows with CRLF
line ends, then -- after a NUL byte -- acquisition metadata lines such as
``VoxelSizeX : 0.0970873786 µm`` in Latin-1. The data part ends at the first NUL byte (or,
without one, at the first ``Key : value`` line); the metadata is kept in
``meta["elyra_metadata"]``.

Mapping (units from the brackets; nm, um or px with ``pixel_size_nm``):

- ``Position X/Y/Z [nm]`` -> ``x_nm``, ``y_nm``, ``z_nm``
- ``First Frame`` -> ``frame``; ZEN counts frames from 1, so frames are made 0-based
  (``frame_base=1`` by default). A localization merged over several frames keeps its first.
- ``Number Photons`` -> ``photons``; ``Precision [nm]`` -> ``precision_nm``
- not kept: ``PSF half width`` (ZEN does not state whether it is a FWHM or a half width,
  so it is not turned into ``sigma_nm``), ``Background variance`` (a variance, not a
  background level), ``Chi square``, ``Z Slice``, ``Index``.

Options: ``channel`` (keep only this value of the ``Channel`` column; default all, the
channels present are listed in ``meta["channels"]``), ``frame_base`` (default 1),
``pixel_size_nm``, ``units`` (for position columns without a recognised unit).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from chromarate._types import Localizations
from chromarate.errors import InputFormatError

from chromarate.io._options import reader_options
from chromarate.io._units import length_scale

from . import _text as g

FORMAT = "elyra"

__all__ = ["FORMAT", "detect", "read"]

_HEADER_RE = re.compile(r"^(?P<name>.*?)\s*(?:\[(?P<unit>[^\]]*)\])?\s*$")
_META_LINE = re.compile(r"^\s*([^\t:]+?)\s*:\s*(.*?)\s*$")


def _columns(header: str) -> list[tuple[str, str, str | None]]:
    """(raw, name, unit) per tab-separated header field."""
    out = []
    for raw in header.split("\t"):
        raw = raw.strip().strip('"').strip()
        m = _HEADER_RE.match(raw)
        name, unit = (m.group("name"), m.group("unit")) if m else (raw, None)
        out.append((raw, name.strip(), None if unit is None else unit.strip()))
    return out


def detect(path: Path, head: bytes) -> bool:
    """A tab-separated first line naming ``Position X``, ``Position Y`` and ``First Frame``."""
    return g.detect_first_line(head, "\t", _is_elyra_header)


def _is_elyra_header(line: str) -> bool:
    names = {name for _, name, _ in _columns(line)}
    return {"Position X", "Position Y", "First Frame"} <= names


def read(
    path: str | Path,
    *,
    channel: Any = None,
    frame_base: int | None = None,
    pixel_size_nm: float | None = None,
    units: str | None = None,
) -> Localizations:
    """Read a Zeiss Elyra localization table (see the module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        The file, plain or gzip-compressed.
    channel : str or int, optional
        Keep only the localizations of this channel (default: all).
    frame_base : int, optional
        Number of the file's first frame (default 1); frames are returned 0-based.
    pixel_size_nm : float, optional
        Camera pixel size, for columns in pixels.
    units : str, optional
        Length unit of columns whose unit the file does not state or that is unknown
        (see :mod:`chromarate.io._units`); it never overrides a known unit.

    Returns
    -------
    Localizations
        Canonical columns in nm with 0-based frames.
    """
    path = Path(path)
    pixel_size_nm, units, frame_base = reader_options(pixel_size_nm, units, frame_base, 1)

    tf = g.read_text(path, keep_nul=True, what="a Zeiss Elyra localization table")
    text, trailer = _split_trailer(tf.text)
    (header,), body, first = g.split_header(text, 1)
    if "\t" not in header:
        raise InputFormatError(
            "the header line is not tab-separated; expected a Zeiss Elyra table with columns "
            '"Index", "First Frame", ..., "Position X [nm]", "Position Y [nm]", ...',
            path=path,
        )
    cols = _columns(header)
    by_name: dict[str, int] = {}
    for i, (raw, name, _) in enumerate(cols):
        if name in by_name:
            raise InputFormatError(f'duplicated column "{raw}" (columns {by_name[name] + 1} and {i + 1})', path=path)
        by_name[name] = i
    for required in ("Position X", "Position Y"):
        if required not in by_name:
            raise InputFormatError(
                f'no "{required} [nm]" column; columns found: '
                f"{', '.join(repr(c[0]) for c in cols)}",
                path=path,
            )

    plans: list[g.Plan] = []
    used_px = False
    for canonical, name in (("x_nm", "Position X"), ("y_nm", "Position Y"), ("z_nm", "Position Z"),
                            ("precision_nm", "Precision")):
        if name not in by_name:
            continue
        i = by_name[name]
        scale, unit, px = length_scale(cols[i][2], column=cols[i][0], units=units,
                                         pixel_size_nm=pixel_size_nm, path=path, fmt=FORMAT)
        used_px |= px
        plans.append(g.Plan(canonical, (i,), (cols[i][0],), scale, unit))
    if "Number Photons" in by_name:
        i = by_name["Number Photons"]
        plans.append(g.Plan("photons", (i,), (cols[i][0],), 1.0, "photon"))
    frame = (by_name["First Frame"], cols[by_name["First Frame"]][0]) if "First Frame" in by_name else None
    chan_idx = by_name.get("Channel")
    if channel is not None and chan_idx is None:
        raise InputFormatError("channel= was given but the file has no \"Channel\" column", path=path)

    data, lines, keep, channels = g.parse_planned(
        path, body, first, sep="\t", names=[c[0] for c in cols], plans=plans, frame=frame,
        fmt=FORMAT, channel_col=chan_idx, channel=channel,
    )
    skipped = {
        cols[by_name[n]][0]: why
        for n, why in (
            ("PSF half width", "ZEN does not define it as FWHM or half width; not converted to sigma_nm"),
            ("Background variance", "a variance, not a background level"),
        )
        if n in by_name
    }
    meta: dict[str, Any] = {
        "columns_in_file": [c[0] for c in cols],
        "compressed": tf.gzipped,
        "encoding": tf.encoding,
        "channels": channels,
        "channel": channel,
        "elyra_metadata": _parse_trailer(trailer),
    }
    if skipped:
        meta["skipped_columns"] = skipped
    spec = g.Assembly(FORMAT, plans, frame, frame_base, pixel_size_nm if used_px else None, meta)
    return g.assemble(path, data, lines.line, spec, keep=keep)


def _split_trailer(text: str) -> tuple[str, str]:
    """Split the table from the metadata that ZEN appends after a NUL character."""
    nul = text.find("\x00")
    if nul >= 0:
        return text[:nul], text[nul + 1:]
    # no NUL: the table ends at the first "Key : value" line without tabs (after the header)
    key_value = re.compile(r"[ \t]*[A-Za-z][^\t:]*\s:(\s[^\t]*)?")
    pos = 0
    for i, m in enumerate(re.finditer(r"[^\r\n]*(\r\n|\r|\n|$)", text)):
        line = m.group(0).rstrip("\r\n")
        if i > 0 and key_value.fullmatch(line):
            return text[:m.start()], text[m.start():]
        pos = m.end()
        if pos >= len(text):
            break
    return text, ""


def _parse_trailer(trailer: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in re.split(r"\r\n|\r|\n", trailer):
        if "\t" in line:
            continue
        m = _META_LINE.match(line)
        if m and m.group(1) and not m.group(1)[0].isdigit():
            out.setdefault(m.group(1), m.group(2))
    return out
