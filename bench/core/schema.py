"""Typed, frozen JSON records on pydantic, read with errors that name the field by its path.

A :class:`Record` is a frozen pydantic model with the rules of a file bench reads: an integer
is never a bool (and never a float), a bool is only ``true``/``false``, text is only text, a float
is an integer or a finite float (stored as a float), a ``Literal`` takes only its values, and a key
the record does not declare is an error, not something silently dropped (a file written by a newer
bench, or a misspelt key of a hand edit, is named, never half read). The same rules hold when a
record is built in code (``Record(...)``), so what is written is what will read back.

:func:`read_record` validates parsed JSON and raises :class:`SchemaError` for the FIRST field that
does not fit (in declaration order, unknown keys last), naming it by its path, the value and what
was expected, e.g. ``field history[3].val.ssim: is 'x', expected a finite number`` or ``field
timing.stated: is not a field of this record (an unknown key: ...)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer

from bench.errors import BenchError

R = TypeVar("R", bound=BaseModel)


class SchemaError(BenchError):
    """A JSON value that does not fit its declared type; ``field`` is its path; ``unknown_key``: the field
    is a key the record does not declare."""

    def __init__(self, field: str, message: str, unknown_key: bool = False):
        super().__init__(f"field {field}: {message}")
        self.field, self.unknown_key = field, unknown_key


class Record(BaseModel):
    """A frozen, strict record of a JSON file (see the module docstring)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", allow_inf_nan=False)
    #: fields added after files were written: left out of the output while None, so that a file written
    #: before a field existed reads and writes back to the same bytes
    omitted_when_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_absent_additions(self, write: Any) -> dict[str, Any]:
        data = write(self)
        for name in self.omitted_when_none:
            if data.get(name, 0) is None:
                del data[name]
        return data

    def replace(self: R, **changes: Any) -> R:
        """A copy with ``changes``, validated like a new record."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})


#: What a value of each pydantic error type was expected to be, in words.
_EXPECTED = {
    "int_type": "an integer", "float_type": "a finite number", "finite_number": "a finite number",
    "string_type": "text", "bool_type": "true or false", "list_type": "a list", "dict_type": "an object",
    "model_type": "an object", "model_attributes_type": "an object", "dataclass_type": "an object",
    "none_required": "null",
}


def _path(loc: tuple[Any, ...]) -> str:
    """``('history', 3, 'val', 'ssim')`` as ``history[3].val.ssim``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_error(exc: ValidationError) -> SchemaError:
    """The first error of a pydantic validation as a :class:`SchemaError` naming its field."""
    errors = exc.errors(include_url=False)
    first = next((e for e in errors if e["type"] != "extra_forbidden"), errors[0])  # a wrong value before a stray key
    where, kind = _path(first["loc"]), first["type"]
    if kind == "missing":
        return SchemaError(where, "is missing")
    if kind == "extra_forbidden":
        return SchemaError(where, "is not a field of this record (an unknown key: a newer bench's, or a hand edit)",
                           unknown_key=True)
    if kind == "literal_error":
        return SchemaError(where, f"is {_show(first['input'])}, expected {first['ctx']['expected']}")
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return SchemaError(where, f"is {_show(first['input'])}, expected {expected}")
    return SchemaError(where, f"is {_show(first['input'])}: {first['msg'][:1].lower()}{first['msg'][1:]}")


def read_record(model: type[R], data: Any) -> R:
    """``data`` (parsed JSON) as a ``model``; :class:`SchemaError` naming the first field that does not fit."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise schema_error(exc) from None


__all__ = ["Record", "SchemaError", "read_record", "schema_error"]
