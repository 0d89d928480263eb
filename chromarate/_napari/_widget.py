"""The "Infer reaction rates" dock widget.

Pick localizations (a layer made by chromarate's localization reader, any points layer in
nm, or a file), a pipeline (a preset, see :mod:`chromarate.presets`, or a config file) and a device;
*Run* starts :func:`~chromarate._napari._run.iter_inference` in a worker thread. The
widget shows the stage, a progress bar and the live loss of the fit; *Cancel* stops the
worker at its next event. Each finished nucleus adds its result layers; failures are napari
notifications (one line, no traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton

from .._types import FitProgress, Localizations, NucleusFailed, StageDone
from ..errors import ChromarateError
from ..io.names import input_stem
from ._layers import layer_metadata, result_layer_data
from ._reader import LOCALIZATION_SUFFIXES
from ._run import (DEFAULT_PRESET, InferenceRequest, ResultSaved, RunFailed, iter_inference,
                   list_presets, resolve_config)

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["InferenceWidget", "layer_localizations"]

DEVICES = ("auto", "cpu", "cuda", "mps")
_PREFERRED_PRESET = "quick-cpu"
_LOCALIZATION_FILTER = (f"Localization files ({' '.join('*' + s for s in LOCALIZATION_SUFFIXES)})"
                        ";;All files (*)")


def layer_localizations(layer) -> Localizations | None:
    """The localizations behind a layer, or None.

    A layer from chromarate's localization reader carries them in its metadata; any other
    2-D points layer gives its points' world coordinates, taken as nanometres.
    """
    meta = layer_metadata(layer)
    if isinstance(meta.get("localizations"), Localizations):
        return meta["localizations"]
    if _is_points_layer(layer):
        world = np.asarray(layer.data, float) * np.asarray(layer.scale) \
            + np.asarray(layer.translate)
        table = pd.DataFrame({"x_nm": world[:, -1], "y_nm": world[:, -2]})
        return Localizations(table, meta={"source": f"napari points layer {layer.name!r}",
                                          "format": "napari-points", "frame_base": 0,
                                          "pixel_size_nm": None})
    return None


class InferenceWidget(Container):
    """Dock widget that runs the chromarate pipeline on localizations in a worker thread.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are offered as inputs and that receives the results.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._worker: Any = None
        self._cancelled = False
        self._request: InferenceRequest | None = None
        self._nucleus: int | None = None  # the nucleus being processed
        #: Results of the last run (NucleusResult), in the order they arrived.
        self.results: list = []
        #: Number of fit progress events the last run delivered.
        self.n_progress = 0

        presets = list_presets() or [DEFAULT_PRESET]
        self.source = ComboBox(label="localizations", choices=self._source_choices,
                               nullable=True, tooltip="A layer from a localization file, or "
                               "any points layer with coordinates in nm")
        self.file = FileEdit(label="or file", mode="r", nullable=True,
                             filter=_LOCALIZATION_FILTER,
                             tooltip="A localization file (any format chromarate reads); "
                             "used instead of the layer when set")
        self.preset = ComboBox(label="pipeline", choices=presets,
                               value=_PREFERRED_PRESET if _PREFERRED_PRESET in presets
                               else DEFAULT_PRESET)
        self.config_file = FileEdit(label="or config file", mode="r", nullable=True,
                                    filter="Pipeline config (*.yaml *.yml)")
        self.device = ComboBox(label="device", choices=DEVICES, value="auto")
        self.out_dir = FileEdit(label="save results to", mode="d", nullable=True,
                                tooltip="Optional folder for <name>/<nucleus-id>.ome.zarr")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="fit", min=0, max=1, value=0)
        self.status = Label(label="status", value="idle")
        self.loss = Label(label="loss", value="-")
        self.extend([self.source, self.file, self.preset, self.config_file, self.device,
                     self.out_dir, self.run_button, self.cancel_button, self.progress,
                     self.status, self.loss])
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        viewer.layers.events.inserted.connect(self._refresh_sources)
        viewer.layers.events.removed.connect(self._refresh_sources)
        self.native.destroyed.connect(self._disconnect)

    # ------------------------------------------------------------------ inputs

    def _source_choices(self, _widget=None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self._viewer.layers
                if layer_localizations_cheap(layer)]

    def _refresh_sources(self, _event=None) -> None:
        self.source.reset_choices()

    def _disconnect(self, *_args) -> None:
        if self._worker is not None:  # the widget is gone: stop its run too
            self._worker.quit()
        for ev in (self._viewer.layers.events.inserted, self._viewer.layers.events.removed):
            try:
                ev.disconnect(self._refresh_sources)
            except (TypeError, ValueError, RuntimeError):
                pass

    def _build_request(self) -> InferenceRequest:
        config = resolve_config(self.preset.value, self.config_file.value)
        device = self.device.value  # overrides the config's fit.device
        out_dir = self.out_dir.value
        if self.file.value is not None:
            path = Path(self.file.value)
            if not path.is_file():
                raise ChromarateError("no such localization file", path=path)
            return InferenceRequest(config=config, name=input_stem(path), path=path,
                                    device=device, out_dir=out_dir)
        layer = self.source.value
        if layer is None:
            raise ChromarateError("choose a localization layer or a localization file")
        locs = layer_localizations(layer)
        if locs is None:
            raise ChromarateError(f"layer {layer.name!r} holds no localizations")
        name = layer.name.split(" · ")[0]
        return InferenceRequest(config=config, name=name, locs=locs, device=device,
                                out_dir=out_dir)

    # ------------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        """True while a worker is running."""
        return self._worker is not None

    def start(self, *_args) -> None:
        """Start a run with the current choices (errors become notifications)."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self.running:
            return
        try:
            request = self._build_request()
        except ChromarateError as exc:
            show_error(str(exc))
            self.status.value = f"not started: {exc}"
            return
        self._request = request
        self.results, self.n_progress, self._cancelled = [], 0, False
        self.progress.max, self.progress.value = max(1, request.config.fit.training.steps), 0
        self.loss.value = "-"
        self.status.value = f"starting {request.name} ..."
        self.run_button.enabled, self.cancel_button.enabled = False, True
        worker = create_worker(iter_inference, request, _start_thread=False,
                               _ignore_errors=True)
        worker.yielded.connect(self._on_event)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def cancel(self, *_args) -> None:
        """Ask the worker to stop at its next event."""
        if self._worker is not None:
            self._cancelled = True
            self.status.value = "cancelling ..."
            self.cancel_button.enabled = False
            self._worker.quit()

    def _on_event(self, event: object) -> None:
        from napari.utils.notifications import show_error, show_info, show_warning

        from ..pipeline import NucleusResult

        if isinstance(event, FitProgress):
            self.n_progress += 1
            self.progress.max = max(1, event.total_steps)
            self.progress.value = min(event.step, event.total_steps)
            terms = ", ".join(f"{k} {v:.3g}" for k, v in event.terms.items())
            self.loss.value = f"{event.loss:.4g} ({terms})"
            self.status.value = (f"fitting nucleus {self._nucleus}: step {event.step} of "
                                 f"{event.total_steps}")
        elif isinstance(event, StageDone):
            if event.nucleus_id is not None:
                self._nucleus = event.nucleus_id
            where = "" if event.nucleus_id is None else f" (nucleus {event.nucleus_id})"
            self.status.value = f"{event.stage} done in {event.seconds:.1f} s{where}"
        elif isinstance(event, NucleusResult):
            self.results.append(event)
            self._add_result(event)
            show_info(f"nucleus {event.nucleus_id}: rate map added")
        elif isinstance(event, NucleusFailed):
            show_warning(f"nucleus {event.nucleus_id}: {event.stage} failed: {event.error}")
        elif isinstance(event, ResultSaved):
            self.status.value = f"saved {event.path}"
        elif isinstance(event, RunFailed):
            show_error(event.message)
            self.status.value = f"failed: {event.message}"

    def _add_result(self, result) -> None:
        from ._present import as_layers

        name = f"{self._request.name}/{result.nucleus_id}" if self._request else \
            str(result.nucleus_id)
        for layer in as_layers(result_layer_data(result.stack, name=name)):
            self._viewer.add_layer(layer)

    def _on_error(self, exc: BaseException) -> None:  # iter_inference catches; just in case
        from napari.utils.notifications import show_error

        show_error(f"chromarate: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
        if self._cancelled:
            self.status.value = f"cancelled ({len(self.results)} nuclei finished)"
        elif not self.status.value.startswith("failed"):
            self.status.value = f"done: {len(self.results)} nuclei"


def _is_points_layer(layer) -> bool:
    """A non-empty points layer with (at least) 2-D coordinates."""
    if type(layer).__name__ != "Points":
        return False
    data = np.asarray(layer.data)
    return data.ndim == 2 and data.shape[1] >= 2 and len(data) > 0


def layer_localizations_cheap(layer) -> bool:
    """Whether :func:`layer_localizations` gives localizations for a layer (without
    building the table)."""
    return isinstance(layer_metadata(layer).get("localizations"), Localizations) \
        or _is_points_layer(layer)
