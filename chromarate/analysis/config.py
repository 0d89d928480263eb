"""Settings of the per-nucleus analysis (domain detection and statistics)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AnalysisConfig"]


class AnalysisConfig(BaseModel):
    """How heterochromatin domains are found and what the statistics table holds.

    Every field has a default, so ``AnalysisConfig()`` is the documented analysis.

    Attributes
    ----------
    field : {"observed", "fitted"}
        Which phi_d the domains are found in: the phase field observed from the density
        (default) or the fitted (mollified) one, which is smoother but blurred by the
        kernel radius.
    smooth_nm : float
        Standard deviation (nm) of a Gaussian applied to phi_h before thresholding
        (0: none). The density was already denoised by the pipeline.
    threshold : float or "half_max"
        phi_h above which a pixel is heterochromatin; ``"half_max"`` (default) is half of
        phi_max, the midpoint between the two wells of the model's double-well potential.
    min_domain_radius_nm : float
        Connected regions with a smaller equivalent-circle radius are ignored.
    envelope_margin_nm : float
        A domain is *interior* when all its pixels are at least this far inside the
        nuclear envelope; only interior domains enter spacing and the lab closed form
        (peripheral heterochromatin is shaped by the lamina, not by the balance behind it).
    spacing : {"half_nn_distance", "nn_distance"}
        The spacing d of the lab closed form lambda = 1 / ((d/R)^2 - 1): half the
        centre-to-centre distance to the nearest interior domain (default: the radius of
        the territory that surrounds a domain, which is what the balance behind the
        formula compares with the domain radius R), or the full distance.
    quantiles : tuple of float
        Quantiles of the rate reported per nucleus (besides mean, median and std).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    field: Literal["observed", "fitted"] = "observed"
    smooth_nm: float = Field(30.0, ge=0.0, le=1e4)
    threshold: float | Literal["half_max"] = "half_max"
    min_domain_radius_nm: float = Field(25.0, ge=0.0, le=1e5)
    envelope_margin_nm: float = Field(100.0, ge=0.0, le=1e5)
    spacing: Literal["half_nn_distance", "nn_distance"] = "half_nn_distance"
    quantiles: tuple[float, ...] = (0.05, 0.25, 0.75, 0.95)

    @field_validator("quantiles")
    @classmethod
    def _check_quantiles(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 <= q <= 1.0 for q in v):
            raise ValueError(f"quantiles must lie in [0, 1], got {v}")
        return v

    @field_validator("threshold")
    @classmethod
    def _check_threshold(cls, v):
        if not isinstance(v, str) and not 0.0 < v < 1.0:
            raise ValueError(f"threshold must be 'half_max' or a phi_h in (0, 1), got {v}")
        return v
