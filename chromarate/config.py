"""Typed, versioned configuration: one pydantic model per stage, composed into
:class:`PipelineConfig`, with YAML load/dump.

Every model forbids unknown keys and can be built with no arguments, which gives the
documented defaults. ``PipelineConfig.version`` is the schema version of the file;
files of older versions, and older keys (``fit.steps``, now ``fit.training.steps``), are
still read, with a :class:`~chromarate.errors.ConfigDeprecationWarning` naming the new
keys (see :mod:`chromarate._config.migrate`).


The stage models live in :mod:`chromarate._config` (``fit``: the rate fit; ``stages``: render,
denoise, segment, phase, simulate; ``localizations``: filter, drift; ``io``: YAML, validation
errors, dump, hash) and are re-exported here, the one import path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationInfo, model_validator

from ._config.base import _Model
from ._config.fit import (FitConfig, MollifierConfig, NetworkConfig, PhysicsConfig, PriorConfig,
                          TrainingConfig, UncertaintyConfig)
from ._config.io import _UniqueKeyLoader, config_hash, dump_config, make_config, unknown_key
from ._config.migrate import (CONFIG_VERSION, QUIET_MIGRATION, check_phase_phi_max,
                              migrate_pipeline, override_key, read_older, warn_moved)
from ._config.localizations import DriftConfig, FilterConfig, ReadConfig
from ._config.stages import (DenoiseConfig, PhaseConfig, RenderConfig, SegmentConfig,
                             SimulateConfig)
from ._yaml_guard import YamlLimitError, check_yaml_tree, read_yaml_bytes
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
    "PriorConfig",
    "ReadConfig",
    "RenderConfig",
    "SegmentConfig",
    "SimulateConfig",
    "TrainingConfig",
    "UncertaintyConfig",
    "config_hash",
    "load_config",
    "dump_config",
]


class PipelineConfig(_Model):
    """A whole pipeline: one model per stage plus the schema version.

    ``read`` states what input tables may leave open (their length unit, the camera pixel
    size; unset by default). ``filter`` (all filters off by default) and ``drift`` (None:
    no drift correction) act on the localizations before rendering. ``version`` is
    :data:`CONFIG_VERSION` once validated: older versions and older keys are migrated on
    reading (one :class:`~chromarate.errors.ConfigDeprecationWarning` names the moved keys).
    ``fit.physics.phi_max`` is the one ``phi_max``: the phase stage clips ``phi_h`` there.
    """

    version: int = CONFIG_VERSION
    name: str = "default"
    read: ReadConfig = ReadConfig()
    filter: FilterConfig = FilterConfig()
    drift: DriftConfig | None = None
    render: RenderConfig = RenderConfig()
    denoise: DenoiseConfig = DenoiseConfig()
    segment: SegmentConfig = SegmentConfig()
    phase: PhaseConfig = PhaseConfig()
    fit: FitConfig = FitConfig()

    @model_validator(mode="before")
    @classmethod
    def _read_older(cls, data: Any, info: ValidationInfo) -> Any:
        return read_older(data, info, migrate_pipeline)

    @model_validator(mode="after")
    def _check(self) -> "PipelineConfig":
        if self.version != CONFIG_VERSION:
            raise ValueError(
                f"config version {self.version} is not supported (this chromarate reads "
                f"versions 1 to {CONFIG_VERSION})"
            )
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
        data = read_yaml_bytes(path)
    except YamlLimitError as exc:
        raise ConfigError(f"cannot read config: {exc}", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", path=path) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start}); save the config as UTF-8", path=path) from None
    try:
        check_yaml_tree(text)
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except YamlLimitError as exc:
        raise ConfigError(f"not a usable config: {exc}", path=path) from None
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


def _unknown(key: str, parts: list[str]) -> str:
    """The error of an override key the config does not have (``parts``: down to the part
    that is unknown), with the nearest known key."""
    hint = unknown_key(PipelineConfig, tuple(parts))
    return f"unknown config key {key!r}" + (f": {hint}" if hint else "")


def _section_model(parts: list[str]):
    """The config model of the section at dotted key ``parts`` (None for a plain setting)."""
    from ._config.io import _model_of

    model: Any = PipelineConfig
    for part in parts:
        info = getattr(model, "model_fields", {}).get(part)
        model = _model_of(info.annotation) if info is not None else None
        if model is None:
            return None
    return model


def with_overrides(config: PipelineConfig, overrides: dict[str, Any]) -> PipelineConfig:
    """Return a copy of ``config`` with dotted-key overrides applied and validated.

    Parameters
    ----------
    overrides : dict
        ``{"fit.training.steps": 100, ...}``; values are taken as given (already parsed).
        Older keys (``fit.steps``, ``phase.phi_max``) are still taken, with one
        :class:`~chromarate.errors.ConfigDeprecationWarning`.
    """
    raw = config.model_dump(mode="json")
    moved: list[tuple[str, str]] = []
    for key, value in overrides.items():
        if key == "phase.phi_max":  # no place of its own now: checked below
            moved.append((key, "fit.physics.phi_max"))
            continue
        new = override_key(key, value)
        if new is not None:
            if new in overrides and overrides[new] != value:
                raise ConfigError(f"{key} (an older key of {new}) is {value!r} but {new} is "
                                  f"{overrides[new]!r}; give it once, as {new}")
            moved.append((key, new))
            key = new
        node = raw
        parts = key.split(".")
        for i, p in enumerate(parts[:-1]):
            if not isinstance(node.get(p), dict):
                if p in node:  # a setting, or a section that is off (null)
                    where = ".".join(parts[:i + 1])
                    if node[p] is None:
                        raise ConfigError(f"unknown config key {key!r}: {where} is off (null); "
                                          f"turn it on with its defaults first: --set '{where}={{}}'")
                    raise ConfigError(f"unknown config key {key!r}: {where} is {node[p]!r}, "
                                      "not a section")
                raise ConfigError(_unknown(key, parts[:i + 1]))
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(_unknown(key, parts))
        section = _section_model(parts) if isinstance(value, dict) else None
        if section is not None:  # a section turned on (drift={}): its keys, for the next
            try:
                value = {**section().model_dump(mode="json"), **value}
            except (ValueError, TypeError):  # defaults that need a value: validated below
                pass
        node[parts[-1]] = value
    if "phase.phi_max" in overrides:
        try:
            check_phase_phi_max(overrides["phase.phi_max"], raw["fit"]["physics"]["phi_max"])
        except ValueError as exc:
            raise ConfigError(f"invalid config: {exc}") from None
    if moved:
        warn_moved(moved)
    return config_from_dict(raw)
