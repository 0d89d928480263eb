"""The inference generator behind the widget (pure: no Qt)."""

from __future__ import annotations

import pytest

from chromarate._napari._run import (DEFAULT_PRESET, InferenceRequest, ResultSaved, RunFailed,
                                     iter_inference, list_presets, resolve_config)
from chromarate._types import FitProgress, StageDone
from chromarate.config import PipelineConfig, load_config
from chromarate.errors import ConfigError
from chromarate.io.zarr_store import read_result
from chromarate.pipeline import NucleusResult
from chromarate.presets import preset_path


def test_presets_and_config_resolution(tiny_config):
    presets = list_presets()
    assert {"default", "quick-cpu"} <= set(presets) and DEFAULT_PRESET in presets
    assert resolve_config("quick-cpu", None) == load_config(preset_path("quick-cpu"))
    assert resolve_config(DEFAULT_PRESET, None) == PipelineConfig()
    assert resolve_config(None, None) == PipelineConfig()
    assert resolve_config("quick-cpu", tiny_config).fit.training.steps == 6  # a file wins
    with pytest.raises(ConfigError, match="preset named 'nope'"):
        resolve_config("nope", None)


def test_run_from_file_saves_results(tiny_nucleus, tiny_config, tmp_path):
    csv, _, _ = tiny_nucleus
    request = InferenceRequest(config=load_config(tiny_config), name="tiny", path=csv,
                               device="cpu", out_dir=tmp_path / "out")
    events = list(iter_inference(request))
    assert isinstance(events[0], StageDone) and events[0].stage == "read"
    assert sum(isinstance(e, FitProgress) for e in events) == 3  # steps 2, 4, 6
    (result,) = [e for e in events if isinstance(e, NucleusResult)]
    (saved,) = [e for e in events if isinstance(e, ResultSaved)]
    assert saved.path == tmp_path / "out" / "tiny" / "1.ome.zarr"
    back = read_result(saved.path)
    assert back.provenance["input"]["path"] == str(csv)
    assert len(back.provenance["input"]["sha256"]) == 64
    assert back.provenance["config"]["fit"]["training"]["steps"] == 6
    assert not any(isinstance(e, RunFailed) for e in events)
    assert result.stack.channels["rate"].shape == back.channels["rate"].shape


def test_errors_end_the_run_with_one_message(tmp_path, tiny_config):
    bad = tmp_path / "notes.csv"
    bad.write_text("hello,world\n1,2\n")
    events = list(iter_inference(InferenceRequest(config=load_config(tiny_config), name="n",
                                                  path=bad)))
    assert isinstance(events[-1], RunFailed)
    assert str(bad) in events[-1].message and "Traceback" not in events[-1].message
    events = list(iter_inference(InferenceRequest(config=PipelineConfig(), name="n")))
    assert [type(e) for e in events] == [RunFailed]
    assert "choose a localization layer or file" in events[0].message


def test_closing_the_generator_stops_the_fit(tiny_nucleus, endless_config):
    csv, _, _ = tiny_nucleus
    gen = iter_inference(InferenceRequest(config=load_config(endless_config), name="t",
                                          path=csv, device="cpu"))
    steps = []
    for event in gen:
        if isinstance(event, FitProgress):
            steps.append(event.step)
            if len(steps) == 3:
                break
    gen.close()  # what a cancelled worker amounts to
    assert steps == [1, 2, 3]
