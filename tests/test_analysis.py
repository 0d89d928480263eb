"""Per-nucleus analysis on fields of known geometry and on exact steady states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from chromarate._types import ResultStack
from chromarate.analysis import (AnalysisConfig, Nucleus, find_domains, iter_nuclei, lab_lambda,
                                 nucleus_columns, nucleus_statistics, nucleus_table, rate_balance)
from chromarate.errors import ConfigError, ResultStoreError
from chromarate.export import CHANNELS
from chromarate.io.zarr_store import write_result

P_NM = 10.0  # pixel size of the geometric fixtures


def _lattice(n=200, radius_um=0.1, spacing_um=0.5, phi_dom=0.6):
    """phi_h with discs of radius R on a hexagonal lattice of spacing L, inside a round
    nucleus of radius 0.95 um, plus one disc cut by the envelope; rate 2 in discs, 1 out."""
    p = P_NM / 1000.0
    yy, xx = (np.mgrid[:n, :n] + 0.5) * p
    c = n * p / 2
    mask = (yy - c) ** 2 + (xx - c) ** 2 < 0.95**2
    centres = []
    for row in range(-4, 5):
        for col in range(-4, 5):
            y = c + row * spacing_um * np.sqrt(3) / 2
            x = c + (col + 0.5 * (row % 2)) * spacing_um
            if (y - c) ** 2 + (x - c) ** 2 < 0.6**2:
                centres.append((y, x))
    discs = np.zeros((n, n), bool)
    for y, x in centres:
        discs |= (yy - y) ** 2 + (xx - x) ** 2 < radius_um**2
    edge = (yy - c) ** 2 + (xx - (c + 0.95)) ** 2 < 0.15**2  # on the envelope
    discs |= edge & mask
    phi_h = np.where(discs, phi_dom, 0.02)
    rate = np.where(discs, 2.0, 1.0)
    return phi_h, mask, rate, centres


def test_domain_geometry_and_lab_closed_form_on_a_lattice():
    phi_h, mask, rate, centres = _lattice()
    cfg = AnalysisConfig(smooth_nm=0.0)
    d = find_domains(phi_h, mask, pixel_size_nm=P_NM, rate=rate, config=cfg)
    inner = d.interior
    assert len(inner) == len(centres) >= 7
    assert len(d.table) == len(centres) + 1 and not d.table["interior"].all()
    assert np.allclose(inner["radius_um"], 0.1, rtol=0.03)
    assert np.allclose(inner["nn_distance_um"], 0.5, atol=0.01)
    assert np.allclose(inner["spacing_um"], 0.25, atol=0.005)
    expected = 1.0 / ((0.25 / 0.1) ** 2 - 1.0)
    assert np.allclose(inner["lab_lambda"], expected, rtol=0.08)
    assert np.allclose(inner["rate_in_domain"], 2.0)
    # the territory disc of radius d holds the domain (area pi R^2) in rate 2, the rest 1
    frac = (0.1 / 0.25) ** 2
    assert np.allclose(inner["rate_territory"], 1.0 + frac, atol=0.03)
    full = find_domains(phi_h, mask, pixel_size_nm=P_NM,
                        config=cfg.model_copy(update={"spacing": "nn_distance"}))
    assert np.allclose(full.interior["lab_lambda"], 1.0 / ((0.5 / 0.1) ** 2 - 1.0), rtol=0.1)


def test_smoothing_and_size_limit():
    phi_h, mask, _, centres = _lattice()
    rng = np.random.default_rng(0)
    noisy = phi_h + rng.normal(0, 0.12, phi_h.shape)  # speckle that crosses the threshold
    raw = find_domains(noisy, mask, pixel_size_nm=P_NM,
                       config=AnalysisConfig(smooth_nm=0.0, min_domain_radius_nm=0.0))
    smooth = find_domains(noisy, mask, pixel_size_nm=P_NM, config=AnalysisConfig())
    assert len(raw.table) > 3 * len(centres)
    assert len(smooth.interior) == len(centres)


def test_lab_lambda_formula_and_invalid_geometry():
    assert lab_lambda(0.1, 0.2) == pytest.approx(1 / 3)
    assert np.isnan(lab_lambda(0.2, 0.2)) and np.isnan(lab_lambda(0.3, 0.2))
    assert np.isnan(lab_lambda(0.0, 0.2))


@pytest.mark.parametrize("lam", [1.3, 1.8])
def test_balance_estimate_is_exact_on_a_steady_state(lam):
    """Integrating the steady state over a no-flux domain: sum(phi_h) / sum(phi_e) = lambda."""
    from chromarate.fit.simulate import steady_state

    s = steady_state(np.full((48, 48), lam), pixel_um=0.02, tol=1e-5, seed=1)
    assert s.converged and s.phi_d.std() > 0.1  # phase separated, not uniform
    phi_h = s.phi_d + 0.2
    assert rate_balance(phi_h, np.full_like(phi_h, 0.2), np.ones_like(phi_h, bool)) == \
        pytest.approx(lam, rel=1e-6)


def _nucleus(tmp_path=None, nid=1):
    phi_h, mask, rate, _ = _lattice()
    ny, nx = mask.shape
    ch = {name: np.zeros((ny, nx), np.float32) for name in CHANNELS}
    ch["phi_d_observed"] = (phi_h - 0.2).astype(np.float32)
    ch["phi_d_fitted"] = ch["phi_d_observed"]
    ch["rate"] = np.where(mask, rate, np.nan).astype(np.float32)
    ch["density"] = ch["denoised"] = (phi_h + 0.2).astype(np.float32)
    prov = {"config": {"phase": {"phi_e0": 0.2}, "fit": {"physics": {"phi_max": 0.7}}},
            "config_hash": "abc",
            "nucleus_id": nid, "n_localizations": 12345,
            "input": {"path": "/data/ctrl/cell.csv", "sha256": "0"}}
    return ch, mask, prov


def test_statistics_of_a_known_nucleus():
    ch, mask, prov = _nucleus()
    n = Nucleus(path=Path("x/1.ome.zarr"), name="cell", nucleus_id=1,
                channels=ch, mask=mask, pixel_size_nm=P_NM, origin_nm=(0.0, 0.0), provenance=prov)
    row = nucleus_statistics(n, AnalysisConfig(smooth_nm=0.0))
    discs = (ch["phi_d_observed"] + 0.2 > 0.35) & mask
    assert row["group"] == "ctrl" and row["n_localizations"] == 12345
    assert row["area_um2"] == pytest.approx(np.pi * 0.95**2, rel=0.01)
    assert row["heterochromatin_fraction"] == pytest.approx(discs.sum() / mask.sum())
    assert row["rate_heterochromatin"] == 2.0 and row["rate_euchromatin"] == 1.0
    frac = discs.sum() / mask.sum()
    assert row["rate_mean"] == pytest.approx(1.0 + frac, rel=1e-5)
    assert row["rate_q05"] == 1.0 and row["rate_q95"] == 2.0
    assert row["rate_balance"] == pytest.approx(
        np.clip(ch["phi_d_observed"] + 0.2, 0, None)[mask].sum() / (0.2 * mask.sum()))
    assert row["n_interior_domains"] >= 7 and row["domain_radius_um"] == pytest.approx(0.1, rel=0.03)
    assert np.isnan(row["truth_rate_mean"])


def test_rate_statistics_are_over_the_trusted_label_or_the_finite_pixels_of_older_stores(tmp_path):
    """A store with a ``trusted`` label is summarised over it (the rate drawn beyond it is
    left out, here 5.0 on the outer half); one written before the label, over the nucleus'
    finite pixels, as before."""
    ch, mask, prov = _nucleus(nid=1)
    ny, nx = mask.shape
    trusted = mask.copy()
    trusted[:, nx // 2:] = False
    rate = np.where(mask & ~trusted, 5.0, ch["rate"]).astype(np.float32)
    ch = {**ch, "rate": rate}
    labels = {"nucleus": mask.astype(np.uint8), "trusted": trusted.astype(np.uint8)}
    write_result(ResultStack(channels=ch, labels=labels, pixel_size_nm=P_NM,
                             origin_nm=(0.0, 0.0), provenance=prov), tmp_path / "new" / "1.ome.zarr")
    write_result(ResultStack(channels=ch, labels={"nucleus": labels["nucleus"]}, pixel_size_nm=P_NM,
                             origin_nm=(0.0, 0.0), provenance=prov), tmp_path / "old" / "1.ome.zarr")
    new, old = (next(iter_nuclei(tmp_path / name)) for name in ("new", "old"))
    np.testing.assert_array_equal(new.rate_region, trusted)
    np.testing.assert_array_equal(old.rate_region, mask)
    config = AnalysisConfig(smooth_nm=0.0)
    row_new, row_old = (nucleus_statistics(n, config) for n in (new, old))
    assert row_new["rate_mean"] == pytest.approx(float(rate[trusted].mean()), rel=1e-6)
    assert row_old["rate_mean"] == pytest.approx(float(rate[mask].mean()), rel=1e-6)
    assert row_new["rate_coverage"] == pytest.approx(trusted.sum() / mask.sum())
    assert row_old["rate_coverage"] == 1.0
    assert row_new["rate_q95"] < 5.0 and row_old["rate_q95"] == 5.0
    # the domain territories too: the 5.0 drawn beyond the trusted half reaches only the old
    assert row_new["rate_territory"] <= 2.0 < row_old["rate_territory"]


def test_domain_rates_need_the_rate_on_half_of_the_domain():
    """With the rate known only on the left half of the nucleus (a trusted region), the
    domains and territories there get their rate, those on the right none, and one cut
    by the border of the known half only if at least half of it is known."""
    from chromarate.analysis.domains import MIN_RATE_SHARE, find_domains

    phi_h, mask, rate, _ = _lattice()
    n = mask.shape[1]
    known = mask.copy()
    known[:, n // 2:] = False
    d = find_domains(phi_h, mask, pixel_size_nm=P_NM, phi_max=0.7, rate=np.where(known, rate, np.nan),
                     config=AnalysisConfig(smooth_nm=0.0))
    table = d.table
    labels = d.labels
    share = np.array([known[labels == k].mean() for k in table["domain"]])
    has_rate = np.isfinite(table["rate_in_domain"].to_numpy())
    np.testing.assert_array_equal(has_rate, share >= MIN_RATE_SHARE)
    assert has_rate.any() and not has_rate.all()
    assert np.allclose(table["rate_in_domain"][has_rate], 2.0)
    terr = table["rate_territory"].to_numpy()
    x_um = table["centroid_x_um"].to_numpy()
    right = np.isfinite(table["spacing_um"].to_numpy()) & (x_um > (n // 2) * P_NM / 1000.0 + 0.05)
    assert right.any() and np.isnan(terr[right]).all()


def test_iter_nuclei_reads_stores_and_skips_damaged_ones(tmp_path):
    for nid in (1, 2, 10):
        ch, mask, prov = _nucleus(nid=nid)
        stack = ResultStack(channels=ch, labels={"nucleus": mask.astype(np.uint8)},
                            pixel_size_nm=P_NM, origin_nm=(0.0, 0.0), provenance=prov)
        write_result(stack, tmp_path / "cell" / f"{nid}.ome.zarr")
    (tmp_path / "cell" / "3.ome.zarr").mkdir()  # not a store
    with pytest.raises(ResultStoreError, match="3.ome.zarr"):
        list(iter_nuclei(tmp_path))
    nuclei = list(iter_nuclei(tmp_path, skip_damaged=True))
    assert [n.nucleus_id for n in nuclei] == [1, 2, 10]  # natural order
    assert nuclei[0].name == "cell" and nuclei[0].n_localizations == 12345
    table = nucleus_table(tmp_path, AnalysisConfig(smooth_nm=0.0))
    assert list(table["nucleus_id"]) == [1, 2, 10]
    assert list(table.columns) == nucleus_columns(AnalysisConfig(smooth_nm=0.0)) == list(
        nucleus_statistics(nuclei[0], AnalysisConfig(smooth_nm=0.0)))
    # store paths and a mapping as the config; an empty source keeps the columns
    paths = [tmp_path / "cell" / f"{nid}.ome.zarr" for nid in (2, 1)]
    by_path = nucleus_table(paths, {"smooth_nm": 0.0, "quantiles": [0.1, 0.9]})
    assert list(by_path["nucleus_id"]) == [2, 1] and "rate_q10" in by_path
    empty = nucleus_table([])
    assert empty.empty and list(empty.columns) == nucleus_columns()
    assert empty.groupby("group")["rate_median"].describe().empty
    with pytest.raises(TypeError, match="result store paths"):
        nucleus_table([1, 2])
    with pytest.raises(TypeError, match="AnalysisConfig"):
        nucleus_table(tmp_path, 0.4)
    with pytest.raises(ConfigError, match="threshold"):
        nucleus_table(paths, {"threshold": 2.0})
    with pytest.raises(ResultStoreError, match="3.ome.zarr"):
        nucleus_table([tmp_path / "cell" / "3.ome.zarr"])


def test_analysis_config_validation():
    AnalysisConfig(threshold=0.3, quantiles=(0.1, 0.9))
    for bad in ({"threshold": 1.5}, {"quantiles": (0.5, 2.0)}, {"smooth_nm": -1.0},
                {"nope": 1}):
        with pytest.raises(ValidationError):
            AnalysisConfig(**bad)


def test_a_store_without_rate_std_reads_and_tabulates(tmp_path):
    """Result stores omit ``rate_std`` without an ensemble; analysis sees NaN then."""
    ch, mask, prov = _nucleus(nid=1)
    ch = {**ch, "rate_std": np.full_like(ch["rate"], np.nan)}
    write_result(ResultStack(channels=ch, labels={"nucleus": mask.astype(np.uint8)},
                             pixel_size_nm=P_NM, origin_nm=(0.0, 0.0), provenance=prov),
                 tmp_path / "cell" / "1.ome.zarr")
    (nucleus,) = iter_nuclei(tmp_path)
    assert "rate_std" not in nucleus.channels
    assert nucleus.rate_std.shape == nucleus.rate.shape and np.isnan(nucleus.rate_std).all()
    table = nucleus_table(tmp_path, AnalysisConfig(smooth_nm=0.0))
    assert list(table["nucleus_id"]) == [1]


def test_rate_correlation_takes_a_truth_file(tmp_path):
    from chromarate.analysis.compare import rate_correlation
    from chromarate.io.truth import write_truth

    yy, xx = np.mgrid[0:20, 0:30].astype(float)
    rate = 1.0 + 0.02 * xx + 0.01 * yy
    ones = np.ones_like(rate)
    path = write_truth(tmp_path / "c.truth.npz", rate=rate, phi_w=ones, phi_d=ones,
                       mask=ones > 0, pixel_size_nm=20.0, origin_nm=(0.0, 0.0), meta={})
    r = rate_correlation(rate * 2.0, ones > 0, pixel_nm=20.0, origin_nm=(0.0, 0.0),
                         truth=str(path))
    assert r == pytest.approx(1.0)
    with pytest.raises(TypeError, match="truth.npz"):
        rate_correlation(rate, ones > 0, pixel_nm=20.0, origin_nm=(0.0, 0.0), truth=3)
