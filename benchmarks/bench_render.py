"""Rendering localizations into a density map (``chromarate.render.render_density``)."""

from __future__ import annotations

from ._common import localization_table


class RenderDensity:
    """``render_density`` of ``n`` uniform localizations on a 4 um field at 10 nm pixels
    (a 400 x 400 grid plus padding): ``histogram`` (one count per localization) and
    ``gaussian`` (one Gaussian of the localization's precision each)."""

    params = ([100_000, 1_000_000], ["histogram", "gaussian"])
    param_names = ["n", "method"]

    def setup(self, n, method):
        from chromarate._types import Localizations
        from chromarate.config import RenderConfig
        from chromarate.render import render_density

        self.render = render_density
        self.locs = Localizations(localization_table(n))
        self.config = RenderConfig(pixel_size_nm=10.0, method=method)

    def time_render(self, n, method):
        self.render(self.locs, self.config)

    def peakmem_render(self, n, method):
        self.render(self.locs, self.config)
