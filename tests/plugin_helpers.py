"""Throwaway installed plug-ins for the CLI tests: a package and its entry point on a fresh sys.path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def make_plugin(tmp_path: Path, name: str, body: str, group: str = "bench.methods", entry: str | None = None) -> Path:
    """A site directory holding ``benchplugin_<name>`` (``body``) and its dist-info with entry point ``entry``."""
    site = tmp_path / f"site_{name}"
    pkg = site / f"benchplugin_{name}"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    dist = site / f"benchplugin_{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: benchplugin-{name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{entry or name} = benchplugin_{name}\n")
    return site


def run_cli(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` with ``site`` on the path (so its entry points are installed)."""
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)
