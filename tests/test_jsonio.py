"""Issue 21: one canonical JSON encoder (bench.core.jsonio) for every file bench writes and every JSON hash.

The expected texts below were printed by the encoders it replaced (``bench.core.atomic.to_jsonable`` +
``json.dumps`` for records, the report's ``canon``, the SM pretraining cache key's ``json.dumps``), so
a byte of difference is a changed file, id or cache key. The run-spec hashes are pinned in
tests/test_spec_canonical.py and the bytes of result.json in tests/test_store_golden.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import bench
from bench import store
from bench.core.jsonio import canonical_text, file_text, spaced_text

MIXED = {"b": (1, 2.5, np.int64(3), (True, None)), "a": {"z": np.float32(0.5), 2: Path("x/y")}, "n": float("nan"),
         "i": [float("inf"), -0.0], "t": torch.tensor(1.5), "s": "é \"q\"", "k": np.bool_(True)}


def test_records_are_written_as_before(tmp_path):
    expected = ('{\n  "a": {\n    "2": "x/y",\n    "z": 0.5\n  },\n  "b": [\n    1,\n    2.5,\n    3,\n    [\n'
                '      true,\n      null\n    ]\n  ],\n  "i": [\n    null,\n    -0.0\n  ],\n  "k": true,\n'
                '  "n": null,\n  "s": "\\u00e9 \\"q\\"",\n  "t": 1.5\n}\n')
    store.atomic_write_json(tmp_path / "r.json", MIXED)
    assert (tmp_path / "r.json").read_text() == expected == file_text(MIXED)
    with pytest.raises(ValueError):  # result records refuse a number that is not finite
        file_text({"test": {"mse": float("nan")}}, nonfinite="refuse")


def test_hashed_texts_are_the_ones_hashed_before():
    from bench.baselines.simvp import SIMVP_SM
    from bench.blocks.masked_pretrain import pretrain_key
    from bench.report.runs import canon
    from bench.spec.registry import get_dataset, parse_method_key
    from bench.spec.run_spec import SpecOptions, resolve_run_spec

    value = {"b": (3, 5, 7), "a": [1.0, None, {"y": 2, "x": "é"}], "c": "x"}
    assert canon(value) == canonical_text(value) == '{"a":[1.0,null,{"x":"\\u00e9","y":2}],"b":[3,5,7],"c":"x"}'
    assert spaced_text(value) == '{"a": [1.0, null, {"x": "\\u00e9", "y": 2}], "b": [3, 5, 7], "c": "x"}'
    data = get_dataset("mmnist")
    spec = resolve_run_spec(parse_method_key("simvp:sm"), data, 0, SpecOptions(tiny=True))
    extra = {"data_source": {"digit_source": "sklearn-digits"}, "sizes": {"train": 8}, "data_seed": 0}
    assert pretrain_key(SIMVP_SM, data, spec.hparams, 0, extra) == "46d595dcd43db309"  # cached encoders still found


def test_no_other_module_encodes_json():
    """Every ``json.dump``/``json.dumps`` of the harness and its plug-ins is in bench.core.jsonio."""
    root = Path(bench.__file__).resolve().parent.parent
    found = []
    for folder in ("bench", "baselines", "methods", "datasets"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in ("dump", "dumps") and \
                        isinstance(node.value, ast.Name) and node.value.id == "json":
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    others = [f for f in found if not f.startswith("bench/core/jsonio.py:")]
    assert found and not others, f"JSON encoded outside bench.core.jsonio: {others}"
