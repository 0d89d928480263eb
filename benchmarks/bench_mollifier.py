"""Mollifier kernels: building them, and applying them to a field (numpy and torch)."""

from __future__ import annotations

import numpy as np

from ._common import PIXEL_NM, one_torch_thread, smooth_fields


def _clear_kernel_cache() -> None:
    """Forget the 1-D kernels ``make_kernels`` memoises, so each call builds them anew."""
    from chromarate.fit import mollifier

    cached = getattr(mollifier, "_kernel_1d_cached", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


class MakeKernels:
    """``make_kernels(kind, radius_px, max_order=4)``: 1-D kernels of orders 0-4, built cold
    (the memoised 1-D kernels are cleared before every call)."""

    params = (["bump", "wendland"], [8.0, 24.0])
    param_names = ["kind", "radius_px"]

    def setup(self, kind, radius_px):
        from chromarate.fit.mollifier import make_kernels

        self.make_kernels = make_kernels

    def time_make_kernels(self, kind, radius_px):
        _clear_kernel_cache()
        self.make_kernels(kind, radius_px, max_order=4, pixel=PIXEL_NM / 1000.0)

    def peakmem_make_kernels(self, kind, radius_px):
        _clear_kernel_cache()
        self.make_kernels(kind, radius_px, max_order=4, pixel=PIXEL_NM / 1000.0)


class ApplyKernels:
    """The five operators of the fit (``u, u_x, u_y, lap, bilap``) of one field on a
    ``side`` x ``side`` grid, bump kernels of radius 8 px:

    - ``numpy``: ``apply_2d_numpy`` (scipy ``correlate1d``, float64, ``valid`` output);
    - ``torch-direct`` / ``torch-fft``: ``MollifierBackend.convolve`` (float32, no autograd
      graph) with separable ``conv2d`` passes or by FFT.
    """

    params = ([256], ["numpy", "torch-direct", "torch-fft"])
    param_names = ["side", "method"]
    names = ("u", "u_x", "u_y", "lap", "bilap")

    def setup(self, side, method):
        from chromarate.fit.mollifier import make_kernels

        self.kernels = make_kernels("bump", 8.0, max_order=4, pixel=PIXEL_NM / 1000.0)
        h = self.kernels.half_width
        phi_d, _, _ = smooth_fields(side + 2 * h)
        if method == "numpy":
            self.field = phi_d
            return
        import torch

        from chromarate.fit.derivatives import MollifierBackend

        one_torch_thread()
        self.torch = torch
        self.backend = MollifierBackend(self.kernels, torch.device("cpu"), torch.float32,
                                        method=method.split("-")[1])
        self.field = torch.as_tensor(phi_d[None], dtype=torch.float32)
        self._apply()  # lazy initialisation of torch kernels, not timed

    def _apply(self):
        if isinstance(self.field, np.ndarray):
            from chromarate.fit.mollifier import apply_2d_numpy

            return [apply_2d_numpy(self.field, self.kernels, n) for n in self.names]
        with self.torch.no_grad():
            return self.backend.convolve(self.field, self.names)

    def time_apply(self, side, method):
        self._apply()

    def peakmem_apply(self, side, method):
        self._apply()
