"""The chromatin fit's problem: observed fields, operators, weights and the loss on any
window of the grid (see :mod:`chromarate.fit.loop` for the model and the loss terms).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import torch

from .._types import PhaseFields
from ..config import FitConfig
from ..errors import ChromarateError, StageError
from .blur import blur_correction, observation_blur_nm
from .derivatives import Grid, MollifierBackend, make_backend, make_grid
from .direct import TAPER_PX, closed_form_prior, resolve_radius, restrict_to_report
from .prior import departure_ratio, prior_agreement, rate_variation, shared_departure
from .lattice import _blur, _blur_full, _dilate, _embed, _on_lattice, auto_stride
from .mollifier import apply_2d_numpy, make_kernels
from .networks import make_field_network
from .physics import ChromatinParams, chromatin_residual, chromatin_weak_operator_terms
from .prior import balance_rate, denoise_fields, domain_spacing_um, fit_scales, smooth_taper
from .width import trusted_mask, window_support

__all__ = ["AGREEMENT_WINDOW_SPACINGS", "DEPARTURE_RATIO", "FIELD_DERIVATIVES", "balance_window_um"]

#: Window (domain spacings) of the balance estimate that ``rate_prior="auto"`` compares with
#: the closed form. The no-flux assumption of the balance holds best over whole domains,
#: so the test is made there even though the prior map itself uses the narrower
#: ``fit.prior.balance_window_spacings``: tested on the narrower map, the rendered held-out
#: nucleus with heterochromatin-tied lambda read a positive agreement (0.29, against -0.40
#: at one spacing), took the balance prior and fell 0.861 -> 0.774, 0.08 below its
#: closed form. Not settled: on two fresh draws of the same recipe the test over 0.55
#: spacings did better (0.824 / 0.861 against 0.754 / 0.845; docs/validation-studies.md).
AGREEMENT_WINDOW_SPACINGS = 1.0

#: ``rate_prior="auto"`` with two independent halves of the data: the closed form is the
#: prior when its departure from the balance estimate, in the part both halves share, is
#: at least this many times the balance estimate's own reproducible variation
#: (:func:`chromarate.fit.prior.departure_ratio`). Chosen between the largest figure of
#: the ``simulate`` seeds studied (3.1, balance right) and the smallest of the suite's
#: rendered nuclei with domain-scale or heterochromatin-tied rates (4.5, closed form
#: right); docs/validation-studies.md. Not read where the density scale was not calibrated
#: (:func:`_scale_calibrated`): there the sign of the agreement decides.
DEPARTURE_RATIO = 3.75


#: Operators of the fields the strong-form chromatin residual needs.
FIELD_DERIVATIVES = ("u", "u_x", "u_y", "lap", "bilap")


class _FieldNet(torch.nn.Module):
    """Network for (phi_d, phi_w) around a constant base state."""

    def __init__(self, base: torch.Tensor, config: FitConfig, generator: torch.Generator) -> None:
        super().__init__()
        n = config.network
        self.net = make_field_network(n.architecture, 2, width=n.width, depth=n.depth,
                                      n_fourier=n.fourier_features,
                                      scale_per_um=n.fourier_scale_per_um, generator=generator)
        if n.parameterization == "anchored":
            with torch.no_grad():  # the correction starts at exactly zero
                self.net.head.weight.zero_()
        self.register_buffer("base", base)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.net(xy) + self.base


@dataclass(frozen=True)
class _Window:
    """A window (r0, c0, nh, nw) of the inner grid."""

    r0: int
    c0: int
    nh: int
    nw: int

    def inner(self):
        return slice(self.r0, self.r0 + self.nh), slice(self.c0, self.c0 + self.nw)


@dataclass(frozen=True)
class _WindowConstants:
    """Step-independent tensors of the loss on one window (see ``_Problem._window_constants``)."""

    wgt: torch.Tensor
    wsum: torch.Tensor
    positive: bool
    norm_sq: torch.Tensor | None
    mask: torch.Tensor
    any_mask: bool
    data_idx: torch.Tensor
    obs: torch.Tensor
    inner_y: torch.Tensor
    inner_x: torch.Tensor
    box: "_Box | None"


@dataclass(frozen=True)
class _Box:
    """The part of a window's padded grid the weak-form loss reads (with gradients).

    ``y0, x0, ny, nx``: the fine box in padded-grid pixels; the networks are evaluated at
    the lattice points ``idx`` (flat, row-major in the box's sub-lattice; coordinates
    ``xy``). The weak residual is valid on the box less one halo on each side, i.e. on
    the inner-grid pixels ``[y0, y0 + ny - 2 halo) x [x0, x0 + nx - 2 halo)``; ``wgt`` is
    the residual weight there. ``data_idx``, ``pair_*``: flat box indices of the nucleus
    pixels and of the smoothness pairs (``a - b``: the next pixel down / right minus this
    one), ``lam_b_*`` the prior at those pixels (None without a prior). ``tested``: rows
    and columns of the full linear test-window convolution of the residual box that lie
    on the inner grid.
    """

    y0: int
    x0: int
    ny: int
    nx: int
    idx: torch.Tensor
    xy: torch.Tensor
    wgt: torch.Tensor
    data_idx: torch.Tensor
    pair_y: tuple[torch.Tensor, torch.Tensor]
    pair_x: tuple[torch.Tensor, torch.Tensor]
    lam_b_y: tuple[torch.Tensor, torch.Tensor] | None
    lam_b_x: tuple[torch.Tensor, torch.Tensor] | None
    tested: tuple[slice, slice]


class _Problem:
    """Tensors and operators of one fit, and the loss on any window of the grid."""

    def __init__(self, fields: PhaseFields, config: FitConfig, dev, dtype,
                 radius_noise: tuple[float, float] | None = None,
                 report_radius: float | None = None,
                 halves: tuple[PhaseFields, PhaseFields] | None = None) -> None:
        self.config = config
        self.dev, self.dtype = dev, dtype
        self.pixel_um = fields.pixel_size_nm / 1000.0
        self.radius, self.noise = radius_noise or resolve_radius(fields, config)
        kernels = make_kernels(config.mollifier.kernel, self.radius, degree=config.mollifier.degree,
                               max_order=4, pixel=self.pixel_um)
        if config.derivative_backend == "mollifier":
            self.backend = MollifierBackend(kernels, dev, dtype, method=config.mollifier.method)
        else:  # comparison backends: strong form, free network (checked by FitConfig)
            self.backend = make_backend(config.derivative_backend, pixel=self.pixel_um,
                                        device=dev, dtype=dtype)
        self.halo = h = self.backend.halo
        stride = config.network.evaluation_stride
        self.stride = auto_stride(self.radius, config.network.fourier_scale_per_um,
                                  self.pixel_um) if stride == "auto" else int(stride)
        self.grid = make_grid(fields.shape, self.pixel_um)
        self.params = ChromatinParams.from_config(config.physics)
        self.weak = config.residual_form == "weak"
        self.anchored = config.network.parameterization == "anchored"

        self.mask_np = np.asarray(fields.mask, dtype=bool)
        # residuals are trusted one kernel half-width inside the envelope whichever backend
        # differentiates, so fits with different backends score the same collocation points
        self.trusted_np = trusted_mask(self.mask_np, kernels)
        if self.trusted_np.sum() < 16:
            raise StageError(
                f"nucleus too small for mollifier radius {self.radius:g} px: fewer than 16 pixels "
                "lie one radius inside the envelope, where residuals are scored (whatever "
                "fit.derivative_backend); set a smaller radius, e.g. --set "
                "fit.mollifier.radius_px=8 (config key fit.mollifier.radius_px; 8 suits 40 nm "
                "pixels, e.g. render.pixel_size_nm=40 with denoise.sigma_nm=40 for sparse "
                "data), or render with smaller pixels (render.pixel_size_nm)")
        obs_np = np.stack([fields.phi_d, fields.phi_w]).astype(np.float64)
        self.obs = torch.as_tensor(obs_np, device=dev, dtype=dtype)
        self.mask = torch.as_tensor(self.mask_np, device=dev)
        # smooth residual weight: a sharp cut at the trusted edge would let the fourth-order
        # kernels pass noise undamped (see prior.smooth_taper)
        window_um = config.prior.test_window_um
        window_px = None if window_um is None else window_um / self.pixel_um
        taper_px, window_px = fit_scales(self.trusted_np, TAPER_PX, window_px)
        self.taper_px, self.window_px, self._patch_tapers = taper_px, window_px, {}
        weight_np = smooth_taper(self.trusted_np, taper_px)
        self.weight = torch.as_tensor(weight_np, device=dev, dtype=dtype)
        #: Pixels whose rate the data determine (the residual is scored there and at least
        #: half of the test window's weight lies on scored pixels, width.window_support):
        #: the result's trusted mask.
        self.rate_trusted_np = (self.trusted_np if window_px is None
                                else self.trusted_np & window_support(weight_np, window_px))
        self.rate_trusted_np = restrict_to_report(self.rate_trusted_np, self.mask_np, config,
                                                  self.radius, report_radius, self.pixel_um)
        self.test_kernel = None
        if window_px is not None:
            sig = window_px
            j = np.arange(-int(np.ceil(3 * sig)), int(np.ceil(3 * sig)) + 1)
            k = np.exp(-0.5 * (j / sig) ** 2)
            self.test_kernel = torch.as_tensor(k / k.sum(), device=dev, dtype=dtype)
        self.lam_b = None
        #: Window (um) of the balance estimate, None when no balance map was made.
        self.balance_sigma_um: float | None = None
        #: The rate prior used ("balance", "closed_form" or "flat") and, with "auto", the
        #: correlation of the balance estimate with the closed form that chose it.
        self.rate_prior, self.prior_agreement = config.prior.rate_prior, None
        #: With "auto" and two halves: :func:`chromarate.fit.prior.departure_ratio`.
        self.prior_departure: float | None = None
        #: With "auto" and two halves: :func:`chromarate.fit.prior.shared_departure`.
        self.prior_shared_departure: float | None = None
        #: The two figures disagree: the ratio keeps the balance, the shared departure
        #: reaches ``fit.prior.shared_departure_limit``; the closed form is taken.
        self.prior_ambiguous = False
        #: Relative variation of the windowed closed form over its reported pixels
        #: (:func:`chromarate.fit.prior.rate_variation`), None where it was not solved.
        self.closed_variation: float | None = None
        wanted = config.prior.rate_prior
        if wanted == "closed_form" and config.prior.test_window_um is None:
            # without test windows the closed form is a pointwise ratio, no prior
            raise StageError("fit.prior.rate_prior closed_form needs test windows "
                             "(fit.prior.test_window_um); use balance or auto")
        if wanted in ("balance", "auto", "closed_form"):
            lam_b = None
            if wanted != "closed_form":
                self.balance_sigma_um = balance_window_um(
                    fields, self.mask_np, self.pixel_um, config.prior.test_window_um,
                    spacings=config.prior.balance_window_spacings)
                lam_b = balance_rate(fields.phi_h, fields.phi_e, self.mask_np,
                                     self.balance_sigma_um / self.pixel_um)
                self.rate_prior = "balance"
            if wanted == "closed_form":
                lam_b, reported = closed_form_prior(fields, config, self.radius)
                self.closed_variation = rate_variation(lam_b, reported & self.rate_trusted_np)
                self.rate_prior = "closed_form"
            elif wanted == "auto" and config.prior.test_window_um is not None:
                try:
                    closed, reported = closed_form_prior(fields, config, self.radius)
                except ChromarateError:  # no closed form: no evidence against the balance
                    closed = None
                if closed is not None:
                    self.closed_variation = rate_variation(closed, reported & self.rate_trusted_np)
                    # the no-flux assumption is tested where it holds best: one spacing
                    test_um = balance_window_um(fields, self.mask_np, self.pixel_um,
                                                config.prior.test_window_um,
                                                spacings=AGREEMENT_WINDOW_SPACINGS)
                    lam_test = lam_b if test_um == self.balance_sigma_um else balance_rate(
                        fields.phi_h, fields.phi_e, self.mask_np, test_um / self.pixel_um)
                    self.prior_agreement = prior_agreement(lam_test, closed, reported)
                    if _scale_calibrated(fields):
                        self.prior_departure, self.prior_shared_departure = _half_departure(
                            halves, reported, config, self.radius,
                            self.balance_sigma_um / self.pixel_um)
                    if self.prior_departure is not None:
                        by_ratio = self.prior_departure >= DEPARTURE_RATIO
                        limit = config.prior.shared_departure_limit
                        self.prior_ambiguous = not by_ratio and limit is not None and (
                            self.prior_shared_departure is not None
                            and self.prior_shared_departure >= limit)
                        use_closed = by_ratio or self.prior_ambiguous
                    else:  # NaN: no evidence against the balance
                        use_closed = self.prior_agreement < 0.0
                    if use_closed:
                        lam_b, self.rate_prior = closed, "closed_form"
            self.lam_b = torch.as_tensor(lam_b, device=dev, dtype=dtype)
        phi_h_mean = float(np.mean(fields.phi_h[self.mask_np]))
        phi_e_mean = float(np.mean(fields.phi_e[self.mask_np]))
        self.initial_rate = phi_h_mean / max(phi_e_mean, 1e-3)
        span = float(np.ptp(fields.phi_d[self.mask_np])) or 1.0
        self.sigma = max(self.noise, 1e-3 * span)
        self.scale_r = max(2.0 * phi_h_mean, 1e-3)
        if self.anchored:
            self.base = torch.zeros(1, 2, device=dev, dtype=dtype)
            anchor = self.anchor_np = np.stack(denoise_fields(
                fields.phi_d, fields.phi_w, self.mask_np, self.noise,
                method=config.prior.field_prior, strength=config.prior.field_prior_strength))
            padded = np.pad(anchor, ((0, 0), (h, h), (h, h)), mode="reflect")
            self.offset = torch.as_tensor(padded, device=dev, dtype=dtype)
        else:
            self.base = torch.as_tensor(obs_np[:, self.mask_np].mean(axis=1), device=dev,
                                        dtype=dtype).view(1, 2)
            self.offset = None
        #: The observation blur's term of the residual, ``M lap_eps * c`` on the inner grid
        #: (fit.blur), formed once from the denoised fields; None without blur.
        self.blur_source = None
        blur_um = observation_blur_nm(fields.meta, config.observation_blur_nm) / 1000.0
        if blur_um > 0.0:
            den_d, den_w = (self.anchor_np if self.anchored else denoise_fields(
                fields.phi_d, fields.phi_w, self.mask_np, self.noise,
                method=config.prior.field_prior, strength=config.prior.field_prior_strength))

            def conv(name, f):
                return apply_2d_numpy(f, kernels, name, mode="same")

            c = blur_correction(den_d, den_w, conv, blur_um, self.params.phi_max)
            self.blur_source = torch.as_tensor(self.params.mobility * conv("lap", c),
                                               device=dev, dtype=dtype)
        #: Evaluate the networks (with gradients) only at the lattice points the loss
        #: depends on (see :meth:`_window_constants`); False: everywhere, as without.
        self.restrict_networks = True
        self._window_consts: dict = {}
        self._blur_spectra: dict = {}

    # -- windows ---------------------------------------------------------------------------
    def with_smoothness(self, weight: float) -> "_Problem":
        """This problem with the rate's smoothness weight ``weight``: a shallow copy whose
        configuration differs in ``prior.rate_smoothness`` only. The weight is read by the
        loss alone, so nothing built here (prior map, closed form, kernels) is solved again."""
        twin = copy.copy(self)
        twin.config = self.config.model_copy(update={"prior": self.config.prior.model_copy(
            update={"rate_smoothness": float(weight)})})
        return twin

    def full_window(self) -> _Window:
        return _Window(0, 0, self.grid.ny, self.grid.nx)

    def random_window(self, size: int, rng: np.random.Generator) -> _Window:
        nh, nw = min(size, self.grid.ny), min(size, self.grid.nx)
        # choose windows whose centre lies in the nucleus bounding box
        rows, cols = np.nonzero(self.trusted_np)
        k = rng.integers(len(rows))
        r0 = int(np.clip(rows[k] - nh // 2, 0, self.grid.ny - nh))
        c0 = int(np.clip(cols[k] - nw // 2, 0, self.grid.nx - nw))
        return _Window(r0, c0, nh, nw)

    def tiles(self, size: int | None):
        if size is None or (size >= self.grid.ny and size >= self.grid.nx):
            yield self.full_window()
            return
        for r0 in range(0, self.grid.ny, size):
            for c0 in range(0, self.grid.nx, size):
                yield _Window(r0, c0, min(size, self.grid.ny - r0), min(size, self.grid.nx - c0))

    def _padded_grid(self, w: _Window) -> Grid:
        g, h = self.grid, self.halo
        return Grid(w.nh + 2 * h, w.nw + 2 * h, g.h, g.y0 + (w.r0 - h) * g.h, g.x0 + (w.c0 - h) * g.h)

    def _inner_grid(self, w: _Window) -> Grid:
        g = self.grid
        return Grid(w.nh, w.nw, g.h, g.y0 + w.r0 * g.h, g.x0 + w.c0 * g.h)

    def _patch_taper(self, nh: int, nw: int) -> torch.Tensor:
        """Smooth weight vanishing at a patch's edges (a sharp cut there would let the
        fourth-order kernels pass noise, exactly as at the envelope)."""
        key = (nh, nw)
        if key not in self._patch_tapers:
            self._patch_tapers[key] = torch.as_tensor(
                smooth_taper(np.pad(np.ones((nh - 2, nw - 2), bool), 1), self.taper_px),
                device=self.dev, dtype=self.dtype)
        return self._patch_tapers[key]

    def _weight(self, w: _Window) -> torch.Tensor:
        """Residual weight on a window: the envelope taper, times the patch taper on patches."""
        iy, ix = w.inner()
        wgt = self.weight[iy, ix]
        if (w.nh, w.nw) != (self.grid.ny, self.grid.nx):
            wgt = wgt * self._patch_taper(w.nh, w.nw)
        return wgt

    # -- loss --------------------------------------------------------------------------------
    def _window_constants(self, w: _Window) -> "_WindowConstants":
        """What the loss on window ``w`` needs that does not change from step to step.

        Cached per window (the whole grid, or the last few patches): the residual weight,
        its sum and the squared norm of its test-window blur (the residual's
        normalisation), the pixels of the data and smoothness terms as flat indices, and
        for the weak form the box and lattice points the loss reads (:meth:`_box`).
        """
        key = (w.r0, w.c0, w.nh, w.nw)
        hit = self._window_consts.get(key)
        if hit is not None:
            return hit
        if len(self._window_consts) >= 16:  # random patches: keep only the latest few
            self._window_consts.clear()
        iy, ix = w.inner()
        mask = self.mask[iy, ix]
        with torch.no_grad():
            wgt = self._weight(w)
            wsum = wgt.sum()
            norm_sq = None
            if float(wsum) > 0 and self.test_kernel is not None:
                norm = _blur(wgt, self.test_kernel, self._blur_spectra)
                norm_sq = (norm * norm).sum()
            flat = mask.reshape(-1)
            inner_y = (mask[1:, :] & mask[:-1, :]).reshape(-1)
            inner_x = (mask[:, 1:] & mask[:, :-1]).reshape(-1)
            box = None
            if self.weak and float(wsum) > 0:
                box = self._box(w, wgt, mask, inner_y, inner_x)
        consts = _WindowConstants(
            wgt=wgt, wsum=wsum, positive=float(wsum) > 0, norm_sq=norm_sq, mask=mask,
            any_mask=bool(flat.any()),
            data_idx=torch.nonzero(flat, as_tuple=False).squeeze(1),
            obs=self.obs[:, iy, ix].reshape(2, -1)[:, flat],
            inner_y=torch.nonzero(inner_y, as_tuple=False).squeeze(1),
            inner_x=torch.nonzero(inner_x, as_tuple=False).squeeze(1),
            box=box)
        self._window_consts[key] = consts
        return consts

    def _box(self, w: _Window, wgt, mask, inner_y, inner_x) -> "_Box | None":
        """Where the weak-form loss on window ``w`` reads the networks (see :class:`_Box`).

        The loss reads the fields at the nucleus pixels (data and smoothness terms) and
        the weak residual where the weight is non-zero, which depends on the fields within
        one kernel half-width (``halo``) of there; the bicubic upsampling reads lattice
        points within two lattice steps of those pixels. With gradients, the networks are
        evaluated only at those lattice points (on the sample nucleus about 37 % of the
        lattice; the others are 0), and the upsampling, the convolutions and the test
        window work on their bounding box only: no term of the loss and no gradient
        changes, only the returned fitted field, rate and residual away from the nucleus.
        None when the box would be the whole padded grid with every lattice point.
        """
        h, dev, s = self.halo, self.dev, self.stride
        hp, wp = w.nh + 2 * h, w.nw + 2 * h
        need = torch.zeros(hp, wp, dtype=torch.bool, device=dev)
        need[h:h + w.nh, h:h + w.nw] = wgt != 0
        need = _dilate(need, h)
        need[h:h + w.nh, h:h + w.nw] |= mask
        cy, cx = -(-(hp - 1) // s) + 1, -(-(wp - 1) // s) + 1
        lat = need
        if s > 1:
            cells = torch.zeros(cy * s, cx * s, dtype=torch.bool, device=dev)
            cells[:hp, :wp] = need
            lat = _dilate(cells.view(cy, s, cx, s).any(dim=3).any(dim=1), 2)
        if bool(lat.all()):
            return None
        rows = torch.nonzero(lat.any(dim=1), as_tuple=False).squeeze(1)
        cols = torch.nonzero(lat.any(dim=0), as_tuple=False).squeeze(1)
        ly0, ly1, lx0, lx1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        y0, x0 = ly0 * s, lx0 * s
        ny, nx = min(ly1 * s + 1, hp) - y0, min(lx1 * s + 1, wp) - x0
        if ny <= 2 * h or nx <= 2 * h:
            return None
        # lattice points: indices in the box's sub-lattice, coordinates from the whole one
        # (the same floating-point coordinates as an evaluation everywhere)
        sub = torch.zeros_like(lat)
        sub[ly0:ly1 + 1, lx0:lx1 + 1] = lat[ly0:ly1 + 1, lx0:lx1 + 1]
        full_idx = torch.nonzero(sub.reshape(-1), as_tuple=False).squeeze(1)
        idx = torch.nonzero(lat[ly0:ly1 + 1, lx0:lx1 + 1].reshape(-1), as_tuple=False).squeeze(1)
        pg = self._padded_grid(w)
        xy = Grid(cy, cx, pg.h * s, pg.y0, pg.x0).coords(dev, self.dtype).index_select(0, full_idx)
        ry, rx = ny - 2 * h, nx - 2 * h  # residual box, inner-grid pixels from (y0, x0)

        def box_flat(i, j):  # inner-grid pixel (i, j) -> flat index in the fine box
            return (i + h - y0) * nx + (j + h - x0)

        mi, mj = torch.nonzero(mask, as_tuple=True)
        yi, yj = torch.nonzero(inner_y.view(w.nh - 1, w.nw), as_tuple=True)
        xi, xj = torch.nonzero(inner_x.view(w.nh, w.nw - 1), as_tuple=True)
        lam_b_y = lam_b_x = None
        if self.lam_b is not None:
            lb = self.lam_b[w.inner()]
            lam_b_y, lam_b_x = (lb[yi + 1, yj], lb[yi, yj]), (lb[xi, xj + 1], lb[xi, xj])
        p = 0 if self.test_kernel is None else (self.test_kernel.numel() - 1) // 2
        tested = (slice(max(0, p - y0), min(ry + 2 * p, w.nh - y0 + p)),
                  slice(max(0, p - x0), min(rx + 2 * p, w.nw - x0 + p)))
        return _Box(y0=y0, x0=x0, ny=ny, nx=nx, idx=idx, xy=xy,
                    wgt=wgt[y0:y0 + ry, x0:x0 + rx], data_idx=box_flat(mi, mj),
                    pair_y=(box_flat(yi + 1, yj), box_flat(yi, yj)),
                    pair_x=(box_flat(xi, xj + 1), box_flat(xi, xj)),
                    lam_b_y=lam_b_y, lam_b_x=lam_b_x, tested=tested)

    def _weak_losses_on_box(self, field_net, rate_net, w: _Window, c: "_WindowConstants",
                            autocast):
        """The weak-form loss of :meth:`losses` computed on ``c.box`` only (see :meth:`_box`)."""
        cfg, h, b = self.config, self.halo, c.box
        pg = self._padded_grid(w)
        grid = Grid(b.ny, b.nx, pg.h, pg.y0 + b.y0 * pg.h, pg.x0 + b.x0 * pg.h)
        with autocast():
            both = _on_lattice((field_net, rate_net), grid, self.stride, self.dev, self.dtype,
                               points=(b.idx, b.xy))
        g, lam_box = both[:2], both[2]
        if self.offset is not None:
            oy, ox = w.r0 + b.y0, w.c0 + b.x0
            g = g + self.offset[:, oy:oy + b.ny, ox:ox + b.nx]
        phi_d = g[0]
        r, (fitted,) = self.backend.combine_with(
            chromatin_weak_operator_terms(phi_d, g[1], lam_box, self.params), extra=(("u", phi_d),))
        if self.blur_source is not None:
            ry, rx = r.shape[-2:]
            src = self.blur_source[w.inner()]
            r = r + src[b.y0:b.y0 + ry, b.x0:b.x0 + rx]
        zero = torch.zeros((), device=self.dev, dtype=self.dtype)
        data = zero
        if c.any_mask:
            sel = g.reshape(2, -1).index_select(1, b.data_idx)
            data = ((sel - c.obs) ** 2).mean() / self.sigma**2
        if self.test_kernel is not None:
            tested = _blur_full(b.wgt * r, self.test_kernel, self._blur_spectra)[b.tested]
            res = (tested * tested).sum() / (c.norm_sq * self.scale_r**2)
        else:
            res = (b.wgt * r * r).sum() / (c.wsum * self.scale_r**2)
        flat = lam_box.reshape(-1)

        def diff(pair, prior):
            hi, lo = flat.index_select(0, pair[0]), flat.index_select(0, pair[1])
            if prior is not None:
                hi, lo = hi - prior[0], lo - prior[1]
            return (hi - lo) / self.pixel_um

        smooth = zero
        if c.inner_y.numel() and c.inner_x.numel():
            gy, gx = diff(b.pair_y, b.lam_b_y), diff(b.pair_x, b.lam_b_x)
            smooth = 0.5 * ((gy**2).mean() + (gx**2).mean())
        total = cfg.data_weight * data + cfg.residual_weight * res + cfg.prior.rate_smoothness * smooth
        # outputs on the window (0 off the box; valid where the loss reads them)
        fitted = _embed(fitted, b.y0, b.x0, w.nh, w.nw)
        r = _embed(r, b.y0, b.x0, w.nh, w.nw)
        lam = _embed(lam_box, b.y0 - h, b.x0 - h, w.nh, w.nw)
        return total, {"data": data, "residual": res, "smooth": smooth}, (fitted, lam, r)

    def losses(self, field_net, rate_net, w: _Window, autocast=contextlib.nullcontext):
        """Total loss, its terms and ``(fitted phi_d, lambda, residual)`` on window ``w``.

        With gradients enabled and :attr:`restrict_networks` (the default), the weak-form
        loss evaluates the networks only at the lattice points it depends on and works on
        their bounding box (see :meth:`_box`): the loss and its gradients are those of the
        evaluation everywhere, while the returned fitted field, rate and residual hold only
        on the nucleus (and where the residual has weight). Without gradients (the final
        assembly) everything is evaluated everywhere. The weak residual and the fitted field come
        from one batched FFT pair (:meth:`MollifierBackend.combine_with`).
        """
        cfg, h = self.config, self.halo
        iy, ix = w.inner()
        c = self._window_constants(w)
        pg = self._padded_grid(w)
        wgt = c.wgt
        offset = None
        if self.offset is not None:
            offset = self.offset[:, w.r0:w.r0 + w.nh + 2 * h, w.c0:w.c0 + w.nw + 2 * h]
        if self.weak and c.box is not None and self.restrict_networks and torch.is_grad_enabled():
            return self._weak_losses_on_box(field_net, rate_net, w, c, autocast)
        if self.weak:
            with autocast():
                both = _on_lattice((field_net, rate_net), pg, self.stride, self.dev, self.dtype)
            g, lam_pad = both[:2], both[2]
            if offset is not None:
                g = g + offset
            phi_d = g[0]
            r, (fitted,) = self.backend.combine_with(
                chromatin_weak_operator_terms(phi_d, g[1], lam_pad, self.params),
                extra=(("u", phi_d),))
            lam = lam_pad[h:h + w.nh, h:h + w.nw]
            pred = g[:, h:h + w.nh, h:h + w.nw]
            if self.blur_source is not None:
                r = r + self.blur_source[iy, ix]
        else:
            # derivatives are needed only where the residual has weight (nested autograd's
            # cost grows with the points; the convolution backends ignore ``where``)
            f = self.backend.fields(field_net, self._inner_grid(w), FIELD_DERIVATIVES, offset=offset,
                                    where=wgt > 0)
            d = {k: v[0] for k, v in f.items()}
            wf = {k: v[1] for k, v in f.items()}
            lam = rate_net(self._inner_grid(w).coords(self.dev, self.dtype)).view(w.nh, w.nw)
            r = chromatin_residual(d, wf, lam, self.params)
            if self.blur_source is not None:
                r = r + self.blur_source[iy, ix]
            fitted = f["u"][0]
            pred = f["u"]
        zero = torch.zeros((), device=self.dev, dtype=self.dtype)
        data = zero
        if c.any_mask:
            sel = pred.reshape(2, -1).index_select(1, c.data_idx)
            data = ((sel - c.obs) ** 2).mean() / self.sigma**2
        if not c.positive:
            res = zero
        elif self.test_kernel is not None:
            # residual tested against Gaussian windows: noise is integrated by parts away
            tested = _blur(wgt * r, self.test_kernel, self._blur_spectra)
            res = (tested * tested).sum() / (c.norm_sq * self.scale_r**2)
        else:
            res = (wgt * r * r).sum() / (c.wsum * self.scale_r**2)
        dev_lam = lam if self.lam_b is None else lam - self.lam_b[iy, ix]
        smooth = zero
        if c.inner_y.numel() and c.inner_x.numel():
            gy = (dev_lam[1:, :] - dev_lam[:-1, :]).reshape(-1).index_select(0, c.inner_y) / self.pixel_um
            gx = (dev_lam[:, 1:] - dev_lam[:, :-1]).reshape(-1).index_select(0, c.inner_x) / self.pixel_um
            smooth = 0.5 * ((gy**2).mean() + (gx**2).mean())
        total = cfg.data_weight * data + cfg.residual_weight * res + cfg.prior.rate_smoothness * smooth
        return total, {"data": data, "residual": res, "smooth": smooth}, (fitted, lam, r)


def _scale_calibrated(fields: PhaseFields) -> bool:
    """Whether the departure rule may read ``fields``: not when the density-scale
    calibration was skipped (``meta["calibration"]["method"] == "none"``, a nucleus too
    small to calibrate). An uncalibrated scale leaves a bias in the closed form that both
    halves share, which the rule would read as structure the balance cannot see (the
    small nucleus of ``experiments/prior_departure.py quick``: figure 168, closed form
    r 0.375 against 0.962 under the balance). Fields without a record (given directly)
    carry the caller's scale and are read."""
    return (fields.meta.get("calibration") or {}).get("method") != "none"


def _half_departure(halves: tuple[PhaseFields, PhaseFields] | None, reported: np.ndarray,
                    config: FitConfig, radius_px: float,
                    balance_sigma_px: float) -> tuple[float | None, float | None]:
    """``(departure_ratio, shared_departure)`` (:mod:`chromarate.fit.prior`) of two halves'
    fields with the fit's settings, over the pixels the closed form reports in the whole
    and in both halves; each None without halves, when a half has no closed form, or
    when the figure is not finite."""
    if halves is None:
        return None, None
    balances, closeds, where = [], [], np.asarray(reported, dtype=bool)
    for half in halves:
        try:
            closed, rep = closed_form_prior(half, config, radius_px)
        except ChromarateError:
            return None, None
        m = np.asarray(half.mask, dtype=bool)
        balances.append(balance_rate(half.phi_h, half.phi_e, m, balance_sigma_px))
        closeds.append(closed)
        where = where & rep
    pairs = ((balances[0], balances[1]), (closeds[0], closeds[1]), where)
    figures = (departure_ratio(*pairs), shared_departure(*pairs))
    return tuple(float(f) if np.isfinite(f) else None for f in figures)


def balance_window_um(fields: PhaseFields, mask: np.ndarray, pixel_um: float,
                      test_window_um: float | None, *, spacings: float) -> float:
    """Window (um) of the balance prior: ``spacings`` domain spacings of the nucleus'
    heterochromatin, at least the test window (0.3 um when the spacing cannot be measured)."""
    spacing = domain_spacing_um(fields.phi_h, mask, pixel_um)
    floor = test_window_um or 0.15
    return float(max(spacings * spacing, floor)) if np.isfinite(spacing) else max(0.3, floor)


def _evaluation(prob: _Problem):
    """No-gradient context for evaluations, except for nested autograd, which needs the
    graph to form its derivatives even when nothing is trained."""
    return contextlib.nullcontext() if prob.backend.name == "autograd" else torch.no_grad()
