"""Shared fixtures: a tiny synthetic nucleus written as ThunderSTORM CSV plus its truth."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_SMLM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "smlm"


@pytest.fixture(scope="session")
def tiny_nucleus(tmp_path_factory):
    """(csv path, truth path, SyntheticNucleus) of a 96 x 96 px nucleus at 20 nm."""
    from chromarate.config import SimulateConfig
    from chromarate.data import simulate_nucleus
    from chromarate.io.localizations import write_thunderstorm_csv
    from chromarate.io.truth import write_truth

    cfg = SimulateConfig(shape=(96, 96), pixel_size_nm=20.0, nucleus_radii_um=(0.85, 0.75),
                         n_localizations=40_000, tolerance=1e-2, rate_length_um=1.0, seed=3)
    syn = simulate_nucleus(cfg)
    d = tmp_path_factory.mktemp("tiny")
    csv = write_thunderstorm_csv(syn.localizations, d / "tiny.csv")
    truth = write_truth(d / "tiny.truth.npz", rate=syn.rate, phi_w=syn.phi_w, phi_d=syn.phi_d,
                        mask=syn.mask, pixel_size_nm=syn.pixel_size_nm, origin_nm=syn.origin_nm,
                        meta=syn.meta)
    return csv, truth, syn
