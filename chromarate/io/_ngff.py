"""NGFF metadata of result stores: one small class per NGFF version.

Both classes build the same metadata -- axes, the coordinate transformations of each
resolution level, ``multiscales``, ``omero``, ``labels`` and ``image-label`` -- and differ
only where the specification versions differ:

========================  ==================================  ============================
                          NGFF 0.4 (:class:`Ngff04`)          NGFF 0.5 (:class:`Ngff05`)
========================  ==================================  ============================
zarr format               2 (``.zattrs``, ``.zarray``)        3 (``zarr.json``)
where the metadata lives  top level of the group attributes   the ``"ome"`` attribute
version field             in each ``multiscales`` entry and   once, ``ome["version"]``
                          in ``image-label``
array options             ``/``-separated chunk keys          ``dimension_names``
========================  ==================================  ============================

The writer asks :func:`ngff_format` for the class of the version it writes and the reader
asks :func:`find_metadata` where a group's metadata is; neither branches on the version.
The metadata are plain JSON dictionaries, written in the same key order as before this
module existed, so stores are byte-for-byte what earlier chromarate wrote; tests validate
them with the ``ome-zarr-models`` pydantic models of each version.

Placement (docs/design.md, "Value types and units"): chromarate's ``origin`` is the corner
of pixel (0, 0), NGFF's translation the centre of array element (0, 0); each level's
translation is therefore ``origin + p * f / 2`` (``p`` the pixel size, ``f`` the level's
downsampling factor).
"""

from __future__ import annotations

import colorsys
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np

from ..export import channel_color, channel_spec

__all__ = ["FORMATS", "Ngff04", "Ngff05", "NgffFormat", "find_metadata", "ngff_format"]

_UNIT = "nanometer"
#: colour (RGBA) of a label image with a single value (the nucleus)
_LABEL_RGBA = (255, 200, 0, 128)
#: at most this many label values get a colour and a name in ``image-label``
_MAX_LABEL_VALUES = 256


def _label_rgba(index: int, n_values: int) -> list[int]:
    """Colour of the ``index``-th of ``n_values`` label values.

    The nucleus colour for a single label; well-separated hues (golden-ratio steps) when
    there are many (e.g. chromatin domains).
    """
    if n_values == 1:
        return list(_LABEL_RGBA)
    r, g, b = colorsys.hsv_to_rgb((0.1 + 0.618034 * index) % 1.0, 0.75, 1.0)
    return [int(round(255 * r)), int(round(255 * g)), int(round(255 * b)), _LABEL_RGBA[3]]


class NgffFormat:
    """NGFF metadata of one specification version (the interface; use a subclass).

    Attributes
    ----------
    version : str
        The NGFF version, e.g. ``"0.5"``.
    zarr_format : int
        The zarr format stores of this version are written in.
    """

    version: ClassVar[str]
    zarr_format: ClassVar[int]

    # -- what differs between versions ---------------------------------------------------

    def attributes(self, ome: Mapping[str, Any],
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The group attributes holding NGFF metadata ``ome`` and other blocks ``extra``.

        Parameters
        ----------
        ome : mapping
            NGFF keys (``multiscales``, ``omero``, ``labels``, ``image-label``).
        extra : mapping, optional
            Other attribute blocks (the ``chromarate`` block), kept beside the NGFF ones.

        Returns
        -------
        dict
            What to write into the group's attributes.
        """
        raise NotImplementedError

    @classmethod
    def find(cls, attrs: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]] | None:
        """Where this version would keep NGFF metadata in group attributes ``attrs``.

        Parameters
        ----------
        attrs : mapping
            The attributes of a zarr group (``group.attrs``).

        Returns
        -------
        tuple or None
            (declared version, the mapping holding the NGFF keys), or None when ``attrs``
            has no metadata laid out as this version lays it out. The declared version may
            be another one (or None): the caller checks it.
        """
        raise NotImplementedError

    def array_options(self, dims: Sequence[str]) -> dict[str, Any]:
        """Keyword arguments of ``zarr.Group.create_array`` for an array with axes ``dims``."""
        raise NotImplementedError

    def _versioned(self, block: dict[str, Any]) -> dict[str, Any]:
        """``block`` with the version field this NGFF version puts into it (if any)."""
        return block

    # -- what both versions share --------------------------------------------------------

    @staticmethod
    def axes(with_channel: bool) -> list[dict[str, str]]:
        """Axes ``c`` (when ``with_channel``), ``y``, ``x`` (space, nanometer)."""
        axes = [{"name": "c", "type": "channel"}] if with_channel else []
        axes += [
            {"name": "y", "type": "space", "unit": _UNIT},
            {"name": "x", "type": "space", "unit": _UNIT},
        ]
        return axes

    @staticmethod
    def coordinate_transformations(pixel_size_nm: float, origin_nm: Sequence[float],
                                   factor: int, *, with_channel: bool) -> list[dict]:
        """Scale and translation of a resolution level downsampled ``factor`` times.

        Parameters
        ----------
        pixel_size_nm : float
            Full-resolution pixel size.
        origin_nm : sequence of float
            (y, x) corner of full-resolution pixel (0, 0).
        factor : int
            Downsampling factor of the level (1: full resolution).
        with_channel : bool
            Whether the array has a leading channel axis (scale 1, translation 0).

        Returns
        -------
        list of dict
            ``[{"type": "scale", ...}, {"type": "translation", ...}]``; the translation is
            the centre of the level's first pixel.
        """
        step = float(pixel_size_nm) * factor
        oy, ox = (float(v) for v in origin_nm)
        lead, lead0 = ([1.0], [0.0]) if with_channel else ([], [])
        return [
            {"type": "scale", "scale": lead + [step, step]},
            {"type": "translation", "translation": lead0 + [oy + step / 2, ox + step / 2]},
        ]

    def multiscales(self, name: str, levels: Iterable[tuple[str, int]], *,
                    pixel_size_nm: float, origin_nm: Sequence[float],
                    with_channel: bool) -> list[dict[str, Any]]:
        """The ``multiscales`` list of an image or a label image.

        Parameters
        ----------
        name : str
            Image name.
        levels : iterable of (str, int)
            (array path, downsampling factor) of each resolution level, full resolution
            first.
        pixel_size_nm, origin_nm, with_channel
            See :meth:`coordinate_transformations`.

        Returns
        -------
        list of dict
            One multiscale.
        """
        datasets = [{
            "path": path,
            "coordinateTransformations": self.coordinate_transformations(
                pixel_size_nm, origin_nm, factor, with_channel=with_channel),
        } for path, factor in levels]
        return [self._versioned({"name": name, "axes": self.axes(with_channel),
                                 "datasets": datasets})]

    @staticmethod
    def omero(name: str, windows: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        """The ``omero`` block: each channel's label, colour, display window, visibility.

        Parameters
        ----------
        name : str
            Image name.
        windows : mapping of str to mapping
            Channel name -> display window (``min``, ``max``, ``start``, ``end``), in the
            order of the channel axis.

        Returns
        -------
        dict
            Colours and visibility come from :data:`chromarate.export.CHANNEL_TABLE`.
        """
        channels = [{
            "label": cname,
            "color": channel_color(cname, i),
            "window": dict(window),
            "active": channel_spec(cname).active,
            "coefficient": 1.0,
            "family": "linear",
            "inverted": False,
        } for i, (cname, window) in enumerate(windows.items())]
        return {
            "name": name,
            "channels": channels,
            "rdefs": {"model": "color", "defaultT": 0, "defaultZ": 0},
        }

    def image_label(self, label_name: str, data: np.ndarray) -> dict[str, Any]:
        """The ``image-label`` block of label image ``label_name`` holding ``data``.

        Its source is the image two levels up; each non-zero value (the first 256) gets a
        colour and a name ``"<label_name> <value>"``.
        """
        values = [int(v) for v in np.unique(data) if v != 0][:_MAX_LABEL_VALUES]
        return self._versioned({
            "source": {"image": "../../"},
            "colors": [{"label-value": v, "rgba": _label_rgba(i, len(values))}
                       for i, v in enumerate(values)],
            "properties": [{"label-value": v, "name": f"{label_name} {v}"} for v in values],
        })

    @staticmethod
    def labels(names: Iterable[str]) -> dict[str, Any]:
        """NGFF keys of the ``labels`` group listing label images ``names``."""
        return {"labels": list(names)}


class Ngff05(NgffFormat):
    """NGFF 0.5 on zarr v3: metadata under the ``"ome"`` attribute, versioned once."""

    version = "0.5"
    zarr_format = 3

    def attributes(self, ome, extra=None):
        return {"ome": {"version": self.version, **ome}, **(extra or {})}

    @classmethod
    def find(cls, attrs):
        ome = attrs.get("ome")
        if not isinstance(ome, Mapping):
            return None
        version = ome.get("version")
        return (str(version) if version is not None else None), ome

    def array_options(self, dims):
        return {"dimension_names": list(dims)}


class Ngff04(NgffFormat):
    """NGFF 0.4 on zarr v2: metadata at the top level, each multiscale and image-label
    carrying its version."""

    version = "0.4"
    zarr_format = 2

    def attributes(self, ome, extra=None):
        return {**ome, **(extra or {})}

    @classmethod
    def find(cls, attrs):
        ms = attrs.get("multiscales")
        if isinstance(ms, list) and ms and isinstance(ms[0], Mapping):
            block: Mapping = ms[0]
        elif isinstance(attrs.get("image-label"), Mapping):
            block = attrs["image-label"]
        else:
            return None
        version = block.get("version")
        return (str(version) if version is not None else None), attrs

    def array_options(self, dims):
        return {"chunk_key_encoding": {"name": "v2", "separator": "/"}}

    def _versioned(self, block):
        return {"version": self.version, **block}


#: The NGFF versions chromarate writes, newest (the default) first.
FORMATS: Mapping[str, NgffFormat] = {fmt.version: fmt for fmt in (Ngff05(), Ngff04())}


def ngff_format(version: str) -> NgffFormat:
    """The metadata class of NGFF ``version``.

    Raises
    ------
    KeyError
        chromarate does not write that version (see :data:`FORMATS`).
    """
    return FORMATS[version]


def find_metadata(attrs: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """The declared NGFF version and NGFF metadata of a group's attributes.

    Each format class is asked in turn where it keeps its metadata (0.5: under ``"ome"``;
    0.4: at the top level, versioned in ``multiscales`` or ``image-label``).

    Parameters
    ----------
    attrs : mapping
        A group's attributes.

    Returns
    -------
    tuple
        (declared version or None, the mapping holding the NGFF keys: ``attrs`` itself when
        no layout matches, e.g. a 0.4 ``labels`` group, which declares no version).
    """
    for fmt in FORMATS.values():
        found = fmt.find(attrs)
        if found is not None:
            return found
    return None, attrs
