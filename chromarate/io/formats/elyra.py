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

from . import _text as g
from ._docs import TEXT, reader_doc

FORMAT = "elyra"

__all__ = ["FORMAT", "detect", "read"]

_FRAME_BASE = 1  # the first frame number the software writes

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


@reader_doc(TEXT, frame_base=_FRAME_BASE)
def read(path: str | Path, *, channel: Any = None, frame_base: int | None = None,
         pixel_size_nm: float | None = None, units: str | None = None) -> Localizations:
    """Read a Zeiss Elyra localization table (see the module docstring)."""
    path = Path(path)
    pixel_size_nm, units, frame_base = reader_options(pixel_size_nm, units, frame_base, _FRAME_BASE)

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

    planner = g.Planner(FORMAT, path, units, pixel_size_nm)
    for canonical, name in (("x_nm", "Position X"), ("y_nm", "Position Y"), ("z_nm", "Position Z"),
                            ("precision_nm", "Precision")):
        if name in by_name:
            planner.length(canonical, [(by_name[name], cols[by_name[name]][0], cols[by_name[name]][2])])
    if "Number Photons" in by_name:
        planner.column("photons", by_name["Number Photons"], cols[by_name["Number Photons"]][0], "photon")
    frame = (by_name["First Frame"], cols[by_name["First Frame"]][0]) if "First Frame" in by_name else None

    data, lines, keep, channels = g.parse_planned(
        path, body, first, sep="\t", names=[c[0] for c in cols], plans=planner.plans, frame=frame,
        fmt=FORMAT, channel_col=by_name.get("Channel"), channel=channel,
    )
    skipped = {
        cols[by_name[n]][0]: why
        for n, why in (
            ("PSF half width", "ZEN does not define it as FWHM or half width; not converted to sigma_nm"),
            ("Background variance", "a variance, not a background level"),
        )
        if n in by_name
    }
    meta = tf.meta([c[0] for c in cols], channels=channels, channel=channel,
                   elyra_metadata=_parse_trailer(trailer))
    return g.assemble(path, data, lines.line, planner.assembly(frame, frame_base, meta, skipped), keep=keep)


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
