"""Sample data: the bundled synthetic nucleus and its result.

*Sample nucleus*: the localizations of ``chromarate/sample_data/sample_nucleus.csv.gz`` rendered as a
density image (at chromarate's default 20 nm pixels), plus the true rate map it was
simulated with (hidden at first).

*Sample nucleus result*: a stored result of the sample when one is found (see
:func:`find_sample_result`). Otherwise the sample nucleus is shown at once and its PINN fit
(the ``quick-cpu`` preset, a few minutes on a laptop CPU) starts in the "Infer reaction
rates" widget, which shows its progress, can cancel it, adds the rate map when it is done
and saves it to the user cache, so the next load is immediate. Without a viewer (called
from Python) the closed-form inversion is returned instead, named as such.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "find_sample_result", "sample_nucleus", "sample_nucleus_result"]

#: Environment variable naming a result store to load as the sample result.
ENV_RESULT = "CHROMARATE_SAMPLE_RESULT"


def cache_dir() -> Path:
    """Where results of the sample nucleus fitted from napari are kept
    (``$XDG_CACHE_HOME/chromarate/sample-results``, default ``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "chromarate" / "sample-results"


def find_sample_result() -> Path | None:
    """A complete stored result of the sample nucleus, or None.

    Looked for, in order: the store named by ``$CHROMARATE_SAMPLE_RESULT``; what
    ``chromarate demo`` wrote into ``chromarate-demo/`` of the current folder; a result
    saved to :func:`cache_dir` by an earlier load. A store counts only if its provenance
    names an input with the sample file's sha256 (or it is named by the variable).
    """
    from ..batch import file_sha256
    from ..data import sample_paths
    from ..errors import ChromarateError
    from ..io.zarr_store import is_complete_result, read_result

    if os.environ.get(ENV_RESULT):
        named = Path(os.environ[ENV_RESULT])
        if is_complete_result(named):
            return named
    csv, _ = sample_paths()
    sha = None
    for folder in (Path("chromarate-demo", "sample_nucleus"), cache_dir() / "sample_nucleus"):
        for store in sorted(folder.glob("*.ome.zarr")):
            try:
                prov = dict(read_result(store).provenance)
            except ChromarateError:
                continue
            sha = sha or file_sha256(csv)
            if (prov.get("input") or {}).get("sha256") == sha:
                return store
    return None


def _truth_layer() -> tuple:
    from ..data import sample_paths
    from ..io.truth import read_truth
    from ._layers import truth_layer_data

    _, truth_path = sample_paths()
    return truth_layer_data(read_truth(truth_path), name="sample_nucleus · true rate λ")


def sample_nucleus() -> list[tuple]:
    """Density image of the bundled sample nucleus and its true rate map."""
    from ..data import sample_paths
    from ..io.localizations import read_localizations
    from ._reader import localization_layers

    csv, _ = sample_paths()
    return [*localization_layers(read_localizations(csv), csv), _truth_layer()]


def sample_nucleus_result() -> list[tuple]:
    """Result layers of the sample nucleus and its true rate map (see the module notes)."""
    from ._reader import read_result_layers

    viewer = _current_viewer()
    store = find_sample_result()
    if store is not None:
        if viewer is not None:
            from ._present import show_scale_bar, style_added_layers

            style_added_layers(viewer)  # outline and colorbar once napari adds the layers
            show_scale_bar(viewer)
        return [*read_result_layers(store), _truth_layer()]
    if viewer is None:
        return [*_closed_form_layers(), _truth_layer()]
    _start_fit(viewer)
    return sample_nucleus()


def _current_viewer():
    try:
        import napari
    except ImportError:  # pragma: no cover - the plugin runs inside napari
        return None
    return napari.current_viewer()


def _start_fit(viewer) -> None:
    """Fit the sample in the inference widget (docked), saving to the cache."""
    from napari.utils.notifications import show_info

    from ..data import sample_paths

    csv, _ = sample_paths()
    _, widget = viewer.window.add_plugin_dock_widget("chromarate", "Infer reaction rates")
    if widget.running:
        return
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    widget.file.value = csv
    widget.config_file.value = None
    if "quick-cpu" in widget.preset.choices:
        widget.preset.value = "quick-cpu"
    widget.out_dir.value = folder
    widget.start()
    show_info("No stored result of the sample nucleus yet: fitting it now (see 'Infer "
              "reaction rates'); the rate map appears when the fit is done and is saved "
              f"to {folder} for next time.")


def _closed_form_layers() -> list[tuple]:
    from ..config import PipelineConfig, with_overrides
    from ..data import sample_paths
    from ..io.localizations import read_localizations
    from ..pipeline import NucleusResult, Pipeline
    from ._layers import result_layer_data

    csv, _ = sample_paths()
    config = with_overrides(PipelineConfig(), {"fit.method": "direct"})
    layers: list[tuple] = []
    for res in Pipeline(config).run(read_localizations(csv)):
        if isinstance(res, NucleusResult):
            layers += result_layer_data(res.stack, name=f"sample_nucleus/{res.nucleus_id} "
                                        "(closed form)", source=str(csv))
    return layers
