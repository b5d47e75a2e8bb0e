"""Write tests/fixtures/method_config_golden.json: every registered method key's resolved hyperparameters.

The golden of ``tests/test_method_config.py``. For every registered method key (each method and
each of its variants, :func:`bench.spec.registry.iter_method_keys`), on every registered dataset
and on ``*`` (the dataset-less resolution method keys are validated with), with and without
``--tiny``, it records the resolved hyperparameters, each value as its ``repr`` (so ``1`` is not
``1.0``, ``(3, 5)`` is not ``[3, 5]`` and ``True`` is not ``1``: the types the run-spec hash sees),
and every method's declarations (:meth:`MethodSpec.declarations`, as ``describe()`` text).

Written once before the paper configurations were rewritten as a base plus per-dataset
differences; the test compares the same resolution against it, so a rewrite that changes any
resolved value (and with it a run-spec hash) fails. Regenerate only for a deliberate change of a
configuration, and say so in the commit:

    .venv/bin/python tools/make_config_golden.py --out tests/fixtures/method_config_golden.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def resolved_configurations() -> dict[str, Any]:
    """``{"hparams": {"KEY @ DATASET": {"full"|"tiny": {name: repr}}}, "declarations": {method: {name: text}}}``."""
    from bench.spec.registry import get_method, iter_method_keys, list_datasets, list_methods, parse_method_key

    datasets = ["*", *list_datasets()]
    hparams: dict[str, Any] = {}
    for text in iter_method_keys():
        key = parse_method_key(text)
        for dataset in datasets:
            hparams[f"{text} @ {dataset}"] = {
                ("tiny" if tiny else "full"): {name: repr(value) for name, value in
                                               sorted(key.resolve(dataset, tiny=tiny).items())}
                for tiny in (False, True)}
    declarations = {name: {k: d.describe() for k, d in sorted(get_method(name).declarations().items())}
                    for name in list_methods()}
    return {"hparams": hparams, "declarations": declarations}


def dump(golden: dict[str, Any]) -> str:
    """JSON with one line per method key and dataset (small, and a change shows as one line of a diff)."""
    lines = []
    for section, table in sorted(golden.items()):
        rows = [f"  {json.dumps(name)}: {json.dumps(value, sort_keys=True, separators=(',', ':'))}"
                for name, value in sorted(table.items())]
        lines.append(f" {json.dumps(section)}: {{\n" + ",\n".join(rows) + "\n }")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(dump(resolved_configurations()), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
