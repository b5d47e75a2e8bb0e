"""Hyperparameter declarations: the type and range of every value a user can override.

A method declares its hyperparameters once, with its registration::

    @register_method("mynet", hparams={"*": {"hid": 64, "act": "gelu", "kernels": (3, 5)}},
                     params={"hid": Int(min=1), "act": Choice("gelu", "relu"), "kernels": IntTuple(min=1)})

Every value, whether it comes from the paper configuration, a variant, a method key
(``mynet:hid=32``) or ``--set hid=32``, is checked against its declaration before anything is built
or trained, so ``lr=abc``, ``hid_S=0``, ``epochs=1.5``, ``epochs=True`` or ``optimizer=foo`` fail
in one line naming the key, the value, what is expected and how to fix it. A hyperparameter a
method does not declare is checked against the type of its default value (int, float, str, bool,
tuple of ints/floats), without bounds; in-tree methods declare every key (a test enforces it).

Syntax of a value on the command line (:func:`parse_assignment`): a Python literal when it parses
as one (``0.01``, ``4``, ``(3, 5)``, ``[3, 5]``), ``true``/``false``/``none`` in any case, else the
text itself. A tuple may also be written without brackets in ``--set`` (``--set incep_ker=3,5,7``:
a comma-separated part without ``=`` continues the previous value) or in brackets inside a method
key (``simvp:incep_ker=(3,5)``). Integers are accepted where a float is expected (``lr=1``), and
``none`` (read as None) where a choice is named ``none`` (``schedule=none``); nothing else is
converted.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any, Mapping

from bench.errors import BenchError
from bench.spec.choices import OPTIMIZERS, SCHEDULES


@dataclass(frozen=True)
class HParam:
    """One hyperparameter's type and range: ``kind`` is int, float, str, bool, choice or tuple."""

    kind: str
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[Any, ...] = ()
    item: str = "int"  # element type of a tuple: int or float
    doc: str = ""

    def describe(self) -> str:
        """What a valid value looks like, e.g. ``an integer >= 1`` or ``one of adam, adamw, sgd``."""
        if self.kind == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices)
        what = {"int": "an integer", "float": "a number", "str": "text", "bool": "true or false",
                "tuple": f"a tuple of {'integers' if self.item == 'int' else 'numbers'}, e.g. (3,5)"}[self.kind]
        bounds = []
        if self.min is not None:
            bounds.append(f"{'>' if self.min_exclusive else '>='} {_num(self.min)}")
        if self.max is not None:
            bounds.append(f"<= {_num(self.max)}")
        if bounds:
            what += (" with every element " if self.kind == "tuple" else " ") + " and ".join(bounds)
        return what

    def check(self, name: str, value: Any, owner: str = "") -> Any:
        """``value`` if it is valid for this declaration (ints widened to float where a float is
        expected, lists to tuples), else a one-line BenchError naming the key and the fix."""
        def bad() -> BenchError:
            where = f" of {owner}" if owner else ""
            return BenchError(f"hyperparameter {name}={value!r}{where} is invalid: expected {self.describe()}; "
                              f"fix the value (e.g. --set {name}=...), see `bench list --hparams {owner or 'METHOD'}`")

        if self.kind == "choice":  # type-exact: True is not 1
            if value is None:  # the command line reads `none` as None: a choice named "none" takes it
                value = next((c for c in self.choices if isinstance(c, str) and c.lower() == "none"), None)
            if not any(value == c and type(value) is type(c) for c in self.choices):
                raise bad()
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad()
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise bad()
            return value
        if self.kind == "tuple":
            if not isinstance(value, (tuple, list)) or not value:
                raise bad()
            items = tuple(_scalar(self.item, v) for v in value)
            if any(v is None or not self._in_range(v) for v in items):
                raise bad()
            return items
        number = _scalar(self.kind, value)
        if number is None or not self._in_range(number):
            raise bad()
        return number

    def _in_range(self, v: float) -> bool:
        if self.min is not None and (v < self.min or (self.min_exclusive and v == self.min)):
            return False
        return self.max is None or v <= self.max


def _scalar(kind: str, value: Any) -> Any:
    """``value`` as an int/float of ``kind``, or None when it is not one (bools are never numbers).

    A float is canonical: ``-0.0`` is ``0.0`` (equal values, one spec hash)."""
    if isinstance(value, bool):
        return None
    if kind == "int":
        return value if isinstance(value, int) else None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value) + 0.0  # -0.0 + 0.0 == +0.0
    return None


def shorten(value: Any, width: int = 24) -> str:
    """``value`` as a one-line message shows it: cut to ``width`` characters and ``...``."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an integer beyond Python's 4,300-digit conversion limit
        text = "a number of more than 4,300 digits"
    return text if len(text) <= width else text[:width] + "..."


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def Int(min: int | None = None, max: int | None = None, doc: str = "") -> HParam:  # noqa: N802 - a type name
    return HParam("int", min=min, max=max, doc=doc)


def Float(min: float | None = None, max: float | None = None, min_exclusive: bool = False,  # noqa: N802
          doc: str = "") -> HParam:
    return HParam("float", min=min, max=max, min_exclusive=min_exclusive, doc=doc)


def Str(doc: str = "") -> HParam:  # noqa: N802
    return HParam("str", doc=doc)


def Bool(doc: str = "") -> HParam:  # noqa: N802
    return HParam("bool", doc=doc)


def Choice(*choices: Any, doc: str = "") -> HParam:  # noqa: N802
    return HParam("choice", choices=tuple(choices), doc=doc)


def IntTuple(min: int | None = None, max: int | None = None, doc: str = "") -> HParam:  # noqa: N802
    return HParam("tuple", min=min, max=max, item="int", doc=doc)


def FloatTuple(min: float | None = None, max: float | None = None, doc: str = "") -> HParam:  # noqa: N802
    return HParam("tuple", min=min, max=max, item="float", doc=doc)


def infer(default: Any) -> HParam | None:
    """The declaration implied by a default value (no bounds), or None when it implies none (None)."""
    if isinstance(default, bool):
        return Bool()
    if isinstance(default, int):
        return Int()
    if isinstance(default, float):
        return Float()
    if isinstance(default, str):
        return Str()
    if isinstance(default, (tuple, list)) and default:
        return FloatTuple() if any(isinstance(v, float) for v in default) else IntTuple()
    return None


#: Upper bounds of what a run may ask for, checked before anything trains (beyond them a run would
#: train for years, overflow a C integer or run out of memory after it started). Each is far above
#: any published configuration: the longest is PLA-SM's 2,000 epochs, the largest standard split
#: TaxiBJ's 18,620 training sequences, the longest horizon KTH's 40 frames.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_SPLIT_SIZE = 1_000_000  # sequences per split (--sizes)
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit integer (--seeds, --data-seed)
#: Frames of --pred-len on a dataset that states no limit of its own (``DatasetSpec.max_pred_len``
#: None: generated Moving MNIST, whose evaluation sequences are generated at that length; measured:
#: about 3.6 GB to generate one chunk of 256 validation sequences of 1,010 frames).
MAX_PRED_LEN = 1_000

#: Training hyperparameters every method has; the runner consumes these, the builder never sees them.
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 16,
    "lr": 1e-3,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "schedule": "onecycle",
    "clip_grad": 0.0,  # max grad-norm; 0 disables clipping
}
TRAIN_PARAMS: dict[str, HParam] = {
    "epochs": Int(min=1, max=MAX_EPOCHS, doc="training epochs"),
    "batch_size": Int(min=1, max=MAX_BATCH_SIZE, doc="global batch size"),
    "lr": Float(min=0.0, min_exclusive=True, doc="(peak) learning rate"),
    "optimizer": Choice(*OPTIMIZERS),
    "weight_decay": Float(min=0.0),
    "schedule": Choice(*SCHEDULES),
    "clip_grad": Float(min=0.0, doc="max gradient norm; 0 disables clipping"),
}
TRAIN_KEYS = frozenset(TRAIN_DEFAULTS)


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type, element by element (``True`` is not ``1``, ``1`` is not ``1.0``)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def check_all(hp: Mapping[str, Any], params: Mapping[str, HParam], owner: str) -> dict[str, Any]:
    """Every value of ``hp`` checked against its declaration in ``params`` (keys without one pass)."""
    out = dict(hp)
    for name, value in hp.items():
        decl = params.get(name)
        if decl is not None:
            out[name] = decl.check(name, value, owner)
    return out


def parse_literal(raw: str) -> Any:
    """A command-line value: a Python literal when it parses as one, true/false/none, else the text."""
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
    return value


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` -> (key, value); the value is read by :func:`parse_literal`."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not key.isidentifier():
        raise BenchError(f"cannot read {text!r} as key=value; write e.g. lr=0.001")
    return key, parse_literal(raw)


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` on ``sep`` outside brackets and parentheses: ``a=(1,2),b=3`` -> [``a=(1,2)``, ``b=3``]."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_set_items(items: list[str] | None) -> dict[str, Any]:
    """``--set`` values -> {key: value}: comma-separated ``key=value`` parts; a part without ``=``
    continues the previous value, so ``incep_ker=3,5,7`` is the tuple (3, 5, 7)."""
    out: dict[str, Any] = {}
    for item in items or []:
        joined: list[str] = []
        for part in split_top_level(item):
            if "=" in part or not joined:
                joined.append(part)
            else:
                joined[-1] += "," + part
        for part in joined:
            key, value = parse_assignment(part)
            if key in out and out[key] != value:
                raise BenchError(f"{key} is set twice (--set {key}={out[key]!r} and --set {key}={value!r}); give it once")
            out[key] = value
    return out
