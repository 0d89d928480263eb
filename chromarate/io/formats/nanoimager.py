"""ONI Nanoimager (NimOS) localization CSV.

Layout: comma-separated, one header line whose names carry their unit in parentheses:
``Channel,Frame,X (nm),Y (nm),Z (nm),Photons,Background`` (newer NimOS versions add e.g.
``X (pix)``, ``Y (pix)``, ``X precision (nm)``, ``Y precision (nm)``, ``Sigma X (nm)``,
``Sigma Y (nm)``).

Mapping:

- ``X (nm)``, ``Y (nm)``, ``Z (nm)`` -> ``x_nm``, ``y_nm``, ``z_nm`` (µm accepted; ``X (pix)``
  etc. are used only when no nm column exists, with ``pixel_size_nm``). A ``Z`` column that
  is 0 in every row (a 2-D acquisition) is dropped and named in ``meta["skipped_columns"]``.
- ``Frame`` -> ``frame``. NimOS counts frames from 0 (the first camera frame is ``Frame`` 0;
  the public sample file holds frame 0), so ``frame_base=0`` by default.
- ``Photons`` -> ``photons``; ``Background`` -> ``background`` (as NimOS writes it, photons);
  ``X/Y precision (nm)`` -> ``precision_nm`` (mean of x and y); ``Sigma X/Y (nm)`` ->
  ``sigma_nm`` (mean of x and y), or single ``Precision``/``Sigma`` columns.

Options: ``channel`` (keep one value of ``Channel``; default all, listed in
``meta["channels"]``), ``frame_base`` (default 0), ``pixel_size_nm``, ``units``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from chromarate._types import Localizations
from chromarate.errors import InputFormatError

from chromarate.io._options import reader_options
from chromarate.io._units import length_scale, unit_factor

from . import _text as g

FORMAT = "nanoimager"

__all__ = ["FORMAT", "detect", "read"]

_NAME_RE = re.compile(r"^(?P<name>.*?)\s*(?:\((?P<unit>[^)]*)\))?\s*$")


def _columns(header: str) -> list[tuple[str, str, str | None]]:
    out = []
    for raw in g.split_fields(header, ","):
        m = _NAME_RE.match(raw)
        name, unit = (m.group("name"), m.group("unit")) if m else (raw, None)
        out.append((raw, " ".join(name.lower().split()), None if unit is None else unit.strip()))
    return out


def detect(path: Path, head: bytes) -> bool:
    """A comma-separated header with ``Frame``, ``X (nm|pix)`` and ``Y (nm|pix)``."""
    return g.detect_first_line(head, ",", _is_nanoimager_header)


def _is_nanoimager_header(line: str) -> bool:
    raw = g.split_fields(line, ",")
    has = lambda pat: any(re.fullmatch(pat, f) for f in raw)  # noqa: E731
    return "Frame" in raw and has(r"X \((nm|pix|px|µm|um)\)") and has(r"Y \((nm|pix|px|µm|um)\)")


def read(
    path: str | Path,
    *,
    channel: Any = None,
    frame_base: int | None = None,
    pixel_size_nm: float | None = None,
    units: str | None = None,
) -> Localizations:
    """Read an ONI Nanoimager localization CSV (see the module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        The file, plain or gzip-compressed.
    channel : str or int, optional
        Keep only the localizations of this channel (default: all).
    frame_base : int, optional
        Number of the file's first frame (default 0); frames are returned 0-based.
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
    pixel_size_nm, units, frame_base = reader_options(pixel_size_nm, units, frame_base, 0)

    tf = g.read_text(path, what="an ONI Nanoimager localization CSV")
    (header,), body, first = g.split_header(tf.text, 1)
    cols = _columns(header)
    if len(cols) < 2:
        raise InputFormatError(
            'the header is not comma-separated; expected a Nanoimager CSV header like '
            '"Channel,Frame,X (nm),Y (nm),..."',
            path=path,
        )

    def find(name: str, prefer_nm: bool = True) -> int | None:
        hits = [i for i, c in enumerate(cols) if c[1] == name]
        if not hits:
            return None
        if prefer_nm:
            nm = [i for i in hits if unit_factor(cols[i][2] or "") not in (None, False)]
            if nm:
                return nm[0]
        return hits[0]

    plans: list[g.Plan] = []
    used_px = False

    def length(canonical: str, names: tuple[str, ...]) -> None:
        nonlocal used_px
        idx = [find(n) for n in names]
        if any(i is None for i in idx):
            return
        scales = []
        for i in idx:
            scales.append(length_scale(cols[i][2], column=cols[i][0], units=units,
                                         pixel_size_nm=pixel_size_nm, path=path, fmt=FORMAT))
        if len({s[0] for s in scales}) != 1:
            raise InputFormatError(
                f"columns {', '.join(cols[i][0] for i in idx)} have different units", path=path
            )
        used_px |= scales[0][2]
        plans.append(g.Plan(canonical, tuple(idx), tuple(cols[i][0] for i in idx), scales[0][0], scales[0][1]))

    for canonical, name in (("x_nm", "x"), ("y_nm", "y")):
        if find(name) is None:
            raise InputFormatError(
                f'no {name.upper()} column; columns found: {", ".join(repr(c[0]) for c in cols)}; '
                f'expected "{name.upper()} (nm)"',
                path=path,
            )
        length(canonical, (name,))
    length("z_nm", ("z",))
    for canonical, pair, single in (("precision_nm", ("x precision", "y precision"), "precision"),
                                    ("sigma_nm", ("sigma x", "sigma y"), "sigma")):
        if all(find(n) is not None for n in pair):
            length(canonical, pair)
        elif find(single) is not None:
            length(canonical, (single,))
    for canonical, name in (("photons", "photons"), ("background", "background")):
        i = find(name, prefer_nm=False)
        if i is not None:
            plans.append(g.Plan(canonical, (i,), (cols[i][0],), 1.0, None))
    fi = find("frame", prefer_nm=False)
    frame = (fi, cols[fi][0]) if fi is not None else None
    ci = find("channel", prefer_nm=False)
    if channel is not None and ci is None:
        raise InputFormatError('channel= was given but the file has no "Channel" column', path=path)

    data, lines, keep, channels = g.parse_planned(
        path, body, first, sep=",", names=[c[0] for c in cols], plans=plans, frame=frame,
        fmt=FORMAT, channel_col=ci, channel=channel,
    )
    skipped: dict[str, str] = {}
    z_plan = next((p for p in plans if p.canonical == "z_nm"), None)
    if z_plan is not None:
        z = data[z_plan.sources[0]].to_numpy(dtype=np.float64)
        if np.all(z == 0.0):
            plans.remove(z_plan)
            skipped[z_plan.names[0]] = "0 in every row (2-D acquisition)"
    meta: dict[str, Any] = {
        "columns_in_file": [c[0] for c in cols],
        "compressed": tf.gzipped,
        "encoding": tf.encoding,
        "channels": channels,
        "channel": channel,
    }
    if skipped:
        meta["skipped_columns"] = skipped
    spec = g.Assembly(FORMAT, plans, frame, frame_base, pixel_size_nm if used_px else None, meta)
    return g.assemble(path, data, lines.line, spec, keep=keep)
