"""Draw the demo's inferred rate map next to the truth (docs/demo_rate_vs_truth.png).

Usage::

    chromarate demo --out chromarate-demo
    python docs/make_demo_figure.py chromarate-demo docs/demo_rate_vs_truth.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from chromarate.analysis import rate_correlation, resample_to_grid  # noqa: E402
from chromarate.data import sample_paths  # noqa: E402
from chromarate.io.truth import read_truth  # noqa: E402
from chromarate.io.zarr_store import read_result  # noqa: E402


def main(demo_dir: str, out_png: str) -> None:
    stack = read_result(Path(demo_dir) / "sample_nucleus" / "1.ome.zarr")
    truth = read_truth(sample_paths()[1])
    rate = stack.channels["rate"]
    p, origin = stack.pixel_size_nm, stack.origin_nm
    true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                            src_origin_nm=truth["origin_nm"], shape=rate.shape, pixel_nm=p,
                            origin_nm=origin)
    mask = stack.labels["nucleus"].astype(bool)
    true = np.where(mask, true, np.nan)
    trusted = np.isfinite(stack.channels["residual"])
    corr = rate_correlation(rate, trusted, pixel_nm=p, origin_nm=origin, truth=truth)
    ny, nx = rate.shape
    ext = [origin[1] / 1000, (origin[1] + nx * p) / 1000, (origin[0] + ny * p) / 1000, origin[0] / 1000]
    fig, ax = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    im0 = ax[0].imshow(stack.channels["denoised"], cmap="magma", extent=ext)
    ax[0].set_title("H2B density (denoised)")
    fig.colorbar(im0, ax=ax[0], shrink=0.8, label="localizations / pixel")
    lo, hi = np.nanpercentile(true, [1, 99])
    im1 = ax[1].imshow(true, cmap="viridis", vmin=lo, vmax=hi, extent=ext)
    ax[1].set_title("true rate  $\\lambda = \\Gamma_{me}/\\Gamma_{ac}$")
    fig.colorbar(im1, ax=ax[1], shrink=0.8)
    r = np.where(mask, rate, np.nan)
    lo2, hi2 = np.nanpercentile(r, [1, 99])
    im2 = ax[2].imshow(r, cmap="viridis", vmin=lo2, vmax=hi2, extent=ext)
    ax[2].set_title(f"inferred rate (Pearson r = {corr:.3f})")
    fig.colorbar(im2, ax=ax[2], shrink=0.8)
    for a in ax:
        a.set_xlabel("x (µm)")
        a.set_ylabel("y (µm)")
    fig.savefig(out_png, dpi=90)
    print(f"wrote {out_png} (corr {corr:.3f})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
