"""Read JSON into typed, frozen dataclasses, naming the first field that does not fit.

:func:`from_json` walks a dataclass's type hints: ``int`` (never a bool), ``float`` (an int or a
finite float), ``str``, ``bool``, ``Any``, ``X | None``, ``Literal[...]``, ``list[T]``,
``dict[str, T]``/``Mapping[str, T]`` and nested dataclasses. A value that does not fit raises
:class:`SchemaError` whose message names the field by its path (``test.mse``,
``history[3].val.ssim``), the value and the expected type. A dataclass may define a classmethod
``from_json_fields(cls, fields)`` to finish construction from its checked fields.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from typing import Any, Literal, Mapping, Union

from bench.errors import BenchError


class SchemaError(BenchError):
    """A JSON value that does not fit its declared type; ``field`` is its path."""

    def __init__(self, field: str, message: str):
        super().__init__(f"field {field}: {message}")
        self.field = field


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "text"
    if tp is bool:
        return "true or false"
    if tp is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return "a list"
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        return "an object"
    if dataclasses.is_dataclass(tp):
        return "an object"
    return str(tp)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def from_json(tp: Any, value: Any, where: str = "") -> Any:
    """``value`` (parsed JSON) as type ``tp``; SchemaError naming the field at ``where`` otherwise."""
    origin = typing.get_origin(tp)
    name = where or "(top level)"

    def bad() -> SchemaError:
        return SchemaError(name, f"is {_show(value)}, expected {_describe(tp)}")

    if tp is Any:
        return value
    if tp is type(None):
        if value is not None:
            raise bad()
        return None
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return from_json(arg, value, where)
            except SchemaError as exc:
                errors.append(exc)
        # one non-null alternative: its own (deeper) message is the useful one
        if len(errors) == 1:
            raise errors[0]
        raise bad()
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad()
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if origin is list:
        if not isinstance(value, list):
            raise bad()
        (item,) = typing.get_args(tp) or (Any,)
        return [from_json(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        if not isinstance(value, dict):
            raise bad()
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {k: from_json(item, v, f"{where}.{k}" if where else k) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        hints = typing.get_type_hints(tp)
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(tp):
            path = f"{where}.{f.name}" if where else f.name
            if f.name not in value:
                has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
                if has_default:
                    continue
                raise SchemaError(path, "is missing")
            fields[f.name] = from_json(hints[f.name], value[f.name], path)
        finish = getattr(tp, "from_json_fields", None)
        return finish(fields) if finish is not None else tp(**fields)
    raise TypeError(f"from_json cannot read type {tp!r}")


def to_json(obj: Any) -> Any:
    """A dataclass tree (or plain values) as JSON-ready values; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        custom = getattr(obj, "to_json", None)
        if custom is not None:
            return custom()
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj
