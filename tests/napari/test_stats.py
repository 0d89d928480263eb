"""Per-nucleus statistics of a result in memory (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate._napari._stats import (format_value, nucleus_domains, result_nucleus,
                                       result_statistics)
from chromarate.analysis import load_nucleus, nucleus_statistics
from chromarate.io.zarr_store import write_result

from .conftest import make_result


def test_statistics_are_the_analysis_row_plus_the_fit(tmp_path):
    stack = make_result(shape=(30, 40), pixel=20.0)
    mask = stack.labels["nucleus"].astype(bool)
    store = write_result(stack, tmp_path / "cell" / "1.ome.zarr")
    st = result_statistics(stack, name="cell/1", path=store)
    # the same numbers as the batch's nucleus table (written, then read back as a batch does)
    row = nucleus_statistics(load_nucleus(store))
    assert set(row) < set(st)
    assert {k: st[k] for k in row if not isinstance(row[k], float)} == \
        {k: row[k] for k in row if not isinstance(row[k], float)}
    np.testing.assert_allclose([st[k] for k in row if isinstance(row[k], float)],
                               [row[k] for k in row if isinstance(row[k], float)])
    assert st["nucleus_id"] == 1 and st["n_localizations"] == 1234 and st["name"] == "cell"
    assert st["result_path"] == str(store)
    nucleus = result_nucleus(stack, name="cell/1")
    assert (nucleus.name, nucleus.nucleus_id, nucleus.path.as_posix()) == ("cell", 1, "cell/1")
    assert st["area_um2"] == pytest.approx(mask.sum() * 0.02 ** 2)
    assert st["rate_mean"] == pytest.approx(float(np.mean(stack.channels["rate"][mask])))
    assert st["rate_corr_truth"] == 0.9
    assert st["final_loss"] == 0.25 and st["fit_seconds"] == 3.5 and st["device"] == "cpu"


def test_domains_of_a_result():
    stack = make_result(shape=(60, 60), pixel=20.0)
    phi = np.full((60, 60), -0.2, np.float32)  # phi_h = phi_d + 0.2: 0 outside domains
    phi[20:28, 20:28] = 0.4
    phi[35:43, 33:41] = 0.4
    channels = {**stack.channels, "phi_d_observed": phi}
    stack = type(stack)(channels, stack.labels, stack.pixel_size_nm, stack.origin_nm,
                        stack.provenance)
    domains = nucleus_domains(stack, name="c/1")
    assert domains.labels.shape == (60, 60) and int(domains.labels.max()) == 2
    assert result_statistics(stack, name="c/1")["n_domains"] == 2


def test_format_value():
    assert [format_value(v) for v in (None, "", float("nan"), np.float32(0.123456), 7, "cpu")] \
        == ["-", "-", "-", "0.1235", "7", "cpu"]
