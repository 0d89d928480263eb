"""Ready-to-run pipeline presets (YAML files shipped in ``chromarate/pipelines/``) and config lookup.

A pipeline argument is either a YAML file or the name of a preset:

==============  ==============================================================================
``default``     the documented defaults: 20 nm pixels, weak-form mollifier PINN, 250 steps
``quick-cpu``   a fast first look on a laptop CPU (narrower network, 120 steps)
``publication`` careful runs on a GPU: 3000 steps + L-BFGS polish, 5-seed ensemble (uncertainty
                map), float64
==============  ==============================================================================

The preset files are package data, found with :mod:`importlib.resources`, so they are
there in a wheel install as in a source checkout; ``chromarate config init NAME --out
FILE`` copies one to start a config of your own.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from .config import PipelineConfig, load_config
from .errors import ConfigError

__all__ = ["list_presets", "preset_dir", "preset_path", "resolve_pipeline"]


#: Folder of the preset files inside the package.
PRESET_FOLDER = "pipelines"


def preset_dir() -> Path:
    """The folder of the preset YAML files (``chromarate/pipelines/`` of the installed
    package)."""
    return Path(os.fspath(files("chromarate").joinpath(PRESET_FOLDER)))


def list_presets() -> list[str]:
    """Names of the presets (file names without ``.yaml``), sorted."""
    d = preset_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``.

    Raises
    ------
    ConfigError
        If there is no such preset (the message lists the presets).
    """
    path = preset_dir() / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(list_presets()) or "none found"
        raise ConfigError(f"no config file or preset named {name!r} (presets: {names})")
    return path


def resolve_pipeline(spec: str | os.PathLike) -> tuple[PipelineConfig, Path]:
    """Load a pipeline given as a YAML path or a preset name.

    Returns
    -------
    (PipelineConfig, Path)
        The validated config and the file it came from.

    Raises
    ------
    ConfigError
        If the file is invalid, or ``spec`` is neither an existing file nor a preset.
    """
    path = Path(spec)
    # a bare name is a preset unless a file of that name is there (a folder never is a
    # config: an output folder named after a preset must not hide it)
    if (not path.is_file() and path.suffix.lower() not in (".yaml", ".yml")
            and path.name == str(spec) and (not path.exists() or str(spec) in list_presets())):
        path = preset_path(str(spec))
    return load_config(path), path
