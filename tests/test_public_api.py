"""The public API: small, documented and visible to type checkers.

Each package's ``__all__`` holds only user-facing names. Every one of them must be
importable, documented with one line in ``docs/api.md`` (and nothing else documented there
as public), and declared where a type checker sees it: in the stub ``__init__.pyi`` of a
lazily loaded package (whose names must equal ``__all__``), or by a plain import or
definition in the ``__init__.py`` of an eagerly loaded one. When mypy is installed it must
resolve the top-level names through the stub.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
API_DOC = REPO / "docs" / "api.md"

#: Packages whose public names come from a stub through lazy_loader.
LAZY_PACKAGES = ("chromarate", "chromarate.io", "chromarate.fit")
#: Packages that import their public names eagerly in ``__init__.py``.
EAGER_PACKAGES = ("chromarate.analysis", "chromarate.batch", "chromarate.report",
                  "chromarate.validation")
PACKAGES = LAZY_PACKAGES + EAGER_PACKAGES

#: Helpers that were once exported and must not come back into any ``__all__``.
HELPERS = ("finite_values", "LOG_NAME", "SUMMARY_NAME", "file_sha256", "MANIFEST_NAME",
           "SUMMARY_COLUMNS", "DOMAIN_COLUMNS", "concat_domain_rows", "domain_rows",
           "find_results", "rate_quantiles", "is_complete_result", "open_result_levels",
           "make_executor", "prepare_input", "run_nucleus", "NucleusCrop", "failure_lines")


def _package_dir(package: str) -> Path:
    return REPO.joinpath(*package.split("."))


def _documented() -> dict[str, list[str]]:
    """Names listed under each ``## `package``` heading of docs/api.md, in order.

    Returns
    -------
    dict of str to list of str
        Package name to the names of its ``- `name`: ...`` lines.
    """
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in API_DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `([\w.]+)`\s*$", line)
        if heading:
            current = sections.setdefault(heading.group(1), [])
            continue
        if line.startswith("## "):
            current = None
            continue
        item = re.match(r"^- `([\w]+)`: \S", line)
        if item and current is not None:
            current.append(item.group(1))
    return sections


def _stub(package: str) -> tuple[set[str], set[str], list[str]]:
    """What the stub of a lazily loaded package declares.

    Returns
    -------
    imported : set of str
        Names imported by ``from .x import name`` / ``from . import name``.
    annotated : set of str
        Names declared with an annotation only (such as ``__version__: str``).
    stub_all : list of str
        The literal ``__all__`` of the stub.
    """
    tree = ast.parse((_package_dir(package) / "__init__.pyi").read_text(encoding="utf-8"))
    imported: set[str] = set()
    annotated: set[str] = set()
    stub_all: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            # lazy_loader.attach_stub accepts only these
            assert node.level == 1, f"{package} stub: only relative 'from .x import' lines"
            for alias in node.names:
                assert alias.name != "*" and alias.asname in (None, alias.name)
                imported.add(alias.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotated.add(node.target.id)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            stub_all = list(ast.literal_eval(node.value))
        elif not isinstance(node, ast.Expr):
            raise AssertionError(f"{package} stub: unexpected {type(node).__name__}")
    return imported, annotated, stub_all


def _statically_bound(package: str) -> set[str]:
    """Names an eager package's ``__init__.py`` binds by import or definition."""
    tree = ast.parse((_package_dir(package) / "__init__.py").read_text(encoding="utf-8"))
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            bound.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.Assign):
            bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            bound.add(node.target.id)
    return bound


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_unique_and_importable(package):
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert names == sorted(set(names)), f"{package}.__all__ must be sorted, without repeats"
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names that do not import: {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_exactly_the_documented_api(package):
    documented = _documented()
    assert package in documented, f"docs/api.md has no '## `{package}`' section"
    names = documented[package]
    assert len(names) == len(set(names)), f"docs/api.md lists a {package} name twice"
    module = importlib.import_module(package)
    assert sorted(names) == sorted(module.__all__), (
        f"{package}: in __all__ but not in docs/api.md: "
        f"{sorted(set(module.__all__) - set(names))}; documented but not in __all__: "
        f"{sorted(set(names) - set(module.__all__))}")


def test_api_doc_has_no_section_without_a_package():
    assert set(_documented()) == set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_helpers_are_not_exported(package):
    module = importlib.import_module(package)
    assert not set(HELPERS) & set(module.__all__)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_stub_names_equal_all(package):
    imported, annotated, stub_all = _stub(package)
    module = importlib.import_module(package)
    assert imported.isdisjoint(annotated)
    assert sorted(stub_all) == sorted(imported | annotated), (
        f"{package}/__init__.pyi: __all__ and the declared names differ")
    assert sorted(stub_all) == sorted(module.__all__)
    assert sorted(dir(module)) == sorted(module.__all__)


@pytest.mark.parametrize("package", EAGER_PACKAGES)
def test_eager_names_are_visible_to_type_checkers(package):
    assert not (_package_dir(package) / "__init__.pyi").exists()
    module = importlib.import_module(package)
    unseen = set(module.__all__) - _statically_bound(package)
    assert not unseen, f"{package}: not imported or defined in __init__.py: {sorted(unseen)}"


def test_top_level_names_are_the_documented_objects():
    import chromarate
    import chromarate.fit.loop
    import chromarate.io.zarr_store

    assert chromarate.fit_rates is chromarate.fit.loop.fit_rates
    assert chromarate.fit_rates is chromarate.fit.fit_rates
    assert chromarate.read_result is chromarate.io.zarr_store.read_result
    assert chromarate.read_localizations is chromarate.io.read_localizations
    assert isinstance(chromarate.__version__, str)
    with pytest.raises(AttributeError):
        chromarate.finite_values  # noqa: B018


def test_removed_helpers_stay_importable_from_their_modules():
    from chromarate.analysis.rates import finite_values
    from chromarate.batch.runner import LOG_NAME, SUMMARY_NAME
    from chromarate.batch.tasks import file_sha256
    from chromarate.fit.loop import iter_fit
    from chromarate.io.zarr_store import is_complete_result, open_result_levels

    assert callable(finite_values) and callable(file_sha256) and callable(iter_fit)
    assert callable(is_complete_result) and callable(open_result_levels)
    assert (SUMMARY_NAME, LOG_NAME) == ("summary.csv", "batch.log")


_MYPY_PROBE = """\
import chromarate
import chromarate.io

reveal_type(chromarate.fit_rates)
reveal_type(chromarate.io.write_result)
reveal_type(chromarate.__version__)
{reveals}
"""

_MYPY_CONFIG = """\
[mypy]
follow_imports = silent
ignore_missing_imports = True
warn_unused_configs = False

[mypy-torch.*,napari.*,magicgui.*,qtpy.*,dask.*,distributed.*,zarr.*,ome_zarr.*,pandas.*,scipy.*,skimage.*,matplotlib.*,tifffile.*,h5py.*,click.*]
follow_imports = skip
"""


def test_mypy_resolves_the_public_names(tmp_path):
    """mypy reads ``chromarate/__init__.pyi``: every top-level name has a real type."""
    pytest.importorskip("mypy", reason="mypy is not installed; pip install mypy")
    import chromarate

    reveals = "\n".join(f"reveal_type(chromarate.{name})" for name in chromarate.__all__
                        if name != "__version__")
    probe = tmp_path / "probe.py"
    probe.write_text(_MYPY_PROBE.format(reveals=reveals))
    config = tmp_path / "mypy.ini"
    config.write_text(_MYPY_CONFIG)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), str(probe)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    revealed = [line for line in out.splitlines() if "Revealed type is" in line]
    assert len(revealed) == len(chromarate.__all__) + 2, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert not errors, out
    assert not [line for line in revealed if '"Any"' in line], out
    fit_rates = revealed[0]
    assert "chromarate._types.PhaseFields" in fit_rates, fit_rates
    assert "chromarate._types.FitResult" in fit_rates, fit_rates
    assert re.search(r'Revealed type is "(builtins\.)?str"', revealed[2]), revealed[2]


def test_lazy_packages_import_light():
    """lazy_loader parses the stubs at import and imports none of the names (no torch)."""
    code = textwrap.dedent("""
        import chromarate, chromarate.fit, chromarate.io, sys
        print(len(chromarate.__all__), 'torch' in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    n_names, torch_loaded = proc.stdout.split()
    assert int(n_names) > 0 and torch_loaded == "False"
