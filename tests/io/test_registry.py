"""Tests of the reader registry (chromarate.io.registry) and the shared unit core."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromarate._types import Localizations
from chromarate.errors import ConfigError, InputFormatError
from chromarate.io import registry
from chromarate.io._units import LENGTH_UNITS, check_units
from chromarate.io.localizations import SUPPORTED_FORMATS, read_localizations

BUILTIN = {"thunderstorm", "elyra", "nanoimager", "nstorm", "rapidstorm",
           "picasso", "smap", "decode", "smlm", "asdf", "generic"}


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry's dict, restored after the test whatever it registered."""
    monkeypatch.setattr(registry, "_READERS", dict(registry._READERS))
    return registry


# --------------------------------------------------------------------------- listing


def test_registry_lists_every_format():
    assert set(registry.registered_formats()) == BUILTIN == set(SUPPORTED_FORMATS)
    assert {r.name for r in registry.BUILTIN_READERS} == BUILTIN
    assert registry.registered_formats()[-1] == "generic"  # the fallback is tried last
    assert set(registry.available_formats()) == BUILTIN  # every module imports here
    for name in BUILTIN:
        reader = registry.get_reader(name)
        assert isinstance(reader, registry.LocalizationReader)
        assert reader.name == name and reader.suffixes


def test_builtin_readers_declare_their_options():
    # text readers take explicit keyword options; the dispatcher checks them by signature
    assert registry.accepted_options(registry.get_reader("thunderstorm")) == (
        "pixel_size_nm", "units", "frame_base")
    assert set(registry.accepted_options(registry.get_reader("generic"))) == {
        "columns", "units", "pixel_size_nm", "frame_base", "delimiter", "decimal"}
    assert "channel" in registry.accepted_options(registry.get_reader("elyra"))


def test_unknown_option_names_format_and_accepted(tmp_path):
    path = _write(tmp_path / "a.csv", '"x [nm]","y [nm]"\n1,2\n')
    with pytest.raises(TypeError, match=r"pixelsize.*'thunderstorm'.*accepted: pixel_size_nm"):
        read_localizations(path, pixelsize=100)
    with pytest.raises(TypeError, match=r"channel.*'generic'"):
        read_localizations(path, format="generic", columns={"x_nm": "x [nm]", "y_nm": "y [nm]"},
                           units="nm", channel=1)


def test_defaults_reach_only_the_formats_that_take_them(tmp_path, scratch_registry):
    """A batch's ``units`` / ``pixel_size_nm`` fill what a table leaves open, are dropped for
    a format that does not take them, never override a unit the file states or an option
    given explicitly."""
    plain = _write(tmp_path / "plain.csv", "x,y\n1,2\n3,4\n")
    with pytest.raises(InputFormatError, match="has no unit"):
        read_localizations(plain)
    um = read_localizations(plain, defaults={"units": "um", "pixel_size_nm": 100.0})
    assert um.table["x_nm"].tolist() == [1000.0, 3000.0]
    given = read_localizations(plain, defaults={"units": "um"}, units="nm")
    assert given.table["x_nm"].tolist() == [1.0, 3.0]
    stated = _write(tmp_path / "stated.csv", '"x [nm]","y [nm]"\n1,2\n')
    assert read_localizations(stated, defaults={"units": "um"}).table["x_nm"].tolist() == [1.0]
    px = _write(tmp_path / "px.csv", '"x [px]","y [px]"\n1,2\n')
    in_px = read_localizations(px, defaults={"pixel_size_nm": 108.0, "units": None})
    assert in_px.table["x_nm"].tolist() == [108.0]
    scratch_registry.register_reader(
        registry.ReaderSpec("mine", _read_mine, magic=(b"MINE",), suffixes=(".mine",)))
    mine = _write(tmp_path / "cell.mine", "MINE v1\n1 2\n")
    # a reader that declares neither option gets neither
    other = read_localizations(mine, defaults={"units": "um", "pixel_size_nm": 5.0})
    assert other.table["x_nm"].tolist() == [1.0]


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(("unit", "scale"), [("nm", 1.0), ("um", 1e3), ("µm", 1e3), ("mm", 1e6),
                                             ("m", 1e9), ("meter", 1e9)])
def test_length_unit_handled_identically_by_thunderstorm_and_generic(tmp_path, unit, scale):
    ts = _write(tmp_path / "ts.csv", f'"frame","x [{unit}]","y [{unit}]"\n1,1.5e-6,2\n2,3,4\n')
    generic = _write(tmp_path / "g.csv", "t,X,Y\n1,1.5e-6,2\n2,3,4\n")
    a = read_localizations(ts)
    b = read_localizations(generic, format="generic", columns={"x_nm": "X", "y_nm": "Y", "frame": "t"},
                           units=unit, frame_base=1)
    assert a.meta["format"] == "thunderstorm" and b.meta["format"] == "generic"
    np.testing.assert_array_equal(a.table["x_nm"], [1.5e-6 * scale, 3 * scale])
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.meta["units"]["x_nm"] == b.meta["units"]["x_nm"]


def test_metre_column_same_in_every_text_format(tmp_path):
    # a column in metres: ThunderSTORM (unit in brackets), generic (units=) and rapidSTORM
    # (unit in its XML header) all accept it and scale it by 1e9
    ts = read_localizations(_write(tmp_path / "ts.csv", '"x [m]","y [m]"\n1e-6,2e-6\n'))
    gen = read_localizations(_write(tmp_path / "g.csv", "a,b\n1e-6,2e-6\n"), format="generic",
                             columns={"x_nm": "a", "y_nm": "b"}, units="m")
    assert ts.table["x_nm"].tolist() == gen.table["x_nm"].tolist() == [1e-6 * 1e9]
    assert ts.meta["units"]["x_nm"] == gen.meta["units"]["x_nm"] == "m"


def test_binary_readers_use_the_shared_unit_table():
    from chromarate.io.formats import _smlm_columns, asdf

    assert not hasattr(asdf, "_LENGTH_UNITS")
    assert {k: v for k, v in _smlm_columns._LENGTH_UNITS.items() if k in LENGTH_UNITS} == LENGTH_UNITS


@pytest.mark.parametrize("fmt", ["thunderstorm", "generic"])
def test_unknown_unit_refused_identically(tmp_path, fmt):
    if fmt == "thunderstorm":
        path = _write(tmp_path / "ts.csv", '"x [furlong]","y [furlong]"\n1,2\n')
        call = lambda **kw: read_localizations(path, **kw)  # noqa: E731
    else:
        path = _write(tmp_path / "g.csv", "a,b\n1,2\n")
        call = lambda **kw: read_localizations(  # noqa: E731
            path, format="generic", columns={"x_nm": "a", "y_nm": "b"}, **kw)
    with pytest.raises(ConfigError, match="units must be one of"):
        call(units="furlong")
    assert check_units("Nanometer") == "nanometer"
    assert "m" in LENGTH_UNITS and "furlong" not in LENGTH_UNITS
    if fmt == "thunderstorm":
        with pytest.raises(InputFormatError, match=r'unknown unit "furlong".*units="nm"'):
            call()
    # pixels without a pixel size are refused the same way by both
    px_path = _write(tmp_path / f"{fmt}_px.csv", '"x [px]","y [px]"\n1,2\n' if fmt == "thunderstorm"
                     else "a,b\n1,2\n")
    kw = {} if fmt == "thunderstorm" else {"format": "generic", "columns": {"x_nm": "a", "y_nm": "b"},
                                            "units": "px"}
    with pytest.raises(InputFormatError, match=r"camera pixels; pass pixel_size_nm"):
        read_localizations(px_path, **kw)
    assert read_localizations(px_path, pixel_size_nm=100, **kw).table["x_nm"].tolist() == [100.0]


# --------------------------------------------------------------------------- registering


def _read_mine(path, *, scale: float = 1.0) -> Localizations:
    rows = [line.split() for line in Path(path).read_text().splitlines()[1:] if line.strip()]
    xy = np.asarray(rows, dtype=np.float64) * scale
    table = pd.DataFrame({"x_nm": xy[:, 0], "y_nm": xy[:, 1]})
    return Localizations(table=table, meta={"source": str(path), "format": "mine"})


def test_new_format_registered_without_editing_the_dispatcher(tmp_path, scratch_registry):
    path = _write(tmp_path / "cell.mine", "MINE v1\n1 2\n3 4\n")
    with pytest.raises(InputFormatError, match="unknown localization format 'mine'"):
        read_localizations(path, format="mine")

    scratch_registry.register_reader(
        registry.ReaderSpec("mine", _read_mine, magic=(b"MINE",), suffixes=(".mine",)))
    assert "mine" in registry.registered_formats()
    assert registry.registered_formats()[-1] == "generic"  # still tried before the fallback
    locs = read_localizations(path)  # recognised by its magic
    assert locs.meta["format"] == "mine" and locs.table["x_nm"].tolist() == [1.0, 3.0]
    assert read_localizations(path, format="MINE", scale=2.0).table["y_nm"].tolist() == [4.0, 8.0]
    with pytest.raises(TypeError, match=r"unexpected option\(s\) units for format 'mine'; accepted: scale"):
        read_localizations(path, format="mine", units="nm")
    # its low-level errors become InputFormatError naming the file
    bad = _write(tmp_path / "bad.mine", "MINE v1\n1 two\n")
    with pytest.raises(InputFormatError, match=r"cannot read the file as format 'mine'") as info:
        read_localizations(bad)
    assert info.value.path == str(bad)

    with pytest.raises(ValueError, match="already registered"):
        scratch_registry.register_reader(registry.ReaderSpec("mine", _read_mine))
    scratch_registry.unregister_reader("mine")
    assert "mine" not in registry.registered_formats()


def test_registered_detector_and_replacement(tmp_path, scratch_registry):
    path = _write(tmp_path / "x.csv", '"x [nm]","y [nm]"\n1,2\n')
    claims = registry.ReaderSpec("claims_all", _read_mine, detect_fn=lambda p, head: True)
    scratch_registry.register_reader(claims)
    # registered after thunderstorm: the built-in still wins on its own files
    assert read_localizations(path).meta["format"] == "thunderstorm"
    # replacing a built-in keeps its place in the detection order
    ts = registry.get_reader("thunderstorm")
    scratch_registry.register_reader(
        registry.ReaderSpec("thunderstorm", ts.read, ts.detect, ts.suffixes), replace=True)
    assert registry.registered_formats().index("thunderstorm") < registry.registered_formats().index("claims_all")
    assert read_localizations(path).meta["format"] == "thunderstorm"


def test_register_refuses_bad_readers(scratch_registry):
    with pytest.raises(TypeError, match="must provide"):
        scratch_registry.register_reader(object())
    for name in ("auto", "", "Mine"):
        with pytest.raises(ValueError, match="lower-case"):
            scratch_registry.register_reader(registry.ReaderSpec(name, _read_mine))
    with pytest.raises(KeyError, match="nope"):
        scratch_registry.unregister_reader("nope")


def test_reader_without_detection_is_only_read_by_name(tmp_path, scratch_registry):
    scratch_registry.register_reader(registry.ReaderSpec("quiet", _read_mine))
    path = _write(tmp_path / "q.txt", "alpha,beta\n1 2\n")
    with pytest.raises(InputFormatError, match="not a recognised localization format.*quiet"):
        read_localizations(path)
    assert read_localizations(path, format="quiet").table["x_nm"].tolist() == [1.0]


def test_registry_import_has_no_side_effects():
    import subprocess
    import sys

    code = ("import sys, chromarate.io.localizations; "
            "print(sorted(m for m in sys.modules if m.startswith('chromarate.io.formats.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # only the ThunderSTORM module (the writer lives there) and the text core it needs load
    # (_text with its column plans in _plan)
    loaded = set(eval(out))  # noqa: S307 - our own output
    assert loaded <= {"chromarate.io.formats.thunderstorm", "chromarate.io.formats._text",
                      "chromarate.io.formats._plan", "chromarate.io.formats._binary"}
