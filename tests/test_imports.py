"""Import hygiene (docs/design.md section 2).

``import chromarate`` is lazy (lazy_loader reads the stub ``chromarate/__init__.pyi``): it
must not pull in torch, napari, Qt or click, and neither may touching the light public
names or importing the lazily loaded subpackages ``chromarate.fit`` and ``chromarate.io``.
The dependency direction between modules is enforced by the import-linter contracts in
pyproject.toml.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "napari", "qtpy", "PyQt5", "click", "magicgui")

_PROBE = textwrap.dedent(
    """
    import json, sys
    heavy = {heavy!r}

    def loaded():
        return sorted(m for m in heavy if m in sys.modules)

    report = {{}}
    import chromarate
    report["import chromarate"] = loaded()
    chromarate.PipelineConfig()
    chromarate.FitConfig()
    report["configs"] = loaded()
    chromarate.Localizations
    chromarate.PhaseFields
    chromarate.errors.ChromarateError
    report["value types and errors"] = loaded()
    import chromarate.fit, chromarate.io
    dir(chromarate), dir(chromarate.fit), dir(chromarate.io)
    report["lazy subpackages chromarate.fit and chromarate.io"] = loaded()
    print(json.dumps(report))
    """
)


def _run_probe():
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_chromarate_is_light():
    report = _run_probe()
    for stage, loaded in report.items():
        assert loaded == [], f"after {stage}: {loaded} imported"


def test_lazy_names_resolve():
    proc = subprocess.run(
        [sys.executable, "-c",
         "import chromarate, sys; print(chromarate.fit_rates.__module__); "
         "print('torch' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    module, torch_loaded = proc.stdout.split()
    assert module == "chromarate.fit.loop"
    assert torch_loaded == "True"  # the probe above is meaningful: fit does bring torch


def test_import_linter_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is not installed; "
                        "pip install import-linter")
    # lint-imports of this interpreter (not whichever one is first on PATH)
    code = ("import sys; from importlinter.cli import lint_imports_command; "
            "sys.argv = ['lint-imports', '--no-cache']; lint_imports_command()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout
