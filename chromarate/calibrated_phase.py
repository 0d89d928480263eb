"""Phase fields of one nucleus with the density scale calibrated by the physics.

The phase stage (:func:`chromarate.phase.phase_fields`) maps a density at a given scale;
this module chooses the scale (:func:`chromarate.fit.calibrate.calibrate_scale`, imported
only when a calibration runs) and maps the density at it, as the pipeline does for every
nucleus.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._types import DensityMap, PhaseFields
from .config import PipelineConfig
from .phase import phase_fields

__all__ = ["calibrated_phase_fields", "fields_at_scale"]


def calibrated_phase_fields(density: DensityMap, mask: np.ndarray,
                            config: PipelineConfig = PipelineConfig()) -> PhaseFields:
    """Phase fields with the density scale calibrated by the physics (by default).

    With ``config.phase.calibration == "physics"`` the multiplier of the baseline density
    is chosen by :func:`chromarate.fit.calibrate.calibrate_scale` (the scale that makes
    the fields the steadiest state of the model for a smooth rate); the choice and its
    misfit curve are stored in ``fields.meta["calibration"]``; ``"physics_censored"``
    leaves the pixels clipped at ``phi_max`` out of the misfit (the record then has
    ``censored: true``). With ``"none"`` this is
    :func:`chromarate.phase.phase_fields` with ``config.phase`` as given. Either way
    ``phi_h`` is clipped at ``config.fit.physics.phi_max``.

    Parameters
    ----------
    density : DensityMap
        Denoised density of one nucleus (crop).
    mask : numpy.ndarray
        bool mask of the nucleus.
    config : PipelineConfig
        ``phase`` and ``fit`` settings are used.

    Returns
    -------
    PhaseFields
    """
    if config.phase.calibration == "none":
        return phase_fields(density, mask, config.phase, phi_max=config.fit.physics.phi_max)
    from .fit.calibrate import calibrate_scale  # numpy/scipy only, but lives with the fit

    def fields_at(scale: float) -> PhaseFields:
        return fields_at_scale(density, mask, config, scale)

    censored = config.phase.calibration == "physics_censored"
    cal = calibrate_scale(fields_at, config.fit, censored=censored,
                          censored_level=config.phase.censored_level,
                          level_share=config.phase.censored_level_share)
    fields = fields_at(cal.scale)
    method = "none" if cal.skipped else "physics"
    meta = {**fields.meta, "calibration": {"method": method, **cal.as_dict(),
                                           **({"censored": True} if censored else {})}}
    return replace(fields, meta=meta)


def fields_at_scale(density: DensityMap, mask: np.ndarray, config: PipelineConfig,
                    scale: float) -> PhaseFields:
    """Phase fields with the baseline density at ``scale`` times the configured
    ``phase.baseline_scale``, ``phi_h`` clipped at ``fit.physics.phi_max``."""
    phase = config.phase.model_copy(update={"baseline_scale": scale * config.phase.baseline_scale})
    return phase_fields(density, mask, phase, phi_max=config.fit.physics.phi_max)
