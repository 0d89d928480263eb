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
from chromarate.io._units import length_scale

from . import _text as g

FORMAT = "nstorm"

__all__ = ["FORMAT", "detect", "read"]



def _fields(line: str) -> list[str]:
    return [f.strip().strip('"').strip() for f in line.split("\t")]


def detect(path: Path, head: bytes) -> bool:
    """A tab-separated header with ``X``, ``Y``, ``Frame`` and ``Xc``/``Yc`` or ``Channel Name``."""
    return g.detect_first_line(head, "\t", _is_nstorm_header)


def _is_nstorm_header(line: str) -> bool:
    names = set(_fields(line))
    return {"X", "Y", "Frame"} <= names and ({"Xc", "Yc"} <= names or "Channel Name" in names)


def read(
    path: str | Path,
    *,
    channel: Any = None,
    drift_corrected: bool = True,
    frame_base: int | None = None,
    pixel_size_nm: float | None = None,
    units: str | None = None,
) -> Localizations:
    """Read a Nikon N-STORM molecule list (see the module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        The file, plain or gzip-compressed.
    channel : str or int, optional
        Keep only the localizations of this channel (default: all).
    drift_corrected : bool, optional
        Use the drift-corrected Xc/Yc/Zc columns when present (default True).
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
    units = units or "nm"
    drift = drift_corrected
    if not isinstance(drift, bool):
        raise ConfigError(f"drift_corrected must be True or False, got {drift!r}")

    tf = g.read_text(path, what="a Nikon N-STORM molecule list")
    (header,), body, first = g.split_header(tf.text, 1)
    fields = _fields(header)
    if len(fields) < 2:
        raise InputFormatError(
            'the header is not tab-separated; expected an N-STORM header like '
            '"Channel Name<TAB>X<TAB>Y<TAB>Xc<TAB>Yc<TAB>...<TAB>Frame<TAB>..."',
            path=path,
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
    scale, unit, used_px = length_scale(units, column=names["x_nm"], units=None,
                                          pixel_size_nm=pixel_size_nm, path=path, fmt=FORMAT)
    plans = [g.Plan(c, (index[n],), (n,), scale, unit) for c, n in names.items() if n in index]
    if "Lateral Localization Accuracy" in index:
        plans.append(g.Plan("precision_nm", (index["Lateral Localization Accuracy"],),
                            ("Lateral Localization Accuracy",), scale, unit))
    if "Photons" in index:
        plans.append(g.Plan("photons", (index["Photons"],), ("Photons",), 1.0, None))
    frame = (index["Frame"], "Frame") if "Frame" in index else None
    ci = index.get("Channel Name")
    if channel is not None and ci is None:
        raise InputFormatError('channel= was given but the file has no "Channel Name" column', path=path)

    data, lines, keep, channels = g.parse_planned(
        path, body, first, sep="\t", names=fields, plans=plans, frame=frame, fmt=FORMAT,
        channel_col=ci, channel=channel,
    )
    meta: dict[str, Any] = {
        "columns_in_file": fields,
        "compressed": tf.gzipped,
        "encoding": tf.encoding,
        "coordinates": "drift-corrected (Xc, Yc, Zc)" if use_c else "raw (X, Y, Z)",
        "channels": channels,
        "channel": channel,
    }
    spec = g.Assembly(FORMAT, plans, frame, frame_base, pixel_size_nm if used_px else None, meta)
    return g.assemble(path, data, lines.line, spec, keep=keep)
