"""Configs: defaults, validation, YAML round trip, overrides, hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from chromarate.config import (
    CONFIG_VERSION, DenoiseConfig, FitConfig, PhaseConfig, PipelineConfig, RenderConfig,
    SegmentConfig, config_hash, dump_config, load_config, with_overrides,
)
from chromarate.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_every_config_builds_with_defaults():
    for cls in (PipelineConfig, RenderConfig, DenoiseConfig, SegmentConfig, PhaseConfig, FitConfig):
        cls()
    cfg = PipelineConfig()
    assert cfg.version == CONFIG_VERSION
    assert cfg.render.pixel_size_nm == 20.0
    assert cfg.phase.phi_e0 == 0.2 and cfg.fit.physics.phi_max == 0.7
    assert cfg.fit.physics.interface_um == 0.03 and cfg.fit.physics.mobility == 1.0
    assert isinstance(cfg.fit.seed, int)


def test_yaml_round_trip(tmp_path):
    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 17, "fit.seed": 5,
                                            "fit.mollifier.radius_px": 9.5})
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    back = load_config(p)
    assert back == cfg
    assert config_hash(back) == config_hash(cfg)
    assert config_hash(PipelineConfig()) != config_hash(cfg)


@pytest.mark.parametrize("text,phrase", [
    ("fit:\n  training:\n    steps: 0\n", "fit.training.steps"),
    ("fit:\n  stepz: 10\n", "fit.stepz"),
    ("render:\n  pixel_size_nm: -1\n", "render.pixel_size_nm"),
    ("version: 99\n", "version 99"),
    ("phase:\n  phi_max: 0.6\n", "phi_max"),  # older key, disagreeing with fit.physics
    ("- a\n- b\n", "mapping"),
    ("fit: [\n", "YAML"),
    ("fit:\n  mollifier:\n    radius_px: 100\n", "radius_px"),
    ("segment:\n  threshold: 1.5\n", "threshold"),
])
def test_bad_config_files(tmp_path, text, phrase):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "bad.yaml" in str(exc.value) and phrase in str(exc.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_presets_validate():
    presets = sorted((REPO / "chromarate" / "pipelines").glob("*.yaml"))
    assert len(presets) >= 3
    for p in presets:
        cfg = load_config(p)
        assert cfg.name == p.stem


def test_configs_are_frozen():
    cfg = PipelineConfig()
    with pytest.raises(Exception):
        cfg.fit = FitConfig(seed=3)  # type: ignore[misc]


def test_a_misspelled_key_is_named_with_the_nearest_known_one(tmp_path):
    """A typo in a config file names the key and the one meant, at any depth; a key like
    nothing known lists what the section takes."""
    from chromarate.config import load_config
    from chromarate.errors import ConfigError

    path = tmp_path / "typo.yaml"
    path.write_text("rendr:\n  pixel_size_nm: 20\nfit:\n  trainin:\n    steps: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "rendr: unknown key; did you mean 'render'?" in text
    assert "fit.trainin: unknown key; did you mean 'training'?" in text
    assert "Extra inputs" not in text
    path.write_text("drift:\n  zzz: 1\n")
    with pytest.raises(ConfigError, match="drift.zzz: unknown key; expected one of blur_nm"):
        load_config(path)
    # the same through --set
    from chromarate.config import PipelineConfig, with_overrides

    with pytest.raises(ConfigError, match=r"'fit.trainin.steps': did you mean 'training'\?"):
        with_overrides(PipelineConfig(), {"fit.trainin.steps": 5})
    with pytest.raises(ConfigError, match=r"'drift.blur_nm': drift is off \(null\); turn it on "
                                          r"with its defaults first: --set 'drift=\{\}'"):
        with_overrides(PipelineConfig(), {"drift.blur_nm": 5})
    assert with_overrides(PipelineConfig(), {"drift": {}}).drift is not None


def test_a_boolean_is_not_taken_for_a_number(tmp_path):
    """pydantic reads ``true`` as 1 where a number goes; configs refuse it by name."""
    from chromarate.config import PipelineConfig, load_config, with_overrides
    from chromarate.errors import ConfigError

    for key in ("fit.training.steps", "render.pixel_size_nm"):
        with pytest.raises(ConfigError, match=f"{key}: expected a number"):
            with_overrides(PipelineConfig(), {key: True})
    path = tmp_path / "b.yaml"
    path.write_text("fit:\n  training:\n    steps: yes\n")
    with pytest.raises(ConfigError, match="fit.training.steps"):
        load_config(path)
    assert with_overrides(PipelineConfig(), {"fit.prior.split_half_floor": False}) \
        .fit.prior.split_half_floor is False  # a boolean setting still takes one


def test_a_section_turned_on_by_set_takes_its_keys_in_the_next_set():
    from chromarate.config import PipelineConfig, with_overrides

    cfg = with_overrides(PipelineConfig(), {"drift": {}, "drift.n_segments": 20})
    assert cfg.drift is not None and cfg.drift.n_segments == 20
