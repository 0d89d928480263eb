"""Nikon N-STORM (NIS-Elements) molecule list text export.

Layout: tab-separated, one header line: ``Channel Name``, ``X``, ``Y``, ``Xc``, ``Yc``,
``Height``, ``Area``, ``Width``, ``Phi``, ``Ax``, ``BG``, ``I``, ``Frame``, ``Length``,
``Link``, ``Valid``, ``Z``, ``Zc``, ``Photons``, ``Lateral Localization Accuracy``, ``Xw``,
``Yw``, ``Xwc``, ``Ywc``, ... Coordinates are in nm; frames are counted from 1.

Mapping:

- ``Xc``, ``Yc``, ``Zc`` (drift-corrected) -> ``x_nm``, ``y_nm``, ``z_nm`` when present,
  else ``X``, ``Y``, ``Z``; ``drift_corrected=False`` forces the raw ``X``/``Y``/``Z``.
  ``meta["coordinates"]`` says which were used.
- ``Frame`` -> ``frame``, made 0-based (``frame_base=1`` by default)
- ``Photons`` -> ``photons``; ``Lateral Localization Accuracy`` -> ``precision_nm``
- not kept: ``BG`` and ``I`` (camera counts), ``Width`` (not a Gaussian sigma), the rest.

Options: ``channel`` (keep one ``Channel Name``; default all, listed in
``meta["channels"]``), ``drift_corrected`` (default True), ``frame_base`` (default 1),
``units`` (default "nm"; N-STORM writes nm), ``pixel_size_nm`` (for ``units="px"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chromarate._types import Localizations
from chromarate.errors import ConfigError, InputFormatError

from chromarate.io._options import reader_options

from . import _text as g
from ._docs import TEXT, reader_doc

FORMAT = "nstorm"

__all__ = ["FORMAT", "detect", "read"]

_FRAME_BASE = 1  # the first frame number the software writes
_DRIFT_DOC = ("bool, optional", "Use the drift-corrected Xc/Yc/Zc columns when present (default True).")


def _fields(line: str) -> list[str]:
    return [f.strip().strip('"').strip() for f in line.split("\t")]


def detect(path: Path, head: bytes) -> bool:
    """A tab-separated header with ``X``, ``Y``, ``Frame`` and ``Xc``/``Yc`` or ``Channel Name``."""
    return g.detect_first_line(head, "\t", _is_nstorm_header)


def _is_nstorm_header(line: str) -> bool:
    names = set(_fields(line))
    return {"X", "Y", "Frame"} <= names and ({"Xc", "Yc"} <= names or "Channel Name" in names)


@reader_doc(TEXT, frame_base=_FRAME_BASE, drift_corrected=_DRIFT_DOC)
def read(path: str | Path, *, channel: Any = None, drift_corrected: bool = True,
         frame_base: int | None = None, pixel_size_nm: float | None = None,
         units: str | None = None) -> Localizations:
    """Read a Nikon N-STORM molecule list (see the module docstring)."""
    path = Path(path)
    pixel_size_nm, units, frame_base = reader_options(pixel_size_nm, units, frame_base, _FRAME_BASE)
    units = units or "nm"
    drift = drift_corrected
    if not isinstance(drift, bool):
        raise ConfigError(f"drift_corrected must be True or False, got {drift!r}")

    tf, fields, body, first = g.read_header(
        path, what="a Nikon N-STORM molecule list", fields=_fields,
        refusal='the header is not tab-separated; expected an N-STORM header like '
                '"Channel Name<TAB>X<TAB>Y<TAB>Xc<TAB>Yc<TAB>...<TAB>Frame<TAB>..."',
    )
    index: dict[str, int] = {}
    for i, f in enumerate(fields):
        index.setdefault(f, i)

    use_c = drift and "Xc" in index and "Yc" in index
    names = {"x_nm": "Xc" if use_c else "X", "y_nm": "Yc" if use_c else "Y",
             "z_nm": "Zc" if use_c and "Zc" in index else "Z"}
    for canonical in ("x_nm", "y_nm"):
        if names[canonical] not in index:
            raise InputFormatError(
                f'no "{names[canonical]}" column; columns found: '
                f"{', '.join(repr(f) for f in fields)}",
                path=path,
            )
    # N-STORM states no units: every length column is in ``units`` (nm unless told otherwise)
    planner = g.Planner(FORMAT, path, None, pixel_size_nm)
    for canonical, name in (*names.items(), ("precision_nm", "Lateral Localization Accuracy")):
        if name in index:
            planner.length(canonical, [(index[name], name, units)])
    if "Photons" in index:
        planner.column("photons", index["Photons"], "Photons")
    frame = (index["Frame"], "Frame") if "Frame" in index else None

    data, lines, keep, channels = g.parse_planned(
        path, body, first, sep="\t", names=fields, plans=planner.plans, frame=frame, fmt=FORMAT,
        channel_col=index.get("Channel Name"), channel=channel, channel_header="Channel Name",
    )
    meta = tf.meta(fields, coordinates="drift-corrected (Xc, Yc, Zc)" if use_c else "raw (X, Y, Z)",
                   channels=channels, channel=channel)
    return g.assemble(path, data, lines.line, planner.assembly(frame, frame_base, meta), keep=keep)
