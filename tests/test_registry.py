"""Registry: names, wildcards, errors with suggestions, method keys, and third-party plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from plugin_helpers import make_plugin, run_cli
from run_helpers import complete_result

from bench.errors import BenchError
from bench.spec.registry import (TRAIN_KEYS, get_dataset, get_method, list_datasets, list_methods, model_hparams,
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
    for lookup, what in ((get_method, "unknown method 'nope'"), (get_dataset, "unknown dataset 'nope'")):
        with pytest.raises(BenchError, match=what) as err:
            lookup("nope")
        assert "\n" not in str(err.value) and "bench list" in str(err.value)


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
    from bench.spec.registry import register_method

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
    return make_plugin(tmp_path, "demo", PLUGIN)


def test_entry_point_plugin_registers_and_runs(plugin_path, tmp_path):
    listed = run_cli(["list"], plugin_path, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "demo" in listed.stdout and "A Demo Plugin" in listed.stdout
    ran = run_cli(["run", "--methods", "demo", "--datasets", "mmnist", "--quick", "--epochs", "1",
                   "--sizes", "train=4,val=2,test=2", "--results", str(tmp_path / "res"), "--quiet"],
                  plugin_path, tmp_path)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    result = complete_result(tmp_path / "res", "demo")
    assert result.complete and result.method.citation == "Nobody, A Demo Plugin, 2026"
    # without the plugin on the path the name is unknown again
    missing = subprocess.run([sys.executable, "-m", "bench", "run", "--methods", "demo"], capture_output=True,
                             text=True, cwd=tmp_path, timeout=120)
    assert missing.returncode != 0 and "unknown method 'demo'" in missing.stderr


SHADOW = """
    from bench.spec.registry import register_method
    from torch import nn

    @register_method("tau", citation="An impostor")
    def build(data):
        return nn.Identity()
"""


def test_a_plugin_cannot_shadow_a_builtin_name(tmp_path):
    site = make_plugin(tmp_path, "shadow", SHADOW, entry="shadow")
    listed = run_cli(["list", "tau"], site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "Temporal Attention Unit" in listed.stdout and "An impostor" not in listed.stdout
    warning = [line for line in listed.stderr.splitlines() if "refused" in line]
    assert len(warning) == 1 and "benchplugin_shadow" in warning[0] and "bench.methods.tau" in warning[0]


def test_shadowing_needs_an_explicit_opt_in():
    from bench.spec.registry import METHODS, MethodSpec, add_method, get_method
    from torch import nn

    original = get_method("tau")
    impostor = MethodSpec(name="tau", build=lambda data: nn.Identity(), citation="An impostor")
    with pytest.warns(UserWarning, match="refused"):
        assert add_method(impostor) is original
    assert get_method("tau") is original
    try:
        assert add_method(impostor, replace=True) is impostor and get_method("tau") is impostor
    finally:
        METHODS.add("tau", original, METHODS.source("tau"), replace=True)
        METHODS._sources["tau"] = original.build.__module__
    assert get_method("tau") is original


@pytest.mark.parametrize("body, kind", [
    ("raise SystemExit(3)", "SystemExit"),
    ("raise RuntimeError('broken on purpose')", "RuntimeError"),
    ("import not_a_module_anywhere", "ModuleNotFoundError"),
])
def test_a_plugin_that_fails_to_import_never_takes_the_cli_down(tmp_path, body, kind):
    site = make_plugin(tmp_path, "broken", body, entry="broken")
    listed = run_cli(["list"], site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "tau" in listed.stdout and "broken" in listed.stderr and kind in listed.stderr
    ran = run_cli(["run", "--methods", "broken", "--results", str(tmp_path / "r")], site, tmp_path)
    assert ran.returncode == 2
    err = ran.stderr.strip()
    assert len(err.splitlines()) == 1 and "failed to load" in err and kind in err


def test_every_in_tree_hyperparameter_is_declared():
    """Types and ranges are declared once with each method (bench.spec.hparams), so `--set` checks them all."""
    from bench.spec.registry import TRAIN_PARAMS

    in_tree = [name for name in list_methods() if get_method(name).build.__module__.startswith("bench.")]
    assert {"simvp", "tau", "convlstm", "predrnn", "plasm"} <= set(in_tree)  # never an empty loop
    for name in in_tree:
        spec = get_method(name)
        keys = set(spec.declarations())
        undeclared = sorted(k for k in keys if k not in spec.params and k not in TRAIN_PARAMS)
        assert undeclared == [], f"{name} does not declare {undeclared}"
        for variant in [None, *spec.variants]:
            spec.resolve_hparams("mmnist", variant)  # every paper configuration passes its own declarations
            spec.resolve_hparams("mmnist", variant, tiny=True)


@pytest.mark.parametrize("text, value", [("3", 3), ("0.5", 0.5), ("(3,5)", (3, 5)), ("[3, 5]", [3, 5]),
                                         ("True", True), ("none", None), ("adamw", "adamw"), ("1e-3", 1e-3)])
def test_cli_values_are_read_as_literals(text, value):
    assert parse_assignment(f"k={text}") == ("k", value)


def test_declarations_check_type_and_range():
    from bench.spec.hparams import Choice, Float, Int, IntTuple

    assert Int(min=1).check("n", 3) == 3
    assert Float(min=0.0).check("lr", 1) == 1.0 and isinstance(Float().check("lr", 1), float)
    assert IntTuple(min=1).check("k", [3, 5]) == (3, 5)
    for decl, bad in ((Int(min=1), 0), (Int(), 1.5), (Int(), True), (Float(), "abc"), (Float(), float("nan")),
                      (Float(min=0.0, min_exclusive=True), 0.0), (Choice("a", "b"), "c"), (Choice(1, 2), True),
                      (IntTuple(min=1), (3, 0)), (IntTuple(), ()), (Float(max=1.0), 1.5)):
        with pytest.raises(BenchError, match="is invalid: expected"):
            decl.check("key", bad, "m")
