"""Registry: names, wildcards, errors with suggestions, method keys, and third-party plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bench.errors import BenchError
from bench.registry import (TRAIN_KEYS, get_dataset, get_method, list_datasets, list_methods, model_hparams,
                            parse_assignment, parse_method_key)


def test_lists_and_wildcards():
    assert "mmnist" in list_datasets()
    assert list_methods("tau*") == ["tau"]
    with_variants = list_methods("tau*", variants=True)
    assert "tau:no-ddr" in with_variants and "tau" in with_variants
    assert list_methods("zzz*") == []


def test_unknown_names_suggest_the_nearest():
    with pytest.raises(BenchError, match=r"unknown method 'simpv'.*did you mean 'simvp'"):
        get_method("simpv")
    with pytest.raises(BenchError, match=r"unknown dataset 'mnist'.*did you mean 'mmnist'"):
        get_dataset("mnist")
    with pytest.raises(BenchError, match=r"no variant 'no-dd'.*did you mean 'no-ddr'"):
        parse_method_key("tau:no-dd")
    with pytest.raises(BenchError, match=r"no hyperparameter 'lrr'.*did you mean 'lr'"):
        parse_method_key("tau:lrr=0.1")
    for exc_text in ("unknown method", "unknown dataset"):
        try:
            get_method("nope") if "method" in exc_text else get_dataset("nope")
        except BenchError as exc:
            assert "\n" not in str(exc) and "bench list" in str(exc)


def test_method_key_parsing_and_precedence():
    key = parse_method_key("tau:no-ddr:lr=0.005:epochs=3")
    assert key.variant == "no-ddr" and key.overrides == {"lr": 0.005, "epochs": 3}
    assert key.label == "tau:no-ddr:epochs=3:lr=0.005"
    hp = key.resolve("mmnist")
    assert hp["lr"] == 0.005 and hp["epochs"] == 3
    assert hp == {**hp, **get_method("tau").variants["no-ddr"], "lr": 0.005, "epochs": 3}
    # --set-style extra overrides win over the key's own
    assert key.resolve("mmnist", {"lr": 0.5})["lr"] == 0.5
    with pytest.raises(BenchError, match="more than one variant"):
        parse_method_key("tau:no-ddr:no-sa")


def test_assignment_values_are_literals():
    assert parse_assignment("r0=0.9") == ("r0", 0.9)
    assert parse_assignment("heads=4") == ("heads", 4)
    assert parse_assignment("schedule=cosine") == ("schedule", "cosine")
    assert parse_assignment("flag=true") == ("flag", True)
    with pytest.raises(BenchError):
        parse_assignment("novalue")


def test_builder_never_sees_training_keys():
    hp = get_method("simvp").resolve_hparams("mmnist")
    assert TRAIN_KEYS <= set(hp)
    assert not (TRAIN_KEYS & set(model_hparams(hp)))


PLUGIN = textwrap.dedent('''
    """A throwaway third-party method package: registers `demo` with no edit to bench."""
    import torch
    from torch import nn
    from bench.registry import register_method

    class Demo(nn.Module):
        def __init__(self, t_in, t_out, channels, width):
            super().__init__()
            self.t_out = t_out
            self.net = nn.Sequential(nn.Conv2d(t_in * channels, width, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(width, t_out * channels, 3, padding=1))

        def forward(self, x):
            b, t, c, h, w = x.shape
            return torch.sigmoid(self.net(x.reshape(b, t * c, h, w))).reshape(b, self.t_out, c, h, w)

    @register_method("demo", citation="Nobody, A Demo Plugin, 2026", hparams={"*": {"width": 8, "epochs": 1}})
    def build_demo(data, width):
        return Demo(data.in_frames, data.out_frames, data.channels, width)
''')


@pytest.fixture()
def plugin_path(tmp_path):
    site = tmp_path / "site"
    pkg = site / "benchplugin_demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(PLUGIN)
    dist = site / "benchplugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: benchplugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench.methods]\ndemo = benchplugin_demo\n")
    return site


def run_cli(args, plugin_path, cwd):
    env = {**os.environ, "PYTHONPATH": f"{plugin_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_entry_point_plugin_registers_and_runs(plugin_path, tmp_path):
    listed = run_cli(["list"], plugin_path, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "demo" in listed.stdout and "A Demo Plugin" in listed.stdout
    ran = run_cli(["run", "--methods", "demo", "--datasets", "mmnist", "--quick", "--epochs", "1",
                   "--sizes", "train=4,val=2,test=2", "--results", str(tmp_path / "res"), "--quiet"],
                  plugin_path, tmp_path)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    result = json.loads((tmp_path / "res" / "mmnist" / "demo" / "seed0" / "result.json").read_text())
    assert result["status"] == "complete" and result["method"]["citation"] == "Nobody, A Demo Plugin, 2026"
    # without the plugin on the path the name is unknown again
    missing = subprocess.run([sys.executable, "-m", "bench", "run", "--methods", "demo"], capture_output=True,
                             text=True, cwd=tmp_path, timeout=120)
    assert missing.returncode != 0 and "unknown method 'demo'" in missing.stderr
