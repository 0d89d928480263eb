"""Typed, versioned configuration: one pydantic model per stage, composed into
:class:`PipelineConfig`, with YAML load/dump.

Every model forbids unknown keys and can be built with no arguments, which gives the
documented defaults. ``PipelineConfig.version`` is the schema version of the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

__all__ = [
    "CONFIG_VERSION",
    "DenoiseConfig",
    "FitConfig",
    "MollifierConfig",
    "NetworkConfig",
    "PhaseConfig",
    "PhysicsConfig",
    "PipelineConfig",
    "RenderConfig",
    "SegmentConfig",
    "SimulateConfig",
    "config_hash",
    "load_config",
    "dump_config",
]

#: Schema version written into every pipeline config and result.
CONFIG_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RenderConfig(_Model):
    """Rendering localizations into a density map.

    Attributes
    ----------
    pixel_size_nm : float
        Side of a pixel of the density map (default 20 nm).
    method : {"histogram"}
        Rendering method.
    padding_nm : float
        Margin added around the bounding box of the localizations.
    """

    pixel_size_nm: float = Field(20.0, gt=0.5, le=1000.0)
    method: Literal["histogram"] = "histogram"
    padding_nm: float = Field(200.0, ge=0.0, le=1e5)


class DenoiseConfig(_Model):
    """Denoising of a density map.

    Attributes
    ----------
    method : {"gaussian", "none"}
    sigma_nm : float
        Standard deviation of the Gaussian filter in nm.
    """

    method: Literal["gaussian", "none"] = "gaussian"
    sigma_nm: float = Field(20.0, ge=0.0, le=5000.0)


class SegmentConfig(_Model):
    """Segmentation of the nucleus from a density map.

    Attributes
    ----------
    smooth_sigma_nm : float
        Gaussian smoothing before thresholding.
    threshold : "otsu" or float
        Otsu's threshold, or a fixed fraction of the smoothed maximum (0-1).
    min_area_um2 : float
        Smallest accepted nucleus area.
    fill_holes : bool
    """

    smooth_sigma_nm: float = Field(150.0, gt=0.0, le=1e4)
    threshold: Literal["otsu"] | float = "otsu"
    min_area_um2: float = Field(1.0, ge=0.0)
    fill_holes: bool = True

    @model_validator(mode="after")
    def _check_threshold(self) -> "SegmentConfig":
        if not isinstance(self.threshold, str) and not 0.0 < self.threshold < 1.0:
            raise ValueError("segment.threshold must be 'otsu' or a fraction in (0, 1)")
        return self


class PhaseConfig(_Model):
    """Observation model that turns density into phase fields (DESIGN.md section 4).

    Attributes
    ----------
    phi_e0 : float
        Constant euchromatin fraction.
    phi_max : float
        Upper clip of phi_h; must equal ``fit.physics.phi_max``.
    baseline_percentile : float
        Percentile of the density inside the nucleus taken as the euchromatin baseline.
    erode_nm : float
        Only pixels this far inside the mask are used to estimate the baseline.
    """

    phi_e0: float = Field(0.2, gt=0.0, lt=0.5)
    phi_max: float = Field(0.7, gt=0.0, le=1.0)
    baseline_percentile: float = Field(5.0, ge=0.0, lt=100.0)
    erode_nm: float = Field(100.0, ge=0.0)


class PhysicsConfig(_Model):
    """Parameters of the chromatin phase-field model (lengths in um, time in 1/Gamma_ac)."""

    phi_max: float = Field(0.7, gt=0.0, le=1.0)
    interface_um: float = Field(0.03, gt=0.0, le=10.0)
    mobility: float = Field(1.0, gt=0.0, le=1e6)


class MollifierConfig(_Model):
    """The mollifier layer.

    Attributes
    ----------
    kernel : {"bump", "wendland"}
        Smooth compact weight of the kernels.
    radius_px : float or "auto"
        Kernel radius in pixels; "auto" picks it from a noise estimate of the data.
    degree : int or None
        Degree of the polynomials every kernel reproduces exactly; None (default) uses
        order + 2 for the kernel of each derivative order (lowest noise gain).
    method : {"auto", "direct", "fft"}
        Convolution path.
    """

    kernel: Literal["bump", "wendland"] = "bump"
    radius_px: float | Literal["auto"] = "auto"
    degree: int | None = Field(None, ge=4, le=10)
    method: Literal["auto", "direct", "fft"] = "auto"

    @model_validator(mode="after")
    def _check_radius(self) -> "MollifierConfig":
        if not isinstance(self.radius_px, str) and not 2.0 <= self.radius_px <= 64.0:
            raise ValueError("mollifier.radius_px must be 'auto' or in [2, 64] pixels")
        return self


class NetworkConfig(_Model):
    """Network for the field phi_d (MLP with random Fourier features).

    Attributes
    ----------
    width, depth : int
        Hidden width and number of hidden layers.
    fourier_features : int
        Number of random Fourier frequencies (0 for a plain MLP).
    fourier_scale_per_um : float
        Standard deviation of the frequencies in cycles per um.
    parameterization : {"anchored", "free"}
        ``anchored``: the field is the observation plus the network's correction (starts at
        the data, converges in hundreds of steps); ``free``: the network alone (classic PINN).
    """

    width: int = Field(64, ge=4, le=4096)
    depth: int = Field(3, ge=1, le=32)
    fourier_features: int = Field(64, ge=0, le=4096)
    fourier_scale_per_um: float = Field(2.0, gt=0.0, le=1e3)
    parameterization: Literal["anchored", "free"] = "anchored"


class FitConfig(_Model):
    """Rate inference.

    Attributes
    ----------
    method : {"pinn", "direct"}
        Mollifier-layer PINN, or the closed-form inversion.
    residual_form : {"weak", "strong"}
        ``weak``: all derivatives on the mollifier kernels (noise-robust, default);
        ``strong``: derivatives of the mollified fields combined by the chain rule.
    steps : int
        Adam steps.
    learning_rate : float
    data_weight, residual_weight : float
        Weights of the data misfit and the PDE residual.
    rate_smoothness : float
        Weight of the gradient penalty on lambda (per um^2).
    rate_fourier_features : int
    rate_fourier_scale_per_um : float
        Random Fourier features of the rate network; a small scale keeps lambda smooth.
    seed : int
        Seed of every random choice of the fit (stored in results).
    device : str
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    dtype : {"float32", "float64"}
    log_every : int
    """

    method: Literal["pinn", "direct"] = "pinn"
    residual_form: Literal["weak", "strong"] = "weak"
    physics: PhysicsConfig = PhysicsConfig()
    mollifier: MollifierConfig = MollifierConfig()
    network: NetworkConfig = NetworkConfig()
    steps: int = Field(250, ge=1, le=10_000_000)
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0)
    data_weight: float = Field(1.0, ge=0.0)
    residual_weight: float = Field(1.0, ge=0.0)
    rate_smoothness: float = Field(1.0, ge=0.0)
    rate_fourier_features: int = Field(32, ge=0, le=1024)
    rate_fourier_scale_per_um: float = Field(0.3, gt=0.0, le=100.0)
    seed: int = Field(0, ge=0)
    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    log_every: int = Field(25, ge=1)


class SimulateConfig(_Model):
    """Synthetic nucleus generation (forward model + observation model in reverse)."""

    shape: tuple[int, int] = (256, 256)
    pixel_size_nm: float = Field(20.0, gt=0.5, le=1000.0)
    nucleus_radii_um: tuple[float, float] = (2.3, 2.0)
    rate_range: tuple[float, float] = (1.0, 2.4)
    rate_length_um: float = Field(1.5, gt=0.0)
    phi_e0: float = Field(0.2, gt=0.0, lt=0.5)
    n_localizations: int = Field(250_000, ge=100)
    precision_nm: tuple[float, float] = (10.0, 20.0)
    background_fraction: float = Field(0.03, ge=0.0, lt=1.0)
    n_frames: int = Field(20_000, ge=1)
    tolerance: float = Field(1e-3, gt=0.0)
    max_steps: int = Field(200_000, ge=1)
    seed: int = Field(0, ge=0)
    physics: PhysicsConfig = PhysicsConfig()


class PipelineConfig(_Model):
    """A whole pipeline: one model per stage plus the schema version."""

    version: int = CONFIG_VERSION
    name: str = "default"
    render: RenderConfig = RenderConfig()
    denoise: DenoiseConfig = DenoiseConfig()
    segment: SegmentConfig = SegmentConfig()
    phase: PhaseConfig = PhaseConfig()
    fit: FitConfig = FitConfig()

    @model_validator(mode="after")
    def _check(self) -> "PipelineConfig":
        if self.version != CONFIG_VERSION:
            raise ValueError(
                f"config version {self.version} is not supported (this chromarate reads "
                f"version {CONFIG_VERSION})"
            )
        if abs(self.phase.phi_max - self.fit.physics.phi_max) > 1e-12:
            raise ValueError("phase.phi_max must equal fit.physics.phi_max")
        return self


def _format_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def load_config(path: str | Path) -> PipelineConfig:
    """Read a pipeline configuration from a YAML file.

    Parameters
    ----------
    path : str or Path
        YAML file; missing keys take their defaults.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    ConfigError
        If the file cannot be read, is not a mapping, or fails validation.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", path=path) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=path) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("expected a YAML mapping of stage names to settings", path=path)
    return config_from_dict(raw, path=path)


def config_from_dict(raw: dict[str, Any], *, path: str | Path | None = None) -> PipelineConfig:
    """Validate a plain mapping into a :class:`PipelineConfig` (errors as ConfigError)."""
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_format_validation(exc)}", path=path) from None


def dump_config(config: BaseModel) -> str:
    """Serialise a config to YAML text (round-trips through :func:`load_config`)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_hash(config: BaseModel) -> str:
    """Stable sha256 (hex, first 16) of a config's canonical JSON form."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def with_overrides(config: PipelineConfig, overrides: dict[str, Any]) -> PipelineConfig:
    """Return a copy of ``config`` with dotted-key overrides applied and validated.

    Parameters
    ----------
    overrides : dict
        ``{"fit.steps": 100, ...}``; values are taken as given (already parsed).
    """
    raw = config.model_dump(mode="json")
    for key, value in overrides.items():
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"unknown config key {key!r}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"unknown config key {key!r}")
        node[parts[-1]] = value
    return config_from_dict(raw)
