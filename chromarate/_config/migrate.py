"""Reading configs of older layouts: which keys moved where, and the one warning saying so.

Schema versions:

- 1: the fit settings flat under ``fit`` (``fit.steps``, ``fit.rate_smoothness``,
  ``fit.ensemble``, ``fit.uncertainty: seeds``, ...) and ``phi_max`` given twice
  (``phase.phi_max``, which had to equal ``fit.physics.phi_max``).
- 2 (current): the fit settings grouped (``fit.training``, ``fit.prior``,
  ``fit.uncertainty``) and ``phi_max`` once, in ``fit.physics.phi_max``.

The old keys are read whatever the ``version`` says (a version-2 file or Python keywords
may still use them), each moved to its new place, with one
:class:`~chromarate.errors.ConfigDeprecationWarning` naming every moved key. A key given
both the old and the new way with different values is an error. The validated config
is in the new layout, so its dump and :func:`~chromarate.config.config_hash` do not
depend on which layout it was read from.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable

from pydantic import BaseModel

from ..errors import ConfigDeprecationWarning

#: Schema version written into every pipeline config and result; older ones are migrated.
CONFIG_VERSION = 2

#: Context key of ``model_validate(..., context=...)`` that migrates without the warning
#: (re-reading a config stored in a result, which the user cannot edit).
QUIET_MIGRATION = "chromarate_quiet_migration"

_GROUPS = {
    "training": ("steps", "learning_rate", "rate_learning_rate_factor", "lbfgs_steps",
                 "early_stopping_patience", "log_every", "patch_size", "mixed_precision",
                 "pretrain_steps"),
    "prior": ("regularisation", "rate_prior", "rate_smoothness", "test_window_um",
              "rate_fourier_features", "rate_fourier_scale_per_um", "field_prior",
              "field_prior_strength"),
    "uncertainty": ("ensemble",),
}

#: Old flat key under ``fit`` -> its place under ``fit`` now. ``fit.uncertainty`` given as
#: a string (``bootstrap`` or ``seeds``) is the old key of ``fit.uncertainty.method``
#: (:func:`fit_move`, the one place that rule is applied).
FIT_MOVES: dict[str, str] = {old: f"{group}.{old}" for group, olds in _GROUPS.items()
                             for old in olds}


def fit_move(key: str, value: Any) -> str | None:
    """The new place, relative to ``fit``, of an older ``fit`` key given with ``value``.

    A flat key of :data:`FIT_MOVES` moves into its group. ``uncertainty`` was a string
    (the ensemble method) before it became a group, so a string value of it is the old
    key of ``uncertainty.method``; any other value is the group itself and stays.

    Parameters
    ----------
    key : str
        A key directly under ``fit`` (no dots).
    value : object
        Its value.

    Returns
    -------
    str or None
        The dotted key under ``fit`` it is read into, or None when ``key`` is not an
        older one.

    Examples
    --------
    >>> fit_move("steps", 10), fit_move("uncertainty", "seeds")
    ('training.steps', 'uncertainty.method')
    >>> fit_move("uncertainty", {"method": "seeds"}) is None, fit_move("seed", 1) is None
    (True, True)
    """
    if key in FIT_MOVES:
        return FIT_MOVES[key]
    if key == "uncertainty" and isinstance(value, str):
        return "uncertainty.method"
    return None


def _as_dict(value: Any) -> dict[str, Any] | None:
    """A group given as a mapping or a model, as a mapping of the keys it sets; None for
    anything else (left for validation to refuse)."""
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    if isinstance(value, dict):
        return dict(value)
    return None


def migrate_fit(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Move the old flat keys of a ``fit`` mapping into their groups.

    Returns
    -------
    (dict, list of (str, str))
        The mapping in the new layout (``data`` itself when nothing moved) and the
        ``(old, new)`` keys moved, relative to ``fit``.

    Raises
    ------
    ValueError
        If a key is given both the old and the new way with different values.

    Examples
    --------
    >>> new, moved = migrate_fit({"steps": 10, "uncertainty": "seeds", "seed": 1})
    >>> new
    {'seed': 1, 'training': {'steps': 10}, 'uncertainty': {'method': 'seeds'}}
    >>> moved
    [('steps', 'training.steps'), ('uncertainty', 'uncertainty.method')]
    """
    new_places = {k: place for k, v in data.items() if (place := fit_move(k, v)) is not None}
    if not new_places:
        return data, []
    out = dict(data)
    moves: dict[str, list[tuple[str, str, Any]]] = {}  # group -> (old key, field, value)
    for key, place in new_places.items():
        group, field = place.split(".")
        moves.setdefault(group, []).append((key, field, out.pop(key)))
    moved = []
    for group, items in moves.items():
        sub = _as_dict(out.get(group))
        if sub is None:  # a group of the wrong type: let validation say so
            out.update({key: value for key, _, value in items})
            continue
        for key, field, value in items:
            if field in sub and sub[field] != value:
                raise ValueError(
                    f"fit.{key} (an older key of fit.{group}.{field}) is {value!r} but "
                    f"fit.{group}.{field} is {sub[field]!r}; give it once, as "
                    f"fit.{group}.{field}")
            sub[field] = value
            moved.append((key, f"{group}.{field}"))
        out[group] = sub
    return out, moved


def _physics_phi_max(fit: Any) -> Any:
    """``fit.physics.phi_max`` of a fit given as a mapping or a model (its default when
    not given)."""
    from .fit import PhysicsConfig

    physics = fit.get("physics") if isinstance(fit, dict) else getattr(fit, "physics", None)
    if isinstance(physics, dict):
        return physics.get("phi_max", PhysicsConfig.model_fields["phi_max"].default)
    if isinstance(physics, BaseModel):
        return getattr(physics, "phi_max")
    return PhysicsConfig.model_fields["phi_max"].default


def check_phase_phi_max(value: Any, physics_value: Any) -> None:
    """Refuse an old ``phase.phi_max`` that differs from ``fit.physics.phi_max`` (the old
    rule: the two had to be equal)."""
    try:
        differ = abs(float(value) - float(physics_value)) > 1e-12
    except (TypeError, ValueError):
        raise ValueError(f"phase.phi_max must be a number, got {value!r}") from None
    if differ:
        raise ValueError(
            f"phase.phi_max ({value!r}) differs from fit.physics.phi_max "
            f"({physics_value!r}); phi_max is set once now, as fit.physics.phi_max (the "
            "phase stage clips phi_h there): remove phase.phi_max and set "
            "fit.physics.phi_max")


def migrate_pipeline(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Bring a pipeline mapping of any older version to the current layout.

    Returns
    -------
    (dict, list of (str, str))
        The mapping and the dotted ``(old, new)`` keys moved.

    Raises
    ------
    ValueError
        If a key is given both the old and the new way with different values, or
        ``phase.phi_max`` differs from ``fit.physics.phi_max``.
    """
    out = dict(data)
    moved: list[tuple[str, str]] = []
    version = out.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version < CONFIG_VERSION:
        out["version"] = CONFIG_VERSION
    fit = out.get("fit")
    if isinstance(fit, dict):
        fit, fit_moved = migrate_fit(fit)
        out["fit"] = fit
        moved += [(f"fit.{o}", f"fit.{n}") for o, n in fit_moved]
    phase = out.get("phase")
    if isinstance(phase, dict) and "phi_max" in phase:
        phase = dict(phase)
        check_phase_phi_max(phase.pop("phi_max"), _physics_phi_max(fit or {}))
        out["phase"] = phase
        moved.append(("phase.phi_max", "fit.physics.phi_max"))
    return out, moved


def override_key(key: str, value: Any) -> str | None:
    """The current dotted key of an older override key (``fit.steps`` ->
    ``fit.training.steps``; ``fit.uncertainty`` with a string value ->
    ``fit.uncertainty.method``); None when ``key`` is not an older one. ``phase.phi_max``
    has no new place of its own and is checked by the caller."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] == "fit":
        place = fit_move(parts[1], value)
        if place is not None:
            return f"fit.{place}"
    return None


_INTERNAL = ("pydantic", "chromarate._config", "chromarate.config")


def warn_moved(moved: list[tuple[str, str]]) -> None:
    """One :class:`~chromarate.errors.ConfigDeprecationWarning` naming every moved key,
    attributed to the first caller outside the config code."""
    level, frame = 1, sys._getframe(0)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    pairs = ", ".join(f"{old} -> {new}" for old, new in moved)
    warnings.warn(
        f"config keys of an older layout were read at their new place: {pairs}. Write "
        "the new keys (`chromarate config show FILE` prints the file in the new layout); "
        "the old ones will stop working in a future release",
        ConfigDeprecationWarning, stacklevel=level)


def read_older(data: Any, info: Any, migrate: Callable[[dict[str, Any]], tuple[dict[str, Any], list[tuple[str, str]]]],
               *, prefix: str = "") -> Any:
    """Body of a model's ``mode="before"`` validator: move the older keys of ``data`` with
    ``migrate`` and warn once (:func:`warn_moved`, keys named with ``prefix``) unless the
    validation context asks for quiet (:data:`QUIET_MIGRATION`)."""
    if not isinstance(data, dict):
        return data
    data, moved = migrate(data)
    if moved and not (getattr(info, "context", None) or {}).get(QUIET_MIGRATION):
        warn_moved([(prefix + old, prefix + new) for old, new in moved])
    return data
