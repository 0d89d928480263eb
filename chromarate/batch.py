"""Run a pipeline over input files and write one OME-Zarr result per nucleus plus a summary.

Each input is processed on its own: a bad file or a failed fit is recorded in the summary
with its error, and the others go on. Results are written atomically by
:func:`chromarate.io.zarr_store.write_result`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .analysis import rate_correlation, rate_summary
from .config import PipelineConfig
from .data import truth_path_for
from .errors import ChromarateError
from .io.images import read_density_image
from .io.localizations import read_localizations
from .io.truth import read_truth
from .io.zarr_store import write_result
from ._types import NucleusFailed
from .pipeline import NucleusResult, Pipeline

__all__ = ["BatchReport", "SUMMARY_COLUMNS", "run_batch", "file_sha256"]

SUMMARY_COLUMNS = (
    "input", "nucleus_id", "status", "error", "n_localizations", "pixel_size_nm", "rate_mean",
    "rate_median", "rate_q05", "rate_q95", "rate_corr_truth", "mollifier_radius_px",
    "fit_seconds", "total_seconds", "device", "result_path",
)


@dataclass
class BatchReport:
    """Summary rows of a batch and the path of the summary table."""

    rows: list[dict] = field(default_factory=list)
    summary_path: Path | None = None

    @property
    def n_failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.rows)

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(SUMMARY_COLUMNS))


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _input_stem(path: Path) -> str:
    name = path.name
    for suffix in (".csv.gz", ".tsv.gz", ".csv", ".tsv", ".txt", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def run_batch(config: PipelineConfig, inputs: Iterable[str | Path], out_dir: str | Path, *,
              device: str | None = None, on_event: Callable[[Path, object], None] | None = None,
              ) -> BatchReport:
    """Run ``config`` over ``inputs`` and write results under ``out_dir``.

    Parameters
    ----------
    config : PipelineConfig
    inputs : iterable of path
        Localization files.
    out_dir : path
        Results go to ``out_dir/<input-stem>/<nucleus-id>.ome.zarr``; the summary to
        ``out_dir/summary.csv``.
    device : str, optional
        Overrides ``config.fit.device``.
    on_event : callable, optional
        Called with (input path, event) for every pipeline event (progress display).

    Returns
    -------
    BatchReport
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BatchReport()
    pipe = Pipeline(config)
    for raw in inputs:
        path = Path(raw)
        t0 = time.perf_counter()
        base = {"input": str(path), "nucleus_id": None, "status": "failed", "error": ""}
        try:
            truth_file = truth_path_for(path)
            truth = read_truth(truth_file) if truth_file else None
            if path.suffix.lower() in (".tif", ".tiff"):
                density = read_density_image(path)
                prov = {"input": {"path": str(path.resolve()), "sha256": file_sha256(path),
                                  "format": "tiff-density"}}
                events = pipe.iter_run_density(density, device=device, provenance=prov)
            else:
                locs = read_localizations(path)
                prov = {"input": {"path": str(path.resolve()), "sha256": file_sha256(path),
                                  "format": locs.meta.get("format")}}
                events = pipe.iter_run(locs, device=device, provenance=prov)
            for event in events:
                if on_event is not None:
                    on_event(path, event)
                if isinstance(event, NucleusFailed):
                    report.rows.append({**base, "nucleus_id": event.nucleus_id,
                                        "error": f"{event.stage}: {event.error}"})
                elif isinstance(event, NucleusResult):
                    report.rows.append(_write_nucleus(event, path, out_dir, truth, t0))
        except ChromarateError as exc:
            report.rows.append({**base, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - one bad input must not stop the batch
            report.rows.append({**base, "error": f"{type(exc).__name__}: {exc}"})
    report.summary_path = out_dir / "summary.csv"
    tmp = report.summary_path.with_suffix(".csv.tmp")
    report.table.to_csv(tmp, index=False)
    tmp.replace(report.summary_path)
    return report


def _write_nucleus(res: NucleusResult, path: Path, out_dir: Path, truth, t0: float) -> dict:
    stack, fit = res.stack, res.fit
    corr = float("nan")
    if truth is not None:
        corr = rate_correlation(fit.rate, fit.trusted, pixel_nm=stack.pixel_size_nm,
                                origin_nm=stack.origin_nm, truth=truth)
        stack = replace(stack, provenance={**stack.provenance,
                                           "metrics": {"rate_corr_truth": corr}})
    target = out_dir / _input_stem(path) / f"{res.nucleus_id}.ome.zarr"
    write_result(stack, target)
    row = {
        "input": str(path), "nucleus_id": res.nucleus_id, "status": "ok", "error": "",
        "n_localizations": res.n_localizations, "pixel_size_nm": stack.pixel_size_nm,
        **rate_summary(fit.rate, res.fields.mask),
        "rate_corr_truth": corr,
        "mollifier_radius_px": fit.meta.get("mollifier_radius_px", np.nan),
        "fit_seconds": res.timings.get("fit", np.nan),
        "total_seconds": time.perf_counter() - t0,
        "device": fit.device, "result_path": str(target),
    }
    return row
