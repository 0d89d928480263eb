"""Take docs/napari_sample_nucleus.png: napari showing the sample nucleus's result.

Runs the default pipeline (what ``chromarate demo`` runs; about 15 s for the fit on 2 CPU cores)
on the bundled sample nucleus, writes the result store, opens it in napari through napari's
own reader choice (``viewer.open(path, plugin=None)``, what drag and drop does, with the
reader preference chromarate sets on activation) and takes a screenshot of the whole
window as a user sees it after the drop: the density, the rate map over it with its
colorbar, the nucleus and trusted-rate outlines and the scale bar, with the "Nucleus statistics" widget
docked.

Needs the napari extra and a display; on a headless Linux machine run it under xvfb::

    pip install -e ".[napari]"
    xvfb-run -a python docs/make_napari_screenshot.py            # fit, then screenshot
    xvfb-run -a python docs/make_napari_screenshot.py --result chromarate-demo/sample_nucleus/1.ome.zarr
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_BYTES = 500_000


def fit_sample(out_dir: Path) -> Path:
    """Run the default pipeline on the sample nucleus (as the napari widget runs it); return
    the written result store."""
    from chromarate._napari._run import InferenceRequest, ResultSaved, RunFailed, iter_inference
    from chromarate._types import FitProgress, NucleusFailed
    from chromarate.config import PipelineConfig
    from chromarate.data import sample_paths

    csv, _ = sample_paths()
    request = InferenceRequest(config=PipelineConfig(), name="sample_nucleus", path=csv,
                               out_dir=out_dir)
    t0 = time.perf_counter()
    store = None
    for event in iter_inference(request):
        if isinstance(event, FitProgress):
            print(f"  step {event.step}/{event.total_steps}  loss {event.loss:.4g}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        elif isinstance(event, NucleusFailed):
            raise SystemExit(f"the sample nucleus failed: {event.error}")
        elif isinstance(event, RunFailed):
            raise SystemExit(f"the run failed: {event.message}")
        elif isinstance(event, ResultSaved):
            store = event.path
    if store is None:
        raise SystemExit("the pipeline found no nucleus in the sample")
    print(f"fit done in {time.perf_counter() - t0:.0f} s: {store}", flush=True)
    return store


def screenshot(store: Path, out: Path, *, size=(1500, 820)) -> None:
    """Open ``store`` in napari as drag and drop does and save a window screenshot."""
    import napari
    from napari.settings import get_settings

    from chromarate._napari._preferences import prefer_chromarate_reader
    from chromarate._napari._stats_widget import StatisticsWidget

    viewer = napari.Viewer(show=True, title="chromarate: sample nucleus")
    try:
        viewer.window._qt_window.resize(*size)
        settings = get_settings()
        settings._save_on_change = False  # leave the user's napari settings alone
        prefer_chromarate_reader(settings)
        layers = viewer.open(str(store), plugin=None)
        rate = next(layer for layer in layers if layer.name.endswith("· rate λ"))
        stats = StatisticsWidget(viewer)
        viewer.window.add_dock_widget(stats, name="Nucleus statistics", area="right")
        viewer.layers.selection.active = rate
        settle()  # let Qt lay out the docks; then fit the image into what is left
        viewer.reset_view(margin=0.05)
        settle()
        image = viewer.screenshot(canvas_only=False, flash=False)
    finally:
        viewer.close()
    save_png(image, out)


def settle(seconds: float = 1.0) -> None:
    """Process Qt events for a while (layout, drawing)."""
    import napari

    app = napari.qt.get_qapp()
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.02)


def save_png(rgba, out: Path) -> None:
    """Write a PNG under MAX_BYTES (fewer colours, then smaller, if needed)."""
    from PIL import Image

    img = Image.fromarray(rgba).convert("RGB")
    for colors, scale in ((None, 1.0), (256, 1.0), (256, 0.8), (128, 0.7)):
        candidate = img if scale == 1.0 else img.resize(
            (int(img.width * scale), int(img.height * scale)), Image.LANCZOS)
        if colors:
            candidate = candidate.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        candidate.save(buf, format="PNG", optimize=True)
        if buf.tell() <= MAX_BYTES:
            out.write_bytes(buf.getvalue())
            print(f"wrote {out} ({buf.tell() / 1000:.0f} kB, {candidate.width}x"
                  f"{candidate.height})")
            return
    raise SystemExit(f"could not get the screenshot under {MAX_BYTES} bytes")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result", type=Path, help="an existing result store of the sample "
                        "nucleus (skips the fit)")
    parser.add_argument("--keep", type=Path, help="folder to keep the fitted result in")
    parser.add_argument("--out", type=Path, default=HERE / "napari_sample_nucleus.png")
    args = parser.parse_args(argv)
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise SystemExit("no display: run this under 'xvfb-run -a'")
    if args.result is not None:
        screenshot(args.result, args.out)
        return
    if args.keep is not None:
        screenshot(fit_sample(args.keep), args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        screenshot(fit_sample(Path(tmp)), args.out)


if __name__ == "__main__":
    main()
