"""The background ring of every nucleus on a large map (``chromarate.background``)."""

from __future__ import annotations

import numpy as np


class RingBackground:
    """``ring_background`` for each of ``n`` nuclei on a 4096 x 4096 label map: ``scan``
    finds each nucleus by scanning the whole map (what the pipeline did before), ``box``
    gets its box from one :func:`scipy.ndimage.find_objects` pass (what it does now)."""

    params = ([16, 144], ["scan", "box"])
    param_names = ["n", "approach"]

    def setup(self, n, approach):
        side, k = 4096, int(round(np.sqrt(n)))
        step = side // k
        yy, xx = np.mgrid[:step, :step]
        disk = (yy - step / 2) ** 2 + (xx - step / 2) ** 2 < (0.25 * step) ** 2
        self.labels = np.zeros((side, side), np.int32)
        for i in range(k):
            for j in range(k):
                self.labels[i * step:(i + 1) * step, j * step:(j + 1) * step][disk] = i * k + j + 1
        self.density = np.random.default_rng(0).poisson(0.5, (side, side)).astype(np.float32)

    def time_rings(self, n, approach):
        from scipy import ndimage as ndi

        from chromarate.background import ring_background

        boxes = ndi.find_objects(self.labels) if approach == "box" else [None] * n
        for nid, box in enumerate(boxes, start=1):
            ring_background(self.density, self.labels, nid, pixel_size_nm=20.0, box=box)


def main() -> None:
    """Print both approaches' times and their ratio, measured in one run
    (``python -m benchmarks.bench_background``; asv runs the class above)."""
    import time

    for n in RingBackground.params[0]:
        seconds = {}
        for approach in RingBackground.params[1]:
            bench = RingBackground()
            bench.setup(n, approach)
            t0 = time.perf_counter()
            bench.time_rings(n, approach)
            seconds[approach] = time.perf_counter() - t0
        print(f"{n:>4} nuclei: scan {seconds['scan']:.2f} s, box {seconds['box']:.2f} s, "
              f"scan / box {seconds['scan'] / seconds['box']:.1f}")


if __name__ == "__main__":
    main()
