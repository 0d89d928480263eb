"""Report figures, drawn with matplotlib's object API (no pyplot, no global state) and
returned as PNG bytes; nothing here touches files.
"""

from __future__ import annotations

import io
import numpy as np
import pandas as pd

from ..analysis.domains import Domains
from ..analysis.nuclei import Nucleus
from ..errors import ChromarateError

__all__ = ["batch_figures", "nucleus_figure"]


def _figure(width: float, height: float, layout: str | None = "constrained"):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ChromarateError("reports need matplotlib; pip install matplotlib") from exc
    return Figure(figsize=(width, height), dpi=90, layout=layout)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _extent(n: Nucleus) -> list[float]:
    ny, nx = n.mask.shape
    p = n.pixel_size_nm / 1000.0
    y0, x0 = n.origin_nm[0] / 1000.0, n.origin_nm[1] / 1000.0
    return [x0, x0 + nx * p, y0 + ny * p, y0]


def _panel(fig, ax, image, n: Nucleus, title: str, cmap: str, label: str,
           vmin=None, vmax=None, outline=None) -> None:
    im = ax.imshow(np.where(n.mask, image, np.nan), cmap=cmap, vmin=vmin, vmax=vmax,
                   extent=_extent(n), interpolation="nearest")
    if outline is not None and outline.any():
        ny, nx = outline.shape
        p = n.pixel_size_nm / 1000.0
        xs = n.origin_nm[1] / 1000.0 + (np.arange(nx) + 0.5) * p
        ys = n.origin_nm[0] / 1000.0 + (np.arange(ny) + 0.5) * p
        ax.contour(xs, ys, outline.astype(float), levels=[0.5], colors="white", linewidths=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (um)", fontsize=7)
    ax.set_ylabel("y (um)", fontsize=7)
    ax.tick_params(labelsize=6)
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label(label, fontsize=7)
    cb.ax.tick_params(labelsize=6)


def _robust_range(values: np.ndarray) -> tuple[float | None, float | None]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None, None
    lo, hi = np.percentile(v, [1, 99])
    return (float(lo), float(hi)) if hi > lo else (None, None)


def nucleus_figure(nucleus: Nucleus, domains: Domains, stats: dict) -> bytes:
    """Five panels of one nucleus as PNG bytes: density, phase field phi_d (with the
    heterochromatin domains outlined), inferred rate, PDE residual, and the rate histogram
    inside and outside heterochromatin with the lab closed form marked."""
    n = nucleus
    fig = _figure(16.0, 3.4, layout=None)
    axes = fig.subplots(1, 5)
    fig.subplots_adjust(left=0.035, right=0.99, bottom=0.14, top=0.84, wspace=0.45)
    _panel(fig, axes[0], n.denoised, n, "density (denoised)", "magma", "loc. / pixel")
    _panel(fig, axes[1], n.phi_d, n, "phase field phi_d", "viridis", "phi_d",
           outline=domains.labels > 0)
    lo, hi = _robust_range(n.rate[n.rate_region])  # the range of the trusted values
    _panel(fig, axes[2], n.rate, n, "rate lambda (outline: trusted)", "cividis", "lambda",
           vmin=lo, vmax=hi, outline=n.rate_region)
    res = n.residual.astype(np.float64)
    r = np.nanpercentile(np.abs(res[n.mask]), 99) if np.isfinite(res[n.mask]).any() else None
    _panel(fig, axes[3], res, n, "PDE residual", "coolwarm", "residual",
           vmin=-r if r else None, vmax=r if r else None)
    ax = axes[4]
    rate = n.rate.astype(np.float64)
    het = domains.heterochromatin
    trusted = n.rate_region & np.isfinite(rate)  # the pixels the table's rates are over
    inside, outside = rate[het & trusted], rate[~het & trusted]
    both = np.concatenate([inside, outside])
    if both.size:
        lo, hi = _robust_range(both)
        if lo is None:
            lo, hi = both.min() - 0.5, both.max() + 0.5
        bins = np.linspace(lo, hi, 40)
        if outside.size:
            ax.hist(np.clip(outside, bins[0], bins[-1]), bins=bins, alpha=0.6,
                    label="euchromatin", color="tab:blue")
        if inside.size:
            ax.hist(np.clip(inside, bins[0], bins[-1]), bins=bins, alpha=0.6,
                    label="heterochromatin", color="tab:orange")
    for key, style, text in (("rate_balance", "--", "balance"), ("lab_lambda", ":", "lab")):
        v = stats.get(key)
        if v is not None and np.isfinite(v):
            ax.axvline(v, color="k", linestyle=style, linewidth=1, label=f"{text} {v:.3g}")
    ax.set_title("rate histogram", fontsize=9)
    ax.set_xlabel("lambda", fontsize=7)
    ax.set_ylabel("pixels", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    fig.suptitle(f"{n.name} nucleus {n.nucleus_id}: area {n.area_um2:.2f} um^2, "
                 f"rate median {stats.get('rate_median', np.nan):.3g}, "
                 f"{stats.get('n_domains', 0)} domains", fontsize=10)
    return _png(fig)


def _rates_by(table: pd.DataFrame, nuclei_rates: dict, key: str) -> tuple[list[str], list]:
    labels, data = [], []
    for value, rows in table.groupby(key, sort=True):
        vals = [nuclei_rates[(r.name, r.nucleus_id)] for r in rows.itertuples()
                if (r.name, r.nucleus_id) in nuclei_rates]
        vals = [v for v in vals if v.size]
        if vals:
            labels.append(str(value))
            data.append(np.concatenate(vals))
    return labels, data


def batch_figures(table: pd.DataFrame, nuclei_rates: dict) -> dict[str, bytes]:
    """Figures of the summary page as ``{file name: PNG bytes}``.

    ``rate_by_input.png``: distribution of the rate over the trusted pixels of the nuclei of
    each input (violins) with each nucleus's median (dots); ``rate_by_group.png``: the same per
    input folder when there are several; ``lab_vs_inferred.png``: lab closed form against
    the inferred rate over the same territories and the balance estimate;
    ``inferred_vs_truth.png``: mean inferred and balance estimates against the true mean
    when truth is known.
    """
    figs: dict[str, bytes] = {}
    if table.empty:
        return figs
    for key, fname, title in (("name", "rate_by_input.png", "rate by input"),
                              ("group", "rate_by_group.png", "rate by input folder")):
        if key == "group" and table["group"].nunique() < 2:
            continue
        labels, data = _rates_by(table, nuclei_rates, key)
        if not data:
            continue
        fig = _figure(max(4.0, 0.7 * len(labels) + 2.0), 3.6)
        ax = fig.subplots()
        lo = min(np.percentile(d, 1) for d in data)
        hi = max(np.percentile(d, 99) for d in data)
        clipped = [np.clip(d, lo, hi) for d in data]
        ax.violinplot(clipped, showmedians=True)
        for value, rows in table.groupby(key, sort=True):
            if str(value) in labels:
                pos = labels.index(str(value)) + 1
                med = rows["rate_median"].to_numpy(dtype=float)
                ax.plot(np.full(med.size, pos) + np.linspace(-0.1, 0.1, med.size), med, "k.",
                        markersize=4)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("lambda (pixels; dots: nucleus medians)", fontsize=8)
        ax.set_title(title, fontsize=10)
        figs[fname] = _png(fig)

    figs["lab_vs_inferred.png"] = _estimates_plot(
        table["lab_lambda"], [("inferred (territory)", table["rate_territory"])], table,
        xlabel="lab closed form 1/((d/R)^2 - 1)", ylabel="lambda",
        title="per nucleus: lab closed form vs inferred")
    if np.isfinite(table["truth_rate_mean"].to_numpy(dtype=float)).any():
        figs["inferred_vs_truth.png"] = _estimates_plot(
            table["truth_rate_mean"], [("inferred map mean", table["rate_mean"])], table,
            xlabel="true mean lambda", ylabel="estimated mean lambda",
            title="per nucleus: estimates vs truth")
    return figs


def _estimates_plot(x, series, table, *, xlabel: str, ylabel: str, title: str) -> bytes:
    """Per-nucleus scatter of estimates against ``x``, with the balance estimate and the
    diagonal; returns the PNG bytes."""
    fig = _figure(4.2, 3.8)
    ax = fig.subplots()
    xs = x.to_numpy(dtype=float)
    for label, values in series:
        ax.plot(xs, values.to_numpy(dtype=float), "o", label=label)
    ax.plot(xs, table["rate_balance"].to_numpy(dtype=float), "s", mfc="none",
            label="balance estimate")
    _diagonal(ax)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def _diagonal(ax) -> None:
    lims = [v for line in ax.get_lines() for v in line.get_xdata().tolist() + line.get_ydata().tolist()
            if np.isfinite(v)]
    if lims:
        lo, hi = min(lims), max(lims)
        ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=0.8, zorder=0)
