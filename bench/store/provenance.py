"""Provenance recorded in every result: versions, platform, the harness's git commit, the device."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np


def git_revision(cwd: Path | None = None) -> dict[str, Any]:
    """The git commit of the harness source (and whether the tree had local changes), if known."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return {"git": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return {"git": rev.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git": None}


def environment(device: Any = None) -> dict[str, Any]:
    """Versions, platform, git hash and device name, recorded in every result."""
    import importlib.metadata as md

    import torch

    import bench

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    env: dict[str, Any] = {
        "bench": bench.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "fvcore": version("fvcore"),
        "scikit_image": version("scikit-image"),
        "cuda": torch.version.cuda,
        **git_revision(),
    }
    if device is not None:
        env["device"] = str(device)
        env["device_name"] = describe_device(device)
    return env


def describe_device(device: Any) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
