"""Fixtures shared by the test modules.

- :func:`tiny_nucleus`: a tiny synthetic nucleus written as ThunderSTORM CSV plus its truth;
- :func:`synthetic_batch`: a folder of six small nuclei with known rates and a corrupt file;
- :func:`torch_one_thread`: one torch intra-op thread while a test fits in this process.

Fixtures of one sub-package only stay in its own conftest (``tests/fit``: simulated steady
states; ``tests/napari``: viewers and result stores).
"""

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


#: Known constant rates of the nuclei of the synthetic batch (one nucleus per file).
BATCH_RATES = (1.1, 1.3, 1.5, 1.7, 1.9, 2.1)


@pytest.fixture(scope="session")
def synthetic_batch(tmp_path_factory):
    """A folder of six small synthetic nuclei with known constant rates plus a corrupt file.

    Returns (folder, {stem: true rate}, corrupt file). Each nucleus: 96 x 96 px at 20 nm,
    80,000 localizations (``cell1.csv.gz``, ``cell2.csv`` ... ``cell6.csv``), its
    ``<stem>.truth.npz`` beside it; ``corrupt.csv.gz`` is ``cell1.csv.gz`` cut off in the
    middle of its gzip stream. About 20-30 s to build on 2 busy cores.
    """
    from chromarate.config import SimulateConfig
    from chromarate.data import simulate_nucleus
    from chromarate.io.localizations import write_thunderstorm_csv
    from chromarate.io.truth import write_truth

    folder = tmp_path_factory.mktemp("batch_inputs")
    rates = {}
    for i, lam in enumerate(BATCH_RATES):
        cfg = SimulateConfig(shape=(96, 96), pixel_size_nm=20.0, nucleus_radii_um=(0.85, 0.75),
                             n_localizations=80_000, tolerance=1e-2, rate_range=(lam, lam),
                             seed=i)
        syn = simulate_nucleus(cfg)
        stem = f"cell{i + 1}"
        suffix = ".csv.gz" if i == 0 else ".csv"  # both kinds are found in a folder
        write_thunderstorm_csv(syn.localizations, folder / f"{stem}{suffix}")
        write_truth(folder / f"{stem}.truth.npz", rate=syn.rate, phi_w=syn.phi_w,
                    phi_d=syn.phi_d, mask=syn.mask, pixel_size_nm=syn.pixel_size_nm,
                    origin_nm=syn.origin_nm, meta=syn.meta)
        rates[stem] = lam
    data = (folder / "cell1.csv.gz").read_bytes()
    corrupt = folder / "corrupt.csv.gz"
    corrupt.write_bytes(data[: len(data) // 2])
    return folder, rates, corrupt


@pytest.fixture
def torch_one_thread():
    """Run torch on one intra-op thread for the test, then restore the setting.

    The default run targets 2 CPU cores shared with other work: with two intra-op threads
    on a busy 2-core machine small fits were measured 2-7x slower than with one (thread
    oversubscription), and one thread also keeps the runs bit-for-bit repeatable. Skips
    the test when torch is not installed.
    """
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
