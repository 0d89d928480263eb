"""Errors that lead to a fix: the sparse-density and too-small-nucleus errors name the
config keys and values that work, and those are valid overrides of the default config."""

from __future__ import annotations

import re

import numpy as np
import pytest

from chromarate._types import DensityMap, PhaseFields
from chromarate.config import FitConfig, MollifierConfig, PipelineConfig, with_overrides
from chromarate.errors import StageError
from chromarate.phase import phase_fields


def _suggested(message: str) -> dict:
    """The ``--set key=value`` overrides a message suggests."""
    return {k: float(v) for k, v in re.findall(r"--set ([\w.]+)=([\d.]+)", message)}


def _disk(n: int, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < r**2


def test_sparse_density_error_names_working_settings():
    mask = _disk(80, 30)
    rng = np.random.default_rng(0)
    rho = np.where(mask & (rng.random(mask.shape) < 0.5), 1.0, 0.0)
    with pytest.raises(StageError) as info:
        phase_fields(DensityMap(rho, 20.0), mask)
    sets = _suggested(str(info.value))
    assert sets == {"render.pixel_size_nm": 40.0, "denoise.sigma_nm": 40.0,
                    "fit.mollifier.radius_px": 8.0}
    cfg = with_overrides(PipelineConfig(), sets)  # every suggested key is a real one
    assert cfg.render.pixel_size_nm == 40.0 and cfg.fit.mollifier.radius_px == 8.0


def test_small_nucleus_error_names_the_radius_key_consistently():
    pytest.importorskip("torch")
    from chromarate.fit.loop import iter_fit

    mask = _disk(24, 7)
    phi_d = np.where(mask, 0.1, 0.0)
    fields = PhaseFields(phi_w=0.5 - 0.5 * phi_d, phi_d=phi_d, mask=mask, pixel_size_nm=20.0,
                         origin_nm=(0.0, 0.0))
    cfg = FitConfig(device="cpu", training=dict(steps=2), prior=dict(regularisation="manual"),
                    mollifier=MollifierConfig(radius_px=10.0))
    with pytest.raises(StageError, match="too small for mollifier radius") as info:
        list(iter_fit(fields, cfg))
    sets = _suggested(str(info.value))
    assert sets == {"fit.mollifier.radius_px": 8.0}
    assert "render.pixel_size_nm" in str(info.value)
    with_overrides(PipelineConfig(), sets)


def test_info_and_report_list_the_failures_when_nothing_succeeded(tmp_path):
    from click.testing import CliRunner

    from chromarate.cli import cli
    from chromarate.errors import ResultStoreError
    from chromarate.report import make_report

    bad = tmp_path / "noxy.csv"
    bad.write_text('"frame","photons"\n1,100\n')
    out = tmp_path / "out"
    run = CliRunner().invoke(cli, ["run", "quick-cpu", str(bad), "--out", str(out),
                                   "--progress-every", "0"])
    assert run.exit_code == 1
    # each failure is printed once
    assert run.stderr.count("FAILED") == 1, run.stderr

    for command in (["info", str(out)], ["report", str(out)]):
        res = CliRunner().invoke(cli, command)
        assert res.exit_code == 1, (command, res.output)
        assert f"FAILED {bad}" in res.stderr and "every input or nucleus" in res.stderr
    with pytest.raises(ResultStoreError, match=r"all 1 .*failed.*noxy\.csv"):
        make_report(out)

    # a folder without results (empty, or of inputs) and an input file are not results,
    # for info as for report
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (empty, tmp_path, bad):
        for command in ("info", "report"):
            res = CliRunner().invoke(cli, [command, str(target)])
            assert res.exit_code != 0, (command, target, res.output)
        res = CliRunner().invoke(cli, ["info", str(target)])
        assert "0 nucleus result(s)" not in res.output
    assert "no *.ome.zarr result under this folder" in str(CliRunner().invoke(
        cli, ["info", str(empty)]).exception)
