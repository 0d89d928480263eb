"""Typed, versioned configuration: one pydantic model per stage, composed into
:class:`PipelineConfig`, with YAML load/dump.

Every model forbids unknown keys and can be built with no arguments, which gives the
documented defaults. ``PipelineConfig.version`` is the schema version of the file.


The stage models live in :mod:`chromarate._config` (``fit``: the rate fit; ``stages``: render,
denoise, segment, phase, simulate; ``localizations``: filter, drift; ``io``: YAML, validation
errors, dump, hash) and are re-exported here, the one import path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import model_validator

from ._config.base import _Model
from ._config.fit import FitConfig, MollifierConfig, NetworkConfig, PhysicsConfig
from ._config.io import _format_validation, _nan_keys  # noqa: F401 - kept importable here
from ._config.io import _UniqueKeyLoader, config_hash, dump_config, make_config
from ._config.localizations import DriftConfig, FilterConfig
from ._config.stages import (DenoiseConfig, PhaseConfig, RenderConfig, SegmentConfig,
                             SimulateConfig)
from .errors import ConfigError

__all__ = [
    "CONFIG_VERSION",
    "DenoiseConfig",
    "DriftConfig",
    "FilterConfig",
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


class PipelineConfig(_Model):
    """A whole pipeline: one model per stage plus the schema version.

    ``filter`` (all filters off by default) and ``drift`` (None: no drift correction) act
    on the localizations before rendering.
    """

    version: int = CONFIG_VERSION
    name: str = "default"
    filter: FilterConfig = FilterConfig()
    drift: DriftConfig | None = None
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


def load_config(path: str | Path) -> PipelineConfig:
    """Read a pipeline configuration from a YAML file.

    Parameters
    ----------
    path : str or Path
        UTF-8 YAML file holding a mapping of stage names to settings; missing keys take
        their defaults (``{}`` takes every default).

    Returns
    -------
    PipelineConfig

    Raises
    ------
    ConfigError
        If the file cannot be read, is not UTF-8 text, is empty, is not a mapping, gives a
        key twice, holds NaN values, or fails validation.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", path=path) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start}); save the config as UTF-8", path=path) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=path) from exc
    if raw is None:
        raise ConfigError("the config file is empty; expected a YAML mapping of stage names "
                          "to settings (write {} to take every default)", path=path)
    if not isinstance(raw, dict):
        raise ConfigError("expected a YAML mapping of stage names to settings", path=path)
    return config_from_dict(raw, path=path)


def config_from_dict(raw: dict[str, Any], *, path: str | Path | None = None) -> PipelineConfig:
    """Validate a plain mapping into a :class:`PipelineConfig` (errors as ConfigError).

    NaN is refused wherever it appears (a NaN would otherwise pass some range checks and
    fail others with a misleading message).
    """
    return make_config(PipelineConfig, raw, path=path)


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
