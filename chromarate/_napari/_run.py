"""The inference run behind the "Infer reaction rates" widget (pure; no napari, no Qt).

:func:`iter_inference` is a generator of the pipeline's events plus two of its own
(:class:`ResultSaved`, :class:`RunFailed`). The widget runs it in a worker thread and
cancels it by no longer asking for the next event, so a cancel takes effect at the next
event (at most ``fit.training.log_every`` fit steps later). Errors never escape as exceptions: they
end the run with one :class:`RunFailed` event whose message names the file and what was
expected.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .._types import Localizations, StageDone
from ..config import PipelineConfig, load_config
from ..errors import ChromarateError
from ..presets import list_presets, preset_path

__all__ = [
    "InferenceRequest",
    "ResultSaved",
    "RunFailed",
    "iter_inference",
    "list_presets",
    "resolve_config",
]

_log = logging.getLogger(__name__)

#: The preset of the documented defaults (its config is ``PipelineConfig()``).
DEFAULT_PRESET = "default"


@dataclass(frozen=True)
class InferenceRequest:
    """What to run.

    Attributes
    ----------
    config : PipelineConfig
    name : str
        Prefix of the result layers and folder name of saved results (the input's stem).
    locs : Localizations, optional
        The localizations, when they are already loaded (a layer).
    path : Path, optional
        A localization file to read when ``locs`` is None.
    device : str, optional
        Overrides the config's device ("auto", "cpu", "cuda", "mps").
    out_dir : Path, optional
        Write each nucleus to ``out_dir/<name>/<nucleus-id>.ome.zarr`` as it finishes.
    """

    config: PipelineConfig
    name: str
    locs: Localizations | None = None
    path: Path | None = None
    device: str | None = None
    out_dir: Path | None = None


@dataclass(frozen=True)
class ResultSaved:
    """A nucleus result was written to ``path``."""

    nucleus_id: int
    path: Path


@dataclass(frozen=True)
class RunFailed:
    """The run stopped; ``message`` says why (one line, no traceback)."""

    message: str


def resolve_config(preset: str | None, config_file: str | Path | None) -> PipelineConfig:
    """The config of a config file when one is given, else of a preset
    (:mod:`chromarate.presets`).

    Without a preset, or for :data:`DEFAULT_PRESET` in an install without the preset files,
    the built-in defaults (the same config).

    Raises
    ------
    ConfigError
        If the file cannot be read or is invalid, or the preset is unknown.
    """
    if config_file:
        return load_config(config_file)
    if not preset or (preset == DEFAULT_PRESET and preset not in list_presets()):
        return PipelineConfig()
    return load_config(preset_path(preset))


def _provenance(request: InferenceRequest) -> dict:
    source = request.path
    if source is None and request.locs is not None:
        meta_source = dict(request.locs.meta).get("source")
        source = Path(meta_source) if meta_source and Path(meta_source).is_file() else None
    info: dict = {"path": None if source is None else str(source), "via": "napari"}
    if source is not None and source.is_file():
        from ..batch.tasks import file_sha256

        info["sha256"] = file_sha256(source)
    return {"input": info}


def iter_inference(request: InferenceRequest) -> Iterator[object]:
    """Run the pipeline for one request, yielding its events.

    Yields
    ------
    StageDone, FitProgress, NucleusResult, NucleusFailed
        The pipeline's events (:meth:`chromarate.pipeline.Pipeline.iter_run`), after a
        ``StageDone("read")`` when the localizations are read from a file.
    ResultSaved
        After a nucleus result was written (only with ``out_dir``).
    RunFailed
        Last event of a run that stopped on an error.
    """
    from ..io.localizations import read_localizations
    from ..io.zarr_store import write_result
    from ..pipeline import NucleusResult, Pipeline

    try:
        locs = request.locs
        if locs is None:
            if request.path is None:
                raise ChromarateError("no localizations: choose a localization layer or file")
            t0 = time.perf_counter()
            locs = read_localizations(request.path, defaults=request.config.read.options())
            yield StageDone(stage="read", seconds=time.perf_counter() - t0)
        events = Pipeline(request.config).iter_run(locs, device=request.device,
                                                   provenance=_provenance(request))
        for event in events:
            yield event
            if isinstance(event, NucleusResult) and request.out_dir is not None:
                target = Path(request.out_dir) / request.name / f"{event.nucleus_id}.ome.zarr"
                write_result(event.stack, target)
                yield ResultSaved(nucleus_id=event.nucleus_id, path=target)
    except ChromarateError as exc:
        yield RunFailed(str(exc))
    except Exception as exc:  # noqa: BLE001 - the GUI shows one line; the log has the rest
        _log.exception("chromarate inference failed")
        yield RunFailed(f"unexpected error ({type(exc).__name__}: {exc}); see the log")
