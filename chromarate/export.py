"""Assemble the per-nucleus :class:`~chromarate._types.ResultStack` (pure, no file access).

The stack is what :func:`chromarate.io.write_result` writes as one OME-Zarr image: seven
float32 channels on the nucleus crop grid (:data:`CHANNELS`), the nucleus mask as the label
image ``"nucleus"``, the pixels where the rate is reported as trusted as the label image
``"trusted"`` (:data:`TRUSTED_LABEL`), and a JSON-serialisable provenance block that
carries :data:`SCHEMA_VERSION`.

:data:`CHANNEL_TABLE` is the one description of those channels: unit, display colour of
the OME-Zarr store and the TIFF exports, napari colormap, layer title, contrast rule and
which channels show at first. The store writer, the TIFF and OME-TIFF exports and the
napari layers all read it (:func:`channel_spec`, :func:`channel_color`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal, Mapping

import numpy as np

from ._types import DensityMap, FitResult, PhaseFields, ResultStack
from .errors import StageError

__all__ = [
    "CHANNELS",
    "CHANNEL_TABLE",
    "FALLBACK_COLORS",
    "SCHEMA_VERSION",
    "TRUSTED_LABEL",
    "ChannelSpec",
    "build_result_stack",
    "channel_color",
    "channel_spec",
    "json_safe",
]

#: Label image of the pixels where the fit reports the rate as trusted (``FitResult.trusted``
#: inside the nucleus): the rate's summaries (summary.csv, the nucleus table, the napari
#: statistics and the quality gate) are taken over them. Results written before it was
#: stored lack it; readers then use the nucleus pixels with a finite rate.
TRUSTED_LABEL = "trusted"

#: Version of the result layout and of the ``chromarate`` attribute block. Bump it when the
#: channels, labels or provenance keys change meaning; readers refuse versions they do not
#: know.
SCHEMA_VERSION = 1



@dataclass(frozen=True)
class ChannelSpec:
    """How one channel of a result stack is described and shown.

    Attributes
    ----------
    name : str
        Channel name, as stored (``omero`` label of the store, TIFF slice label).
    title : str
        Short title of its napari layer (``"<result> · <title>"``).
    unit : str
        What the values are measured in.
    color : str
        Display colour ``RRGGBB`` (``omero`` channel colour of the store, TIFF LUT).
    colormap : str
        napari colormap of its image layer.
    contrast : {"percentile", "symmetric"}
        Contrast rule of its napari layer: the 1st-99.5th percentile of the finite values,
        or +- the 99th percentile of their magnitude (signed maps such as residuals).
    visible : bool
        Whether its napari layer is visible when a result is opened.
    active : bool
        Whether a generic OME-Zarr viewer shows it at first (``omero`` ``active``).
    """

    name: str
    title: str
    unit: str
    color: str
    colormap: str
    contrast: Literal["percentile", "symmetric"] = "percentile"
    visible: bool = False
    active: bool = False


_PER_PIXEL = "localizations per pixel"
_NO_UNIT = "dimensionless"

#: The channels of a result stack, in the order they are stored, with their unit and
#: display settings: the one table every writer and viewer of results reads.
CHANNEL_TABLE: Mapping[str, ChannelSpec] = types.MappingProxyType({spec.name: spec for spec in (
    ChannelSpec("density", "density", _PER_PIXEL, "FFFFFF", "gray", visible=True),
    ChannelSpec("denoised", "denoised", _PER_PIXEL, "FFFFFF", "gray", active=True),
    ChannelSpec("phi_d_observed", "φ_d observed", _NO_UNIT, "FF00FF", "PiYG", "symmetric"),
    ChannelSpec("phi_d_fitted", "φ_d fitted", _NO_UNIT, "00FFFF", "PiYG", "symmetric"),
    ChannelSpec("rate", "rate λ", _NO_UNIT, "FFFF00", "inferno", visible=True, active=True),
    ChannelSpec("rate_std", "rate std", _NO_UNIT, "FF8000", "magma"),
    ChannelSpec("residual", "residual", _NO_UNIT, "00FF00", "PiYG", "symmetric"),
)})

#: Channel names of a result stack, in the order they are stored.
CHANNELS: tuple[str, ...] = tuple(CHANNEL_TABLE)

#: Display colours (RRGGBB) of channels the table does not know, by position in the stack.
FALLBACK_COLORS: tuple[str, ...] = ("FF0000", "00FF00", "0000FF", "FFFF00", "FF00FF",
                                    "00FFFF", "FFFFFF")


def channel_spec(name: str) -> ChannelSpec:
    """The description of channel ``name``; a plain one for channels the table lacks.

    Parameters
    ----------
    name : str
        Channel name.

    Returns
    -------
    ChannelSpec
        The :data:`CHANNEL_TABLE` entry, or for an unknown channel one titled by its name,
        gray, percentile contrast, hidden, with no unit and the first fallback colour (the
        colour of an unknown channel depends on its position: use :func:`channel_color`).

    Examples
    --------
    >>> channel_spec("rate").colormap, channel_spec("something").colormap
    ('inferno', 'gray')
    """
    spec = CHANNEL_TABLE.get(name)
    if spec is not None:
        return spec
    return ChannelSpec(name, name, "", FALLBACK_COLORS[0], "gray")


def channel_color(name: str, index: int) -> str:
    """Display colour (``RRGGBB``) of channel ``name`` at position ``index`` of a stack.

    Parameters
    ----------
    name : str
        Channel name.
    index : int
        Its position among the stack's channels (picks a fallback colour for channels the
        table does not know).

    Returns
    -------
    str
        Six hexadecimal digits, e.g. ``"FFFF00"`` for ``rate``.
    """
    spec = CHANNEL_TABLE.get(name)
    return spec.color if spec is not None else FALLBACK_COLORS[index % len(FALLBACK_COLORS)]

#: Arrays with more elements than this are summarised, not listed, by :func:`json_safe`.
_MAX_LISTED_ELEMENTS = 4096


def json_safe(obj: Any) -> Any:
    """Return a copy of ``obj`` made only of JSON types (dict, list, str, int, float, bool, None).

    numpy scalars become Python numbers, small numpy arrays nested lists (arrays with more
    than 4096 elements become a ``{"shape", "dtype", "omitted"}`` summary), tuples and sets
    lists, paths and other objects strings, pydantic models their JSON dump, dataclasses
    dicts. Non-finite floats become None (strict JSON has no NaN or infinity). Mapping keys
    become strings.

    Examples
    --------
    >>> import numpy as np
    >>> json_safe({"a": np.float32(1.5), "b": (1, np.int64(2)), "c": float("nan")})
    {'a': 1.5, 'b': [1, 2], 'c': None}
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (complex, np.complexfloating)):
        return str(complex(obj))
    if isinstance(obj, np.ndarray):
        if obj.size > _MAX_LISTED_ELEMENTS:
            return {"shape": list(obj.shape), "dtype": str(obj.dtype), "omitted": True}
        return json_safe(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(json_safe(k)) if not isinstance(k, str) else k: json_safe(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [json_safe(v) for v in obj]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(obj, enum.Enum):
        return json_safe(obj.value)
    if isinstance(obj, PurePath):
        return str(obj)
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):  # pydantic v2 model
        return json_safe(model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    return str(obj)


def _final_loss(fit: FitResult) -> tuple[float | None, dict[str, Any]]:
    """Last logged total loss and last value of every logged term."""
    final_terms: dict[str, Any] = {}
    for name, values in (fit.history or {}).items():
        try:
            if len(values):
                final_terms[str(name)] = values[-1]
        except TypeError:  # a scalar rather than a list
            final_terms[str(name)] = values
    loss = fit.meta.get("final_loss") if fit.meta else None
    if loss is None:
        for key in ("loss", "total", "total_loss"):
            if key in final_terms:
                loss = final_terms[key]
                break
    if loss is not None:
        try:
            loss = float(loss)
        except (TypeError, ValueError):
            loss = None
    return loss, final_terms


def _check_grid(name: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if tuple(shape) != tuple(expected):
        raise StageError(
            f"export: {name} has shape {tuple(shape)} but the phase fields' grid is "
            f"{tuple(expected)}; crop it to the nucleus grid first"
        )


def _check_map_grid(name: str, dmap: DensityMap, fields: PhaseFields) -> None:
    _check_grid(f"{name} map", np.shape(dmap.data), fields.shape)
    p = float(fields.pixel_size_nm)
    if not math.isclose(float(dmap.pixel_size_nm), p, rel_tol=1e-9, abs_tol=0.0):
        raise StageError(
            f"export: {name} map has pixel size {dmap.pixel_size_nm} nm but the phase "
            f"fields have {p} nm"
        )
    tol = 1e-6 * p
    dy = abs(float(dmap.origin_nm[0]) - float(fields.origin_nm[0]))
    dx = abs(float(dmap.origin_nm[1]) - float(fields.origin_nm[1]))
    if dy > tol or dx > tol:
        raise StageError(
            f"export: {name} map has origin {tuple(dmap.origin_nm)} nm but the phase fields "
            f"have {tuple(fields.origin_nm)} nm; crop both to the same window"
        )


def build_result_stack(
    *,
    density: DensityMap,
    denoised: DensityMap,
    fields: PhaseFields,
    fit: FitResult,
    provenance: Mapping[str, Any],
) -> ResultStack:
    """Collect the maps of one nucleus into a :class:`ResultStack`.

    Parameters
    ----------
    density, denoised : DensityMap
        Raw and denoised density, already cropped to the nucleus grid of ``fields``
        (same shape, pixel size and origin).
    fields : PhaseFields
        Observed phase fields of the nucleus; fixes the grid, the mask and the units.
    fit : FitResult
        Rate inference on the same grid.
    provenance : mapping
        Run information (resolved config, config hash, versions, input path and sha256,
        metrics, ...). It is copied; ``schema_version`` and a ``fit`` block (device,
        timings, meta, final loss, final loss terms, fit config) are added, and everything
        is converted to JSON types with :func:`json_safe`.

    Returns
    -------
    ResultStack
        Channels :data:`CHANNELS` as float32 arrays (``rate_std`` is NaN when the fit has
        no uncertainty), labels ``{"nucleus": uint8 mask, "trusted": uint8 mask}`` (the
        trusted pixels of the fit inside the nucleus), pixel size and origin of ``fields``.

    Raises
    ------
    StageError
        If any input is not on the grid of ``fields``.

    Examples
    --------
    >>> import numpy as np
    >>> from chromarate._types import DensityMap, FitResult, PhaseFields
    >>> z = np.zeros((4, 5), np.float32)
    >>> f = PhaseFields(z, z, z > -1, pixel_size_nm=20.0)
    >>> d = DensityMap(z, 20.0)
    >>> r = FitResult(rate=z, phi_d_fit=z, residual=z, trusted=z > -1)
    >>> s = build_result_stack(density=d, denoised=d, fields=f, fit=r, provenance={})
    >>> list(s.channels) == list(CHANNELS), s.provenance["schema_version"]
    (True, 1)
    """
    grid = fields.shape
    if len(grid) != 2:
        raise StageError(f"export: phase fields must be 2-D, got shape {grid}")
    _check_grid("phi_w", np.shape(fields.phi_w), grid)
    _check_grid("mask", np.shape(fields.mask), grid)
    _check_map_grid("density", density, fields)
    _check_map_grid("denoised", denoised, fields)
    _check_grid("fit.rate", np.shape(fit.rate), grid)
    _check_grid("fit.phi_d_fit", np.shape(fit.phi_d_fit), grid)
    _check_grid("fit.residual", np.shape(fit.residual), grid)
    _check_grid("fit.trusted", np.shape(fit.trusted), grid)
    if fit.rate_std is not None:
        _check_grid("fit.rate_std", np.shape(fit.rate_std), grid)
        rate_std = fit.rate_std
    else:
        rate_std = np.full(grid, np.nan, dtype=np.float32)

    arrays = (
        density.data,
        denoised.data,
        fields.phi_d,
        fit.phi_d_fit,
        fit.rate,
        rate_std,
        fit.residual,
    )
    channels = {
        name: np.ascontiguousarray(np.asarray(a), dtype=np.float32)
        for name, a in zip(CHANNELS, arrays)
    }
    mask = np.asarray(fields.mask, dtype=bool)
    labels = {"nucleus": mask.astype(np.uint8),
              TRUSTED_LABEL: (mask & np.asarray(fit.trusted, dtype=bool)).astype(np.uint8)}

    final_loss, final_terms = _final_loss(fit)
    prov = dict(provenance)
    prov["schema_version"] = SCHEMA_VERSION
    prov["fit"] = {
        "device": str(fit.device),
        "timings": dict(fit.timings or {}),
        "meta": dict(fit.meta or {}),
        "final_loss": final_loss,
        "final_terms": final_terms,
        "config": dict(fit.config or {}),
        "has_rate_std": fit.rate_std is not None,
    }
    prov = json_safe(prov)
    json.dumps(prov, allow_nan=False)  # guaranteed by json_safe; fail loudly if not

    return ResultStack(
        channels=channels,
        labels=labels,
        pixel_size_nm=float(fields.pixel_size_nm),
        origin_nm=(float(fields.origin_nm[0]), float(fields.origin_nm[1])),
        provenance=prov,
    )
