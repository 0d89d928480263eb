"""Configs of the older layout (version 1: flat fit keys, phase.phi_max) are still read:
moved to their new place with one ConfigDeprecationWarning, conflicts refused, and the
same settings hash alike whichever layout they were read from."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from chromarate.cli import cli
from chromarate.config import (CONFIG_VERSION, FitConfig, PhaseConfig, PipelineConfig,
                               config_hash, dump_config, load_config, with_overrides)
from chromarate.errors import ConfigDeprecationWarning, ConfigError

REPO = Path(__file__).resolve().parents[1]

#: Every flat key of the version-1 fit config, with a non-default value where the
#: validators allow one, and the dotted key it is read into now.
OLD_FIT = {
    "steps": (17, "training.steps"),
    "learning_rate": (0.004, "training.learning_rate"),
    "rate_learning_rate_factor": (2.0, "training.rate_learning_rate_factor"),
    "lbfgs_steps": (3, "training.lbfgs_steps"),
    "early_stopping_patience": (40, "training.early_stopping_patience"),
    "log_every": (5, "training.log_every"),
    "patch_size": (64, "training.patch_size"),
    "mixed_precision": (True, "training.mixed_precision"),
    "pretrain_steps": (5, "training.pretrain_steps"),  # not the default: needs a free network
    "regularisation": ("manual", "prior.regularisation"),
    "rate_prior": ("flat", "prior.rate_prior"),
    "rate_smoothness": (0.001, "prior.rate_smoothness"),
    "test_window_um": (0.15, "prior.test_window_um"),
    "rate_fourier_features": (16, "prior.rate_fourier_features"),
    "rate_fourier_scale_per_um": (0.5, "prior.rate_fourier_scale_per_um"),
    "field_prior": ("none", "prior.field_prior"),
    "field_prior_strength": (2.0, "prior.field_prior_strength"),
    "ensemble": (3, "uncertainty.ensemble"),
    "uncertainty": ("seeds", "uncertainty.method"),
}


def _get(model, dotted: str):
    for part in dotted.split("."):
        model = getattr(model, part)
    return model


def _one_warning(record) -> str:
    ours = [w for w in record if issubclass(w.category, ConfigDeprecationWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert issubclass(ours[0].category, DeprecationWarning)
    return str(ours[0].message)


def _old_yaml(fit: dict, phase_phi_max: float | None = 0.7) -> str:
    lines = ["version: 1", "fit:"] + [f"  {k}: {v!r}".replace("'", "") for k, v in fit.items()]
    if phase_phi_max is not None:
        lines += ["phase:", f"  phi_max: {phase_phi_max}"]
    return "\n".join(lines).replace("True", "true") + "\n"


def test_old_flat_keys_in_yaml_are_read_at_their_new_place(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(_old_yaml({**{k: v for k, (v, _) in OLD_FIT.items()},
                               "network": {"parameterization": "free"}}))
    with pytest.warns(ConfigDeprecationWarning) as record:
        cfg = load_config(path)
    message = _one_warning(record)
    for key, (value, new) in OLD_FIT.items():
        assert _get(cfg.fit, new) == value, key
        assert f"fit.{key} -> fit.{new}" in message
    assert "phase.phi_max -> fit.physics.phi_max" in message
    assert cfg.version == CONFIG_VERSION


def test_old_flat_keys_as_keywords():
    with pytest.warns(ConfigDeprecationWarning) as record:
        cfg = FitConfig(steps=10, ensemble=2, uncertainty="seeds", seed=4)
    message = _one_warning(record)
    assert record[0].filename == __file__  # attributed to the caller, not to pydantic
    assert "fit.steps -> fit.training.steps" in message
    assert "fit.ensemble -> fit.uncertainty.ensemble" in message
    assert "fit.uncertainty -> fit.uncertainty.method" in message
    assert cfg == FitConfig(training={"steps": 10}, uncertainty={"ensemble": 2, "method": "seeds"},
                            seed=4)
    with pytest.warns(ConfigDeprecationWarning):
        pipe = PipelineConfig(fit={"steps": 10})
    assert pipe.fit.training.steps == 10


def test_old_keys_keep_the_validators_meaning():
    with pytest.warns(ConfigDeprecationWarning), pytest.raises(ValueError, match="manual"):
        FitConfig(rate_smoothness=0.001)  # chosen per nucleus unless regularisation manual
    with pytest.warns(ConfigDeprecationWarning), pytest.raises(ValueError, match="pretrain"):
        FitConfig(pretrain_steps=5)  # needs a free field network


@pytest.mark.parametrize("old", ["bootstrap", "seeds"])
def test_uncertainty_string_is_the_old_method_key(tmp_path, old):
    path = tmp_path / "u.yaml"
    path.write_text(f"fit:\n  uncertainty: {old}\n  ensemble: 4\n")
    with pytest.warns(ConfigDeprecationWarning) as record:
        cfg = load_config(path)
    assert "fit.uncertainty -> fit.uncertainty.method" in _one_warning(record)
    assert cfg.fit.uncertainty.method == old and cfg.fit.uncertainty.ensemble == 4


def test_new_layout_loads_without_warnings(tmp_path):
    path = tmp_path / "new.yaml"
    path.write_text("version: 2\nfit:\n  training:\n    steps: 17\n  uncertainty:\n"
                    "    method: seeds\n    ensemble: 3\n  physics:\n    phi_max: 0.65\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = load_config(path)
        FitConfig(training={"steps": 3}, prior={"regularisation": "manual"})
    assert cfg.fit.training.steps == 17 and cfg.fit.uncertainty.method == "seeds"
    assert cfg.fit.physics.phi_max == 0.65


@pytest.mark.parametrize("preset", sorted((REPO / "chromarate" / "pipelines").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_bundled_presets_use_the_current_layout(preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = load_config(preset)
    assert cfg.version == CONFIG_VERSION
    assert "version: 2" in preset.read_text()


@pytest.mark.parametrize("text,old,new", [
    ("fit:\n  steps: 10\n  training:\n    steps: 20\n", "fit.steps", "fit.training.steps"),
    ("fit:\n  ensemble: 2\n  uncertainty:\n    ensemble: 3\n", "fit.ensemble",
     "fit.uncertainty.ensemble"),
])
def test_an_old_and_a_new_key_given_differently_is_an_error(tmp_path, text, old, new):
    path = tmp_path / "both.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{old} (an older key of {new})" in str(info.value)
    assert "give it once" in str(info.value)


def test_an_old_and_a_new_key_conflict_in_keywords_and_agree_quietly():
    with pytest.raises(ValueError, match="fit.ensemble.*fit.uncertainty.ensemble"):
        FitConfig(ensemble=2, uncertainty={"ensemble": 3})
    with pytest.warns(ConfigDeprecationWarning):  # the same value twice: read, with the warning
        cfg = FitConfig(steps=9, training={"steps": 9, "log_every": 3})
    assert cfg.training.steps == 9 and cfg.training.log_every == 3


def test_old_phase_phi_max():
    with pytest.warns(ConfigDeprecationWarning) as record:
        cfg = PipelineConfig.model_validate({"phase": {"phi_max": 0.6, "phi_e0": 0.25},
                                             "fit": {"physics": {"phi_max": 0.6}}})
    assert "phase.phi_max -> fit.physics.phi_max" in _one_warning(record)
    assert cfg.fit.physics.phi_max == 0.6 and cfg.phase.phi_e0 == 0.25
    assert not hasattr(cfg.phase, "phi_max")
    with pytest.raises(ValueError, match=r"phase.phi_max \(0.6\) differs from fit.physics.phi_max"):
        PipelineConfig.model_validate({"phase": {"phi_max": 0.6}})  # physics keeps 0.7
    with pytest.raises(ValueError, match="fit.physics.phi_max"):
        PhaseConfig(phi_max=0.7)  # no place in the phase config itself


def test_versions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a version-1 file with nothing moved: no warning
        assert PipelineConfig(version=1, name="x").version == CONFIG_VERSION
    with pytest.raises(ValueError, match="version 3"):
        PipelineConfig(version=CONFIG_VERSION + 1)


def test_dump_load_round_trip_of_a_migrated_config(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text(_old_yaml({"steps": 33, "uncertainty": "seeds", "ensemble": 2,
                              "regularisation": "manual", "rate_smoothness": 0.01}))
    with pytest.warns(ConfigDeprecationWarning):
        cfg = load_config(old)
    new = tmp_path / "new.yaml"
    new.write_text(dump_config(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = load_config(new)
    assert back == cfg and config_hash(back) == config_hash(cfg)
    assert "steps: 33" in new.read_text() and "training:" in new.read_text()


def _old_layout(cfg: PipelineConfig) -> dict:
    """``cfg`` dumped as chromarate wrote it before the groups (config version 1)."""
    from chromarate._config.migrate import FIT_MOVES

    raw = cfg.model_dump(mode="json")
    defaults = PipelineConfig().model_dump(mode="json")["fit"]
    fit = raw["fit"]
    for group in ("training", "prior", "uncertainty"):
        for key, value in fit.pop(group).items():
            if (group, key) == ("uncertainty", "method"):
                fit["uncertainty"] = value
            elif key in FIT_MOVES:
                fit[key] = value
            else:  # added after version 1: absent from an old file, so at its default
                assert value == defaults[group][key], key
    raw["version"] = 1
    raw["phase"]["phi_max"] = fit["physics"]["phi_max"]
    return raw


def test_config_hash_is_that_of_the_current_layout():
    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 12, "fit.seed": 3,
                                            "fit.uncertainty.method": "seeds"})
    with pytest.warns(ConfigDeprecationWarning):
        migrated = PipelineConfig.model_validate(_old_layout(cfg))
    assert migrated == cfg and config_hash(migrated) == config_hash(cfg)
    assert config_hash(cfg) != config_hash(PipelineConfig())


def test_batch_resume_matches_results_of_the_old_layout():
    """A result written before the groups stores its config (and hash) in the old layout;
    resume reads that config through the migration and finds it is the same one."""
    from chromarate.batch.tasks import _migrated_hash

    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 12})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quiet: the user cannot edit a stored config
        assert _migrated_hash({"config": _old_layout(cfg), "config_hash": "0" * 16}) \
            == config_hash(cfg)
    assert _migrated_hash({"config": _old_layout(PipelineConfig())}) != config_hash(cfg)
    assert _migrated_hash({"config": {"fit": {"steps": -1}}}) is None
    assert _migrated_hash({}) is None
    # a crafted stored config never stops the batch: the nucleus is simply refitted
    for crafted in ({"fit": {"training": [1, 2]}}, {"fit": "x"}, {"version": "two"},
                    {"render": {"pixel_size_nm": float("nan")}}):
        assert _migrated_hash({"config": crafted}) is None


def test_old_override_keys():
    with pytest.warns(ConfigDeprecationWarning) as record:
        cfg = with_overrides(PipelineConfig(), {"fit.steps": 7, "fit.uncertainty": "seeds",
                                                "fit.ensemble": 2, "phase.phi_max": 0.7})
    message = _one_warning(record)
    assert "fit.steps -> fit.training.steps" in message and "phase.phi_max" in message
    assert cfg.fit.training.steps == 7 and cfg.fit.uncertainty.method == "seeds"
    assert cfg.fit.uncertainty.ensemble == 2
    with pytest.raises(ConfigError, match="give it once"):
        with_overrides(PipelineConfig(), {"fit.steps": 7, "fit.training.steps": 8})
    with pytest.raises(ConfigError, match="differs from fit.physics.phi_max"):
        with_overrides(PipelineConfig(), {"phase.phi_max": 0.6})
    cfg = with_overrides(PipelineConfig(), {"fit.physics.phi_max": 0.6})
    assert cfg.fit.physics.phi_max == 0.6


@pytest.mark.parametrize("old", ["bootstrap", "seeds"])
def test_uncertainty_string_is_the_old_method_key_in_overrides_too(old):
    """The override path reads a string ``fit.uncertainty`` as the file and keyword path
    does: as ``fit.uncertainty.method``, named in the warning, refused when the new key
    says otherwise; a mapping is the group itself and moves nothing."""
    other = "seeds" if old == "bootstrap" else "bootstrap"
    base = with_overrides(PipelineConfig(), {"fit.uncertainty.method": other})
    with pytest.warns(ConfigDeprecationWarning) as record:
        cfg = with_overrides(base, {"fit.uncertainty": old})
    assert "fit.uncertainty -> fit.uncertainty.method" in _one_warning(record)
    assert cfg.fit.uncertainty.method == old
    with pytest.raises(ConfigError, match="fit.uncertainty \\(an older key of "
                                          "fit.uncertainty.method\\).*give it once"):
        with_overrides(PipelineConfig(), {"fit.uncertainty": old,
                                          "fit.uncertainty.method": other})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = with_overrides(base, {"fit.uncertainty": {"method": old, "ensemble": 3}})
    assert cfg.fit.uncertainty.method == old and cfg.fit.uncertainty.ensemble == 3


@pytest.mark.parametrize("old", ["bootstrap", "seeds"])
def test_uncertainty_string_as_a_keyword(old):
    other = "seeds" if old == "bootstrap" else "bootstrap"
    with pytest.warns(ConfigDeprecationWarning) as record:
        cfg = FitConfig(uncertainty=old)
    assert "fit.uncertainty -> fit.uncertainty.method" in _one_warning(record)
    assert cfg.uncertainty.method == old
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the group given as a mapping is not an old key
        assert FitConfig(uncertainty={"method": other}).uncertainty.method == other


def test_cli_prints_the_warning(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("fit:\n  steps: 11\n")
    res = CliRunner().invoke(cli, ["config", "show", str(old)])
    assert res.exit_code == 0, res.output
    assert "warning: config keys of an older layout" in res.output
    assert "fit.steps -> fit.training.steps" in res.output and "steps: 11" in res.output
    res = CliRunner().invoke(cli, ["config", "validate", str(old)])
    assert res.exit_code == 0 and "fit.steps -> fit.training.steps" in res.output
    res = CliRunner().invoke(cli, ["config", "show", "default"])
    assert res.exit_code == 0 and "warning" not in res.output
