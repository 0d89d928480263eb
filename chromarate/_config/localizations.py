"""Config models of the localization-table stages: reading, filtering and drift correction."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import _Model

__all__ = ["DriftConfig", "FilterConfig", "ReadConfig"]


class ReadConfig(_Model):
    """What an input file's table may leave open, stated for every input of a batch (both
    unset by default: a file that needs them is refused, naming the setting).

    Attributes
    ----------
    units : {"nm", "um", "px"} or None
        Length unit of coordinate columns whose header states none (a CSV with a plain
        ``x, y`` header); it never overrides a unit the file states. With ``"px"`` a file
        that records no pixel size of its own (a DECODE file records ``px_size``) also needs
        ``pixel_size_nm``, and is refused naming it.
    pixel_size_nm : float or None
        Camera pixel size converting coordinates stored in pixels (a ``[px]`` header, a
        Picasso file without its YAML sidecar, ``units: px``). A pixel size the file
        records (a Picasso YAML) is kept.

    Each is used only where a file leaves it open, and only by the formats that take it
    (``read_localizations(..., defaults=...)``); rendered TIFF inputs are read with the
    pixel size they record. Both are part of the config hash: changing them refits.
    """

    units: Literal["nm", "um", "px"] | None = None
    pixel_size_nm: float | None = Field(None, gt=0.0, le=1e5)

    def options(self) -> dict[str, object]:
        """The reader options set (``read_localizations(..., defaults=...)``)."""
        return {k: v for k, v in (("units", self.units), ("pixel_size_nm", self.pixel_size_nm))
                if v is not None}


class FilterConfig(_Model):
    """Filtering and blinking merge of a localization table (every filter is off by default).

    Attributes
    ----------
    max_precision_nm : float or None
        Keep rows with ``precision_nm <= max_precision_nm`` (NaN precision is removed).
    min_photons : float or None
        Keep rows with ``photons >= min_photons`` (NaN photons are removed).
    frame_range : (int, int) or None
        Keep rows with ``start <= frame < stop`` (0-based, half-open).
    region_nm : ((y0, x0), (y1, x1)) or None
        Keep rows with ``y0 <= y_nm < y1`` and ``x0 <= x_nm < x1`` (half-open, like pixels).
    merge_blinking : bool
        After filtering, merge localizations of one blinking event (see
        :func:`chromarate.filtering.merge_blinking`).
    merge_radius_nm : float
        Largest distance between linked localizations of one event.
    merge_max_gap_frames : int
        Number of missing frames allowed inside one event (0: strictly consecutive frames).
    """

    max_precision_nm: float | None = Field(None, gt=0.0)
    min_photons: float | None = Field(None, ge=0.0)
    frame_range: tuple[int, int] | None = None
    region_nm: tuple[tuple[float, float], tuple[float, float]] | None = None
    merge_blinking: bool = False
    merge_radius_nm: float = Field(30.0, gt=0.0, le=1e4)
    merge_max_gap_frames: int = Field(1, ge=0, le=10_000)

    @model_validator(mode="after")
    def _check_ranges(self) -> "FilterConfig":
        if self.frame_range is not None:
            start, stop = self.frame_range
            if start < 0 or stop <= start:
                raise ValueError(
                    f"filter.frame_range must be (start, stop) with 0 <= start < stop, "
                    f"got {self.frame_range}"
                )
        if self.region_nm is not None:
            (y0, x0), (y1, x1) = self.region_nm
            vals = (y0, x0, y1, x1)
            if not all(v == v and abs(v) != float("inf") for v in vals):
                raise ValueError(f"filter.region_nm must be finite, got {self.region_nm}")
            if not (y1 > y0 and x1 > x0):
                raise ValueError(
                    f"filter.region_nm must be ((y0, x0), (y1, x1)) with y1 > y0 and x1 > x0, "
                    f"got {self.region_nm}"
                )
        return self


class DriftConfig(_Model):
    """Drift estimation by redundant cross-correlation (RCC).

    Attributes
    ----------
    n_segments : int
        Number of time segments the frames are split into (equal frame spans).
    pixel_size_nm : float
        Pixel of the images rendered for the correlations.
    blur_nm : float
        Standard deviation of a Gaussian applied to each segment image before correlating
        (smooths shot noise and makes the correlation peak well sampled for the sub-pixel
        fit); 0 disables it.
    subpixel : {"gaussian", "upsample"}
        Sub-pixel peak location: 3-point Gaussian (log-parabola) fit per axis of the
        blurred correlation (default; fast and, with ``blur_nm`` about one pixel, as
        accurate as upsampling in tests), or matrix-multiply DFT upsampling of the
        correlation around its peak (slower: two matrix products per pair).
    upsample_factor : int
        Refinement factor of the ``"upsample"`` method (1/upsample_factor pixel steps).
    max_drift_nm : float
        Largest drift between any two segments; the correlation peak is searched only
        within this shift.
    outlier_sigma : float or None
        Pairs whose residual length exceeds ``outlier_sigma * s`` (and a tenth of a pixel)
        are dropped one at a time, worst first, and the system is re-solved, as long as
        every segment stays constrained. ``s`` is the robust per-axis residual standard
        deviation, ``median(|residual|) / sqrt(2 ln 2)`` (Rayleigh median); with the
        default 4 a consistent pair is dropped with probability exp(-8). None keeps all.
    min_localizations_per_segment : int
        Fewer localizations in any segment raises a StageError.
    """

    n_segments: int = Field(10, ge=2, le=1000)
    pixel_size_nm: float = Field(20.0, gt=0.5, le=1000.0)
    blur_nm: float = Field(20.0, ge=0.0, le=1000.0)
    subpixel: Literal["gaussian", "upsample"] = "gaussian"
    upsample_factor: int = Field(20, ge=1, le=1000)
    max_drift_nm: float = Field(500.0, gt=0.0, le=1e5)
    outlier_sigma: float | None = Field(4.0, gt=0.0)
    min_localizations_per_segment: int = Field(100, ge=1)
