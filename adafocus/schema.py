"""One schema mechanism for every file a person writes or the project stores:
the pipeline config, the train config and checkpoint metadata.

Why pydantic (v2): it is the well-kept library made for exactly this (Frigate
validates its camera config the same way), it collects every problem of a file
in one pass instead of stopping at the first, it knows where each problem is
(the key path), and the control API validates request bodies with the very same
models. What this module adds is the project's house rules:

- `Schema`: unknown keys are errors (a misspelt key must never be silently
  ignored) and validated values are frozen;
- scalar fields are strict (`yes` where a number belongs, or "3" for 3, is a
  mistake, not something to coerce); lists are still accepted for tuples, since
  YAML has no tuples;
- `problems(error)` turns a `ValidationError` into lines of the form
  `streams[1].uri: <problem>`, one per problem, that never echo a value (a
  mistyped URI may still hold a password).

Torch-free, so config validation in the service never loads PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


class FieldProblem(ValueError):
    """Raised by a model validator for a problem of one of its fields (or a key path
    below it, "streams[1].id"), so the report names that key and not the section."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


class Schema(BaseModel):
    """Base of every validated section: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def key_path(loc: Sequence[str | int]) -> str:
    """('streams', 1, 'uri') -> 'streams[1].uri'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The keys allowed at `loc` (the mapping holding the unknown key), found by
    walking the model's fields along the path; None when the path leaves models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list or tuple field: the same model
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside `Section`, `Section | None`, `tuple[Section, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _message(error: dict[str, Any], model: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, error["loc"][:-1])
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return "required key is missing"
    if kind in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[kind]}, got {_type_name(error.get('input'))}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {bound}, got {error.get('input')}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"expected {ctx.get('expected', '')}, got {error.get('input')!r}"
    return str(error["msg"])


def problems(error: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """One `key.path: problem` line per problem of `error`, raised validating `model`.

    Values are echoed only where they are numbers or short literals that cannot
    be secrets (a bound that was not met); strings are never echoed."""
    # Unknown keys first: a misspelt key explains the problems that follow from it.
    items = sorted(error.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    lines = []
    for item in items:
        path = key_path([prefix, *item["loc"]] if prefix else item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblem):
            joint = "" if not path or cause.field.startswith("[") else "."
            path = f"{path}{joint}{cause.field}"
        lines.append(f"{path or 'config'}: {_message(item, model)}")
    return lines


__all__ = ["FieldProblem", "Schema", "ValidationError", "key_path", "problems"]
