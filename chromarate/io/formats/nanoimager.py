"""ONI Nanoimager (NimOS) localization CSV.

Layout: comma-separated, one header line whose names carry their unit in parentheses:
``Channel,Frame,X (nm),Y (nm),Z (nm),Photons,Background`` (newer NimOS versions add e.g.
``X (pix)``, ``Y (pix)``, ``X precision (nm)``, ``Y precision (nm)``, ``Sigma X (nm)``,
``Sigma Y (nm)``).

Mapping:

- ``X (nm)``, ``Y (nm)``, ``Z (nm)`` -> ``x_nm``, ``y_nm``, ``z_nm`` (µm accepted; ``X (pix)``
  etc. are used only when no nm column exists, with ``pixel_size_nm``). A ``Z`` column that
  is 0 in every row (a 2-D acquisition) is dropped and named in ``meta["skipped_columns"]``;
  a dropped ``Z`` in pixels does not set ``meta["pixel_size_nm"]``.
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
from chromarate.io._units import unit_factor

from . import _text as g
from ._docs import TEXT, reader_doc

FORMAT = "nanoimager"

__all__ = ["FORMAT", "detect", "read"]

_FRAME_BASE = 0  # the first frame number the software writes

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


@reader_doc(TEXT, frame_base=_FRAME_BASE)
def read(path: str | Path, *, channel: Any = None, frame_base: int | None = None,
         pixel_size_nm: float | None = None, units: str | None = None) -> Localizations:
    """Read an ONI Nanoimager localization CSV (see the module docstring)."""
    path = Path(path)
    pixel_size_nm, units, frame_base = reader_options(pixel_size_nm, units, frame_base, _FRAME_BASE)

    tf, cols, body, first = g.read_header(
        path, what="an ONI Nanoimager localization CSV", fields=_columns,
        refusal='the header is not comma-separated; expected a Nanoimager CSV header like '
                '"Channel,Frame,X (nm),Y (nm),..."',
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

    planner = g.Planner(FORMAT, path, units, pixel_size_nm)

    def length(canonical: str, names: tuple[str, ...]) -> None:
        idx = [find(n) for n in names]
        if all(i is not None for i in idx):
            planner.length(canonical, [(i, cols[i][0], cols[i][2]) for i in idx])

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
            planner.column(canonical, i, cols[i][0])
    fi = find("frame", prefer_nm=False)
    frame = (fi, cols[fi][0]) if fi is not None else None

    data, lines, keep, channels = g.parse_planned(
        path, body, first, sep=",", names=[c[0] for c in cols], plans=planner.plans, frame=frame,
        fmt=FORMAT, channel_col=find("channel", prefer_nm=False), channel=channel,
    )
    skipped: dict[str, str] = {}
    z_plan = next((p for p in planner.plans if p.canonical == "z_nm"), None)
    if z_plan is not None:
        z = data[z_plan.sources[0]].to_numpy(dtype=np.float64)
        if np.all(z == 0.0):
            planner.drop(z_plan)  # before the assembly: meta's pixel size follows the plans kept
            skipped[z_plan.names[0]] = "0 in every row (2-D acquisition)"
    meta = tf.meta([c[0] for c in cols], channels=channels, channel=channel)
    return g.assemble(path, data, lines.line, planner.assembly(frame, frame_base, meta, skipped), keep=keep)
