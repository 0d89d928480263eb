"""The validation suite of issue 12: a fixed list of cases per seed.

Two seed sets are fixed: :data:`DEV_SEEDS`, for development and tuning, and
:data:`UNSEEN_SEEDS`, held out. The unseen set must never be run or looked at while fit
or calibration settings are being tuned; it is run once, on the final settings, to check
that the development scores carry over.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from .cases import Case, quick_version

__all__ = ["DEV_SEEDS", "UNSEEN_SEEDS", "QUICK_MAX_PX", "QUICK_MAX_PX_LOCALIZATIONS", "case_by_name", "suite",
           "suite_for_set"]

#: Seeds for development and tuning.
DEV_SEEDS = (101,)

#: Held-out seeds: never run or inspect these while tuning (see the module docstring).
UNSEEN_SEEDS = (202,)

#: Grid side of the quick cases on the fields path.
QUICK_MAX_PX = 64

#: Grid side of the quick cases on the localizations path (the pipeline's segmentation
#: drops objects under 1 um^2, so these nuclei stay about 1.5 um across).
QUICK_MAX_PX_LOCALIZATIONS = 96


def _cli_case(name: str, size: int) -> Case:
    """The nucleus of ``chromarate simulate --size <size>`` (20 nm pixels, radii
    2.3 and 2.0 um scaled by size * 20 nm / 5.12 um, smooth random rate in [1, 2.4] of
    length 1.5 um, 250,000 localizations with 10-20 nm precision and 3 % background)."""
    scale = size * 20.0 / 1000.0 / 5.12
    return Case(name=name, family="smooth", size_px=size, pixel_nm=20.0,
                nucleus_um=2 * 2.3 * scale, aspect=2.0 / 2.3, path="localizations",
                n_localizations=250_000, precision_nm=(10.0, 20.0), background_fraction=0.03,
                rate_range=(1.0, 2.4), length_um=1.5)


def _base_cases() -> list[Case]:
    """The cases of one seed (seed and index filled in by :func:`suite`)."""
    C = Case
    return [
        # fields path, every family, noise 0 / 1 / 5 %, both forward models
        C("bump-box-n0", "bump", size_px=128, nucleus_um=2.0, length_um=0.45),
        C("bump-env-n1", "bump", size_px=128, nucleus_um=2.0, length_um=0.45, model="envelope",
          noise=0.01),
        C("domains-box-n1", "domains", size_px=160, nucleus_um=2.6, rate_range=(0.8, 2.0),
          noise=0.01),
        C("domains-irr-env-n5", "domains", size_px=160, nucleus_um=2.6, rate_range=(0.8, 2.0),
          envelope="irregular", model="envelope", noise=0.05),
        C("step-box-n1", "step", size_px=128, nucleus_um=2.0, rate_range=(0.6, 1.8), noise=0.01),
        C("step-irr-env-30nm-n1", "step", size_px=128, pixel_nm=30.0, nucleus_um=3.0,
          rate_range=(0.6, 1.8), envelope="irregular", model="envelope", noise=0.01),
        C("hetero-box-n1", "hetero", size_px=128, nucleus_um=2.0, rate_range=(0.8, 2.4),
          length_um=0.1, noise=0.01),
        C("hetero-irr-env-n5", "hetero", size_px=128, nucleus_um=2.0, rate_range=(0.8, 2.4),
          length_um=0.1, envelope="irregular", model="envelope", noise=0.05),
        C("constant-box-n1", "constant", size_px=96, nucleus_um=1.5, rate_range=(0.6, 2.5),
          noise=0.01),
        C("fine-box-15nm-n0", "fine", size_px=160, pixel_nm=15.0, nucleus_um=1.9,
          length_um=0.8),
        C("fine-env-15nm-n1", "fine", size_px=160, pixel_nm=15.0, nucleus_um=1.9,
          length_um=0.8, model="envelope", noise=0.01),
        # sizes: a 1.5 um nucleus at 10 nm, a 15 um one at 40 nm
        C("small-1.5um-10nm-env-n1", "bump", size_px=192, pixel_nm=10.0, nucleus_um=1.5,
          length_um=0.3, model="envelope", noise=0.01),
        C("large-15um-40nm-n1", "domains", size_px=400, pixel_nm=40.0, nucleus_um=15.0,
          aspect=0.75, rate_range=(0.8, 2.0), noise=0.01),
        # localizations path through the pipeline
        _cli_case("cli-size96-loc250k", 96),
        _cli_case("cli-size128-loc250k", 128),
        C("bump-irr-env-loc50k", "bump", size_px=128, nucleus_um=2.0, length_um=0.45,
          envelope="irregular", model="envelope", path="localizations", n_localizations=50_000,
          precision_nm=(15.0, 30.0), background_fraction=0.05, blinking=1.5),
        C("domains-box-loc1M", "domains", size_px=192, nucleus_um=3.2, rate_range=(0.8, 2.0),
          path="localizations", n_localizations=1_000_000, precision_nm=(10.0, 20.0),
          background_fraction=0.02, blinking=2.0),
        C("hetero-irr-env-loc250k", "hetero", size_px=160, nucleus_um=2.6,
          rate_range=(0.8, 2.4), length_um=0.1, envelope="irregular", model="envelope",
          path="localizations", n_localizations=250_000, precision_nm=(10.0, 30.0),
          background_fraction=0.05, blinking=1.3),
        C("constant-box-loc250k", "constant", size_px=128, nucleus_um=2.0,
          rate_range=(0.6, 2.5), path="localizations", n_localizations=250_000,
          precision_nm=(10.0, 20.0), background_fraction=0.03, blinking=1.5),
    ]


def suite(seeds: Iterable[int], *, quick: bool = False) -> list[Case]:
    """The validation cases for a set of seeds.

    For every seed the same 19 cases (see :func:`_base_cases` in the source, and the
    report of issue 12): every rate family, nuclei 1.5-15 um across at 10-40 nm pixels,
    ellipses and irregular envelopes, both forward models, phase fields with 0 / 1 / 5 %
    noise and localizations (50 k - 1 M, 10-30 nm precision, background, blinking),
    including the nuclei of ``chromarate simulate --size 96`` and ``--size 128``. Case
    ``i`` of seed ``s`` is named ``<name>@s`` and draws its randomness from
    ``default_rng([s, i])``.

    Parameters
    ----------
    seeds : iterable of int
        E.g. :data:`DEV_SEEDS` or :data:`UNSEEN_SEEDS`.
    quick : bool
        Small versions for tests and smoke runs: at most :data:`QUICK_MAX_PX` pixels across
        (:data:`QUICK_MAX_PX_LOCALIZATIONS` on the localizations path) at the same pixel
        size (see :func:`chromarate.validation.cases.quick_version`).

    Returns
    -------
    list of Case
    """
    out = []
    for seed in seeds:
        for i, case in enumerate(_base_cases()):
            c = replace(case, name=f"{case.name}@{seed}", seed=int(seed), index=i)
            cap = QUICK_MAX_PX if c.path == "fields" else QUICK_MAX_PX_LOCALIZATIONS
            out.append(quick_version(c, cap) if quick else c)
    return out


def suite_for_set(name: str, *, quick: bool = False) -> list[Case]:
    """:func:`suite` of a named seed set, ``"dev"`` or ``"unseen"``."""
    seeds = {"dev": DEV_SEEDS, "unseen": UNSEEN_SEEDS}
    if name not in seeds:
        raise ValueError(f"unknown seed set {name!r}; use 'dev' or 'unseen'")
    return suite(seeds[name], quick=quick)


def case_by_name(name: str, *, quick: bool = False, path: str | None = None) -> Case:
    """The suite case named ``NAME@SEED`` (any seed, not only a set's).

    Parameters
    ----------
    name : str
        A case name with its seed, e.g. ``"hetero-irr-env-loc250k@303"``.
    quick : bool
        The small version of the case (:func:`suite`).
    path : {"fields", "localizations"}, optional
        Require the case to take this observation path.

    Returns
    -------
    Case

    Raises
    ------
    ValueError
        If the name has no ``@SEED``, names no case of the suite, or the case takes the
        other path.
    """
    _, _, seed = name.partition("@")
    if not seed.isdigit():
        raise ValueError(f"name cases with their seed, NAME@SEED (got {name!r})")
    cases = {c.name: c for c in suite([int(seed)], quick=quick)}
    if name not in cases:
        raise ValueError(f"{name!r} is not a case of the validation suite")
    if path is not None and cases[name].path != path:
        raise ValueError(f"{name!r} is not a {path} case of the suite")
    return cases[name]

