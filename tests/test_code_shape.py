"""The house rules on the code's shape (issue 21), measured as ``tools/code_shape.py`` measures them:
no function of the harness (``bench/``) takes more than six parameters (typer command functions,
one parameter per command-line option, are exempt), and no module has more than 400 lines."""

from __future__ import annotations

import sys
from pathlib import Path

import bench

ROOT = Path(bench.__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from code_shape import functions, module_lines, python_files  # noqa: E402

MAX_PARAMS = 6
MAX_LINES = 400


def test_no_harness_function_takes_more_than_six_parameters():
    files = python_files([ROOT / "bench"])
    assert len(files) > 50  # the harness was found
    over = [f"{f.where()}: {f.params}" for p in files for f in functions(p, ROOT) if not f.cli and f.params > MAX_PARAMS]
    assert over == [], "group the arguments that travel together into a record"


def test_the_parameter_count_sees_what_it_should(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import typer\n"
                      "def f(a, b, *c, d, **e): pass\n"
                      "class K:\n"
                      "    def m(self, a): pass\n"
                      "    @staticmethod\n"
                      "    def s(a, b): pass\n"
                      "def cmd(x: int = typer.Option(1), y: str = typer.Argument(...)): pass\n"
                      "def shared(x: int = sel.SEEDS, y: int = typer.Option(1)): pass\n"
                      "def g(x=sel.seeds, y=typer.Option(1)): pass\n")
    shapes = {f.name: f for f in functions(module, tmp_path)}
    assert {n: f.params for n, f in shapes.items()} == {"f": 5, "K.m": 1, "K.s": 2, "cmd": 2, "shared": 2, "g": 2}
    assert shapes["cmd"].cli and shapes["shared"].cli and not shapes["f"].cli and not shapes["g"].cli


def test_no_module_has_more_than_400_lines():
    files = python_files([ROOT / d for d in ("bench", "baselines", "methods", "datasets", "tools", "tests")])
    over = [f"{p.relative_to(ROOT)}: {n}" for p in files if (n := module_lines(p)) > MAX_LINES]
    assert over == [], "split the module along its meaning"


def layout_map() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Layout"):]
    return section[section.index("```") + 3:section.index("```", section.index("```") + 3)]


def test_the_readme_layout_map_matches_the_tree():
    """Every subpackage of bench/ and every top-level folder of the project is in the README's map, and the
    map names nothing that is not there."""
    block = layout_map()
    named = {line.split()[0] for line in block.splitlines()  # the lines indented by two under bench/
             if line.startswith("  ") and not line.startswith("   ") and line.split()[0].endswith("/")}
    subpackages = {f"{p.name}/" for p in (ROOT / "bench").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert named == subpackages, "README Layout: the bench/ lines and the subpackages differ"
    top = {line.split()[0] for line in block.splitlines() if line[:1].strip() and line.split()[0].endswith("/")}
    assert {"bench/", "baselines/", "methods/", "datasets/", "tests/", "tools/", "results/"} == top
    for folder in top - {"results/"}:
        assert (ROOT / folder).is_dir(), folder
