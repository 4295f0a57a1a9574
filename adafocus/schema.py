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
  mistake, not something to coerce); a field typed `Annotated[tuple[...],
  LISTS_OK]` also takes a list, since YAML (and JSON) have no tuples;
- `problems(error)` turns a `ValidationError` into lines of the form
  `streams[1].uri: <problem>`, one per problem, that never echo a value (a
  mistyped URI may still hold a password);
- `located(...)` raises relations between keys ("data.root is required when
  data.source is folder") from inside a validator, each at its own key path,
  so they are reported beside every other problem of the file.

The model configuration (adafocus.config.AdaFocusConfig) is a pydantic
dataclass under the same `RULES`, so it stays a plain dataclass to the models.

Torch-free, so config validation in the service never loads PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Strict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

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
    "dataclass_type": "a mapping",
    "dataclass_exact_type": "a mapping",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


#: The house rules as a pydantic config, for Schema and for pydantic dataclasses.
RULES = ConfigDict(extra="forbid", frozen=True, strict=True)
#: Annotation for a tuple field that also takes a list (its items stay strict).
LISTS_OK = Strict(False)
Loc = Sequence[str | int]


class Schema(BaseModel):
    """Base of every validated section: unknown keys are errors, scalars strict,
    values frozen."""

    model_config = RULES


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


def _fields(model: Any) -> dict[str, Any] | None:
    """The pydantic fields of a model or pydantic dataclass; None for anything else."""
    return getattr(model, "__pydantic_fields__", None) if isinstance(model, type) else None


def _allowed_keys(model: type, loc: Loc) -> list[str] | None:
    """The keys allowed at `loc` (the mapping holding the unknown key), found by
    walking the model's fields along the path; None when the path leaves models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list or tuple field: the same model
        fields = _fields(current)
        if fields is None or str(part) not in fields:
            return None
        current = _model_in(fields[str(part)].annotation)
    fields = _fields(current)
    return None if fields is None else list(fields)


def _model_in(annotation: Any) -> Any:
    """The model inside `Section`, `Section | None`, `tuple[Section, ...]`."""
    if _fields(annotation) is not None:
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _message(error: dict[str, Any], model: type) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = _allowed_keys(model, error["loc"][:-1])
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind in ("missing", "missing_argument"):
        what = "item" if error["loc"] and isinstance(error["loc"][-1], int) else "key"
        return f"required {what} is missing"
    if kind == "too_short":
        return f"expected at least {ctx['min_length']} items, got {ctx['actual_length']}"
    if kind == "too_long":
        return f"expected at most {ctx['max_length']} items, got {ctx['actual_length']}"
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


def causes(error: ValidationError, model: type) -> list[tuple[Loc, str]]:
    """(key path, problem) of every problem of `error`, raised validating `model`.

    Values are echoed only where they are numbers or short literals that cannot
    be secrets (a bound that was not met); strings are never echoed."""
    return [(item["loc"], _message(item, model)) for item in error.errors(include_url=False)]


def problems(error: ValidationError, model: type, prefix: str = "") -> list[str]:
    """One `key.path: problem` line per problem of `error` (see `causes`)."""
    lines = []
    for loc, message in causes(error, model):
        path = key_path([prefix, *loc] if prefix else loc)
        lines.append(f"{path or prefix or 'config'}: {message}")
    return lines


def located(title: str, found: Iterable[tuple[Loc, str]]) -> ValidationError:
    """A ValidationError holding one problem per (key path, message).

    Raised inside a validator, pydantic files each problem under the validated
    field at its own key path, beside every other problem of the file (a
    ValueError would be one problem, at the field itself)."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("relation", "{problem}", {"problem": message}),
                         loc=tuple(loc), input=None)
        for loc, message in found])


__all__ = ["LISTS_OK", "RULES", "Schema", "ValidationError", "causes", "key_path", "located",
           "problems"]
