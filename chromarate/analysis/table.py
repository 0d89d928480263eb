"""Per-nucleus statistics: one row per nucleus, as a pandas DataFrame or a CSV file.

Columns (lengths in um, areas in um^2; rates are lambda = Gamma_me / Gamma_ac):

- identity: ``name`` (output folder of the input), ``group`` (the input's parent folder,
  e.g. a condition), ``input``, ``nucleus_id``, ``result_path``, ``config_hash``;
- ``area_um2``, ``n_localizations``, ``localizations_per_um2``;
- ``mean_phi_h`` and ``heterochromatin_fraction`` (area fraction with phi_h above the
  domain threshold);
- the inferred map, over the pixels where the fit reports it as trusted
  (:attr:`~chromarate.analysis.Nucleus.rate_region`; the quality gate's ``rate_mean`` is
  over the same pixels): ``rate_mean``, ``rate_median``, ``rate_std`` (spatial), the
  quantiles ``rate_q05`` ... of :class:`AnalysisConfig`, ``rate_coverage`` (fraction of
  the nucleus where the rate is reported as trusted), ``rate_heterochromatin`` and
  ``rate_euchromatin`` (mean inside and outside heterochromatin);
- ``rate_balance``: the steady-state balance estimate sum(phi_h) / sum(phi_e) of the mean
  rate (:func:`~chromarate.analysis.rates.rate_balance`);
- domains: ``n_domains``, ``n_interior_domains``, and medians over interior domains of
  ``domain_radius_um``, ``domain_nn_distance_um``, ``domain_spacing_um``, the lab closed
  form ``lab_lambda`` and the inferred rate over the same territories ``rate_territory``;
- ``rate_corr_truth`` (from the result, when the batch found a truth file) and
  ``truth_rate_mean`` (mean true lambda over the same pixels as ``rate_mean``, when
  ``<stem>.truth.npz`` lies beside the input).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from .._config.io import make_config
from ..data import read_truth_for
from ..errors import InputFormatError
from ..io.batch_files import write_table
from .compare import resample_to_grid
from .config import AnalysisConfig
from .domains import DOMAIN_COLUMNS, Domains, find_domains
from .nuclei import Nucleus, iter_nuclei, load_nucleus
from .rates import finite_values, rate_balance, rate_quantiles

__all__ = ["concat_domain_rows", "domain_rows", "domain_table", "nucleus_columns", "nucleus_domains",
           "nucleus_statistics", "nucleus_table", "write_nucleus_table"]


def _truth_mean(nucleus: Nucleus) -> float:
    try:
        truth = read_truth_for(nucleus.input) if nucleus.input else None
    except InputFormatError:
        return float("nan")
    if truth is None:
        return float("nan")
    true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                            src_origin_nm=truth["origin_nm"], shape=nucleus.mask.shape,
                            pixel_nm=nucleus.pixel_size_nm, origin_nm=nucleus.origin_nm)
    v = true[nucleus.rate_region & np.isfinite(true)]
    return float(v.mean()) if v.size else float("nan")


def _median(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


def _mean_where(rate: np.ndarray, region: np.ndarray) -> float:
    v = finite_values(rate, region)
    return float(v.mean()) if v.size else float("nan")


def nucleus_domains(nucleus: Nucleus, config: AnalysisConfig = AnalysisConfig()) -> Domains:
    """The heterochromatin domains of a nucleus (:func:`find_domains` on its phi_h, and on
    its rate where it is trusted: ``rate_territory`` and ``rate_in_domain`` average the
    trusted pixels, :attr:`~chromarate.analysis.Nucleus.rate_region`)."""
    rate = np.where(nucleus.rate_region, nucleus.rate.astype(np.float64), np.nan)
    return find_domains(nucleus.phi_h(config.field), nucleus.mask,
                        pixel_size_nm=nucleus.pixel_size_nm, phi_max=nucleus.phi_max,
                        rate=rate, config=config)


def nucleus_statistics(nucleus: Nucleus, config: AnalysisConfig = AnalysisConfig(), *,
                       domains: Domains | None = None) -> dict:
    """The statistics row of one nucleus (see the module docstring for the columns).

    Parameters
    ----------
    nucleus : Nucleus
    config : AnalysisConfig
    domains : Domains, optional
        Its domains, if already found with ``config`` (:func:`nucleus_domains`).

    Returns
    -------
    dict
    """
    mask = nucleus.mask
    region = nucleus.rate_region
    rate = nucleus.rate.astype(np.float64)
    phi_h = nucleus.phi_h(config.field)
    if domains is None:
        domains = nucleus_domains(nucleus, config)
    inner = domains.interior
    area = nucleus.area_um2
    hetero = domains.heterochromatin
    metrics = nucleus.provenance.get("metrics") or {}
    corr = metrics.get("rate_corr_truth")
    input_path = nucleus.input
    row = {
        "name": nucleus.name,
        "group": Path(input_path).parent.name if input_path else "",
        "input": input_path,
        "nucleus_id": nucleus.nucleus_id,
        "result_path": str(nucleus.path),
        "config_hash": nucleus.config_hash,
        "status": (nucleus.provenance.get("qc") or {}).get("status", ""),
        "qc_reasons": "; ".join((nucleus.provenance.get("qc") or {}).get("reasons") or []),
        "area_um2": area,
        "n_localizations": nucleus.n_localizations,
        "localizations_per_um2": nucleus.n_localizations / area if area > 0 else np.nan,
        "mean_phi_h": float(np.nanmean(phi_h[mask])) if mask.any() else np.nan,
        "heterochromatin_fraction": float(hetero.sum() / mask.sum()) if mask.any() else np.nan,
        **rate_quantiles(rate, region, config.quantiles),
        "rate_coverage": float(region.sum() / mask.sum()) if mask.any() else np.nan,
        "rate_heterochromatin": _mean_where(rate, region & hetero),
        "rate_euchromatin": _mean_where(rate, region & ~hetero),
        "rate_balance": rate_balance(np.clip(phi_h, 0.0, None), nucleus.phi_e, mask),
        "n_domains": int(len(domains.table)),
        "n_interior_domains": int(len(inner)),
        "domain_radius_um": _median(inner["radius_um"]),
        "domain_nn_distance_um": _median(inner["nn_distance_um"]),
        "domain_spacing_um": _median(inner["spacing_um"]),
        "lab_lambda": _median(inner["lab_lambda"]),
        "rate_territory": _median(inner["rate_territory"]),
        "rate_corr_truth": np.nan if corr is None else float(corr),
        "truth_rate_mean": _truth_mean(nucleus),
    }
    return row


def nucleus_table(source: str | os.PathLike | Iterable[Nucleus | str | os.PathLike],
                  config: AnalysisConfig | Mapping[str, Any] = AnalysisConfig()) -> pd.DataFrame:
    """The statistics table of many nuclei, one row each.

    Parameters
    ----------
    source : str, path-like, Nucleus, or an iterable of Nucleus or result store paths
        A result folder (damaged stores are logged and skipped), or nuclei (a store given
        by its path is read with :func:`~chromarate.analysis.load_nucleus`, which raises
        for a damaged one).
    config : AnalysisConfig or mapping
        A mapping is validated as an :class:`AnalysisConfig`.

    Returns
    -------
    pandas.DataFrame
        Rows in the order of the nuclei, columns :func:`nucleus_columns` (also when there
        are no nuclei).

    Raises
    ------
    TypeError
        ``source`` or ``config`` is of another kind.

    Examples
    --------
    Not run as a doctest: it needs a result folder written by ``chromarate run``.

    >>> table = nucleus_table("results/")                      # doctest: +SKIP
    >>> table.groupby("group")["rate_median"].describe()       # doctest: +SKIP
    """
    config = _analysis_config(config)
    return pd.DataFrame([nucleus_statistics(n, config) for n in _nuclei(source)],
                        columns=nucleus_columns(config))


def domain_table(source: str | os.PathLike | Iterable[Nucleus | str | os.PathLike],
                 config: AnalysisConfig | Mapping[str, Any] = AnalysisConfig()) -> pd.DataFrame:
    """Every domain of every nucleus: ``name``, ``nucleus_id`` and :data:`DOMAIN_COLUMNS`
    (``source`` and ``config`` as for :func:`nucleus_table`)."""
    config = _analysis_config(config)
    return concat_domain_rows([domain_rows(n, nucleus_domains(n, config))
                               for n in _nuclei(source)])


def nucleus_columns(config: AnalysisConfig = AnalysisConfig()) -> list[str]:
    """The columns of :func:`nucleus_table` (the keys of :func:`nucleus_statistics`)."""
    quantiles = rate_quantiles(np.zeros(0), np.zeros(0, bool), config.quantiles)
    return ["name", "group", "input", "nucleus_id", "result_path", "config_hash", "status",
            "qc_reasons", "area_um2", "n_localizations", "localizations_per_um2", "mean_phi_h",
            "heterochromatin_fraction", *quantiles, "rate_coverage", "rate_heterochromatin",
            "rate_euchromatin", "rate_balance", "n_domains", "n_interior_domains",
            "domain_radius_um", "domain_nn_distance_um", "domain_spacing_um", "lab_lambda",
            "rate_territory", "rate_corr_truth", "truth_rate_mean"]


def _analysis_config(config: Any) -> AnalysisConfig:
    if isinstance(config, AnalysisConfig):
        return config
    if isinstance(config, Mapping):
        return make_config(AnalysisConfig, dict(config))
    raise TypeError(f"config must be an AnalysisConfig or a mapping of its fields, not "
                    f"{type(config).__name__}")


def _nuclei(source: Any) -> Iterator[Nucleus]:
    """The nuclei of a result folder, of result store paths, or given as Nucleus objects."""
    if isinstance(source, (str, os.PathLike)):
        yield from iter_nuclei(source, skip_damaged=True)
        return
    if isinstance(source, Nucleus):
        yield source
        return
    if not isinstance(source, Iterable):
        raise TypeError(f"expected a result folder, or Nucleus objects or result store paths; "
                        f"got a {type(source).__name__}")
    for item in source:
        if isinstance(item, Nucleus):
            yield item
        elif isinstance(item, (str, os.PathLike)):
            yield load_nucleus(item)
        else:
            raise TypeError(f"expected Nucleus objects or result store paths (<id>.ome.zarr); "
                            f"got a {type(item).__name__}")


def domain_rows(nucleus: Nucleus, domains: Domains) -> pd.DataFrame:
    """The domain table of one nucleus with its ``name`` and ``nucleus_id`` in front."""
    t = domains.table.copy()
    t.insert(0, "nucleus_id", nucleus.nucleus_id)
    t.insert(0, "name", nucleus.name)
    return t


def concat_domain_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Domain tables of many nuclei (:func:`domain_rows`) as one; its columns even if empty."""
    if not parts:
        return pd.DataFrame(columns=["name", "nucleus_id", *DOMAIN_COLUMNS])
    return pd.concat(parts, ignore_index=True)


def write_nucleus_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a statistics table as CSV, atomically."""
    return write_table(path, table)
