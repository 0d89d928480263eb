"""The base of every config model: unknown keys refused, frozen, defaults validated, and a
boolean never taken for a number."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _allows_bool(annotation: Any) -> bool:
    """Whether a field's type admits ``True``/``False`` as themselves (``bool`` or ``Any``
    anywhere in it, or a Literal of a boolean)."""
    if annotation is bool or annotation is Any:
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return any(isinstance(a, bool) for a in typing.get_args(annotation))
    return any(_allows_bool(a) for a in typing.get_args(annotation))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads ``true`` as 1 where a number is expected: refuse it by name."""
        items = value if isinstance(value, (list, tuple)) else (value,)
        if any(isinstance(v, bool) for v in items):
            field = cls.model_fields.get(info.field_name or "")
            if field is not None and not _allows_bool(field.annotation):
                raise ValueError(f"expected a number or a setting, not the boolean {value!r}")
        return value
