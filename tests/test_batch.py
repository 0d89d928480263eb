"""A batch over a folder of six synthetic nuclei plus a corrupt file, on two local dask
worker processes: failure isolation, resume, --overwrite, the per-nucleus analysis table
(recovery of the known rates across nuclei) and the report.

The fits use the closed-form inversion (``fit.method=direct``, a fraction of a second per
nucleus) so the whole module stays within about a minute on 2 cores; the dask start-up and
the worker imports are most of that.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from chromarate.analysis import iter_nuclei, nucleus_table
from chromarate.cli import cli
from chromarate.io.zarr_store import is_complete_result

DIRECT = ["--set", "fit.method=direct"]


def _invoke(*args):
    return CliRunner().invoke(cli, ["run", "quick-cpu", *map(str, args), *DIRECT])


def _summary(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "summary.csv")


def _stores(out: Path) -> dict[str, float]:
    """result store -> modification time of its metadata file."""
    return {str(p): (p / "zarr.json").stat().st_mtime_ns for p in sorted(out.glob("*/*.ome.zarr"))}


def _inputs(first_run) -> Path:
    """The input folder of the module's batch (the parent of the corrupt file)."""
    return first_run[3].parent


@pytest.fixture(scope="module")
def first_run(synthetic_batch, tmp_path_factory):
    folder, rates, corrupt = synthetic_batch
    out = tmp_path_factory.mktemp("batch") / "results"
    res = _invoke(folder, "--out", out, "--workers", "2")
    return out, res, rates, corrupt


def test_two_workers_isolate_the_corrupt_file(first_run):
    out, res, rates, corrupt = first_run
    assert res.exit_code == 1, res.output  # one input failed
    assert "2 local dask worker processes" in res.output
    summary = _summary(out)
    ok = summary[summary.status != "failed"]
    failed = summary[summary.status == "failed"]
    assert sorted(ok.name) == sorted(rates) and len(failed) == 1
    bad = failed.iloc[0]
    assert bad.input == str(corrupt) and corrupt.name in bad.error and "gzip" in bad.error
    assert np.isnan(bad.nucleus_id)
    assert f"{corrupt}: FAILED" in res.output and "1 input failed" in res.output
    for row in ok.itertuples():
        assert is_complete_result(row.result_path)
        assert row.result_path == str(out / row.name / "1.ome.zarr")
        assert row.n_localizations > 50_000 and not row.resumed
        assert row.report_radius_px >= row.mollifier_radius_px > 0
    log = (out / "batch.log").read_text()
    assert "FAILED input" in log and corrupt.name in log and "6 ok (6 fitted, 0 resumed)" in log
    # nothing half-written is left behind
    assert not [p for p in out.rglob(".*") if ".tmp-" in p.name]


def test_counts_stay_integers_beside_a_failed_input(first_run):
    """summary.csv's counts and the dry run's stay integers though the failed input has
    none (pandas would write 241619.0 and print 1.0)."""
    out, _, rates, _ = first_run
    raw = pd.read_csv(out / "summary.csv", dtype=str)
    for column in ("nucleus_id", "n_localizations"):
        values = raw[column].dropna()
        assert len(values) == len(rates) and values.str.fullmatch(r"\d+").all(), values
    res = CliRunner().invoke(cli, ["run", "quick-cpu", str(_inputs(first_run)), "--out", str(out),
                                   "--dry-run", *DIRECT])
    assert res.exit_code == 0, res.output
    assert res.output.count("[skip: all 1 nucleus(es) done]") == len(rates), res.output


def test_resume_fits_nothing_and_overwrite_refits(first_run):
    out, _, rates, corrupt = first_run
    before = _stores(out)
    assert len(before) == len(rates)

    res = _invoke(_inputs(first_run), "--out", out, "--workers", "2")
    assert res.exit_code == 1, res.output
    assert "0 fitted, 6 done earlier" in res.output
    summary = _summary(out)
    ok = summary[summary.status != "failed"]
    assert len(ok) == 6 and ok.resumed.all()
    assert _stores(out) == before  # no result was rewritten
    log = (out / "batch.log").read_text().split("batch: ")[-1]
    assert "input not read" in log and "0 fitted, 6 resumed" in log

    res = _invoke(_inputs(first_run), "--out", out, "--overwrite")
    assert res.exit_code == 1, res.output
    assert "6 fitted, 0 done earlier" in res.output
    summary = _summary(out)
    assert not summary[summary.status != "failed"].resumed.any()
    after = _stores(out)
    assert set(after) == set(before) and all(after[k] != before[k] for k in before)


def test_analysis_table_recovers_the_rates_across_nuclei(first_run):
    """Known constant rates 1.1 ... 2.1: the table's balance estimate of each nucleus's mean
    rate (sum phi_h / sum phi_e, the steady state integrated over the nucleus) tracks them.

    Measured on this data: Pearson r = 0.95 with a slope of about 0.7 (the observation
    model's euchromatin baseline, a 5th percentile of noisy density, biases phi_h). The
    closed-form map itself is too noisy on these 1.7 um nuclei to track the mean: its
    means are recorded, not asserted.
    """
    out, _, rates, _ = first_run
    table = nucleus_table(out)
    assert len(table) == 6
    truth = table["name"].map(rates).to_numpy(dtype=float)
    assert np.allclose(table["truth_rate_mean"], truth, atol=1e-4)  # truth found beside inputs
    r_balance = np.corrcoef(truth, table["rate_balance"])[0, 1]
    assert r_balance >= 0.9, table[["name", "rate_balance", "rate_mean"]]
    for col in ("area_um2", "n_localizations", "heterochromatin_fraction", "rate_median",
                "rate_q05", "rate_q95", "rate_heterochromatin", "rate_euchromatin",
                "n_domains", "domain_radius_um", "domain_spacing_um", "lab_lambda"):
        assert col in table.columns
    assert (table["area_um2"].between(1.0, 3.0)).all()
    assert (table["heterochromatin_fraction"].between(0.0, 1.0)).all()
    assert (table["n_domains"] >= 1).all()


def test_iter_nuclei_gives_arrays_and_metadata(first_run):
    out, _, rates, _ = first_run
    nuclei = list(iter_nuclei(out))
    assert [n.name for n in nuclei] == sorted(rates)
    n = nuclei[0]
    assert n.mask.dtype == bool and n.rate.shape == n.mask.shape
    assert n.pixel_size_nm == 20.0 and n.phi_e0 == 0.2
    assert n.input.endswith("cell1.csv.gz") and len(n.config_hash) == 16
    assert n.config["fit"]["method"] == "direct"


def test_report_writes_html_and_figures(first_run):
    out, _, rates, corrupt = first_run
    res = CliRunner().invoke(cli, ["report", str(out)])
    assert res.exit_code == 0, res.output
    html = out / "report" / "index.html"
    assert html.stat().st_size > 1000
    text = html.read_text()
    assert "corrupt.csv.gz" in text  # the failure is listed
    pngs = sorted((out / "report").rglob("*.png"))
    names = {p.name for p in pngs}
    assert {"rate_by_input.png", "lab_vs_inferred.png", "inferred_vs_truth.png"} <= names
    assert len([p for p in pngs if p.parent.name == "nuclei"]) == len(rates)
    for p in pngs:
        assert p.stat().st_size > 5000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert os.path.relpath(p, html.parent) in text
    table = pd.read_csv(out / "nuclei.csv")
    assert len(table) == len(rates)


def test_report_names_a_damaged_store_once_and_exits_1(first_run, tmp_path):
    out, _, rates, _ = first_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report", "nuclei.csv"))
    damaged = sorted(copy.rglob("1.ome.zarr"))[0]
    (damaged / "zarr.json").write_text("{")
    res = CliRunner().invoke(cli, ["report", str(copy), "--no-figures"])
    assert res.exit_code == 1, res.output
    assert res.stderr.count(str(damaged)) == 1, res.stderr
    assert "1 result(s) cannot be read" in res.stderr
    assert len(pd.read_csv(copy / "nuclei.csv")) == len(rates) - 1


def test_a_result_from_before_the_background_subtraction_is_not_resumed_as_current():
    """A stored config without ``phase.background`` was made without the subtraction: it
    hashes as ``background: none``, not as today's default, so a batch refits it."""
    from chromarate.batch.tasks import _migrated_hash
    from chromarate.config import PipelineConfig, config_hash, with_overrides

    stored = PipelineConfig().model_dump(mode="json")
    for key in ("background", "background_gap_nm", "background_width_nm"):
        stored["phase"].pop(key)
    assert _migrated_hash({"config": stored}) != config_hash(PipelineConfig())
    assert _migrated_hash({"config": stored}) == config_hash(
        with_overrides(PipelineConfig(), {"phase.background": "none"}))


def test_a_result_from_before_the_censored_level_is_not_resumed_as_current():
    """A stored config without ``phase.censored_level`` reported its rate without the level
    factor: it hashes as ``censored_level: never``, so a batch refits it."""
    from chromarate.batch.tasks import _migrated_hash
    from chromarate.config import PipelineConfig, config_hash, with_overrides

    stored = PipelineConfig().model_dump(mode="json")
    stored["phase"].pop("censored_level")
    assert _migrated_hash({"config": stored}) != config_hash(PipelineConfig())
    assert _migrated_hash({"config": stored}) == config_hash(
        with_overrides(PipelineConfig(), {"phase.censored_level": "never"}))
    assert _migrated_hash({"config": PipelineConfig().model_dump(mode="json")}) == config_hash(
        PipelineConfig())


def test_a_result_levelled_in_full_is_not_resumed_as_current():
    """A stored config with the censored level but without ``censored_level_share`` applied
    the full step: it hashes as share 1, so a batch refits it under the halfway default."""
    from chromarate.batch.tasks import _migrated_hash
    from chromarate.config import PipelineConfig, config_hash, with_overrides

    stored = PipelineConfig().model_dump(mode="json")
    stored["phase"].pop("censored_level_share")
    assert _migrated_hash({"config": stored}) != config_hash(PipelineConfig())
    assert _migrated_hash({"config": stored}) == config_hash(
        with_overrides(PipelineConfig(), {"phase.censored_level_share": 1.0}))
    # where no level could apply (from before the censored level, so never; or never, or
    # another calibration) the share changes nothing: such results still resume
    older = PipelineConfig().model_dump(mode="json")
    older["phase"].pop("censored_level_share")
    older["phase"].pop("censored_level")
    assert _migrated_hash({"config": older}) == config_hash(
        with_overrides(PipelineConfig(), {"phase.censored_level": "never"}))
    for setting in ({"censored_level": "never"}, {"calibration": "physics_censored"}):
        other = PipelineConfig().model_dump(mode="json")
        other["phase"].pop("censored_level_share")
        other["phase"].update(setting)
        assert _migrated_hash({"config": other}) == config_hash(with_overrides(
            PipelineConfig(), {f"phase.{k}": v for k, v in setting.items()}))


def _copy(first_run, tmp_path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(first_run[0], out, ignore=shutil.ignore_patterns("report", "nuclei.csv",
                                                                      ".chromarate.lock"))
    return out


def test_the_summary_keeps_rows_of_inputs_this_run_was_not_given(first_run, tmp_path):
    """A run over some of the inputs keeps the earlier rows of the others while their
    results are there; an input the run reached has only its own rows."""
    out = _copy(first_run, tmp_path)
    before = _summary(out)
    inputs = _inputs(first_run)
    res = _invoke(inputs / "cell2.csv", "--out", out)
    assert res.exit_code == 0, res.output
    after = _summary(out)
    assert len(after) == len(before) and after.iloc[0]["name"] == "cell2"
    assert bool(after.iloc[0]["resumed"]) and set(after["name"]) == set(before["name"])
    assert (after["status"] == "failed").sum() == 1  # the corrupt input's row is kept
    shutil.rmtree(out / "cell3")  # a result that is gone is not kept
    res = _invoke(inputs / "cell2.csv", "--out", out)
    assert set(_summary(out)["name"]) == set(before["name"]) - {"cell3"}


def test_a_result_of_a_newer_schema_is_kept_and_named(first_run, tmp_path):
    import json

    out = _copy(first_run, tmp_path)
    meta = out / "cell2" / "1.ome.zarr" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["chromarate"]["schema_version"] = 99
    meta.write_text(json.dumps(doc))
    res = _invoke(_inputs(first_run) / "cell2.csv", "--out", out)
    assert res.exit_code == 1, res.output
    row = _summary(out).set_index("name").loc["cell2"]
    assert row["status"] == "failed" and "newer chromarate" in row["error"]
    assert "--overwrite" in row["error"]
    assert json.loads(meta.read_text())["attributes"]["chromarate"]["schema_version"] == 99


def test_an_interrupted_rewrite_is_settled_by_the_next_run(first_run, tmp_path):
    out = _copy(first_run, tmp_path)
    store = out / "cell2" / "1.ome.zarr"
    backup = store.parent / ".1.ome.zarr.old-cafebabe"
    store.rename(backup)  # killed between moving the old store aside and the new one in
    res = _invoke(_inputs(first_run) / "cell2.csv", "--out", out)
    assert res.exit_code == 0, res.output
    assert is_complete_result(store) and not backup.exists()
    assert bool(_summary(out).set_index("name").loc["cell2", "resumed"])  # not refitted
    shutil.copytree(store, backup)  # killed after the new store was in place
    res = _invoke(_inputs(first_run) / "cell2.csv", "--out", out)
    assert is_complete_result(store) and not backup.exists()
    log = (out / "batch.log").read_text()
    assert "restored the previous result" in log and "removed the previous result" in log


def test_the_input_folder_as_the_output_folder_is_refused_before_writing(first_run):
    inputs = _inputs(first_run)
    before = sorted(p.name for p in inputs.iterdir())
    res = _invoke(inputs, "--out", inputs)
    assert res.exit_code == 1
    assert "the batch's output folder (--out)" in str(res.exception or res.output)
    assert sorted(p.name for p in inputs.iterdir()) == before  # no lock file, no summary
