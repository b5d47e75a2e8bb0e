"""Issue 21: a non-editable install holds every module and data file, and works from anywhere.

The test builds the wheel from a copy of the source (a ``build/`` folder left in the tree by an
earlier build would otherwise leak stale modules into it), compares its file list with the source
tree, installs it into a fresh virtual environment and runs ``bench list``, a one-epoch ``--tiny
--quick`` run and ``bench report`` with the installed console script, from a temporary directory,
with ``PYTHONPATH`` cleared.

The dependencies (torch, typer, ...) come from the environment running the tests, not from an index:
the fresh environment's ``deps.pth`` lists the folders they are installed in. That file, rather than
``venv --system-site-packages``, keeps the source tree out: lines of a ``.pth`` file are only added to
``sys.path``, while the system site's own ``.pth`` hooks would run, and where bench is installed
editable there (as CI does), setuptools' editable finder answers any ``bench.*`` module the wheel
lacks from the source tree and hides the very defect this test is for. Every ``bench`` module the
installed commands can import is then checked to load from the environment's site-packages.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the package it installs as (setup.py's layout)
FOLDERS = {"bench": "bench", "baselines": "bench/baselines", "methods": "bench/methods", "datasets": "bench/datasets"}
TOP_FILES = ("setup.py", "pyproject.toml", "README.md")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", "results")


def source_files() -> set[str]:
    """Where every module and data file of the source tree belongs inside the installed ``bench``."""
    files = set()
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                inner = path.relative_to(ROOT / folder)
                if folder != "bench" or inner.parts[0] not in ("baselines", "methods", "datasets"):
                    files.add(f"{package}/{inner.as_posix()}")
    files |= {f"bench/data/{p.name}" for p in (ROOT / "bench" / "data").glob("*.json")}
    return files


def module_name(path: str) -> str:
    name = path.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def dependency_dirs() -> list[str]:
    """The folders the declared dependencies are installed in (never the source tree)."""
    dirs = []
    for requirement in metadata.requires("bench") or []:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0]
        folder = str(Path(metadata.distribution(name).locate_file("")).resolve())
        if folder not in dirs and not folder.startswith(str(ROOT)):
            dirs.append(folder)
    return dirs


def build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=SKIP)
    for name in TOP_FILES:
        shutil.copy2(ROOT / name, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "--wheel-dir", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, ("building the wheel needs setuptools and wheel in this environment "
                                 "(pip install -e '.[test]'):\n" + out.stdout[-3000:] + out.stderr[-3000:])
    (wheel,) = (tmp / "dist").glob("bench-*.whl")
    return wheel


def fresh_env(tmp: Path, wheel: Path) -> tuple[Path, dict[str, str]]:
    """A virtual environment holding the wheel; its bin folder and the environment to run it with."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text("\n".join(dependency_dirs()) + "\n")
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                          str(wheel)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1", COLUMNS="200", BENCH_CACHE=str(tmp / "cache"),
               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    return venv, env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp)
    venv, env = fresh_env(tmp, wheel)
    return tmp, wheel, venv, env


def run(venv: Path, env: dict[str, str], cwd: Path, *args) -> subprocess.CompletedProcess:
    out = subprocess.run([str(venv / "bin" / "bench"), *map(str, args)], capture_output=True, text=True, env=env,
                         cwd=cwd, timeout=300)
    assert out.returncode == 0, f"bench {' '.join(map(str, args))}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out


def test_the_wheel_holds_every_module_and_data_file(installed):
    _, wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        held = {name for name in zf.namelist() if ".dist-info/" not in name}
    expected = source_files()
    assert len(expected) > 100 and "bench/report/__init__.py" in expected and "bench/data/published.json" in expected
    assert sorted(expected - held) == [], "missing from the wheel"
    assert sorted(held - expected) == [], "in the wheel but not in the source tree"


# Imports every module, then runs the console script's entry point (`bench list`); at exit, writes where each
# loaded bench module came from.
PROBE = """
import atexit, importlib, json, sys
from importlib.metadata import entry_points

out, names = sys.argv[1], json.loads(sys.argv[2])

def where():
    loaded = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n == "bench" or n.startswith("bench.")}
    with open(out, "w") as fh:
        json.dump(loaded, fh)

atexit.register(where)
for name in names:
    importlib.import_module(name)
(script,) = entry_points(group="console_scripts", name="bench")
sys.argv = ["bench", "list"]
script.load()()
"""


def test_the_installed_package_runs_from_anywhere(installed):
    tmp, _, venv, env = installed
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True, env=env, cwd=cwd).stdout.strip()
    # every module of the source tree (python -m bench's __main__ would run the CLI: not imported)
    modules = sorted(module_name(f) for f in source_files() if f.endswith(".py") and not f.endswith("__main__.py"))
    listed = subprocess.run([str(python), "-c", PROBE, str(tmp / "loaded.json"), json.dumps(modules)],
                            capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    assert "simvp" in listed.stdout and "mmnist" in listed.stdout
    # every module imported from the environment's site-packages, never from the source tree
    loaded = json.loads((tmp / "loaded.json").read_text())
    assert set(modules) <= set(loaded)
    assert loaded["bench"] == str(Path(site) / "bench" / "__init__.py")
    elsewhere = {name: path for name, path in loaded.items() if not str(path).startswith(site + os.sep)}
    assert elsewhere == {}, "modules loaded from outside the environment"

    run(venv, env, cwd, "run", "--methods", "simvp", "--datasets", "mmnist", "--tiny", "--quick", "--quiet",
        "--epochs", 1, "--sizes", "train=4,val=2,test=2", "--batch-size", 2, "--results", "results")
    (record,) = (cwd / "results").rglob("result.json")
    assert json.loads(record.read_text())["status"] == "complete"
    run(venv, env, cwd, "report", "--results", "results", "--out", "report", "--no-figures")
    report = (cwd / "report" / "report.md").read_text()
    assert "simvp" in report and "Published" in report
