"""Write the golden fixtures of MIM and E3D-LSTM (tests/test_reference_mim.py, tests/test_reference_e3dlstm.py).

A throwaway generator outside the package, like ``tools/make_reference_fixtures.py`` (its
helpers are in ``fixture_helpers.py``; the E3D-LSTM patches in ``e3dlstm_authors_semantics.py``): it loads OpenSTL's MIM and E3D-LSTM models (their files only, none of their
code is copied here) and runs them with PredRNN's method functions (``forward``: the test-time
rollout with its all-zero mask; ``training_step``: the scheduled-sampling mask, drawn with numpy)
at small configurations, in float64, and saves the initial weights, inputs, outputs, losses, the
masks the reference drew, and three Adam steps' losses.

Reference: OpenSTL (chengtan9907/OpenSTL, branch OpenSTL-Lightning), commit
c74deb5d4c3da585291f9f18281f3fefdbba3a54 (``models/mim_model.py``, ``modules/mim_modules.py``,
``models/e3dlstm_model.py``, ``modules/e3dlstm_modules.py``, ``modules/predrnn_modules.py``,
``methods/predrnn.py``, ``utils/predrnn_utils.py``). The authors' codes (TensorFlow 1) were read to
decide the semantics: Yunbo426/MIM a61eb6a (``src/layers/MIMBlock.py``, ``MIMN.py``,
``src/models/mim.py``) and google/e3d_lstm 3e5bd4b (``src/layers/rnn_cell.py``,
``src/models/eidetic_3d_lstm_net.py``).

Where OpenSTL departs from the authors, the reference is patched here so that it computes the
authors' semantics (bench's default), and the patches are switched off for the E3D-LSTM
``openstl`` variant's entry:

* MIM: ``MIMBlock.convlstm_c`` (MIM-S's cell state) is reset to None before every call (the
  authors start every sequence from zero; OpenSTL carries it over), and its per-step
  ``.detach()`` -- the only ``detach`` in MIM's forward -- is made an identity while the reference
  runs, so gradients flow through it as in the authors' graph. The fixture records how far the
  unpatched reference drifts on a second call and how its Adam losses differ without the second
  patch, to show both patches matter at this size.
* E3D-LSTM (see ``bench.baselines.e3dlstm``): the cell returns the *new* global memory (captured
  with a forward pre-hook on ``conv_new_gm``, which receives it); ``_attn`` is replaced by
  attention over channel-vector tokens (the history the model concatenates along channels is
  read as successive cell states); ``tf_Conv3d`` pads the window with TensorFlow's 'same' zero
  slice instead of duplicating; the loss's MSE term is halved (the authors' ``l2_loss`` is
  sum(d^2)/2, their L1 a sum: per element, MSE/2 + L1).

Zero-initialised parameters are perturbed (MIM's peepholes ``ct_weight``/``oc_weight``, every
norm's affine), so that a dropped or misrouted term changes the output; the perturbation is part of
the stored weights.

How to run (a throwaway virtual environment; these files need only torch and numpy; fvcore for
the FLOP counts)::

    python3 -m venv --system-site-packages /tmp/refenv     # or: pip install torch==2.13.0 numpy fvcore
    # /tmp/OpenSTL: chengtan9907/OpenSTL at the commit above
    /tmp/refenv/bin/python tools/reference_mim_e3dlstm.py --openstl /tmp/OpenSTL --out tests/fixtures/reference
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixture_helpers as base  # noqa: E402  (helpers only; no model code)
from e3dlstm_authors_semantics import (channel_token_attention, e3d_authors_semantics,  # noqa: E402
                                       returning_new_memory, zero_padded_time_conv)

OPENSTL_COMMIT = base.OPENSTL_COMMIT
AUTHORS = {"mim": "Yunbo426/MIM a61eb6a1be204cf0a7767ccbb61e2367a8b42401",
           "e3dlstm": "google/e3d_lstm 3e5bd4b02e778abb1cb489e6177e05e57d7d7734"}


def load_openstl_recurrent(root: Path) -> SimpleNamespace:
    """Import OpenSTL's PredRNN/MIM/E3D-LSTM files without the package __init__ files (no timm needed)."""
    for name in ("openstl", "openstl.modules", "openstl.models", "openstl.methods", "openstl.utils"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    stand_in = types.ModuleType("openstl.methods.base_method")
    stand_in.Base_method = type("Base_method", (), {})  # the Lightning base class; never instantiated
    sys.modules["openstl.methods.base_method"] = stand_in
    load = importlib.import_module
    modules = [load(f"openstl.modules.{m}") for m in ("predrnn_modules", "mim_modules", "e3dlstm_modules")]
    base.expose("openstl.modules", *modules)
    models = [load(f"openstl.models.{m}") for m in ("predrnn_model", "mim_model", "e3dlstm_model")]
    base.expose("openstl.models", *models)
    base.expose("openstl.utils", load("openstl.utils.predrnn_utils"))
    return SimpleNamespace(MIM_Model=models[1].MIM_Model, E3DLSTM_Model=models[2].E3DLSTM_Model,
                           PredRNN=load("openstl.methods.predrnn").PredRNN,
                           mim=modules[1], e3d=modules[2])


class Shim:
    """What PredRNN's method functions read from ``self``."""

    def __init__(self, hparams, model):
        self.hparams, self.model = hparams, model
        self.device, self.global_step, self.eta = "cpu", 0, 1.0

    def log(self, *args, **kwargs):
        pass


def fvcore_flops(model: nn.Module, cfg: dict) -> int:
    """fvcore's count of the reference model over a batch-1 sequence (as OpenSTL's display_method_info)."""
    from fvcore.nn import FlopCountAnalysis

    p, c = cfg["patch_size"], cfg["C"]
    frames = torch.zeros(1, cfg["pre"] + cfg["aft"], cfg["H"] // p, cfg["W"] // p, p * p * c)
    mask = torch.zeros(1, cfg["aft"] - 1, cfg["H"] // p, cfg["W"] // p, p * p * c)
    analysis = FlopCountAnalysis(model, (frames, mask))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return int(analysis.total())


def batches_for(gen: torch.Generator, cfg: dict):
    shape_x = (cfg["batch"], cfg["pre"], cfg["C"], cfg["H"], cfg["W"])
    shape_y = (cfg["batch"], cfg["aft"], cfg["C"], cfg["H"], cfg["W"])
    x, y = base.rand(gen, *shape_x), base.rand(gen, *shape_y)
    return x, y, [(base.rand(gen, *shape_x), base.rand(gen, *shape_y)) for _ in range(base.ADAM_STEPS)]


def run_reference(ref, model: nn.Module, cfg: dict, x, y, batches, before_call=lambda m: None,
                  context=contextlib.nullcontext) -> dict:
    """Test-time output, one training step (mask recorded) and three Adam steps of ``model`` (float64)."""
    hp = base.recurrent_hparams(cfg, 0)
    model.configs = hp
    with base.float64_default(), torch.no_grad(), context():
        before_call(model)
        test_output = ref.PredRNN.forward(Shim(hp, model), x.double(), y.double())
    recorder = base.MaskRecorder(model)
    shim = Shim(hp, recorder)
    np.random.seed(5)
    with base.float64_default(), context():
        before_call(model)
        loss = ref.PredRNN.training_step(shim, (x.double(), y.double()), 0)
    mask = base.per_step_mask(recorder.masks[-1])
    assert 0 < mask.sum() < mask.numel(), "choose another seed: the mask is not mixed"
    opt = torch.optim.Adam(model.parameters(), lr=base.ADAM_LR)
    shim.eta, losses, masks = 1.0, [], []
    for step, (bx, by) in enumerate(batches):
        shim.global_step = step
        opt.zero_grad()
        with base.float64_default(), context():
            before_call(model)
            step_loss = ref.PredRNN.training_step(shim, (bx.double(), by.double()), step)
            step_loss.backward()
        opt.step()
        losses.append(step_loss.item())
        masks.append(base.per_step_mask(recorder.masks[-1]))
    return {"test_output": test_output, "train_mask": mask, "train_loss": loss.item(),
            "adam": {"lr": base.ADAM_LR, "batches": batches, "masks": masks, "losses": losses}}


def grad_census(model: nn.Module, cfg: dict) -> dict:
    """Forward + backward of a short sequence: which parameters get no gradient, or an all-zero one."""
    p, c = cfg["patch_size"], cfg["C"]
    model.configs = base.recurrent_hparams(cfg, 0)
    frames = torch.rand(1, cfg["pre"] + cfg["aft"], cfg["H"] // p, cfg["W"] // p, p * p * c)
    mask = torch.zeros(1, cfg["aft"] - 1, cfg["H"] // p, cfg["W"] // p, p * p * c)
    _, loss = model(frames, mask)
    loss.backward()
    named = dict(model.named_parameters())
    no_grad = sorted(n for n, q in named.items() if q.grad is None)
    zero_grad = sorted(n for n, q in named.items() if q.grad is not None and not bool(q.grad.any()))
    return {"total": sum(q.numel() for q in named.values()),
            "no_grad": sum(named[n].numel() for n in no_grad), "no_grad_names": no_grad,
            "zero_grad": sum(named[n].numel() for n in zero_grad), "zero_grad_names": zero_grad}


# --------------------------------------------------------------------------------------------
# MIM
# --------------------------------------------------------------------------------------------

MIM_CFG = dict(batch=2, pre=3, aft=3, C=2, H=8, W=8, patch_size=2, num_hidden=[8, 8, 8], filter_size=3)
MIM_LN_CFG = dict(batch=2, pre=3, aft=3, C=1, H=8, W=8, patch_size=2, num_hidden=[4, 4, 4], filter_size=3)
MMNIST = dict(pre=10, aft=10, C=1, H=64, W=64, patch_size=4, num_hidden=[128] * 4, filter_size=5)


def reset_mims_state(model: nn.Module) -> None:
    """Start MIM-S from zero (the authors' per-sequence state; OpenSTL never resets it)."""
    for module in model.modules():
        if hasattr(module, "convlstm_c"):
            module.convlstm_c = None


@contextlib.contextmanager
def mims_state_attached():
    """Make ``Tensor.detach`` an identity while the reference runs: MIMBlock.forward detaches MIM-S's
    carried state at every step (its only detach); the authors' graph backpropagates through it."""
    original = torch.Tensor.detach
    torch.Tensor.detach = lambda self: self
    try:
        yield
    finally:
        torch.Tensor.detach = original


def perturb_peepholes(model: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("ct_weight", "oc_weight")):
                param.copy_(torch.rand(param.shape, generator=gen) - 0.5)


def build_mim(ref, cfg: dict, layer_norm: int, gen: torch.Generator) -> nn.Module:
    torch.manual_seed(0)
    model = ref.MIM_Model(len(cfg["num_hidden"]), list(cfg["num_hidden"]), base.recurrent_hparams(cfg, layer_norm))
    base.perturb_norms(model, gen)
    perturb_peepholes(model, gen)
    return model


def make_mim(ref) -> dict:
    out: dict = {"config": MIM_CFG, "ln_config": MIM_LN_CFG}
    gen = torch.Generator().manual_seed(21)
    model = build_mim(ref, MIM_CFG, 0, gen)
    state = base.cpu_state(model)
    model = model.double()
    x, y, batches = batches_for(gen, MIM_CFG)
    untouched = copy.deepcopy(model)
    entry = run_reference(ref, model, MIM_CFG, x, y, batches, reset_mims_state, mims_state_attached)
    # What the two patches change at this size (both must matter, or the tests could not see them):
    hp = base.recurrent_hparams(MIM_CFG, 0)
    carried = copy.deepcopy(untouched)
    carried.configs = hp
    with base.float64_default(), torch.no_grad():
        first = ref.PredRNN.forward(Shim(hp, carried), x.double(), y.double())
        second = ref.PredRNN.forward(Shim(hp, carried), x.double(), y.double())  # state carried over
    assert torch.equal(first, entry["test_output"])
    drift = (second - first).abs().max().item()
    assert drift > 1e-6, drift
    detached = run_reference(ref, copy.deepcopy(untouched), MIM_CFG, x, y, batches, reset_mims_state)
    assert detached["train_loss"] == entry["train_loss"]  # the forward does not depend on the detach
    assert max(abs(a - b) for a, b in zip(detached["adam"]["losses"], entry["adam"]["losses"])) > 1e-9
    entry.update(state_dict=state, x=x, y=y, stateful_second_call_drift=drift,
                 adam_losses_detached=detached["adam"]["losses"])
    out["plain"] = entry
    # layer norm on: the test-time rollout only
    ln_model = build_mim(ref, MIM_LN_CFG, 1, gen)
    ln_state = base.cpu_state(ln_model)
    ln_model = ln_model.double()
    lx, ly, _ = batches_for(gen, MIM_LN_CFG)
    hp = base.recurrent_hparams(MIM_LN_CFG, 1)
    ln_model.configs = hp
    with base.float64_default(), torch.no_grad():
        reset_mims_state(ln_model)
        ln_out = ref.PredRNN.forward(Shim(hp, ln_model), lx.double(), ly.double())
    out["layer_norm"] = {"state_dict": ln_state, "x": lx, "y": ly, "test_output": ln_out}
    # cost: fvcore at the fixture size, parameter census at Moving MNIST
    cfg = dict(MIM_CFG, pre=2, aft=2)  # 3 steps: the second MIM-N input (a D) and the t = 1 skip are both in
    small = ref.MIM_Model(len(cfg["num_hidden"]), list(cfg["num_hidden"]), base.recurrent_hparams(cfg, 0))
    out["flops"] = {"config": cfg, "total": fvcore_flops(small, cfg)}
    torch.manual_seed(0)
    full = ref.MIM_Model(4, list(MMNIST["num_hidden"]), base.recurrent_hparams(MMNIST, 0))
    out["mmnist"] = {"config": MMNIST, **grad_census(full, dict(MMNIST, pre=2, aft=2))}
    return out


# --------------------------------------------------------------------------------------------
# E3D-LSTM
# --------------------------------------------------------------------------------------------

E3D_CFG = dict(batch=2, pre=3, aft=3, C=2, H=8, W=8, patch_size=2, num_hidden=[4, 4], filter_size=5)
E3D_LN_CFG = dict(batch=2, pre=3, aft=3, C=1, H=8, W=8, patch_size=2, num_hidden=[4, 4], filter_size=5)
TAXIBJ = dict(pre=4, aft=4, C=2, H=32, W=32, patch_size=2, num_hidden=[128] * 4, filter_size=5)


def build_e3d(ref, cfg: dict, layer_norm: int, gen: torch.Generator) -> nn.Module:
    torch.manual_seed(0)
    model = ref.E3DLSTM_Model(len(cfg["num_hidden"]), list(cfg["num_hidden"]), base.recurrent_hparams(cfg, layer_norm))
    base.perturb_norms(model, gen)
    return model


def make_e3dlstm(ref) -> dict:
    out: dict = {"config": E3D_CFG, "ln_config": E3D_LN_CFG}
    gen = torch.Generator().manual_seed(31)
    model = build_e3d(ref, E3D_CFG, 0, gen)
    out["state_dict"] = base.cpu_state(model)
    model = model.double()
    x, y, batches = batches_for(gen, E3D_CFG)
    out.update(x=x, y=y)
    authors_model = copy.deepcopy(model)
    out["authors"] = run_reference(ref, authors_model, E3D_CFG, x, y, batches,
                                   context=e3d_authors_semantics(ref, authors_model))
    out["openstl"] = run_reference(ref, copy.deepcopy(model), E3D_CFG, x, y, batches)
    gap = (out["authors"]["test_output"] - out["openstl"]["test_output"]).abs().max().item()
    assert gap > 1e-3, gap
    # each patch alone must change the output (or the tests could not see a wrong one)
    hp = base.recurrent_hparams(E3D_CFG, 0)
    model.configs = hp
    cell, conv = ref.e3d.Eidetic3DLSTMCell, ref.e3d.tf_Conv3d
    single = {"attention": (cell, "_attn", channel_token_attention),
              "time_padding": (conv, "forward", zero_padded_time_conv),
              "memory": (cell, "forward", returning_new_memory(cell.forward))}
    for name, (owner, attr, value) in single.items():
        saved = getattr(owner, attr)
        setattr(owner, attr, value)
        try:
            with base.float64_default(), torch.no_grad():
                alone = ref.PredRNN.forward(Shim(hp, model), x.double(), y.double())
        finally:
            setattr(owner, attr, saved)
        assert (alone - out["openstl"]["test_output"]).abs().max().item() > 1e-4, name
    # layer norm on (authors' semantics): the test-time rollout only
    ln_model = build_e3d(ref, E3D_LN_CFG, 1, gen)
    ln_state = base.cpu_state(ln_model)
    ln_model = ln_model.double()
    lx, ly, _ = batches_for(gen, E3D_LN_CFG)
    hp = base.recurrent_hparams(E3D_LN_CFG, 1)
    ln_model.configs = hp
    outputs = {}
    for name, context in (("authors", e3d_authors_semantics(ref, ln_model)), ("openstl", contextlib.nullcontext)):
        with base.float64_default(), torch.no_grad(), context():
            outputs[name] = ref.PredRNN.forward(Shim(hp, ln_model), lx.double(), ly.double())
    out["layer_norm"] = {"state_dict": ln_state, "x": lx, "y": ly, "test_output": outputs}
    # cost: fvcore of the reference as it is at the fixture size; parameter census at Moving MNIST and TaxiBJ
    cfg = dict(E3D_CFG, pre=2, aft=2)
    small = ref.E3DLSTM_Model(len(cfg["num_hidden"]), list(cfg["num_hidden"]), base.recurrent_hparams(cfg, 0))
    out["flops"] = {"config": cfg, "openstl": fvcore_flops(small, cfg)}
    torch.manual_seed(0)
    full = ref.E3DLSTM_Model(4, list(MMNIST["num_hidden"]), base.recurrent_hparams(MMNIST, 0))
    out["mmnist"] = {"config": MMNIST, **grad_census(full, dict(MMNIST, pre=2, aft=2))}
    with torch.device("meta"):
        taxibj = ref.E3DLSTM_Model(4, list(TAXIBJ["num_hidden"]), base.recurrent_hparams(TAXIBJ, 0))
    out["taxibj"] = {"config": TAXIBJ, "total": sum(q.numel() for q in taxibj.parameters())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openstl", type=Path, required=True, help="OpenSTL checkout at %s" % OPENSTL_COMMIT)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/reference"))
    parser.add_argument("--only", choices=("mim", "e3dlstm"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_openstl_recurrent(args.openstl.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in (("mim", make_mim), ("e3dlstm", make_e3dlstm)):
        if args.only and name != args.only:
            continue
        data = make(ref)
        data["meta"] = {"openstl_commit": OPENSTL_COMMIT, "authors": AUTHORS[name], "torch": str(torch.__version__)}
        torch.save(data, args.out / f"{name}.pt")
        summary = {k: v for k, v in data["mmnist"].items() if not k.endswith("names")}
        print(name, json.dumps({"flops": data["flops"], "mmnist": summary}, default=str))


if __name__ == "__main__":
    main()
