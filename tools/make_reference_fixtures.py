"""Write the golden fixtures of tests/test_reference_match.py from the authors' reference code.

This is a throwaway generator kept outside the package: it imports the reference implementations
from local checkouts (it contains none of their code) and saves, for SimVP, TAU, ConvLSTM and
PredRNN at small configurations of the published architectures, the reference's randomly
initialised weights, fixed inputs, the reference's outputs and losses (float64), and the losses
of three Adam steps on fixed batches. The tests load those weights into our models and must
reproduce every number.

References (pin these commits; the fixtures were written from them)
------------------------------------------------------------------
* OpenSTL (chengtan9907/OpenSTL, branch OpenSTL-Lightning), commit
  c74deb5d4c3da585291f9f18281f3fefdbba3a54 (2024-03-04). Maintained by the TAU/SimVP authors:
  TAU's temporal module (``SimVP_Model``'s ``MidMetaNet`` with ``model_type='tau'``), TAU's loss
  (``methods/tau.py``: ``diff_div_reg``, ``training_step``), SimVP's Inception-UNet translator
  (``MidIncepNet``), ConvLSTM and PredRNN (models, cells, and the methods' test-time ``forward`` and
  ``training_step`` with their scheduled-sampling masks).
* SimVP's original release (A4Bio/SimVP), commit 4dcd4451282e014573ca4346ced8223e342f7893: the
  CVPR 2022 SimVP (``model.py``/``modules.py``). OpenSTL's SimVP frame is its later "SimVP v2"
  encoder/decoder (SiLU, PixelShuffle up-sampling, additive skip); the SimVP and TAU papers describe
  the original one ("Conv2d and ConvTranspose2d", TAU Sec. 3.2), so the *full* SimVP and TAU models
  are compared against A4Bio's SimVP, whose ``hid`` is replaced by OpenSTL's TAU ``MidMetaNet`` for
  TAU. (A4Bio's ``Mid_Xnet`` and OpenSTL's ``MidIncepNet`` are checked to agree here too.)

How to run (a separate virtual environment: OpenSTL needs timm, which this project never installs)
--------------------------------------------------------------------------------------------------
    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch==2.13.0 numpy          # the CPU build; install torch first
    /tmp/refenv/bin/pip install --no-deps timm               # 1.0.31 wrote the fixtures
    /tmp/refenv/bin/pip install packaging pyyaml pillow safetensors huggingface_hub
    # /tmp/OpenSTL: a checkout of chengtan9907/OpenSTL at the OpenSTL commit above
    # /tmp/SimVP:   a checkout of A4Bio/SimVP at the SimVP commit above
    /tmp/refenv/bin/python tools/make_reference_fixtures.py \
        --openstl /tmp/OpenSTL --simvp /tmp/SimVP --out tests/fixtures/reference

torchvision is not installed (timm imports it at module level; nothing used here calls it): the
script inserts an inert placeholder package for it. OpenSTL's package ``__init__`` files import
every model and PyTorch Lightning; the script registers empty parent packages instead and loads
only the files it needs. The Lightning base class of OpenSTL's methods is replaced by a plain class
(the methods' ``forward``/``training_step``/``diff_div_reg`` are called as plain functions on a
small stand-in object holding ``hparams`` and ``model``).

The helpers the fixture scripts share (loading a reference package without its ``__init__`` files,
norm perturbation, OpenSTL's recurrent hyperparameters, the mask recorder) are in
``tools/fixture_helpers.py``.

Fixture conventions: weights are stored as created (float32) and the models run in float64 after
``.double()``; the affine parameters of every normalisation, BatchNorm running statistics and TAU's
layer scales are perturbed away from their constant initial values (so that a dropped or swapped
affine term changes the output), and that perturbation is part of the stored weights.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from fixture_helpers import (ADAM_LR, ADAM_STEPS, OPENSTL_COMMIT, MaskRecorder, cpu_state, expose, float64_default,
                             init_stats, per_step_mask, perturb_norms, rand, recurrent_hparams, stub_torchvision)

SIMVP_COMMIT = "4dcd4451282e014573ca4346ced8223e342f7893"


# --------------------------------------------------------------------------------------------
# Importing the references without their package __init__ files
# --------------------------------------------------------------------------------------------


def load_openstl(root: Path) -> SimpleNamespace:
    """Import the OpenSTL files used here, skipping the package __init__ files (see the docstring)."""
    stub_torchvision()
    for name in ("openstl", "openstl.modules", "openstl.models", "openstl.methods", "openstl.utils"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    base = types.ModuleType("openstl.methods.base_method")

    class Base_method:  # stands in for the Lightning module; never instantiated
        pass

    base.Base_method = Base_method
    sys.modules["openstl.methods.base_method"] = base

    load = importlib.import_module
    modules = [load(f"openstl.modules.{m}") for m in ("convlstm_modules", "predrnn_modules", "simvp_modules")]
    expose("openstl.modules", *modules)
    models = [load(f"openstl.models.{m}") for m in ("convlstm_model", "predrnn_model", "simvp_model")]
    expose("openstl.models", *models)
    expose("openstl.utils", load("openstl.utils.predrnn_utils"))
    simvp_method = load("openstl.methods.simvp")
    return SimpleNamespace(
        simvp_model=models[2],
        ConvLSTM_Model=models[0].ConvLSTM_Model,
        PredRNN_Model=models[1].PredRNN_Model,
        SimVPMethod=simvp_method.SimVP,
        TAUMethod=load("openstl.methods.tau").TAU,
        PredRNNMethod=load("openstl.methods.predrnn").PredRNN,
        ConvLSTMMethod=load("openstl.methods.convlstm").ConvLSTM,
    )


def load_simvp_v1(root: Path) -> types.ModuleType:
    """Import A4Bio/SimVP's model.py (it imports its sibling ``modules.py`` as ``modules``)."""
    saved = sys.modules.get("modules")
    spec = importlib.util.spec_from_file_location("modules", root / "modules.py")
    sys.modules["modules"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["modules"])
    spec = importlib.util.spec_from_file_location("a4bio_simvp_model", root / "model.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    if saved is not None:
        sys.modules["modules"] = saved
    return model


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class MethodShim:
    """What OpenSTL's method functions read from ``self``: hparams, model, device, a no-op log."""

    def __init__(self, hparams: SimpleNamespace, model: nn.Module, ref: SimpleNamespace):
        self.hparams = hparams
        self.model = model
        self.device = "cpu"
        self.global_step = 0
        self.eta = 1.0
        self.criterion = nn.MSELoss()
        self._ref = ref
        self.diff_div_reg = types.MethodType(ref.TAUMethod.diff_div_reg, self)

    def __call__(self, batch_x, batch_y=None):  # SimVP/TAU: Lightning's self(batch_x)
        return self._ref.SimVPMethod.forward(self, batch_x)

    def log(self, *args, **kwargs):
        pass


# --------------------------------------------------------------------------------------------
# SimVP and TAU
# --------------------------------------------------------------------------------------------

SIMVP_CFG = dict(batch=2, T=4, C=1, H=16, W=16, hid_S=8, hid_T=16, N_S=4, N_T=3, incep_ker=[3, 5, 7], groups=4)
TAU_CFG = dict(batch=2, T=4, C=2, H=16, W=16, hid_S=8, hid_T=24, N_S=2, N_T=3, mlp_ratio=4.0, drop_path=0.2,
               alpha=0.1)
# Moving MNIST configurations (parameter counts only) and the init-statistics configuration.
SIMVP_MMNIST = dict(T=10, C=1, H=64, W=64, hid_S=64, hid_T=512, N_S=4, N_T=8, incep_ker=[3, 5, 7, 11], groups=8)
TAU_MMNIST = dict(T=10, C=1, H=64, W=64, hid_S=64, hid_T=512, N_S=4, N_T=8, mlp_ratio=8.0, drop_path=0.0)
INIT_CFG = dict(T=4, C=1, H=8, W=8, hid_S=16, hid_T=128, N_S=2, N_T=2, incep_ker=[3, 5], groups=8, mlp_ratio=8.0,
                drop_path=0.0)


def build_simvp(ref_v1, cfg) -> nn.Module:
    return ref_v1.SimVP((cfg["T"], cfg["C"], cfg["H"], cfg["W"]), hid_S=cfg["hid_S"], hid_T=cfg["hid_T"],
                        N_S=cfg["N_S"], N_T=cfg["N_T"], incep_ker=list(cfg.get("incep_ker", [3, 5, 7, 11])),
                        groups=cfg.get("groups", 8))


def build_tau(ref, ref_v1, cfg) -> nn.Module:
    """A4Bio's SimVP frame (the paper's Conv2d/ConvTranspose2d encoder/decoder) around OpenSTL's TAU module."""
    model = build_simvp(ref_v1, dict(cfg, N_T=2, hid_T=8, incep_ker=[3], groups=1))  # its Mid_Xnet is replaced
    h, w = cfg["H"] // 2 ** (cfg["N_S"] // 2), cfg["W"] // 2 ** (cfg["N_S"] // 2)
    model.hid = ref.simvp_model.MidMetaNet(cfg["T"] * cfg["hid_S"], cfg["hid_T"], cfg["N_T"], input_resolution=(h, w),
                                           model_type="tau", mlp_ratio=cfg["mlp_ratio"], drop=0.0,
                                           drop_path=cfg["drop_path"])
    return model


def simvp_hparams(cfg) -> SimpleNamespace:
    return SimpleNamespace(pre_seq_length=cfg["T"], aft_seq_length=cfg["T"], alpha=cfg.get("alpha", 0.0))


def adam_losses(shim, model, batches, step_fn, seeds) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR)
    losses = []
    for (x, y), seed in zip(batches, seeds):
        torch.manual_seed(seed)
        opt.zero_grad()
        loss = step_fn(shim, (x.double(), y.double()), 0)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def make_simvp(ref, ref_v1) -> dict:
    cfg = SIMVP_CFG
    torch.manual_seed(0)
    model = build_simvp(ref_v1, cfg)
    gen = torch.Generator().manual_seed(1)
    perturb_norms(model, gen)
    state = cpu_state(model)
    model = model.double()
    shape = (cfg["batch"], cfg["T"], cfg["C"], cfg["H"], cfg["W"])
    x, y = rand(gen, *shape), rand(gen, *shape)
    with torch.no_grad():
        out = model(x.double())
        # A4Bio's Mid_Xnet and OpenSTL's MidIncepNet are the same translator: check on these weights.
        incep = ref.simvp_model.MidIncepNet(cfg["T"] * cfg["hid_S"], cfg["hid_T"], cfg["N_T"],
                                            incep_ker=cfg["incep_ker"], groups=cfg["groups"]).double()
        incep.load_state_dict(model.hid.state_dict())
        z = torch.randn(2, cfg["T"], cfg["hid_S"], 4, 4, generator=gen).double()
        assert torch.equal(incep(z), model.hid(z)), "A4Bio Mid_Xnet != OpenSTL MidIncepNet"
    shim = MethodShim(simvp_hparams(cfg), model, ref)
    loss = ref.SimVPMethod.training_step(shim, (x.double(), y.double()), 0).item()
    batches = [(rand(gen, *shape), rand(gen, *shape)) for _ in range(ADAM_STEPS)]
    losses = adam_losses(shim, model, batches, ref.SimVPMethod.training_step, [0] * ADAM_STEPS)
    with torch.no_grad():
        full = build_simvp(ref_v1, SIMVP_MMNIST)
        full_params = sum(p.numel() for p in full.parameters())
        torch.manual_seed(0)
        stats = init_stats(build_simvp(ref_v1, INIT_CFG))
    return {"config": cfg, "state_dict": state, "x": x, "y": y, "output": out, "loss": loss,
            "adam": {"lr": ADAM_LR, "batches": batches, "losses": losses},
            "mmnist": {"config": SIMVP_MMNIST, "params": full_params},
            "init": {"config": INIT_CFG, "stats": stats}}


def make_tau(ref, ref_v1) -> dict:
    cfg = TAU_CFG
    torch.manual_seed(0)
    model = build_tau(ref, ref_v1, cfg)
    gen = torch.Generator().manual_seed(2)
    perturb_norms(model, gen)
    state = cpu_state(model)
    model = model.double()
    shape = (cfg["batch"], cfg["T"], cfg["C"], cfg["H"], cfg["W"])
    x, y = rand(gen, *shape), rand(gen, *shape)
    rates = [blk.block.drop_path.drop_prob if hasattr(blk.block.drop_path, "drop_prob") else 0.0
             for blk in model.hid.enc]
    model.eval()
    with torch.no_grad():
        out_eval = model(x.double())
    model.train()
    shim = MethodShim(simvp_hparams(cfg), model, ref)
    torch.manual_seed(7)
    pred = shim(x.double())
    mse = nn.functional.mse_loss(pred, y.double()).item()
    ddr = ref.TAUMethod.diff_div_reg(shim, pred, y.double()).item()
    torch.manual_seed(7)
    loss = ref.TAUMethod.training_step(shim, (x.double(), y.double()), 0).item()
    assert abs(loss - (mse + cfg["alpha"] * ddr)) < 1e-12
    # The same loss with stochastic depth off: the seeded drop-path masks must matter in this fixture.
    saved = [blk.block.drop_path for blk in model.hid.enc]
    for blk in model.hid.enc:
        blk.block.drop_path = nn.Identity()
    no_drop = ref.TAUMethod.training_step(shim, (x.double(), y.double()), 0).item()
    for blk, dp in zip(model.hid.enc, saved):
        blk.block.drop_path = dp
    assert abs(no_drop - loss) > 1e-6, "choose another seed: no path was dropped"
    # DDR on fixed tensors of the MMNIST shape, to pin the normalisation at T' = 10
    ddr_pred, ddr_true = rand(gen, 2, 10, 1, 16, 16), rand(gen, 2, 10, 1, 16, 16)
    ddr_fixed = ref.TAUMethod.diff_div_reg(shim, ddr_pred.double(), ddr_true.double()).item()
    batches = [(rand(gen, *shape), rand(gen, *shape)) for _ in range(ADAM_STEPS)]
    seeds = [11, 12, 13]
    losses = adam_losses(shim, model, batches, ref.TAUMethod.training_step, seeds)
    with torch.no_grad():
        full_params = sum(p.numel() for p in build_tau(ref, ref_v1, TAU_MMNIST).parameters())
        torch.manual_seed(0)
        stats = init_stats(build_tau(ref, ref_v1, INIT_CFG))
    return {"config": cfg, "state_dict": state, "x": x, "y": y, "output_eval": out_eval,
            "train_seed": 7, "train_output": pred.detach(), "mse": mse, "ddr": ddr, "loss": loss,
            "loss_without_drop_path": no_drop, "drop_path_rates": rates,
            "ddr_fixed": {"pred": ddr_pred, "target": ddr_true, "value": ddr_fixed},
            "adam": {"lr": ADAM_LR, "batches": batches, "seeds": seeds, "losses": losses},
            "mmnist": {"config": TAU_MMNIST, "params": full_params},
            "init": {"config": INIT_CFG, "stats": stats}}


# --------------------------------------------------------------------------------------------
# ConvLSTM and PredRNN
# --------------------------------------------------------------------------------------------

RECURRENT_CFG = {
    "convlstm": dict(batch=2, pre=3, aft=3, C=1, H=16, W=16, patch_size=4, num_hidden=[8, 8], filter_size=3),
    "predrnn": dict(batch=2, pre=3, aft=3, C=2, H=8, W=8, patch_size=2, num_hidden=[8, 8], filter_size=3),
}
RECURRENT_MMNIST = dict(pre=10, aft=10, C=1, H=64, W=64, patch_size=4, num_hidden=[128] * 4, filter_size=5)


def build_recurrent(ref, name, cfg, layer_norm: int) -> nn.Module:
    cls = ref.ConvLSTM_Model if name == "convlstm" else ref.PredRNN_Model
    hidden = list(cfg["num_hidden"])
    return cls(len(hidden), hidden, recurrent_hparams(cfg, layer_norm))


def make_recurrent(ref, name: str) -> dict:
    cfg = RECURRENT_CFG[name]
    method = ref.ConvLSTMMethod if name == "convlstm" else ref.PredRNNMethod
    out: dict = {"config": cfg}
    for layer_norm in (0, 1):
        torch.manual_seed(0)
        model = build_recurrent(ref, name, cfg, layer_norm)
        gen = torch.Generator().manual_seed(3 + layer_norm)
        perturb_norms(model, gen)
        state = cpu_state(model)
        model = model.double()
        b = cfg["batch"]
        x = rand(gen, b, cfg["pre"], cfg["C"], cfg["H"], cfg["W"])
        y = rand(gen, b, cfg["aft"], cfg["C"], cfg["H"], cfg["W"])
        batches = [(rand(gen, b, cfg["pre"], cfg["C"], cfg["H"], cfg["W"]),
                    rand(gen, b, cfg["aft"], cfg["C"], cfg["H"], cfg["W"])) for _ in range(ADAM_STEPS)]
        with float64_default(), torch.no_grad():
            test_out = {}
            for rss in (0, 1):  # the test-time mask with and without reverse scheduled sampling
                shim = MethodShim(recurrent_hparams(cfg, layer_norm, rss), model, ref)
                model.configs = shim.hparams  # OpenSTL's model and method share one config
                test_out[rss] = method.forward(shim, x.double(), y.double())
            assert torch.equal(test_out[0], test_out[1])
            model.configs = recurrent_hparams(cfg, layer_norm)
        entry = {"state_dict": state, "x": x, "y": y, "test_output": test_out[0]}
        if layer_norm == 0:
            # training: the reference's own training_step, its scheduled-sampling mask recorded
            recorder = MaskRecorder(model)
            shim = MethodShim(model.configs, recorder, ref)
            np.random.seed(5)
            with float64_default():
                loss = method.training_step(shim, (x.double(), y.double()), 0)
            mask = per_step_mask(recorder.masks[-1])
            assert 0 < mask.sum() < mask.numel(), "choose another seed: the mask is not mixed"
            entry.update(train_mask=mask, train_loss=loss.item())
            # three Adam steps, each with the mask the reference's scheduled sampling draws
            opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR)
            losses, masks = [], []
            shim.eta = 1.0
            for step, (bx, by) in enumerate(batches):
                shim.global_step = step
                opt.zero_grad()
                with float64_default():
                    loss = method.training_step(shim, (bx.double(), by.double()), step)
                    loss.backward()
                opt.step()
                losses.append(loss.item())
                masks.append(per_step_mask(recorder.masks[-1]))
            entry["adam"] = {"lr": ADAM_LR, "batches": batches, "masks": masks, "losses": losses}
        out["layer_norm" if layer_norm else "plain"] = entry
    return out


def count_params(ref, name: str) -> dict:
    """Total parameters at the Moving MNIST configuration and those no gradient reaches."""
    torch.manual_seed(0)
    cfg = dict(RECURRENT_MMNIST, pre=2, aft=2)  # the sequence length does not change which weights run
    model = build_recurrent(ref, name, dict(RECURRENT_MMNIST), 0)
    model.configs = recurrent_hparams(cfg, 0)
    frames = torch.rand(1, 4, 16, 16, 16)
    mask = torch.zeros(1, 1, 16, 16, 16)
    next_frames, loss = model(frames, mask)
    loss.backward()
    unused = sorted(n for n, p in model.named_parameters() if p.grad is None)
    named = dict(model.named_parameters())
    return {"config": RECURRENT_MMNIST, "total": sum(p.numel() for p in model.parameters()),
            "unused": sum(named[n].numel() for n in unused), "unused_names": unused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openstl", type=Path, required=True, help="OpenSTL checkout at %s" % OPENSTL_COMMIT)
    parser.add_argument("--simvp", type=Path, required=True, help="A4Bio/SimVP checkout at %s" % SIMVP_COMMIT)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/reference"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_openstl(args.openstl.resolve())
    ref_v1 = load_simvp_v1(args.simvp.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"openstl_commit": OPENSTL_COMMIT, "simvp_commit": SIMVP_COMMIT, "torch": str(torch.__version__)}
    for name, make in (("simvp", lambda: make_simvp(ref, ref_v1)), ("tau", lambda: make_tau(ref, ref_v1)),
                       ("convlstm", lambda: make_recurrent(ref, "convlstm")),
                       ("predrnn", lambda: make_recurrent(ref, "predrnn"))):
        data = make()
        data["meta"] = meta
        if name in ("convlstm", "predrnn"):
            data["mmnist"] = count_params(ref, name)
        torch.save(data, args.out / f"{name}.pt")
        print(name, json.dumps({k: v for k, v in data.items() if k in ("loss", "mmnist")}, default=str)[:300])


if __name__ == "__main__":
    main()
