"""YAML reading, validation with readable errors, dumping and hashing of config models."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError

__all__ = ["config_hash", "dump_config", "make_config", "unknown_key"]


_M = TypeVar("_M", bound=BaseModel)


def _format_validation(err: ValidationError, model: type[BaseModel] | None = None) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            hint = unknown_key(model, tuple(e["loc"]))
            msg = f"unknown key; {hint}" if hint else "unknown key"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def unknown_key(model: type[BaseModel] | None, loc: tuple) -> str:
    """What to say of a key (``loc``, its path in the config) the model does not have: the
    nearest known key, else the keys its section takes ("" when the section is unknown).

    Examples
    --------
    >>> from chromarate.config import PipelineConfig
    >>> unknown_key(PipelineConfig, ("rendr",))
    "did you mean 'render'?"
    >>> unknown_key(PipelineConfig, ("fit", "trainin"))
    "did you mean 'training'?"
    """
    import difflib

    node = model
    for part in loc[:-1]:  # walk down to the model that holds the key
        field_info = getattr(node, "model_fields", {}).get(part) if node is not None else None
        node = _model_of(field_info.annotation) if field_info is not None else None
    known = sorted(getattr(node, "model_fields", {})) if node is not None else []
    near = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if near:
        return f"did you mean {near[0]!r}?"
    return f"expected one of {', '.join(known)}" if known else ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model in an annotation (``X``, ``X | None``), if any."""
    import typing

    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (YAML itself would
    silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise ConfigError(
                        f"key {key!r} is given twice (lines {seen[key]} and "
                        f"{key_node.start_mark.line + 1}); give each setting once")
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: let PyYAML explain
                pass
        return super().construct_mapping(node, deep=deep)


def _nan_keys(value: Any, where: str = "") -> list[str]:
    """Dotted keys of the NaN values in a nested mapping (or list)."""
    if isinstance(value, float) and value != value:
        return [where or "<root>"]
    if isinstance(value, dict):
        return [k for key, v in value.items()
                for k in _nan_keys(v, f"{where}.{key}" if where else str(key))]
    if isinstance(value, (list, tuple)):
        return [k for i, v in enumerate(value) for k in _nan_keys(v, f"{where}[{i}]")]
    return []


def make_config(model: type[_M], raw: dict[str, Any], *,
                path: str | Path | None = None, context: dict[str, Any] | None = None) -> _M:
    """Validate ``raw`` into ``model`` (any config model), with errors as ConfigError.

    ``context`` is passed to the validators (see ``QUIET_MIGRATION`` in
    :mod:`chromarate._config.migrate`).

    Raises
    ------
    ConfigError
        Naming each invalid key and why; NaN values are refused by name.

    Examples
    --------
    >>> from chromarate.config import SimulateConfig
    >>> make_config(SimulateConfig, {"tolerance": -1})
    Traceback (most recent call last):
    ...
    chromarate.errors.ConfigError: invalid config: tolerance: Input should be greater than 0
    """
    nans = _nan_keys(raw)
    if nans:
        raise ConfigError(f"invalid config: {', '.join(nans)}: NaN is not a value; expected "
                          "a number", path=path)
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_format_validation(exc, model)}", path=path) from None


def dump_config(config: BaseModel) -> str:
    """Serialise a config to YAML text (round-trips through :func:`load_config`).

    Always in the current layout, whatever layout the config was read from."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_hash(config: BaseModel) -> str:
    """Stable sha256 (hex, first 16) of a config's canonical JSON form.

    The form is the validated model's, so a config read from an older layout (and
    migrated) hashes like the same config written in the current one.
    """
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
