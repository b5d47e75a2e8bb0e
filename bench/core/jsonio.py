"""The one JSON encoder of bench: every file it writes and every hash it takes of JSON goes through here.

Two steps. :func:`plain` turns a value into JSON's own types: mappings into objects with text
keys, tuples and lists into lists, dataclasses and pydantic models into their fields (a
dataclass's ``to_json()`` wins, e.g. :class:`bench.spec.run_spec.RunSpec`'s), NumPy scalars and
zero-dimensional arrays or tensors into Python numbers, paths into text; a float that is not
finite is kept or, with ``nonfinite_to_null``, becomes ``null``. The text is then made in one of
three forms, all with sorted keys, so that equal values always give equal bytes:

* :func:`canonical_text`: no whitespace (``","``, ``":"``); what hashes are taken of (the run
  spec's hash, the report's group and data-info ids) and the data-identity cache holds.
  Anything :func:`plain` leaves alone is written as ``str(value)``.
* :func:`spaced_text`: json's default separators (``", "``, ``": "``), on one line: the text the SM
  pretraining cache keys were first made of (changing it would orphan every cached encoder and
  change the ``cache_key`` every result records).
* :func:`file_text`: indented by two, one trailing newline: ``result.json``, audit and perf
  records, the report's manifest. ``nonfinite="refuse"`` (result records: a NaN metric is a bug,
  never a number to store) raises ValueError on a float that is not finite; ``"null"`` (the other
  records: an unmeasurable figure) writes ``null``.

The bytes are those the separate encoders it replaced wrote (``tests/test_jsonio.py`` pins them, and
``tests/test_spec_canonical.py`` the run-spec hashes).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import PurePath
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel


def plain(obj: Any, nonfinite_to_null: bool = False) -> Any:
    """``obj`` in JSON's own types (see the module docstring); other values are returned as they are."""
    if isinstance(obj, BaseModel):
        return plain(obj.model_dump(), nonfinite_to_null)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        custom = getattr(obj, "to_json", None)
        fields = custom() if custom is not None else {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return plain(fields, nonfinite_to_null)
    if isinstance(obj, Mapping):
        return {str(k): plain(v, nonfinite_to_null) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, nonfinite_to_null) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return None if nonfinite_to_null and not math.isfinite(value) else value
    if isinstance(obj, PurePath):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # 0-d array or tensor
        return plain(obj.item(), nonfinite_to_null)
    return obj


def to_jsonable(obj: Any) -> Any:
    """``obj`` in JSON's own types with non-finite floats as ``None`` (values recorded as measured)."""
    return plain(obj, nonfinite_to_null=True)


def canonical_text(obj: Any) -> str:
    """Sorted keys, no whitespace: the text hashes are taken of."""
    return json.dumps(plain(obj), sort_keys=True, separators=(",", ":"), default=str)


def spaced_text(obj: Any) -> str:
    """Sorted keys, json's default separators, one line (the SM pretraining cache key's text)."""
    return json.dumps(plain(obj), sort_keys=True, default=str)


def file_text(obj: Any, nonfinite: Literal["refuse", "null"] = "null") -> str:
    """The text of a JSON file: sorted keys, indented by two, one trailing newline; a non-finite float
    is written as ``null`` or refused (ValueError), as ``nonfinite`` says."""
    refuse = nonfinite == "refuse"
    return json.dumps(plain(obj, nonfinite_to_null=not refuse), indent=2, sort_keys=True, allow_nan=not refuse) + "\n"


__all__ = ["canonical_text", "file_text", "plain", "spaced_text", "to_jsonable"]
