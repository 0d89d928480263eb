"""Synthetic nuclei with known rates, and the loader of the bundled sample.

A synthetic nucleus is made in three steps, the observation model of docs/design.md section 6 in
reverse, so a pipeline run on it is an end-to-end test against a known lambda:

1. a smooth random rate map lambda(y, x) in ``rate_range`` and an elliptical nucleus mask;
2. the steady state of the chromatin model for that rate (:mod:`chromarate.fit.simulate`,
   constant-euchromatin closure, run to a residual tolerance);
3. H2B density proportional to the chromatin fraction 1 - phi_w = phi_h + phi_e0 inside the
   mask; localizations drawn from it (multinomial counts, uniform inside each pixel), each
   displaced by a Gaussian localization error with a precision drawn from
   ``precision_nm``, plus ``background_fraction`` of uniform background over the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ._types import Localizations, TrueFields
from .config import SimulateConfig
from .errors import InputFormatError
from .fit.physics import ChromatinParams
from .fit.simulate import steady_state
from .io.names import input_stem

__all__ = [
    "SyntheticNucleus",
    "make_rate_map",
    "make_nucleus_mask",
    "sample_localizations",
    "simulate_nucleus",
    "sample_data_dir",
    "sample_paths",
    "read_truth_for",
    "truth_path_for",
]

#: Point-spread-function width used to turn precision into photon counts (nm).
PSF_SIGMA_NM = 130.0


@dataclass(frozen=True, kw_only=True)
class SyntheticNucleus(TrueFields):
    """A simulated nucleus: localizations plus the ground truth on the simulation grid
    (``rate``, ``phi_d``, ``phi_w``, ``mask``, ``pixel_size_nm``, ``origin_nm``, ``meta``;
    see :class:`~chromarate._types.TrueFields`)."""

    localizations: Localizations


def make_rate_map(shape: tuple[int, int], *, pixel_size_nm: float, rate_range: tuple[float, float],
                  length_um: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random rate map: Gaussian-filtered white noise rescaled to ``rate_range``."""
    lo, hi = rate_range
    sigma_px = length_um * 1000.0 / pixel_size_nm / 2.0
    z = ndi.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="reflect")
    z = (z - z.min()) / max(np.ptp(z), 1e-12)
    return lo + (hi - lo) * z


def make_nucleus_mask(shape: tuple[int, int], *, pixel_size_nm: float,
                      radii_um: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Elliptical nucleus, centred, with a random orientation and a gentle boundary wobble."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    yy = (yy + 0.5 - ny / 2) * pixel_size_nm / 1000.0
    xx = (xx + 0.5 - nx / 2) * pixel_size_nm / 1000.0
    theta = rng.uniform(0, np.pi)
    u = np.cos(theta) * xx + np.sin(theta) * yy
    v = -np.sin(theta) * xx + np.cos(theta) * yy
    ang = np.arctan2(v, u)
    wobble = 1.0 + 0.04 * np.cos(3 * ang + rng.uniform(0, 2 * np.pi)) \
        + 0.03 * np.cos(5 * ang + rng.uniform(0, 2 * np.pi))
    a, b = radii_um
    return (u / a) ** 2 + (v / b) ** 2 < wobble**2


def sample_localizations(density: np.ndarray, *, pixel_size_nm: float, origin_nm=(0.0, 0.0),
                         n_localizations: int, precision_nm: tuple[float, float],
                         background_fraction: float, n_frames: int,
                         rng: np.random.Generator) -> Localizations:
    """Draw localizations from a density image (counts per pixel up to a constant).

    Returns a :class:`Localizations` in nm with frames, photons, precision and sigma.
    """
    density = np.clip(np.asarray(density, dtype=np.float64), 0.0, None)
    ny, nx = density.shape
    p = float(pixel_size_nm)
    n_bg = int(round(n_localizations * background_fraction))
    n_sig = n_localizations - n_bg
    prob = density.ravel() / density.sum()
    counts = rng.multinomial(n_sig, prob)
    idx = np.repeat(np.arange(prob.size), counts)
    iy, ix = np.divmod(idx, nx)
    y = origin_nm[0] + (iy + rng.random(n_sig)) * p
    x = origin_nm[1] + (ix + rng.random(n_sig)) * p
    y = np.concatenate([y, origin_nm[0] + rng.random(n_bg) * ny * p])
    x = np.concatenate([x, origin_nm[1] + rng.random(n_bg) * nx * p])
    n = n_sig + n_bg
    prec = rng.uniform(precision_nm[0], precision_nm[1], n)
    x = x + rng.standard_normal(n) * prec
    y = y + rng.standard_normal(n) * prec
    photons = (PSF_SIGMA_NM / prec) ** 2
    frame = rng.integers(0, n_frames, n)
    order = np.lexsort((x, frame))
    table = pd.DataFrame({
        "x_nm": x[order], "y_nm": y[order], "frame": frame[order].astype(np.int64),
        "photons": np.round(photons[order], 0), "precision_nm": prec[order],
        "sigma_nm": np.full(n, PSF_SIGMA_NM),
    })
    return Localizations(table=table.reset_index(drop=True),
                         meta={"source": "synthetic", "format": "synthetic", "frame_base": 0,
                               "pixel_size_nm": None})


def simulate_nucleus(config: SimulateConfig = SimulateConfig(), *,
                     progress=None) -> SyntheticNucleus:
    """Simulate one nucleus end to end (rate map -> steady state -> localizations).

    Parameters
    ----------
    config : SimulateConfig
    progress : callable, optional
        ``progress(step, residual_max)`` of the forward solver (see
        :func:`chromarate.fit.simulate.steady_state`).

    Returns
    -------
    SyntheticNucleus
    """
    rng = np.random.default_rng(config.seed)
    shape = tuple(config.shape)
    p = config.pixel_size_nm
    rate = make_rate_map(shape, pixel_size_nm=p, rate_range=config.rate_range,
                         length_um=config.rate_length_um, rng=rng)
    mask = make_nucleus_mask(shape, pixel_size_nm=p, radii_um=config.nucleus_radii_um, rng=rng)
    params = ChromatinParams.from_config(config.physics)
    ss = steady_state(rate, pixel_um=p / 1000.0, params=params, phi_e0=config.phi_e0,
                      tol=config.tolerance, max_steps=config.max_steps, seed=config.seed,
                      progress=progress)
    phi_h = np.clip(ss.phi_d + config.phi_e0, 0.0, None)
    density = np.where(mask, phi_h + config.phi_e0, 0.0)
    locs = sample_localizations(density, pixel_size_nm=p, n_localizations=config.n_localizations,
                                precision_nm=config.precision_nm,
                                background_fraction=config.background_fraction,
                                n_frames=config.n_frames, rng=rng)
    meta = {"simulate_config": config.model_dump(mode="json"), "steady_steps": ss.steps,
            "steady_time": ss.time, "residual_max": ss.residual_max, "converged": ss.converged}
    return SyntheticNucleus(localizations=locs, rate=rate, phi_d=ss.phi_d, phi_w=ss.phi_w,
                            mask=mask, pixel_size_nm=p, origin_nm=(0.0, 0.0), meta=meta)


#: Folder of the bundled sample nucleus inside the package.
SAMPLE_FOLDER = "sample_data"


def sample_data_dir() -> Path:
    """The bundled sample folder (``chromarate/sample_data/`` of the installed package,
    package data found with :mod:`importlib.resources`)."""
    return Path(os.fspath(files("chromarate").joinpath(SAMPLE_FOLDER)))


def sample_paths() -> tuple[Path, Path]:
    """(localizations CSV, ground-truth npz) of the bundled sample nucleus.

    Raises
    ------
    InputFormatError
        If the sample files are not there (an install that left out the package data).
    """
    d = sample_data_dir()
    csv, truth = d / "sample_nucleus.csv.gz", d / "sample_nucleus.truth.npz"
    for f in (csv, truth):
        if not f.is_file():
            raise InputFormatError(
                "bundled sample data not found (the package data of this install is "
                "incomplete); reinstall chromarate or make a nucleus with 'chromarate "
                "simulate'", path=f)
    return csv, truth


def truth_path_for(input_path: str | Path) -> Path | None:
    """The ground-truth file next to an input (``<stem>.truth.npz``, see
    :func:`chromarate.io.names.input_stem`), if any."""
    p = Path(input_path)
    cand = p.with_name(input_stem(p) + ".truth.npz")
    return cand if cand.is_file() else None


def read_truth_for(input_path: str | Path) -> dict[str, Any] | None:
    """The ground truth beside an input (:func:`truth_path_for`), or None if there is none.

    The file is read once and kept (the last few, keyed by path, size and modification
    time), so the nuclei of one input share a single read; its arrays are read-only. A
    file that cannot be read is kept as such too: its error is raised again, not read again.

    Raises
    ------
    InputFormatError
        If the truth file is there but cannot be read (see :func:`chromarate.io.read_truth`).
    """
    tp = truth_path_for(input_path)
    if tp is None:
        return None
    try:
        st = tp.stat()
    except OSError as exc:  # gone or unreadable since it was found
        raise InputFormatError(f"cannot read the ground-truth file: {exc.strerror or exc}",
                               path=tp) from None
    truth = _read_truth_cached(str(tp.resolve()), st.st_mtime_ns, st.st_size)
    if isinstance(truth, InputFormatError):
        raise InputFormatError(truth.message, path=truth.path)
    return dict(truth)


@lru_cache(maxsize=4)
def _read_truth_cached(path: str, mtime_ns: int, size: int) -> dict[str, Any] | InputFormatError:
    from .io.truth import read_truth

    try:
        truth = read_truth(path)
    except InputFormatError as exc:
        return exc
    for value in truth.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return truth
