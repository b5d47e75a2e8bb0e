"""Report the shape of the code: parameter counts, function lengths and module sizes.

House rules (the layout note of issue 21): no function in the harness (``bench/``) takes more than
about six parameters, and every module has at most 400 lines. This script measures both, with
:mod:`ast`, so the figures can be compared before and after a change:

    .venv/bin/python tools/code_shape.py                 # bench/: the 15 largest of each
    .venv/bin/python tools/code_shape.py --top 5 bench baselines methods datasets tools tests
    .venv/bin/python tools/code_shape.py --over 6        # every function of bench/ above 6 parameters

Parameters are counted over positional, keyword-only and ``*args``/``**kwargs`` parameters,
excluding a method's ``self``/``cls`` (the first parameter of a function defined directly in a
class, unless it is a ``staticmethod``). A function's length is its lines from ``def`` (decorators
excluded) to its last line, docstring included. Typer command functions (``bench/cli``: one
parameter per command-line option, each defaulting to ``typer.Option``/``typer.Argument``) are
marked ``[cli]``: the parameter rule exempts them.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FunctionShape:
    """One ``def``: where it is, how many parameters it takes, how many lines it spans."""

    path: str
    name: str  # qualified: Class.method or outer.<locals>.inner
    line: int
    params: int
    length: int
    cli: bool  # a typer command (every parameter a ``typer.Option``/``typer.Argument``)

    def where(self) -> str:
        return f"{self.path}:{self.line} {self.name}" + (" [cli]" if self.cli else "")


def _param_count(node: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    if in_class and not static and names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names)


def _is_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A typer command: its parameters default to ``typer.Option(...)`` / ``typer.Argument(...)``, or to an
    option defined once for several commands (an upper-case module constant such as ``selection.RESULTS``)."""
    defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]

    def is_option(d: ast.expr) -> bool:
        if isinstance(d, ast.Call):
            return isinstance(d.func, ast.Attribute) and d.func.attr in ("Option", "Argument")
        return isinstance(d, ast.Attribute) and d.attr.isupper()

    return bool(defaults) and all(is_option(d) for d in defaults)


def functions(path: Path, root: Path) -> list[FunctionShape]:
    """Every ``def`` of the module at ``path`` (nested ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = str(path.relative_to(root))
    out: list[FunctionShape] = []

    def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                out.append(FunctionShape(rel, name, child.lineno, _param_count(child, in_class),
                                         (child.end_lineno or child.lineno) - child.lineno + 1,
                                         _is_command(child)))
                visit(child, name + ".<locals>.", False)
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".", True)
            else:
                visit(child, prefix, in_class)

    visit(tree, "", False)
    return out


def module_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def python_files(roots: list[Path]) -> list[Path]:
    return sorted(p for r in roots for p in (r.rglob("*.py") if r.is_dir() else [r]) if ".venv" not in p.parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["bench"], help="folders or files (default: bench)")
    parser.add_argument("--top", type=int, default=15, help="how many of each list to show")
    parser.add_argument("--over", type=int, default=None, help="list every function above this many parameters")
    parser.add_argument("--lines", type=int, default=400, help="module size limit to flag")
    args = parser.parse_args()
    root = Path.cwd()
    files = python_files([Path(p).resolve() for p in args.paths])
    shapes = [f for p in files for f in functions(p, root)]
    harness = [f for f in shapes if not f.cli]
    print(f"{len(files)} modules, {len(shapes)} functions ({len(shapes) - len(harness)} typer commands, exempt)")
    by_params = sorted(harness, key=lambda f: (-f.params, f.path, f.line))
    if args.over is not None:
        chosen = [f for f in by_params if f.params > args.over]
        print(f"\nfunctions with more than {args.over} parameters (typer commands excluded): {len(chosen)}")
    else:
        chosen = by_params[:args.top]
        print(f"\nmost parameters (typer commands excluded; the largest command: "
              f"{max((f for f in shapes if f.cli), key=lambda f: f.params).where() if len(shapes) > len(harness) else '-'}"
              f"{'' if len(shapes) == len(harness) else ', ' + str(max(f.params for f in shapes if f.cli))})")
    for f in chosen:
        print(f"  {f.params:3d}  {f.where()}")
    print("\nlongest functions (lines, def to last line)")
    for f in sorted(shapes, key=lambda f: (-f.length, f.path, f.line))[:args.top]:
        print(f"  {f.length:4d}  {f.where()}")
    sizes = sorted(((module_lines(p), str(p.relative_to(root))) for p in files), reverse=True)
    over = [s for s in sizes if s[0] > args.lines]
    print(f"\nlargest modules ({len(over)} over {args.lines} lines)")
    for n, p in sizes[:max(args.top, len(over))]:
        print(f"  {n:4d}  {p}" + ("   OVER" if n > args.lines else ""))


if __name__ == "__main__":
    main()
