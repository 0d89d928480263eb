"""The CLI, run in-process with click's CliRunner on tiny inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from chromarate.cli import cli, main
from chromarate.io.zarr_store import read_result

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "chromarate" / "pipelines"
FAST = ["--set", "fit.training.steps=6", "--set", "fit.training.log_every=2",
        "--set", "fit.network.width=16",
        "--set", "fit.network.fourier_features=16"]


def test_run_writes_result_and_summary(tiny_nucleus, tmp_path):
    csv, _, syn = tiny_nucleus
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", str(PRESETS / "quick-cpu.yaml"), str(csv),
                                   "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    summary = pd.read_csv(out / "summary.csv")
    for col in ("input", "nucleus_id", "n_localizations", "pixel_size_nm", "rate_mean",
                "rate_median", "fit_seconds", "device", "result_path", "rate_corr_truth"):
        assert col in summary.columns
    row = summary.iloc[0]
    # the tiny test nucleus passes the pipeline but not the quality gate's size check
    assert row["status"] in ("ok", "low_confidence")
    if row["status"] == "low_confidence":
        assert isinstance(row["qc_reasons"], str) and row["qc_reasons"]
    assert 0 < row["n_localizations"] <= len(syn.localizations)
    assert np.isfinite(row["rate_corr_truth"])  # the truth file beside the input was found
    stack = read_result(row["result_path"])
    assert stack.pixel_size_nm == 20.0
    assert "rate" in stack.channels
    assert "corr(truth)" in res.output and "fit" in res.output


def _fail(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name,text,phrase", [
    ("noxy.csv", '"frame","photons"\n1,100\n', "x"),
    ("empty.csv", "", "empty"),
    ("nonnum.csv", '"frame","x [nm]","y [nm]"\n1,10,abc\n', "line"),
    ("units.csv", '"frame","x [furlong]","y [furlong]"\n1,10,20\n', "furlong"),
])
def test_bad_input_gives_one_line_error_and_nonzero_exit(tmp_path, capsys, name, text, phrase):
    p = _fail(tmp_path, name, text)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(PRESETS / "quick-cpu.yaml"), str(p), "--out", str(tmp_path / "o")])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert name in err and "FAILED" in err
    assert phrase.lower() in err.lower()
    assert "Traceback" not in err
    summary = pd.read_csv(tmp_path / "o" / "summary.csv")
    assert summary.iloc[0]["status"] == "failed"


def test_bad_config_is_a_clean_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("fit:\n  training:\n    steps: -3\n")
    with pytest.raises(SystemExit) as exc:
        main(["run", str(cfg), "whatever.csv", "--out", str(tmp_path / "o")])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "fit.training.steps" in err and "Traceback" not in err


def test_unknown_override_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", str(PRESETS / "default.yaml"), "x.csv", "--out", str(tmp_path),
              "--set", "fit.nope=1"])
    assert exc.value.code == 1
    assert "fit.nope" in capsys.readouterr().err


def test_unavailable_device_is_a_clean_error(tiny_nucleus, tmp_path, capsys):
    csv, _, _ = tiny_nucleus
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: cuda:0 is a valid device here")
    with pytest.raises(SystemExit) as exc:
        main(["run", str(PRESETS / "quick-cpu.yaml"), str(csv), "--out", str(tmp_path),
              "--device", "cuda:0", *FAST])
    assert exc.value.code == 1
    assert "CUDA is not available" in capsys.readouterr().err


def test_simulate_writes_csv_and_truth(tmp_path):
    out = tmp_path / "s.csv.gz"
    res = CliRunner().invoke(cli, ["simulate", "--out", str(out), "--size", "48",
                                   "--n-localizations", "3000", "--tolerance", "0.05"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and (tmp_path / "s.truth.npz").is_file()
    from chromarate.io.localizations import read_localizations
    from chromarate.io.truth import read_truth

    assert len(read_localizations(out)) == 3000
    assert read_truth(tmp_path / "s.truth.npz")["rate"].shape == (48, 48)


def test_version_and_help():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "chromarate" in r.output
    r = CliRunner().invoke(cli, ["--help"])
    assert "run" in r.output and "demo" in r.output and "simulate" in r.output


def test_run_help_names_every_preset_and_every_option_has_help():
    """``run --help`` lists the presets there are, and no option of any command is left
    without a help text."""
    import click

    from chromarate.presets import list_presets

    text = " ".join(CliRunner().invoke(cli, ["run", "--help"]).output.split())
    for preset in list_presets():
        assert preset in text
    commands = [cli]
    while commands:
        command = commands.pop()
        if isinstance(command, click.Group):
            commands.extend(command.commands.values())
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help", "version"):
                assert param.help, f"{command.name} {param.opts} has no help"


# --- config, info, dry-run, presets ----------------------------------------------------


@pytest.mark.parametrize("preset", ["default", "quick-cpu", "publication"])
def test_every_preset_validates_and_is_documented(preset):
    from chromarate.presets import list_presets, resolve_pipeline

    assert preset in list_presets()
    cfg, path = resolve_pipeline(preset)
    assert cfg.name == preset and path == PRESETS / f"{preset}.yaml"
    head = path.read_text().split("\nversion:")[0]
    assert head.count("\n#") >= 5 and "For:" in head and "Use it:" in head
    res = CliRunner().invoke(cli, ["config", "validate", preset, str(path)])
    assert res.exit_code == 0 and res.output.count("ok ") == 2


def test_publication_preset_is_careful():
    from chromarate.presets import resolve_pipeline

    pub, default = resolve_pipeline("publication")[0], resolve_pipeline("default")[0]
    assert pub.fit.uncertainty.ensemble >= 3
    assert pub.fit.training.steps > 4 * default.fit.training.steps
    assert pub.fit.training.lbfgs_steps > 0 and pub.render.method == "gaussian"


def test_config_init_validate_show_schema(tmp_path):
    import json

    from chromarate.config import config_hash, load_config

    out = tmp_path / "mine.yaml"
    r = CliRunner().invoke(cli, ["config", "init", "quick-cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert load_config(out).name == "quick-cpu"
    r = CliRunner().invoke(cli, ["config", "init", "quick-cpu", "--out", str(out)])
    assert r.exit_code != 0  # no silent replacement
    bad = tmp_path / "bad.yaml"
    bad.write_text("fit:\n  training:\n    steps: 0\n")
    r = CliRunner().invoke(cli, ["config", "validate", str(out), str(bad)])
    assert r.exit_code == 1 and "INVALID" in r.output and "fit.training.steps" in r.output
    r = CliRunner().invoke(cli, ["config", "show", str(out), "--set", "fit.training.steps=7"])
    assert r.exit_code == 0 and "steps: 7" in r.output
    from chromarate.config import with_overrides

    assert config_hash(with_overrides(load_config(out), {"fit.training.steps": 7})) in r.output
    r = CliRunner().invoke(cli, ["config", "schema"])
    schema = json.loads(r.output)
    assert "fit" in schema["properties"]
    r = CliRunner().invoke(cli, ["config", "init"])
    assert r.exit_code == 0 and "name: default" in r.output


def test_unknown_preset_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        main(["run", "nosuchpreset", "x.csv", "--out", "o"])
    err = capsys.readouterr().err
    assert "nosuchpreset" in err and "quick-cpu" in err and "Traceback" not in err


def test_dry_run_writes_nothing_then_info_and_resume_state(tiny_nucleus, tmp_path):
    csv, _, _ = tiny_nucleus
    out = tmp_path / "out"
    args = ["run", "quick-cpu", str(csv), "--out", str(out), "--set", "fit.method=direct"]
    r = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert r.exit_code == 0 and "[run]" in r.output and not out.exists()
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert "[skip: all 1 nucleus(es) done]" in r.output
    r = CliRunner().invoke(cli, ["info", str(out / "tiny" / "1.ome.zarr")])
    assert r.exit_code == 0, r.output
    for word in ("nucleus      1", "20 nm", "rate         mean", "config", "rate_corr_truth"):
        assert word in r.output
    r = CliRunner().invoke(cli, ["info", str(out)])
    assert r.exit_code == 0 and "1 nucleus result(s)" in r.output


def test_changed_config_refits_and_logs_the_replacement(tiny_nucleus, tmp_path):
    csv, _, _ = tiny_nucleus
    out = tmp_path / "out"
    base = ["run", "quick-cpu", str(csv), "--out", str(out), "--set", "fit.method=direct"]
    assert CliRunner().invoke(cli, base).exit_code == 0
    r = CliRunner().invoke(cli, [*base, "--set", "fit.mollifier.radius_px=6"])
    assert r.exit_code == 0 and "1 fitted, 0 done earlier" in r.output
    log = (out / "batch.log").read_text()
    assert "1.ome.zarr will be replaced: made with another config (hash " in log
    assert read_result(out / "tiny" / "1.ome.zarr").provenance["config"]["fit"]["mollifier"][
        "radius_px"] == 6


DIRECT = ["--set", "fit.method=direct"]


def _unitless(tiny_nucleus, path: Path, scale: float = 1.0) -> Path:
    """The tiny nucleus as a CSV at ``path`` whose header states no unit (``x,y,frame``),
    its coordinates divided by ``scale`` (1000: micrometres)."""
    csv, _, _ = tiny_nucleus
    table = pd.read_csv(csv)
    pd.DataFrame({"x": table["x [nm]"] / scale, "y": table["y [nm]"] / scale,
                  "frame": table["frame"]}).to_csv(path, index=False)
    return path


def test_units_of_a_table_that_states_none_come_from_the_command_line(tiny_nucleus, tmp_path):
    """A table without units is refused, naming the batch's setting; ``--units`` (or
    ``--set read.units``) reads it; the same nucleus in micrometres reads the same."""
    in_nm = _unitless(tiny_nucleus, tmp_path / "plain.csv")
    res = CliRunner().invoke(cli, ["run", "quick-cpu", str(in_nm), "--out", str(tmp_path / "a"),
                                   *DIRECT])
    assert res.exit_code == 1, res.output
    error = pd.read_csv(tmp_path / "a" / "summary.csv").iloc[0]["error"]
    assert "has no unit" in error and "read.units (chromarate run --units)" in error
    in_um = _unitless(tiny_nucleus, tmp_path / "plain_um.csv", scale=1000.0)
    counts = []
    for out, path, extra in (("b", in_nm, ["--units", "nm"]),
                             ("c", in_um, ["--set", "read.units=um"])):
        res = CliRunner().invoke(cli, ["run", "quick-cpu", str(path), "--out", str(tmp_path / out),
                                       *DIRECT, *extra])
        assert res.exit_code == 0, res.output
        row = pd.read_csv(tmp_path / out / "summary.csv").iloc[0]
        assert row["status"] != "failed"
        counts.append(int(row["n_localizations"]))
    assert counts[0] == counts[1] > 0


def test_pixel_coordinates_are_read_with_the_pixel_size_from_the_command_line(tiny_nucleus,
                                                                              tmp_path):
    """A ``[px]`` table is refused without a pixel size, naming ``--pixel-size-nm``, and read
    with it; ``read.units: px`` without a pixel size is a valid config (a file may record
    its own), and a plain ``x, y`` table read with it is refused naming the pixel size."""
    csv, _, _ = tiny_nucleus
    table = pd.read_csv(csv)
    px = tmp_path / "px.csv"
    pd.DataFrame({"frame": table["frame"], "x [px]": table["x [nm]"] / 108.0,
                  "y [px]": table["y [nm]"] / 108.0}).to_csv(px, index=False)
    res = CliRunner().invoke(cli, ["run", "quick-cpu", str(px), "--out", str(tmp_path / "a"), *DIRECT])
    assert res.exit_code == 1
    assert "chromarate run --pixel-size-nm" in pd.read_csv(tmp_path / "a" / "summary.csv").iloc[0]["error"]
    res = CliRunner().invoke(cli, ["run", "quick-cpu", str(px), "--out", str(tmp_path / "b"), *DIRECT,
                                   "--pixel-size-nm", "108"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["config", "show", "quick-cpu", "--set", "read.units=px"])
    assert res.exit_code == 0, res.output
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"frame": table["frame"], "x": table["x [nm]"] / 108.0,
                  "y": table["y [nm]"] / 108.0}).to_csv(plain, index=False)
    res = CliRunner().invoke(cli, ["run", "quick-cpu", str(plain), "--out", str(tmp_path / "c"),
                                   *DIRECT, "--units", "px"])
    assert res.exit_code == 1
    assert "chromarate run --pixel-size-nm" in pd.read_csv(tmp_path / "c" / "summary.csv").iloc[0]["error"]


def test_bad_device_and_read_limit_are_refused_before_any_input_is_read(tiny_nucleus, tmp_path,
                                                                        capsys, monkeypatch):
    csv, _, _ = tiny_nucleus
    with pytest.raises(SystemExit) as exc:
        main(["run", "quick-cpu", str(csv), "--out", str(tmp_path / "d"), "--device", "banana"])
    assert exc.value.code == 1
    assert "unknown device 'banana'" in capsys.readouterr().err
    assert not (tmp_path / "d" / "summary.csv").exists()
    monkeypatch.setenv("CHROMARATE_READ_LIMIT", "garbage")
    with pytest.raises(SystemExit) as exc:
        main(["run", "quick-cpu", str(csv), "--out", str(tmp_path / "e")])
    assert exc.value.code == 1
    assert "CHROMARATE_READ_LIMIT" in capsys.readouterr().err
    assert not (tmp_path / "e" / "summary.csv").exists()


def test_a_commands_verbose_flag_does_not_print_tracebacks(tiny_nucleus, tmp_path, capsys):
    """``run -v`` means stage timings; only ``chromarate -v`` shows tracebacks."""
    csv, _, _ = tiny_nucleus
    args = ["run", "quick-cpu", str(csv), "--out", str(tmp_path / "o"), "--set",
            "fit.network.width=1"]
    with pytest.raises(SystemExit):
        main([*args, "-v"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "fit.network.width" in err
    with pytest.raises(Exception, match="fit.network.width"):
        main(["-v", *args])


def test_nan_given_with_set_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        main(["config", "show", "quick-cpu", "--set", "render.pixel_size_nm=NaN"])
    assert "render.pixel_size_nm: NaN is not a value" in capsys.readouterr().err


def test_a_bad_read_limit_is_named_by_info_report_and_the_dry_run(tiny_nucleus, tmp_path,
                                                                  monkeypatch):
    csv, _, _ = tiny_nucleus
    res = CliRunner().invoke(cli, ["run", "quick-cpu", str(csv), "--out", str(tmp_path / "d"),
                                   "--dry-run", "--read-limit", "0"])
    assert res.exit_code != 0 and "positive size" in str(res.exception or res.output)
    assert not (tmp_path / "d").exists()
    monkeypatch.setenv("CHROMARATE_READ_LIMIT", "0")
    for command in (["info", str(tmp_path / "x.ome.zarr")], ["report", str(tmp_path)]):
        res = CliRunner().invoke(cli, command)
        assert res.exit_code != 0
        assert "environment variable CHROMARATE_READ_LIMIT" in str(res.exception or res.output)


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGTERM") or __import__("os").name != "posix",
                    reason="needs POSIX signals")
def test_sigterm_stops_a_batch_as_ctrl_c_does(tiny_nucleus, tmp_path):
    """A scheduler's time limit sends SIGTERM: the batch writes its summary and log and
    exits 130, as on Ctrl-C (it used to die at once with 143 and no summary)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    csv, _, _ = tiny_nucleus
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from chromarate.cli import main; main(sys.argv[1:])",
         "run", "quick-cpu", str(csv), "--out", str(out),
         "--set", "fit.training.steps=200000", "--progress-every", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        log = out / "batch.log"
        while time.monotonic() < deadline and not (log.exists() and " fit " in log.read_text()):
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert (out / "summary.csv").exists()
    assert "batch interrupted" in (out / "batch.log").read_text()
