"""Issue 20: a plug-in cannot change a built-in method, and a run records where its method's code came from.

Found by trying: a plug-in could remove ``tau`` and register its own, swap the builder of the spec
it got from ``get_method``, or edit its tiny configuration, and the hijacked runs shared the
genuine spec hash; a plug-in raising KeyboardInterrupt at import ended every command (exit 130, no
output). Now registered specs are deep-frozen, only the registering module may remove a name, the
run spec records the method's code origin and hashes it when it is not the built-in code, and a
plug-in's KeyboardInterrupt is reported like any other broken plug-in (a real Ctrl-C still stops).
"""

from __future__ import annotations

import dataclasses

import pytest

from bench.errors import BenchError
from bench.spec.code import code_origin
from bench.spec.registry import METHODS, add_method, get_dataset, get_method, parse_method_key
from bench.store.record import read_result
from bench.spec.run_spec import RunSpec, SpecOptions, resolve_run_spec
from plugin_helpers import make_plugin, run_cli
from run_helpers import complete_result

RUN = ["--datasets", "mmnist", "--tiny", "--quiet", "--epochs", "1", "--batch-size", "2",
       "--sizes", "train=2,val=2,test=2"]


def spec_of(key: str = "tau") -> RunSpec:
    return resolve_run_spec(parse_method_key(key), get_dataset("mmnist"), 0, SpecOptions(tiny=True))


def wrapped_build(data, **hp):  # a plug-in's builder (never called here: the spec is only resolved)
    raise AssertionError("not built")


# ------------------------------------------------------------------------------------ in process


def test_registered_specs_are_read_only():
    tau, mmnist = get_method("tau"), get_dataset("mmnist")
    edits = [lambda: tau.tiny.__setitem__("hid_S", 1), lambda: tau.hparams["*"].__setitem__("lr", 1.0),
             lambda: tau.hparams.__setitem__("mmnist", {}), lambda: tau.variants["no-ddr"].__setitem__("ddr_weight", 1.0),
             lambda: tau.params.pop("hid_S"), lambda: mmnist.sizes.__setitem__("train", 1),
             lambda: mmnist.quick_sizes.clear()]
    for edit in edits:
        with pytest.raises((TypeError, AttributeError)):
            edit()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tau.build = wrapped_build  # type: ignore[misc]
    assert tau.resolve_hparams("mmnist", tiny=True)["hid_S"] != 1


def test_only_the_registering_module_may_remove_a_name():
    genuine = get_method("tau")
    with pytest.warns(UserWarning, match="removing method 'tau' .* refused"):
        METHODS.remove("tau")
    assert get_method("tau") is genuine and METHODS.source("tau") == "bench.methods.tau"


def test_a_swapped_builder_gets_a_hash_of_its_own_and_is_recorded():
    tau = get_method("tau")
    genuine = spec_of()
    assert genuine.code["in_tree"] and genuine.code["builder"] == "bench.methods.tau:build_tau"
    assert "code" not in genuine.identity()  # built-in code: the hash is the one it always had
    original = tau.build
    object.__setattr__(tau, "build", wrapped_build)  # what a plug-in can still do with Python's escape hatch
    try:
        swapped = spec_of()
    finally:
        object.__setattr__(tau, "build", original)
    assert swapped.hparams == genuine.hparams and swapped.hash != genuine.hash
    assert swapped.code["builder"].endswith(":wrapped_build") and not swapped.code["in_tree"]
    assert RunSpec.from_json(swapped.to_json()).hash == swapped.hash  # the record keeps it apart when read back
    assert spec_of().hash == genuine.hash


def test_an_override_with_the_genuine_builder_from_another_source_is_apart():
    """A spec copied from ``tau`` and registered with replace=True by someone else: same builder, other source."""
    genuine = spec_of()
    copy = dataclasses.replace(get_method("tau"), citation="A copy")
    with METHODS.swapped("tau", copy):  # the test hook (a plug-in would pass replace=True)
        other = spec_of()
    assert other.code["registered_by"] == "test hook" and other.hash != genuine.hash
    assert get_method("tau") is not copy and spec_of().hash == genuine.hash


def test_a_builder_compiled_under_a_forged_module_name_is_not_built_in():
    assert code_origin(get_method("tau").build, "bench.methods.tau")["in_tree"]  # (the module is loaded now)
    namespace = {"__name__": "bench.methods.tau"}
    exec("def build_tau(data, **hp):\n    return None\n", namespace)  # noqa: S102 - what a forger would do
    origin = code_origin(namespace["build_tau"], "bench.methods.tau")
    assert origin["builder"] == "bench.methods.tau:build_tau" and not origin["in_tree"]
    assert not code_origin(get_method("tau").build, "bench.methods.plasm")["in_tree"]  # another module's builder


def test_a_plugin_method_hashes_its_origin():
    from torch import nn

    def build(data):
        return nn.Identity()

    spec = dataclasses.replace(get_method("simvp"), name="plugin_probe", build=build, variants={})
    add_method(spec)
    try:
        probe = spec_of("plugin_probe")
    finally:
        METHODS.remove("plugin_probe")  # this module registered it: it may remove it
    assert probe.identity()["code"] == {"registered_by": __name__, "builder": f"{__name__}:{build.__qualname__}"}
    with pytest.raises(BenchError):
        get_method("plugin_probe")


# ------------------------------------------------------------------------------------ at the CLI

HIJACK = """
    from bench.spec.registry import METHODS, get_method, register_method

    simvp = get_method("simvp")
    genuine_build = simvp.build
    try:
        simvp.tiny["hid_S"] = 2  # edit its tiny configuration
    except TypeError:
        pass
    METHODS.remove("simvp")  # remove it, then register our own under its name

    @register_method("simvp", citation="An impostor")
    def impostor(data, **hp):
        return genuine_build(data, **hp)

    def doctored(data, **hp):  # swap the builder of the genuine spec
        return genuine_build(data, **hp)

    object.__setattr__(simvp, "build", doctored)
"""


def test_a_hijacking_plugin_changes_no_builtin_and_its_runs_stay_apart(bench, tmp_path):
    genuine = bench("run", "--methods", "simvp", *RUN, "--results", tmp_path)
    assert genuine.exit_code == 0, genuine.output
    first = complete_result(tmp_path, "simvp")
    assert first.spec.code["in_tree"] and "SimVP" in first.method.citation
    site = make_plugin(tmp_path, "hijack", HIJACK, entry="hijack")
    hijacked = run_cli(["run", "--methods", "simvp", *RUN, "--results", tmp_path], site, tmp_path)
    assert hijacked.returncode == 0, hijacked.stderr + hijacked.stdout
    assert "kept" not in hijacked.stdout  # the genuine result is not served to the doctored code
    refused = [line for line in hijacked.stderr.splitlines() if "refused" in line]
    assert len(refused) == 2 and any("removing method 'simvp'" in line for line in refused), hijacked.stderr
    results = sorted(tmp_path.glob("mmnist/simvp/*/seed0/result.json"))
    assert len(results) == 2
    second = next(r for r in map(read_result, results) if r.spec_hash != first.spec_hash)
    assert second.spec.code["builder"] == "benchplugin_hijack:doctored" and not second.spec.code["in_tree"]
    assert second.spec.hparams == first.spec.hparams  # the tiny edit was refused
    assert second.method.citation == first.method.citation  # still the genuine spec, doctored builder recorded


def test_a_plugin_raising_keyboard_interrupt_is_a_broken_plugin(tmp_path):
    site = make_plugin(tmp_path, "kbi", "raise KeyboardInterrupt", entry="kbi")
    listed = run_cli(["list"], site, tmp_path)
    assert listed.returncode == 0 and "tau" in listed.stdout, listed.stderr
    assert "plug-in 'kbi'" in listed.stderr and "failed to load: KeyboardInterrupt" in listed.stderr
    ran = run_cli(["run", "--methods", "kbi", "--results", tmp_path / "r"], site, tmp_path)
    err = ran.stderr.strip()
    assert ran.returncode == 2 and len(err.splitlines()) == 1 and "failed to load: KeyboardInterrupt" in err, err


def test_the_users_ctrl_c_while_plugins_load_still_stops(tmp_path):
    body = """
        import os, signal, time
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while this plug-in is imported
        time.sleep(5)
    """
    site = make_plugin(tmp_path, "slow", body, entry="slow")
    listed = run_cli(["list"], site, tmp_path)
    assert listed.returncode == 130 and "tau" not in listed.stdout, (listed.returncode, listed.stdout, listed.stderr)
