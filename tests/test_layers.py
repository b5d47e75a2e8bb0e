"""The harness's plan, checked: no import cycle, no lower layer importing a higher one, no method names.

Layers of ``bench``, lowest first (a module may import its own layer and the layers below it):

    0  base      bench.errors, bench.core            errors, platform, JSON, host allocator, generic registry
    1  spec      bench.spec                          hyperparameters, method/dataset specs, registry, run spec
    1  metrics   bench.metrics                       per-frame metrics, their declarations, accumulation
    2  blocks    bench.blocks                        network building blocks several methods share
    2  datafiles bench.datafiles                     a user's data files: paths, formats, digests, downloads
    2  store     bench.store                         results layout, atomic commits, the result record
    3  cost      bench.cost                          params, FLOPs, fps, the audit, perf
    4  run       bench.run                           one run: prepare, train, evaluate, record; sweeps; stop signals
    4  plan      bench.plan                          plans (paper tables, TOML), run states, GPU-hour estimates
    5  report    bench.report                        tables and figures from stored runs
    5  cluster   bench.cluster                       runs as submitit jobs (Slurm, local): requeue, manifests, status
    6  cli       bench.cli                           the commands
    7  api       bench.api, bench.registry, bench.hparams, bench.data   (plug-in surface; compatibility)

Layers with the same number may not import each other (``spec`` and ``metrics`` are independent,
and so are ``blocks``, ``datafiles`` and ``store``; ``run`` and ``plan``; ``report`` and ``cluster``), except
where listed in ALLOWED.

Methods and datasets (``bench.baselines``, ``bench.methods``, ``bench.datasets``) are plug-ins: they
may import the base, spec, metrics, blocks, datafiles and the plug-in surface, never the harness
above (store, cost, run, report, cli), and a method module never imports another method's module
(shared parts live in ``bench.blocks``); a method package (``bench.methods.plasm``) may import its
own submodules. Datasets may share code (``mmnist_std`` builds on ``mmnist``'s generator). The
harness imports no method or dataset module (it finds them through the registry).

Every import counts, also one inside a function (it is a dependency all the same).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bench

ROOT = Path(bench.__file__).resolve().parent.parent
FOLDERS = {"bench": ROOT / "bench", "bench.baselines": ROOT / "baselines", "bench.methods": ROOT / "methods",
           "bench.datasets": ROOT / "datasets"}
PLUGINS = ("bench.baselines", "bench.methods", "bench.datasets")
METHOD_FOLDERS = ("bench.baselines", "bench.methods")

LAYERS: dict[str, int] = {
    "bench.errors": 0, "bench.core": 0,
    "bench.spec": 1, "bench.metrics": 1,
    "bench.blocks": 2, "bench.datafiles": 2, "bench.store": 2,
    "bench.cost": 3, "bench.run": 4, "bench.plan": 4, "bench.report": 5, "bench.cluster": 5, "bench.cli": 6,
    "bench.api": 7, "bench.registry": 7, "bench.hparams": 7, "bench.data": 7,
}
#: same-layer imports that are part of the plan: (importer's group, imported group)
ALLOWED = {("bench.core", "bench.errors")}
PLUGIN_MAY_IMPORT = {"bench.errors", "bench.core", "bench.spec", "bench.metrics", "bench.blocks", "bench.datafiles",
                     "bench.api", "bench.registry", "bench.hparams", "bench.data"}


def module_files() -> dict[str, Path]:
    """Every module of the distribution, by dotted name."""
    modules: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "bench" and parts and f"bench.{parts[0]}" in FOLDERS:
                continue
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the distribution that ``name`` imports (top level and inside functions)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import mod`` depends on pkg.mod (and on pkg's __init__ only for names defined there)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def group_of(module: str) -> str:
    for plugin in PLUGINS:
        if module == plugin or module.startswith(plugin + "."):
            return plugin
    for group in sorted(LAYERS, key=len, reverse=True):
        if module == group or module.startswith(group + "."):
            return group
    return "bench"  # the package itself (bench/__init__.py, bench/__main__.py)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a list of modules, first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def back_edges(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the layering of the module docstring."""
    bad = []
    for module, targets in sorted(graph.items()):
        mine = group_of(module)
        for target in sorted(targets):
            theirs = group_of(target)
            if mine == theirs or theirs == "bench" or mine == "bench":
                if mine in METHOD_FOLDERS and theirs == mine and not _same_method(module, target):
                    bad.append(f"{module} imports {target}: a method imports another method's module")
                continue
            if mine in PLUGINS:
                if theirs not in PLUGIN_MAY_IMPORT:
                    bad.append(f"{module} imports {target}: plug-ins may not import {theirs}")
                continue
            if theirs in PLUGINS:
                bad.append(f"{module} imports {target}: the harness imports a method or dataset module")
                continue
            if LAYERS[theirs] > LAYERS[mine] or (LAYERS[theirs] == LAYERS[mine] and (mine, theirs) not in ALLOWED):
                bad.append(f"{module} ({mine}, layer {LAYERS[mine]}) imports {target} ({theirs}, layer {LAYERS[theirs]})")
    return bad


def _same_method(module: str, target: str) -> bool:
    """Within a plug-in folder: a package's own submodules, or the folder's ``__init__`` (auto-import)."""
    folder = group_of(module)
    if module == folder or target == folder:
        return True
    mine, theirs = module[len(folder) + 1:].split("."), target[len(folder) + 1:].split(".")
    return mine[0] == theirs[0] or theirs[0].startswith("_")


def test_every_module_is_in_a_layer(graph):
    unplaced = [m for m in graph if group_of(m) == "bench" and m not in ("bench", "bench.__main__")]
    assert not unplaced, f"modules outside every layer (add them to a subpackage): {unplaced}"


def test_the_import_graph_has_no_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_layer_imports_a_higher_one(graph):
    bad = back_edges(graph)
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_the_checks_catch_a_cycle_and_a_back_edge(graph):
    """The checks themselves: a cycle and a back edge added to the real graph are found."""
    broken = {k: set(v) for k, v in graph.items()}
    broken["bench.spec.hparams"].add("bench.spec.registry")  # registry -> ... -> hparams -> registry
    assert find_cycle(broken) is not None
    broken = {k: set(v) for k, v in graph.items()}
    broken["bench.store.layout"].add("bench.run.runner")
    assert any("bench.store.layout" in line for line in back_edges(broken))
    broken = {k: set(v) for k, v in graph.items()}
    broken["bench.baselines.mim"].add("bench.baselines.predrnn")
    assert any("another method" in line for line in back_edges(broken))


def method_names() -> set[str]:
    from bench.spec.registry import list_methods

    return set(list_methods())


def test_the_harness_names_no_particular_method():
    """Outside registration, no harness module holds a method's name (or a key ``name:...``) as a string:
    a special case for one method belongs in that method's spec. Docstrings and comments are text,
    not code, and are not checked; nor is the plug-in surface."""
    names = method_names()
    offenders = []
    for module, path in sorted(module_files().items()):
        if group_of(module) in PLUGINS or group_of(module) in ("bench.api", "bench.registry"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if node.value in names or node.value.split(":")[0] in names:
                    offenders.append(f"{module}:{node.lineno}: {node.value!r}")
    assert not offenders, "the harness names methods:\n" + "\n".join(offenders)
