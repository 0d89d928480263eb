"""Two independent halves of an acquisition, rendered like the whole (for the quality gate).

The localizations are split as Fourier ring correlation splits them
(:func:`chromarate.resolution.split_halves`: blocks of frames, so the repeats of one
blinking molecule stay in one half), and each half is rendered on the grid of the whole
map and denoised with the smoothing the whole map got. The pipeline maps each half to
phase fields and inverts it with the settings the fit chose; how well the two rate maps
agree says how much of the map is set by the data rather than by their noise
(:func:`chromarate.quality.attainable_r`). Thin: rendering and denoising are the stages' own functions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._types import DensityMap, Localizations
from .config import PipelineConfig
from .denoise import denoise_density
from .errors import StageError
from .render import render_density
from .resolution import split_halves

__all__ = ["half_density_maps"]

#: Fewer localizations than this in either half: no split (the halves' maps are noise).
MIN_HALF_LOCALIZATIONS = 1000


def half_density_maps(locs: Localizations, density: DensityMap, denoised: DensityMap,
                      config: PipelineConfig = PipelineConfig(), *, seed: int = 0
                      ) -> tuple[DensityMap, DensityMap] | None:
    """Render and denoise two independent halves of ``locs`` on the grid of ``density``.

    Parameters
    ----------
    locs : Localizations
        The localizations ``density`` was rendered from (after filtering and drift).
    density, denoised : DensityMap
        The whole acquisition's rendered and denoised maps: the halves get the grid of the
        first and the smoothing recorded in the second (``meta["denoise"]["sigma_nm"]``,
        which resolves ``denoise.sigma_nm="auto"`` to the value the whole map used).
    config : PipelineConfig
        ``render`` and ``denoise`` settings.
    seed : int
        Seed of the split.

    Returns
    -------
    (DensityMap, DensityMap) or None
        None when the localizations cannot be split into two halves of at least
        ``MIN_HALF_LOCALIZATIONS`` each (too few, or the frames span a single block).
    """
    table = locs.table
    try:
        side = split_halves(table, seed=seed)
    except StageError:
        return None
    counts = np.bincount(side, minlength=2)
    if counts.min() < MIN_HALF_LOCALIZATIONS:
        return None
    ny, nx = density.data.shape
    p = float(density.pixel_size_nm)
    y0, x0 = (float(v) for v in density.origin_nm)
    bounds = ((y0, x0), (y0 + ny * p, x0 + nx * p))
    denoise = config.denoise
    used = (denoised.meta.get("denoise") or {}).get("sigma_nm")
    if denoise.sigma_nm == "auto" and used is not None:
        denoise = denoise.model_copy(update={"sigma_nm": float(used)})
    halves = []
    for h in (0, 1):
        part = Localizations(table=table.loc[side == h].reset_index(drop=True), meta=dict(locs.meta))
        try:
            rendered = render_density(part, config.render, bounds_nm=bounds)
        except StageError:
            return None
        if rendered.data.shape[0] < ny or rendered.data.shape[1] < nx:
            return None
        rendered = replace(rendered, data=np.ascontiguousarray(rendered.data[:ny, :nx]),
                           origin_nm=(y0, x0))
        halves.append(denoise_density(rendered, denoise))
    return halves[0], halves[1]
