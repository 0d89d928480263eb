"""Tests of the ``meta`` the binary readers' shared helper builds
(:func:`chromarate.io.formats._binary.localizations` and :meth:`ColumnSet.localizations`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chromarate.io.formats import _binary as b

PATH = Path("/data/cell.h5")


def _columns() -> dict[str, np.ndarray]:
    return {"x_nm": np.array([1.0, 2.0]), "y_nm": np.array([3.0, 4.0])}


def _build(extra: dict, skipped: dict | None = None):
    return b.localizations(
        PATH, _columns(), fmt="fake", pixel_size_nm=None, frame_base=0, columns_in_file=["x", "y"],
        column_map={"x_nm": "x", "y_nm": "y"}, units={"x_nm": "nm", "y_nm": "nm"}, extra=extra,
        skipped=skipped,
    )


def test_extra_entries_are_added_after_the_own_ones():
    locs = _build({"writer": "tool 1.0", "channels": [0, 1]}, skipped={"q": "why"})
    assert list(locs.meta) == ["source", "format", "pixel_size_nm", "frame_base", "columns_in_file",
                               "column_map", "units", "writer", "channels", "skipped_columns", "n_rows"]
    assert locs.meta["writer"] == "tool 1.0" and locs.meta["format"] == "fake"


OWN_KEYS = ["column_map", "columns_in_file", "dropped_columns", "format", "frame_base", "n_rows",
            "pixel_size_nm", "skipped_columns", "source", "units"]


@pytest.mark.parametrize("key", OWN_KEYS)
def test_extra_entry_colliding_with_an_own_entry_is_refused(key):
    # before, "format" or "units" silently replaced the reader's own entry, and
    # "skipped_columns" or "n_rows" were silently replaced by it
    with pytest.raises(ValueError, match=rf"\['{key}'\] collide"):
        _build({"writer": "tool", key: "from extra"})


def test_column_set_refuses_a_colliding_keyword():
    cols = b.ColumnSet(PATH)
    for name, values in _columns().items():
        cols.add(name, values, name[0], "nm")
    with pytest.raises(ValueError, match=r"\['column_map', 'source'\] collide"):
        cols.localizations("fake", pixel_size_nm=None, frame_base=0, columns_in_file=["x", "y"],
                           source="elsewhere", column_map={})
    ok = cols.localizations("fake", pixel_size_nm=None, frame_base=0, columns_in_file=["x", "y"],
                            camera="sCMOS")
    assert ok.meta["camera"] == "sCMOS" and ok.meta["source"] == str(PATH)


def test_own_meta_keys_match_what_the_helper_fills():
    # the reserved set is exactly the keys the helper writes itself (with skipped and dropped)
    locs = b.localizations(
        PATH, _columns(), fmt="fake", pixel_size_nm=None, frame_base=0, columns_in_file=[],
        column_map={}, units={}, skipped={"a": "why"}, dropped={"b": "why"},
    )
    assert set(locs.meta) == b.OWN_META_KEYS == set(OWN_KEYS)
