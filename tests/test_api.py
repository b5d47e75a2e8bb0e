"""The plug-in surface: ``bench.api`` holds what a plug-in needs, and the README's example works as printed."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import bench.api as api
from bench.spec.registry import METHODS, get_dataset

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Adding a method"):]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_the_readme_plugin_example_registers_a_method_that_builds_and_predicts():
    namespace = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    try:
        spec = METHODS.get("mynet")
        assert spec.build is namespace["build_mynet"] and spec.variants["narrow"] == {"width": 16}
        data = get_dataset("mmnist")
        model = api.create_model("mynet:narrow", data, tiny=True)
        x = torch.zeros(2, data.in_frames, *data.frame_shape)
        assert model(x).shape == (2, data.out_frames, *data.frame_shape)
    finally:
        namespace["__name__"] = "readme_example"
        exec("from bench.spec.registry import METHODS\nMETHODS.remove('mynet')", namespace)  # noqa: S102
    assert "mynet" not in METHODS


def test_the_api_exports_what_it_lists_and_the_old_paths_still_work():
    assert all(hasattr(api, name) for name in api.__all__)
    from bench.hparams import Int
    from bench.registry import register_method

    assert Int is api.Int and register_method is api.register_method
