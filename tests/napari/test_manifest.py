"""The npe2 manifest: valid, registered through the napari.manifest entry point, shipped."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "chromarate" / "_napari" / "napari.yaml"


def test_npe2_validate_passes_with_imports():
    pytest.importorskip("npe2", reason="npe2 is not installed: pip install -e '.[napari]'")
    proc = subprocess.run([sys.executable, "-m", "npe2", "validate", str(MANIFEST), "--imports"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


def test_entry_point_and_package_data_in_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["napari.manifest"] == {
        "chromarate": "chromarate._napari:napari.yaml"}
    assert "_napari/napari.yaml" in project["tool"]["setuptools"]["package-data"]["chromarate"]
    extra = " ".join(project["project"]["optional-dependencies"]["napari"])
    for pkg in ("napari", "magicgui", "qtpy", "npe2", "pytest-qt"):
        assert pkg in extra
    for pkg in ("napari", "magicgui", "qt"):
        assert not any(pkg in d.lower() for d in project["project"]["dependencies"])


def test_manifest_contributions():
    npe2 = pytest.importorskip("npe2")
    mf = npe2.PluginManifest.from_file(MANIFEST)
    assert mf.name == "chromarate"
    c = mf.contributions
    assert {w.display_name for w in c.widgets} == {"Infer reaction rates", "Nucleus statistics"}
    assert {s.key for s in c.sample_data} == {"sample_nucleus", "sample_nucleus_result"}
    assert {r.command for r in c.readers} == {"chromarate.get_result_reader",
                                              "chromarate.get_localization_reader"}


def test_plugin_modules_import_no_napari_at_import_chromarate():
    """Importing the plugin package itself (what npe2 does to find the manifest) pulls in
    neither napari nor Qt; nor does any public chromarate name."""
    code = ("import sys, chromarate, chromarate._napari, chromarate._napari._layers, "
            "chromarate._napari._run, chromarate._napari._stats\n"
            "print(sorted(m for m in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'magicgui') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_reader_patterns_are_the_suffixes_the_code_reads():
    npe2 = pytest.importorskip("npe2")
    from chromarate._napari._reader import LOCALIZATION_SUFFIXES
    from chromarate.io.names import INPUT_SUFFIXES

    mf = npe2.PluginManifest.from_file(MANIFEST)
    (reader,) = [r for r in mf.contributions.readers
                 if r.command == "chromarate.get_localization_reader"]
    assert set(reader.filename_patterns) == {f"*{s}" for s in LOCALIZATION_SUFFIXES}
    assert set(LOCALIZATION_SUFFIXES) == set(INPUT_SUFFIXES) - {".tif", ".tiff"}
