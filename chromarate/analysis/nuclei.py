"""The nuclei of a result folder as Python objects with their arrays and metadata.

(The example needs a result folder written by ``chromarate run``; it is not run as a doctest.)

>>> for nucleus in iter_nuclei("results/"):           # doctest: +SKIP
...     print(nucleus.name, nucleus.nucleus_id, nucleus.area_um2,
...           nucleus.rate[nucleus.rate_region].mean())        # where the rate is trusted
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .._types import ResultStack
from ..errors import ResultStoreError
from ..export import TRUSTED_LABEL
from ..io.zarr_store import read_result

__all__ = ["Nucleus", "find_results", "iter_nuclei", "load_nucleus", "nucleus_from_stack"]

log = logging.getLogger("chromarate.analysis")

_SUFFIX = ".ome.zarr"


@dataclass(frozen=True)
class Nucleus:
    """One nucleus of a batch result: its arrays on the crop grid and its provenance.

    Attributes
    ----------
    path : Path
        The ``.ome.zarr`` result store.
    name : str
        Output folder name of its input (the store's parent folder).
    nucleus_id : int
    channels : dict of str to numpy.ndarray
        float32 (ny, nx) maps: ``density``, ``denoised``, ``phi_d_observed``,
        ``phi_d_fitted``, ``rate``, ``rate_std``, ``residual``.
    mask : numpy.ndarray
        bool nucleus mask.
    pixel_size_nm : float
    origin_nm : tuple of float
        (y, x) of the corner of pixel (0, 0) in the acquisition's coordinates.
    provenance : dict
        The store's ``chromarate`` block: config, config hash, input path and sha256,
        timings, fit information, metrics.
    trusted : numpy.ndarray or None
        bool: the pixels where the fit reports the rate as trusted (the store's
        ``trusted`` label); None for results written before it was stored.
    """

    path: Path
    name: str
    nucleus_id: int
    channels: Mapping[str, np.ndarray]
    mask: np.ndarray
    pixel_size_nm: float
    origin_nm: tuple[float, float]
    provenance: Mapping[str, Any] = field(default_factory=dict)
    trusted: np.ndarray | None = None

    # --- maps
    @property
    def rate(self) -> np.ndarray:
        """Inferred lambda = Gamma_me / Gamma_ac (NaN where not inferred)."""
        return self.channels["rate"]

    @property
    def rate_region(self) -> np.ndarray:
        """bool: the pixels the rate's statistics are taken over: the trusted pixels inside
        the nucleus, or, for results written before the ``trusted`` label was stored, the
        nucleus pixels with a finite rate."""
        if self.trusted is not None:
            return np.asarray(self.trusted, dtype=bool) & self.mask
        return self.mask & np.isfinite(np.asarray(self.rate))

    @property
    def rate_std(self) -> np.ndarray:
        """Ensemble standard deviation of the rate (NaN without an ensemble; result stores
        then have no ``rate_std`` channel)."""
        if "rate_std" not in self.channels:
            return np.full(np.shape(self.rate), np.nan, dtype=np.float32)
        return self.channels["rate_std"]

    @property
    def density(self) -> np.ndarray:
        return self.channels["density"]

    @property
    def denoised(self) -> np.ndarray:
        return self.channels["denoised"]

    @property
    def residual(self) -> np.ndarray:
        return self.channels["residual"]

    @property
    def phi_d(self) -> np.ndarray:
        """phi_d = phi_h - phi_e observed from the density."""
        return self.channels["phi_d_observed"]

    @property
    def phi_d_fitted(self) -> np.ndarray:
        return self.channels["phi_d_fitted"]

    # --- observation model
    @property
    def config(self) -> Mapping[str, Any]:
        """The resolved pipeline config the nucleus was processed with (a dict)."""
        return self.provenance.get("config") or {}

    @property
    def phi_e0(self) -> float:
        """Euchromatin fraction of the observation model."""
        return float((self.config.get("phase") or {}).get("phi_e0", 0.2))

    @property
    def phi_max(self) -> float:
        """The model's phi_max (``fit.physics.phi_max``; ``phase.phi_max`` in results of
        config version 1)."""
        physics = (self.config.get("fit") or {}).get("physics") or {}
        old = (self.config.get("phase") or {}).get("phi_max", 0.7)
        return float(physics.get("phi_max", old))

    def phi_h(self, which: str = "observed") -> np.ndarray:
        """Heterochromatin fraction phi_d + phi_e0 (constant-euchromatin closure).

        Parameters
        ----------
        which : {"observed", "fitted"}
        """
        if which not in ("observed", "fitted"):
            raise ValueError(f"which must be 'observed' or 'fitted', got {which!r}")
        d = self.phi_d if which == "observed" else self.phi_d_fitted
        return d.astype(np.float64) + self.phi_e0

    @property
    def phi_e(self) -> np.ndarray:
        """Euchromatin fraction (the constant phi_e0 inside the nucleus)."""
        return np.where(self.mask, self.phi_e0, np.nan)

    # --- scalars
    @property
    def area_um2(self) -> float:
        return float(self.mask.sum()) * (self.pixel_size_nm / 1000.0) ** 2

    @property
    def n_localizations(self) -> int:
        return int(self.provenance.get("n_localizations") or 0)

    @property
    def input(self) -> str:
        """Path of the input file the nucleus came from."""
        return str((self.provenance.get("input") or {}).get("path", ""))

    @property
    def config_hash(self) -> str:
        return str(self.provenance.get("config_hash", ""))

    @property
    def device(self) -> str:
        return str((self.provenance.get("fit") or {}).get("device", ""))


def nucleus_from_stack(stack: ResultStack, path: str | os.PathLike, *,
                       name: str | None = None) -> Nucleus:
    """A :class:`Nucleus` of a result stack (read from ``path``, or in memory).

    Parameters
    ----------
    stack : ResultStack
        A chromarate result. Its mask is the ``nucleus`` label; without that label, the
        pixels with a finite rate. Its ``trusted`` label, where present, gives
        :attr:`Nucleus.trusted`.
    path : str or path-like
        The store it came from (or a stand-in such as ``<name>/<nucleus-id>``). Without a
        ``nucleus_id`` in the provenance, a numeric store name (``3.ome.zarr``) gives it.
    name : str, optional
        Output folder name of its input; by default the parent folder of ``path``.
    """
    path = Path(path)
    prov = dict(stack.provenance or {})
    label = stack.labels.get("nucleus")
    mask = (np.asarray(label) > 0 if label is not None
            else np.isfinite(np.asarray(stack.channels["rate"])))
    trusted = stack.labels.get(TRUSTED_LABEL)
    nid = prov.get("nucleus_id")
    if nid is None:
        stem = path.name[: -len(_SUFFIX)] if path.name.endswith(_SUFFIX) else path.stem
        nid = int(stem) if stem.isdigit() else 0
    return Nucleus(path=path, name=path.parent.name if name is None else name,
                   nucleus_id=int(nid), channels=dict(stack.channels), mask=mask,
                   pixel_size_nm=float(stack.pixel_size_nm),
                   origin_nm=(float(stack.origin_nm[0]), float(stack.origin_nm[1])),
                   provenance=prov, trusted=None if trusted is None else np.asarray(trusted) > 0)


def load_nucleus(path: str | os.PathLike) -> Nucleus:
    """Read one result store as a :class:`Nucleus`.

    Raises
    ------
    ResultStoreError
        If the store is missing, foreign or damaged (the message names it).
    """
    path = Path(path)
    stack = read_result(path)
    if stack.labels.get("nucleus") is None:
        raise ResultStoreError("result has no 'nucleus' label image", path=path)
    return nucleus_from_stack(stack, path)


def _natural(path: Path, root: Path):
    parts = path.relative_to(root).parts
    return [tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p)) for p in parts]


def find_results(folder: str | os.PathLike) -> list[Path]:
    """Every ``*.ome.zarr`` store under ``folder`` (or ``folder`` itself if it is one),
    skipping hidden entries (half-written stores), in natural order (``2`` before ``10``)."""
    folder = Path(folder)
    if folder.name.endswith(_SUFFIX):
        return [folder]
    if not folder.is_dir():
        raise ResultStoreError("no such result folder", path=folder)
    found = []
    for dirpath, dirnames, _ in os.walk(folder):
        keep = []
        for d in dirnames:
            if d.startswith("."):
                continue
            if d.endswith(_SUFFIX):
                found.append(Path(dirpath) / d)
            else:
                keep.append(d)
        dirnames[:] = keep
    return sorted(found, key=lambda p: _natural(p, folder))


def iter_nuclei(folder: str | os.PathLike, *, skip_damaged: bool = False) -> Iterator[Nucleus]:
    """Yield the nuclei of a result folder one at a time (each read when it is reached).

    Parameters
    ----------
    folder : str or path-like
        A batch output folder (searched recursively for ``*.ome.zarr``) or one store.
    skip_damaged : bool
        Log and skip stores that cannot be read instead of raising.

    Yields
    ------
    Nucleus

    Raises
    ------
    ResultStoreError
        If ``folder`` does not exist, or a store is damaged and ``skip_damaged`` is False.
    """
    for path in find_results(folder):
        try:
            yield load_nucleus(path)
        except ResultStoreError as exc:
            if not skip_damaged:
                raise
            log.warning("skipped a result that cannot be read: %s", exc)
