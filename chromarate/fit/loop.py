"""The mollifier-layer PINN fit, written once as a generator of events.

``iter_fit`` yields :class:`~chromarate._types.FitProgress` events while it trains and a
final :class:`~chromarate._types.FitDone` carrying the :class:`FitResult`; ``fit_rates``
is the plain wrapper. Device and dtype come from the config (or the ``device`` argument);
all tensors are created on that device, never through global defaults.

Model: a coordinate network ``g`` (Fourier MLP, MLP or PirateNet) gives the two phase
fields (phi_d, phi_w) on the grid plus a halo -- by default *anchored*: the observation,
denoised by total variation at the estimated noise level (``fit.field_prior``), plus the
network's correction; a separate, low-frequency network gives lambda >= 0 (softplus).
Both networks are evaluated on a lattice of every ``stride``-th pixel and interpolated
bicubically (``network.evaluation_stride``). The mollifier layer convolves once with
grid-exact kernels; on the FFT path the whole residual costs one inverse transform.
Residual, default weak form::

    r_eps = M (lap_eps * (f'(phi_h) - phi_e) - l^2 bilap_eps * phi_d) + eta_eps * 2 (lambda phi_e - phi_h)

(or the strong form on the mollified fields). The residual is weighted by a smooth taper
that vanishes at the edge of the trusted region and, with ``test_window_um`` set
(default), tested against Gaussian windows ``G * (w r)`` (a Petrov-Galerkin weak form):
both move the fourth-order derivatives off the noise by integration by parts. Loss terms,
each normalised so that 1 means "at the expected size"::

    data     = mean_mask |g - observed|^2 / sigma^2     (sigma: estimated pixel noise)
    residual = sum |G * (w r)|^2 / (sum |G * w|^2 s^2)  (s: size of the reaction term)
    smooth   = mean_mask |grad (lambda - lambda_b)|^2    (um^-2; lambda_b: the local balance
               estimate G*phi_h / G*phi_e with fit.rate_prior "balance", else 0)
    loss     = data_weight * data + residual_weight * residual + rate_smoothness * smooth

Training runs on the whole grid, or on random patches plus the kernel halo when
``patch_size`` is set and smaller than the grid (memory then depends on the patch only);
the final maps are assembled tile by tile. An ensemble gives ``rate_std``: by default a
parametric bootstrap (members 1.. fit the denoised fields plus fresh noise at the data's
local noise level), or plain seed spread (``fit.uncertainty``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from scipy.fft import next_fast_len

from .._types import FitDone, FitProgress, FitResult, PhaseFields
from ..config import FitConfig
from ..device import describe_device, resolve_device, resolve_dtype
from ..errors import StageError
from .derivatives import Grid, MollifierBackend, make_backend, make_grid
from .direct import TAPER_PX, check_fields, invert_direct, rate_terms, resolve_radius
from .engine import ParamGroup, TrainProgress, TrainSettings, iter_train, train
from .mollifier import make_kernels
from .networks import RateNetwork, make_field_network
from .physics import ChromatinParams, chromatin_residual, chromatin_weak_operator_terms
from .prior import balance_rate, denoise_fields, domain_spacing_um, fit_scales, smooth_taper
from .regularise import choose_regularisation
from .uncertainty import windowed_rate_std
from .width import noise_map, trusted_mask

__all__ = ["iter_fit", "fit_rates", "FIELD_DERIVATIVES"]

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
                 radius_noise: tuple[float, float] | None = None) -> None:
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
        window_px = None if config.test_window_um is None else config.test_window_um / self.pixel_um
        taper_px, window_px = fit_scales(self.trusted_np, TAPER_PX, window_px)
        self.taper_px, self._patch_tapers = taper_px, {}
        self.weight = torch.as_tensor(smooth_taper(self.trusted_np, taper_px), device=dev, dtype=dtype)
        self.test_kernel = None
        if window_px is not None:
            sig = window_px
            j = np.arange(-int(np.ceil(3 * sig)), int(np.ceil(3 * sig)) + 1)
            k = np.exp(-0.5 * (j / sig) ** 2)
            self.test_kernel = torch.as_tensor(k / k.sum(), device=dev, dtype=dtype)
        self.lam_b = None
        if config.rate_prior == "balance":
            self.balance_sigma_um = balance_window_um(fields, self.mask_np, self.pixel_um,
                                                      config.test_window_um)
            lam_b = balance_rate(fields.phi_h, fields.phi_e, self.mask_np,
                                 self.balance_sigma_um / self.pixel_um)
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
                method=config.field_prior, strength=config.field_prior_strength))
            padded = np.pad(anchor, ((0, 0), (h, h), (h, h)), mode="reflect")
            self.offset = torch.as_tensor(padded, device=dev, dtype=dtype)
        else:
            self.base = torch.as_tensor(obs_np[:, self.mask_np].mean(axis=1), device=dev,
                                        dtype=dtype).view(1, 2)
            self.offset = None
        #: Evaluate the networks (with gradients) only at the lattice points the loss
        #: depends on (see :meth:`_window_constants`); False: everywhere, as without.
        self.restrict_networks = True
        self._window_consts: dict = {}
        self._blur_spectra: dict = {}

    # -- windows ---------------------------------------------------------------------------
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
        h, dev = self.halo, self.dev
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
        total = cfg.data_weight * data + cfg.residual_weight * res + cfg.rate_smoothness * smooth
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
        else:
            # derivatives are needed only where the residual has weight (nested autograd's
            # cost grows with the points; the convolution backends ignore ``where``)
            f = self.backend.fields(field_net, self._inner_grid(w), FIELD_DERIVATIVES, offset=offset,
                                    where=wgt > 0)
            d = {k: v[0] for k, v in f.items()}
            wf = {k: v[1] for k, v in f.items()}
            lam = rate_net(self._inner_grid(w).coords(self.dev, self.dtype)).view(w.nh, w.nw)
            r = chromatin_residual(d, wf, lam, self.params)
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
        total = cfg.data_weight * data + cfg.residual_weight * res + cfg.rate_smoothness * smooth
        return total, {"data": data, "residual": res, "smooth": smooth}, (fitted, lam, r)


def balance_window_um(fields: PhaseFields, mask: np.ndarray, pixel_um: float,
                      test_window_um: float | None) -> float:
    """Window (um) of the balance prior: one domain spacing of the nucleus' heterochromatin,
    at least the test window (0.3 um when the spacing cannot be measured)."""
    spacing = domain_spacing_um(fields.phi_h, mask, pixel_um)
    floor = test_window_um or 0.15
    return float(max(spacing, floor)) if np.isfinite(spacing) else max(0.3, floor)


def auto_stride(radius_px: float, fourier_scale_per_um: float, pixel_um: float) -> int:
    """Lattice stride for the networks: at most a third of the mollifier radius, and at
    least four lattice points per wavelength of the field network's highest typical
    frequency (three standard deviations of its Fourier features)."""
    finest_um = 1.0 / (3.0 * fourier_scale_per_um)
    return max(1, min(int(radius_px // 3), int(finest_um / (4.0 * pixel_um))))


def _on_lattice(net, grid: Grid, stride: int, dev, dtype, *, points=None) -> torch.Tensor:
    """Network output (channels, ny, nx) on ``grid``, evaluated every ``stride`` pixels and
    interpolated bicubically (exact at the lattice points) when ``stride > 1``.

    Parameters
    ----------
    net : torch.nn.Module or sequence of torch.nn.Module
        One network, or several whose outputs are stacked as channels (in order) and
        upsampled together.
    grid : Grid
    stride : int
    dev, dtype
        Device and dtype of the coordinates and of the output.
    points : (torch.Tensor, torch.Tensor), optional
        ``(idx, xy)``: evaluate only at these lattice points (flat indices into the
        ``cy x cx`` lattice, row-major, and their coordinates); the others are 0.
    """
    nets = tuple(net) if isinstance(net, (list, tuple)) else (net,)
    s = max(1, int(stride))
    cy = -(-(grid.ny - 1) // s) + 1
    cx = -(-(grid.nx - 1) // s) + 1
    if points is None:
        xy = Grid(cy, cx, grid.h * s, grid.y0, grid.x0).coords(dev, dtype)
    else:
        idx, xy = points
    outs = []
    for n in nets:
        o = n(xy).to(dtype)
        outs.append(o[:, None] if o.ndim == 1 else o)
    vals = (outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)).T
    if points is not None:
        vals = vals.new_zeros(vals.shape[0], cy * cx).index_copy(1, idx, vals)
    out = vals.reshape(-1, cy, cx)
    if s == 1:
        return out
    return _upsample_bicubic(out, s)[:, :grid.ny, :grid.nx]


#: Parameter of the cubic convolution kernel, as in ``torch.nn.functional.interpolate``.
_CUBIC_A = -0.75


def _cubic_weights(s: int) -> list[list[float]]:
    """Weights of the 4 lattice neighbours ``i-1 .. i+2`` for the fine points ``s i + t``,
    ``t = 0 .. s-1`` (Keys' cubic convolution with ``a = -0.75``; row ``t = 0`` is 0 1 0 0)."""
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    return [[far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)] for t in (k / s for k in range(s))]


def _upsample_axis(c: torch.Tensor, s: int, dim: int, w: list[list[float]]) -> torch.Tensor:
    n = c.shape[dim]
    last = c.narrow(dim, n - 1, 1)
    padded = torch.cat([c.narrow(dim, 0, 1), c, last, last], dim)  # border replicated
    taps = [padded.narrow(dim, m, n) for m in range(4)]
    phases = []
    for t in range(s):
        acc = None
        for m in range(4):
            if w[t][m] == 0.0:
                continue
            term = taps[m] if w[t][m] == 1.0 else taps[m] * w[t][m]
            acc = term if acc is None else acc + term
        phases.append(acc)
    shape = list(c.shape)
    shape[dim] = n * s
    return torch.stack(phases, dim=dim + 1).reshape(shape).narrow(dim, 0, (n - 1) * s + 1)


def _upsample_bicubic(c: torch.Tensor, s: int) -> torch.Tensor:
    """Bicubic upsampling of (channels, cy, cx) by the integer factor ``s`` through the
    lattice points: (channels, (cy-1) s + 1, (cx-1) s + 1).

    The same interpolant as ``interpolate(..., mode="bicubic", align_corners=True)`` (x
    first, then y; border samples replicated), written as two separable passes of a few
    shifted multiply-adds: the fine points fall at fixed phases ``t / s`` between lattice
    points, so each phase has fixed weights. Its backward pass costs a few elementwise
    operations, where torch's CPU kernel scatters point by point (about 3x slower on the
    sample nucleus, forward and backward).
    """
    w = _cubic_weights(s)
    return _upsample_axis(_upsample_axis(c, s, 2, w), s, 1, w)


def _dilate(a: torch.Tensor, r: int) -> torch.Tensor:
    """Binary dilation of a 2-D bool tensor by a ``(2r+1) x (2r+1)`` square (two 1-D passes)."""
    if r <= 0:
        return a
    x = a.to(torch.float32)[None, None]
    x = torch.nn.functional.max_pool2d(x, (2 * r + 1, 1), stride=1, padding=(r, 0))
    x = torch.nn.functional.max_pool2d(x, (1, 2 * r + 1), stride=1, padding=(0, r))
    return x[0, 0] > 0


def _blur(a: torch.Tensor, k: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
    """Convolution of a 2-D tensor with the separable kernel ``k x k`` (zero padding), by FFT.

    The transform is zero-padded to 5-smooth lengths of at least the field plus half the
    kernel: the circular convolution then wraps around only into outputs that are cropped
    (an output ``o`` in ``[p, p + n)`` reads inputs ``o - j``, ``j`` in ``[0, 2p]``, which stay
    in ``[-p, n + p)``, and ``-p`` wraps to ``F - p >= n``, past the field). The kernel's
    spectrum is kept in ``cache`` (a dict, keyed by the transform size) when one is given.
    """
    p = (k.numel() - 1) // 2
    ny, nx = a.shape
    fy, fx = next_fast_len(ny + p, real=True), next_fast_len(nx + p, real=True)
    key = (fy, fx, k.numel(), k.dtype, str(k.device))
    kspec = None if cache is None else cache.get(key)
    if kspec is None:
        kspec = torch.fft.fft(k, n=fy)[:, None] * torch.fft.rfft(k, n=fx)[None, :]
        if cache is not None:
            cache[key] = kspec
    out = torch.fft.irfft2(torch.fft.rfft2(a, s=(fy, fx)) * kspec, s=(fy, fx))
    return out[p:p + ny, p:p + nx]


def _blur_full(a: torch.Tensor, k: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
    """Full linear convolution of a 2-D tensor with ``k x k``: (ny + 2p, nx + 2p), by FFT
    (transform lengths of at least that, so nothing wraps around; spectrum cached as in
    :func:`_blur`)."""
    p = (k.numel() - 1) // 2
    ny, nx = a.shape
    fy, fx = next_fast_len(ny + 2 * p, real=True), next_fast_len(nx + 2 * p, real=True)
    key = (fy, fx, k.numel(), k.dtype, str(k.device))
    kspec = None if cache is None else cache.get(key)
    if kspec is None:
        kspec = torch.fft.fft(k, n=fy)[:, None] * torch.fft.rfft(k, n=fx)[None, :]
        if cache is not None:
            cache[key] = kspec
    out = torch.fft.irfft2(torch.fft.rfft2(a, s=(fy, fx)) * kspec, s=(fy, fx))
    return out[:ny + 2 * p, :nx + 2 * p]


def _embed(t: torch.Tensor, top: int, left: int, ny: int, nx: int) -> torch.Tensor:
    """``t`` placed with its first pixel at (top, left) of a zero (ny, nx) array (cropped
    where it sticks out)."""
    return torch.nn.functional.pad(t, (left, nx - left - t.shape[-1], top, ny - top - t.shape[-2]))


def _evaluation(prob: _Problem):
    """No-gradient context for evaluations, except for nested autograd, which needs the
    graph to form its derivatives even when nothing is trained."""
    return contextlib.nullcontext() if prob.backend.name == "autograd" else torch.no_grad()


def _train_member(prob: _Problem, seed: int, member: int, t_start: float, history: dict,
                  timings: dict, monitor=None) -> Iterator[FitProgress | tuple]:
    """Train one ensemble member through the engine (:mod:`chromarate.fit.engine`); yields
    progress events, finally ``(field_net, rate_net)``. Adds the pre-training time (if
    any) to ``timings["pretrain"]``."""
    cfg, dev, dtype = prob.config, prob.dev, prob.dtype
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(seed)
    field_net = _FieldNet(prob.base, cfg, gen).to(device=dev, dtype=dtype)
    rate_net = RateNetwork(initial_rate=prob.initial_rate, width=32, depth=2,
                           n_fourier=cfg.rate_fourier_features,
                           scale_per_um=cfg.rate_fourier_scale_per_um,
                           generator=gen).to(device=dev, dtype=dtype)
    if cfg.pretrain_steps:
        t0 = time.perf_counter()
        _pretrain_field(prob, field_net, cfg.pretrain_steps, gen)
        timings["pretrain"] = timings.get("pretrain", 0.0) + time.perf_counter() - t0
    use_amp = cfg.mixed_precision and dev.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    patched = cfg.patch_size is not None and (cfg.patch_size < prob.grid.ny or cfg.patch_size < prob.grid.nx)

    def loss_fn(step):  # a fresh random patch per step (or the whole grid)
        window = prob.random_window(cfg.patch_size, rng) if patched else prob.full_window()
        return prob.losses(field_net, rate_net, window, autocast)[:2]

    def polish_loss():  # one window for the whole polish, drawn after the Adam steps
        window = prob.full_window() if not patched else prob.random_window(cfg.patch_size, rng)
        return lambda step: prob.losses(field_net, rate_net, window, autocast)[:2]

    # the small, smooth rate network gets a larger step: its output must travel O(1) from
    # the mean-relation start, while the field correction stays small
    groups = [ParamGroup(list(field_net.parameters()), cfg.learning_rate),
              ParamGroup(list(rate_net.parameters()), cfg.learning_rate * cfg.rate_learning_rate_factor)]
    settings = TrainSettings(steps=cfg.steps, log_every=cfg.log_every,
                             patience=cfg.early_stopping_patience, lbfgs_steps=cfg.lbfgs_steps)
    watch = None if monitor is None else \
        (lambda step: monitor(member * cfg.steps + step, lambda: _rate_preview(prob, rate_net)))
    total_steps = cfg.steps * cfg.ensemble
    for ev in iter_train(groups, loss_fn, settings, polish_loss=polish_loss,
                         evaluation=lambda: _evaluation(prob), monitor=watch):
        if isinstance(ev, TrainProgress):
            global_step = member * cfg.steps + ev.step
            history["step"].append(global_step)
            history["loss"].append(ev.loss)
            for k, v in ev.terms.items():
                history[k].append(v)
            yield FitProgress(step=global_step, total_steps=total_steps, loss=ev.loss,
                              terms=dict(ev.terms), elapsed_s=time.perf_counter() - t_start)
        else:
            if ev.early_stop is not None:
                history.setdefault("early_stop", []).append(ev.early_stop)
            if ev.polish_loss is not None:
                history.setdefault("lbfgs_loss", []).append(ev.polish_loss)
    yield (field_net, rate_net)


def _rate_preview(prob: _Problem, rate_net) -> np.ndarray:
    """The rate network's current map on the grid (NaN outside the nucleus)."""
    g = prob.grid
    with torch.no_grad():
        lam = rate_net(g.coords(prob.dev, prob.dtype)).view(g.ny, g.nx)
    return np.where(prob.mask_np, lam.cpu().numpy().astype(np.float64), np.nan)


#: Pre-training uses at most this many random nucleus pixels per step (memory bound).
PRETRAIN_BATCH = 65536


def _pretrain_field(prob: _Problem, field_net, steps: int, gen: torch.Generator) -> None:
    """Fit the field network's values at the nucleus pixels to the observation (data only,
    no derivative, so the same for every backend): the warm start of a free network.
    Large nuclei are fitted on random batches of ``PRETRAIN_BATCH`` pixels."""
    cfg = prob.config
    coords = prob.grid.coords(prob.dev, prob.dtype)[prob.mask.reshape(-1)]
    target = prob.obs[:, prob.mask].T
    n = coords.shape[0]

    def loss_fn(step):
        xy, t = coords, target
        if n > PRETRAIN_BATCH:
            idx = torch.randperm(n, generator=gen)[:PRETRAIN_BATCH].to(prob.dev)
            xy, t = coords[idx], target[idx]
        loss = ((field_net(xy) - t) ** 2).mean() / prob.sigma**2
        return loss, {"data": loss}

    train([ParamGroup(list(field_net.parameters()), cfg.learning_rate)], loss_fn,
          TrainSettings(steps=steps, label="field pre-training loss"))


def _bootstrap_fields(fields: PhaseFields, prob: _Problem, seed: int, config: FitConfig,
                      ) -> PhaseFields:
    """A parametric-bootstrap replicate of the observation.

    The denoised fields (the best estimate of the truth) plus fresh Gaussian noise with
    the *local* noise level of the data (:func:`~chromarate.fit.width.noise_map`), phi_w's
    noise correlated with phi_d's as in the data. Fitting replicates shows how much the
    estimate moves under the data's own noise, where that noise is.
    """
    obs = np.stack([fields.phi_d, fields.phi_w]).astype(np.float64)
    anchor = getattr(prob, "anchor_np", None)
    if anchor is None:
        anchor = np.stack(denoise_fields(fields.phi_d, fields.phi_w, prob.mask_np, prob.noise,
                                         method="tv", strength=config.field_prior_strength))
    window = (config.test_window_um or 0.15) / prob.pixel_um
    sd_d = noise_map(obs[0], prob.mask_np, window)
    sd_w = noise_map(obs[1], prob.mask_np, window)
    res = (obs - anchor)[:, prob.mask_np]
    rho = float(np.corrcoef(res)[0, 1]) if res.shape[1] > 2 and np.all(res.std(axis=1) > 0) else 0.0
    rho = float(np.clip(np.nan_to_num(rho), -1.0, 1.0))
    rng = np.random.default_rng([seed, 7919])
    e1, e2 = rng.standard_normal((2,) + obs.shape[1:])
    phi_d = anchor[0] + sd_d * e1
    phi_w = anchor[1] + sd_w * (rho * e1 + np.sqrt(1.0 - rho * rho) * e2)
    return PhaseFields(phi_w=phi_w, phi_d=phi_d, mask=fields.mask,
                       pixel_size_nm=fields.pixel_size_nm, origin_nm=fields.origin_nm)


def _assemble(prob: _Problem, field_net, rate_net):
    """Rate, fitted phi_d and residual on the whole grid, tile by tile, without gradients."""
    ny, nx = prob.grid.ny, prob.grid.nx
    rate = np.full((ny, nx), np.nan)
    fitted = np.full((ny, nx), np.nan)
    resid = np.full((ny, nx), np.nan)
    terms_acc: dict[str, float] = {}
    with _evaluation(prob):
        for w in prob.tiles(prob.config.patch_size):
            _, terms, (f, lam, r) = prob.losses(field_net, rate_net, w)
            iy, ix = w.inner()
            rate[iy, ix] = lam.detach().cpu().numpy()
            fitted[iy, ix] = f.detach().cpu().numpy()
            resid[iy, ix] = r.detach().cpu().numpy()
            for k, v in terms.items():
                terms_acc[k] = terms_acc.get(k, 0.0) + float(v.detach()) * (w.nh * w.nw) / (ny * nx)
    return rate, fitted, resid, terms_acc


def _residual_rate_std(fields: PhaseFields, config: FitConfig, rate: np.ndarray,
                       trusted: np.ndarray) -> np.ndarray:
    """``rate_std`` of a single fit: the sandwich standard deviation of the windowed rate
    from the residuals the fitted map leaves (:mod:`chromarate.fit.uncertainty`)."""
    terms = rate_terms(fields, config)
    weight, window = terms.window_weight(config.test_window_um)
    std = windowed_rate_std(terms.num, terms.den, weight, window, rate)
    return np.where(trusted, std, np.nan)


def iter_fit(fields: PhaseFields, config: FitConfig = FitConfig(), *,
             device: str | None = None, monitor=None) -> Iterator[FitProgress | FitDone]:
    """Fit the rate map of one nucleus, yielding progress events.

    Parameters
    ----------
    fields : PhaseFields
        Observed phase fields of one nucleus.
    config : FitConfig
    device : str, optional
        Overrides ``config.device`` ("auto", "cpu", "cuda:0", ...).
    monitor : callable, optional
        ``monitor(step, rate_map)`` is called at every logged step, before the progress
        event; ``rate_map()`` returns the rate network's current map on the grid (numpy,
        NaN outside the nucleus; the rate network is evaluated at every pixel, not on the
        lattice). For convergence studies and live previews; time spent in it counts in
        the fit's timings.

    Yields
    ------
    FitProgress
        Every ``config.log_every`` steps and at the last step of each ensemble member.
    FitDone
        Once, at the end, with the :class:`FitResult`.

    Raises
    ------
    FitDivergedError
        If the loss becomes non-finite (the message names the step and the terms).
    StageError
        If the fields are inconsistent or the nucleus is too small for the mollifier.
    """
    check_fields(fields)
    if config.method == "direct":
        yield FitDone(invert_direct(fields, config))
        return
    t_start = time.perf_counter()
    config, chosen = choose_regularisation(fields, config)
    dev = resolve_device(device if device is not None else config.device)
    dtype = resolve_dtype(config.dtype)
    prob = _Problem(fields, config, dev, dtype)
    history: dict[str, list] = {"step": [], "loss": [], "data": [], "residual": [], "smooth": []}
    timings: dict[str, float] = {}
    rates, fitted_all, resid_all, terms_all = [], [], [], []
    t_train = time.perf_counter()
    for member in range(config.ensemble):
        nets = None
        member_prob = prob if member == 0 or config.uncertainty == "seeds" else \
            _Problem(_bootstrap_fields(fields, prob, config.seed + member, config), config, dev,
                     dtype, radius_noise=(prob.radius, prob.noise))
        for item in _train_member(member_prob, config.seed + member, member, t_start, history,
                                  timings, monitor):
            if isinstance(item, FitProgress):
                yield item
            else:
                nets = item
        rate, fitted, resid, terms = _assemble(member_prob, *nets)
        rates.append(rate)
        fitted_all.append(fitted)
        resid_all.append(resid)
        terms_all.append(terms)
    train_s = time.perf_counter() - t_train
    mask_np, trusted_np = prob.mask_np, prob.trusted_np
    if config.uncertainty == "seeds" or len(rates) == 1:
        rate = np.mean(rates, axis=0)
        rate_std = np.std(rates, axis=0, ddof=1) if len(rates) > 1 else None
    else:  # parametric bootstrap: estimate from the data, spread of the replicates about it
        rate = rates[0]
        rate_std = np.sqrt(np.mean([(r - rate) ** 2 for r in rates[1:]], axis=0))
    rate_std_source = None if rate_std is None else config.uncertainty
    if rate_std is None and config.test_window_um is not None:
        rate_std_source = "residual"
        t_unc = time.perf_counter()
        rate_std = _residual_rate_std(fields, config, rate, trusted_np)
        timings["uncertainty"] = time.perf_counter() - t_unc
    result = FitResult(
        rate=np.where(mask_np, rate, np.nan).astype(np.float32),
        phi_d_fit=np.mean(fitted_all, axis=0).astype(np.float32),
        residual=np.where(trusted_np, np.mean(resid_all, axis=0), np.nan).astype(np.float32),
        trusted=trusted_np,
        rate_std=None if rate_std is None else np.where(mask_np, rate_std, np.nan).astype(np.float32),
        history=history,
        timings={"fit": time.perf_counter() - t_start, "train": train_s, **timings},
        device=describe_device(dev),
        config=config.model_dump(mode="json"),
        meta={"method": "pinn", "residual_form": config.residual_form,
              "mollifier_radius_px": prob.radius, "noise_phi_d": prob.noise,
              "initial_rate": prob.initial_rate, "ensemble": config.ensemble,
              "rate_std_source": rate_std_source,
              "regularisation": chosen,
              "final_terms": {k: float(np.mean([t[k] for t in terms_all])) for k in terms_all[0]},
              "final_loss": float(history["loss"][-1]) if history["loss"] else None},
    )
    yield FitDone(result)


def fit_rates(fields: PhaseFields, config: FitConfig = FitConfig(), *,
              device: str | None = None) -> FitResult:
    """Infer the rate map lambda = Gamma_me / Gamma_ac of one nucleus.

    Plain wrapper over :func:`iter_fit` (see there for parameters).

    Returns
    -------
    FitResult
    """
    for event in iter_fit(fields, config, device=device):
        if isinstance(event, FitDone):
            return event.result
    raise RuntimeError("iter_fit ended without a result")  # pragma: no cover
