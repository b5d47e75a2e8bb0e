"""Write the golden fixtures of tests/test_reference_phydnet.py and tests/test_reference_mau.py.

A throwaway generator kept outside the package, like ``tools/make_reference_fixtures.py``: it
imports the authors' code from local checkouts (it contains none of it), runs it in float64 at
small configurations and saves inputs, outputs, losses and the losses of three Adam steps.

References (pin these commits)
------------------------------
* PhyDNet, the authors' release (vincent-leguen/PhyDNet) 23a992d771c9eb1d32f52b1873a3c5625f1a8413:
  ``models/models.py`` (PhyCell, ConvLSTM, EncoderRNN and its encoders/decoders),
  ``constrain_moments.py`` (K2M), and ``main.py``'s ``train_on_batch``, which is taken out of
  ``main.py`` with ``ast`` (the file parses arguments and loads Moving MNIST at import) and run with
  its globals (``constraints``, ``device``, ``random``) supplied here. The test-time loop is
  ``main.py``'s ``evaluate`` loop (9 encoder steps, then decoding from the last input frame), driven
  here step by step because ``evaluate`` only returns metrics.
* MAU, the authors' release (ZhengChang467/MAU) 9e5461cfbacf20cc4323839730f06a9c09d98187:
  ``core/models/MAU.py`` (``RNN``), ``core/layers/MAUCell.py`` and ``MAU_run.py``'s
  ``schedule_sampling`` (taken out with ``ast``; it reads the global ``args``).
* OpenSTL (chengtan9907/OpenSTL) c74deb5d4c3da585291f9f18281f3fefdbba3a54: PhyDNet's modules with
  the patch-2 generalisation and multi-channel frames (``PhyDNet_Model``: its ``inference`` and its
  ``forward``, which returns the authors' loss), and ``MAU_Model``, whose forward also returns the
  authors' training loss (MSE over the 19 one-step predictions; the authors' ``Model.train`` casts
  its input to float32 and so cannot run in float64).

Departures neutralised here (see the method modules): both PhyDNet references cast the moment
matrices to float32 (``m.float()``); the losses stored as ``loss`` are computed with that cast
turned into a no-op on float64 tensors, and ``loss_float32_moments`` keeps the reference's own value.
OpenSTL's PhyDNet ``training_step`` (MSE of the scalar loss against the frames) is not used.
Teacher-forcing coins and scheduled-sampling masks are fixed (stored) rather than drawn by Python's
or numpy's generators in the tests.

Widths: the authors' PhyDNet hard-codes its encoder/decoder widths in ``EncoderRNN``; the script
replaces those submodules by narrower instances of the authors' own classes. Weights are seeded,
not stored (see ``tests/reference_maupd.py``).

How to run (the reference needs numpy and scipy; no other package)
-----------------------------------------------------------------
    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch==2.13.0 numpy scipy
    /tmp/refenv/bin/python tools/reference_maupd.py --phydnet /tmp/PhyDNet --mau /tmp/MAU \
        --openstl /tmp/OpenSTL --out tests/fixtures/reference
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fixture_helpers import OPENSTL_COMMIT, float64_default, per_step_mask, rand  # noqa: E402
from reference_maupd import load_seeded, make_recipe  # noqa: E402

PHYDNET_COMMIT = "23a992d771c9eb1d32f52b1873a3c5625f1a8413"
MAU_COMMIT = "9e5461cfbacf20cc4323839730f06a9c09d98187"
ADAM_LR = 1e-2

PHYDNET_AUTHORS = dict(batch=2, pre=3, aft=3, C=1, H=16, W=16, patch_size=4, enc_width=16, hidden=[16, 32])
PHYDNET_OPENSTL = dict(batch=2, pre=3, aft=2, C=2, H=8, W=8, patch_size=2, enc_width=16, hidden=[32])
MAU_CFG = dict(batch=2, pre=4, aft=3, C=2, H=16, W=16, sr_size=4, num_layers=2, num_hidden=8, filter_size=3, tau=2)


# --------------------------------------------------------------------------------------------
# Loading the references
# --------------------------------------------------------------------------------------------


def load_file(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_function(path: Path, name: str, namespace: dict):
    """The function ``name`` of the file ``path`` alone, compiled against ``namespace`` as its globals."""
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    code = compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec")
    exec(code, namespace)
    return namespace[name]


def load_openstl(root: Path) -> SimpleNamespace:
    """OpenSTL's PhyDNet and MAU files without the package __init__ files (they import timm/Lightning)."""
    for name in ("openstl", "openstl.modules", "openstl.models"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    modules = [importlib.import_module(f"openstl.modules.{m}") for m in ("phydnet_modules", "mau_modules")]
    for module in modules:
        for key, value in vars(module).items():
            if not key.startswith("_"):
                setattr(sys.modules["openstl.modules"], key, value)
    return SimpleNamespace(modules=modules[0], phydnet=importlib.import_module("openstl.models.phydnet_model"),
                           mau=importlib.import_module("openstl.models.mau_model"))


@contextlib.contextmanager
def float64_moments():
    """Turn ``Tensor.float()`` into a no-op on float64 tensors (the references' moment cast)."""
    original = torch.Tensor.float

    def keep(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else original(self, *args, **kwargs)

    torch.Tensor.float = keep
    try:
        yield
    finally:
        torch.Tensor.float = original


def unit_moments() -> torch.Tensor:
    """main.py's ``constraints``: the 49 7x7 unit matrices (built in the default dtype, float64 here)."""
    return torch.eye(49).view(49, 7, 7)


class Coin:
    """Stands in for Python's ``random`` module: ``random()`` returns the next stored value."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


class NoStep:
    def zero_grad(self):
        pass

    def step(self):
        pass


# --------------------------------------------------------------------------------------------
# PhyDNet
# --------------------------------------------------------------------------------------------


def authors_phydnet(models, cfg) -> nn.Module:
    """The authors' EncoderRNN with its encoders/decoders replaced by narrower instances of their classes."""
    grid = (cfg["H"] // cfg["patch_size"], cfg["W"] // cfg["patch_size"])
    latent, w = 2 * cfg["enc_width"], cfg["enc_width"]
    phycell = models.PhyCell(input_shape=grid, input_dim=latent, F_hidden_dims=[49], n_layers=1, kernel_size=(7, 7),
                             device="cpu")
    convcell = models.ConvLSTM(input_shape=grid, input_dim=latent, hidden_dims=cfg["hidden"],
                               n_layers=len(cfg["hidden"]), kernel_size=(3, 3), device="cpu")
    enc = models.EncoderRNN(phycell, convcell, "cpu")
    enc.encoder_E, enc.decoder_D = models.encoder_E(nc=cfg["C"], nf=w), models.decoder_D(nc=cfg["C"], nf=w)
    enc.encoder_Ep, enc.encoder_Er = models.encoder_specific(latent, latent), models.encoder_specific(latent, latent)
    enc.decoder_Dp, enc.decoder_Dr = models.decoder_specific(latent, latent), models.decoder_specific(latent, latent)
    return enc


def authors_test_rollout(enc, x, aft) -> torch.Tensor:
    """main.py's ``evaluate`` loop: encoder steps on x[:, :-1], then autoregressive decoding from x[:, -1]."""
    with torch.no_grad():
        for ei in range(x.shape[1] - 1):
            enc(x[:, ei], ei == 0)
        frame, preds = x[:, -1], []
        for _ in range(aft):
            _, _, frame, _, _ = enc(frame, False, False)
            preds.append(frame)
    return torch.stack(preds, dim=1)


def make_phydnet_authors(root: Path) -> dict:
    cfg = PHYDNET_AUTHORS
    models = load_file(root / "models" / "models.py", "phydnet_authors_models")
    moments = load_file(root / "constrain_moments.py", "phydnet_authors_moments")
    enc = authors_phydnet(models, cfg).double()
    recipe = make_recipe(enc, seed=20)
    load_seeded(enc, recipe)
    gen = torch.Generator().manual_seed(21)
    b = cfg["batch"]
    x, y = rand(gen, b, cfg["pre"], cfg["C"], cfg["H"], cfg["W"]), rand(gen, b, cfg["aft"], cfg["C"], cfg["H"], cfg["W"])
    batches = [(rand(gen, b, cfg["pre"], cfg["C"], cfg["H"], cfg["W"]),
                rand(gen, b, cfg["aft"], cfg["C"], cfg["H"], cfg["W"])) for _ in range(3)]
    out: dict = {"config": cfg, "weights": recipe, "x": x, "y": y}
    with float64_default():
        out["test_output"] = authors_test_rollout(enc, x.double(), cfg["aft"])
        ns = {"torch": torch, "K2M": moments.K2M, "device": "cpu", "constraints": unit_moments()}
        train_on_batch = load_function(root / "main.py", "train_on_batch", ns)
        losses = {}
        for forced, coin in ((True, 0.0), (False, 0.9)):
            ns["random"] = Coin([coin])
            with float64_moments():
                losses[forced] = train_on_batch(x.double(), y.double(), enc, NoStep(), nn.MSELoss(), 0.5) * cfg["aft"]
        ns["random"] = Coin([0.0])
        as_is = train_on_batch(x.double(), y.double(), enc, NoStep(), nn.MSELoss(), 0.5) * cfg["aft"]
        k2m = moments.K2M([7, 7]).double()
        weight = enc.phycell.cell_list[0].F.conv1.weight.detach()
        moment = sum(nn.functional.mse_loss(k2m(weight[:, c]), ns["constraints"]) for c in range(weight.shape[1]))
        opt = torch.optim.Adam(enc.parameters(), lr=ADAM_LR)
        coins, forced, adam = [0.0, 0.9, 0.3], [], []
        for (bx, by), coin in zip(batches, coins):
            ns["random"] = Coin([coin])
            with float64_moments():
                adam.append(train_on_batch(bx.double(), by.double(), enc, opt, nn.MSELoss(), 0.5) * cfg["aft"])
            forced.append(coin < 0.5)
    # the Moving MNIST configuration, as main.py builds it (parameter count only)
    full = models.EncoderRNN(models.PhyCell((16, 16), 64, [49], 1, (7, 7), "cpu"),
                             models.ConvLSTM((16, 16), 64, [128, 128, 64], 3, (3, 3), "cpu"), "cpu")
    out.update(loss_forced=losses[True], loss_free=losses[False], loss_float32_moments=as_is,
               moment_loss=moment.item(), adam={"lr": ADAM_LR, "batches": batches, "forced": forced, "losses": adam},
               mmnist_params=sum(p.numel() for p in full.parameters()))
    assert abs(out["loss_forced"] - out["loss_free"]) > 1e-6, "teacher forcing made no difference"
    return out


def openstl_phydnet(ref, cfg) -> nn.Module:
    """OpenSTL's PhyDNet_Model at ``cfg``'s geometry, its hard-coded widths narrowed with its own classes."""
    m = ref.modules
    hp = SimpleNamespace(pre_seq_length=cfg["pre"], aft_seq_length=cfg["aft"], in_shape=(cfg["pre"], cfg["C"], cfg["H"],
                         cfg["W"]), patch_size=cfg["patch_size"], device="cpu")
    model = ref.phydnet.PhyDNet_Model(hp)
    grid = (cfg["H"] // cfg["patch_size"], cfg["W"] // cfg["patch_size"])
    latent, w, p = 2 * cfg["enc_width"], cfg["enc_width"], cfg["patch_size"]
    model.phycell = model.encoder.phycell = m.PhyCell(grid, latent, [49], 1, (7, 7), "cpu")
    model.convcell = model.encoder.convcell = m.PhyD_ConvLSTM(grid, latent, cfg["hidden"], len(cfg["hidden"]), (3, 3),
                                                              "cpu")
    e = model.encoder
    e.encoder_E, e.decoder_D = m.encoder_E(cfg["C"], w, p), m.decoder_D(cfg["C"], w, p)
    e.encoder_Ep, e.encoder_Er = m.encoder_specific(latent, latent), m.encoder_specific(latent, latent)
    e.decoder_Dp, e.decoder_Dr = m.decoder_specific(latent, latent), m.decoder_specific(latent, latent)
    return model


def make_phydnet_openstl(ref) -> dict:
    cfg = PHYDNET_OPENSTL
    model = openstl_phydnet(ref, cfg).double()
    recipe = make_recipe(model, seed=22)
    load_seeded(model, recipe)
    gen = torch.Generator().manual_seed(23)
    b = cfg["batch"]
    x, y = rand(gen, b, cfg["pre"], cfg["C"], cfg["H"], cfg["W"]), rand(gen, b, cfg["aft"], cfg["C"], cfg["H"], cfg["W"])
    batches = [(rand(gen, b, cfg["pre"], cfg["C"], cfg["H"], cfg["W"]),
                rand(gen, b, cfg["aft"], cfg["C"], cfg["H"], cfg["W"])) for _ in range(3)]
    with float64_default(), float64_moments():
        constraints = unit_moments()
        test_out = model.inference(x.double(), y.double(), constraints, return_loss=False)[0]
        ref.phydnet.random = Coin([0.0])
        loss = model(x.double(), y.double(), constraints, 0.5).item()
        opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR)
        coins, adam = [0.9, 0.0, 0.9], []
        for (bx, by), coin in zip(batches, coins):
            ref.phydnet.random = Coin([coin])
            opt.zero_grad()
            step_loss = model(bx.double(), by.double(), constraints, 0.5)
            step_loss.backward()
            opt.step()
            adam.append(step_loss.item())
    return {"config": cfg, "weights": recipe, "x": x, "y": y, "test_output": test_out, "loss_forced": loss,
            "adam": {"lr": ADAM_LR, "batches": batches, "forced": [c < 0.5 for c in coins], "losses": adam}}


# --------------------------------------------------------------------------------------------
# MAU
# --------------------------------------------------------------------------------------------


def mau_args(cfg, **extra) -> SimpleNamespace:
    return SimpleNamespace(patch_size=1, img_channel=cfg["C"], img_height=cfg["H"], img_width=cfg["W"],
                           sr_size=cfg["sr_size"], tau=cfg["tau"], cell_mode="normal", model_mode="normal",
                           filter_size=(cfg["filter_size"],) * 2, stride=1, input_length=cfg["pre"],
                           total_length=cfg["pre"] + cfg["aft"], device="cpu", scheduled_sampling=True, **extra)


def make_mau(root: Path, ref) -> dict:
    cfg = MAU_CFG
    sys.path.insert(0, str(root))
    authors = importlib.import_module("core.models.MAU")
    hidden = [cfg["num_hidden"]] * cfg["num_layers"]
    net = authors.RNN(cfg["num_layers"], hidden, mau_args(cfg)).double()
    recipe = make_recipe(net, seed=30)
    load_seeded(net, recipe)
    o_cfg = SimpleNamespace(in_shape=(cfg["pre"], cfg["C"], cfg["H"], cfg["W"]), patch_size=1, sr_size=cfg["sr_size"],
                            tau=cfg["tau"], cell_mode="normal", model_mode="normal", filter_size=cfg["filter_size"],
                            stride=1, pre_seq_length=cfg["pre"], aft_seq_length=cfg["aft"],
                            total_length=cfg["pre"] + cfg["aft"], device="cpu")
    openstl = ref.mau.MAU_Model(cfg["num_layers"], hidden, o_cfg).double()
    openstl.load_state_dict(net.state_dict())
    gen = torch.Generator().manual_seed(31)
    b, total = cfg["batch"], cfg["pre"] + cfg["aft"]
    seq = rand(gen, b, total, cfg["C"], cfg["H"], cfg["W"])
    batches = [rand(gen, b, total, cfg["C"], cfg["H"], cfg["W"]) for _ in range(3)]
    args = mau_args(cfg, sampling_stop_iter=50000, sampling_changing_rate=0.3)
    sampling = load_function(root / "MAU_run.py", "schedule_sampling", {"np": np, "args": args, "print": lambda *a: None})
    with float64_default():
        zeros = torch.zeros(b, cfg["aft"] - 1, cfg["H"], cfg["W"], cfg["C"])
        next_frames = net(seq.double(), zeros)
        as_openstl = openstl(seq.double().permute(0, 1, 3, 4, 2), zeros)[0]
        assert torch.equal(next_frames, as_openstl), "the authors' RNN and OpenSTL's MAU_Model differ"
        np.random.seed(4)
        eta, flag = sampling(1.0, 0, cfg["C"], b)
        mask = per_step_mask(torch.from_numpy(flag)).clone()
        assert 0 < mask.sum() < mask.numel(), "choose another seed: the mask is not mixed"
        loss = openstl(seq.double().permute(0, 1, 3, 4, 2), torch.from_numpy(flag).double())[1].item()
        opt = torch.optim.Adam(openstl.parameters(), lr=ADAM_LR)
        eta, masks, adam, etas = 1.0, [], [], []
        for itr, frames in enumerate(batches):  # MAU_run.train_wrapper: eta threaded through the calls
            eta, flag = sampling(eta, itr, cfg["C"], b)
            etas.append(eta)
            masks.append(per_step_mask(torch.from_numpy(flag)).clone())
            opt.zero_grad()
            step_loss = openstl(frames.double().permute(0, 1, 3, 4, 2), torch.from_numpy(flag).double())[1]
            step_loss.backward()
            opt.step()
            adam.append(step_loss.item())
    return {"config": cfg, "weights": recipe, "seq": seq, "test_output": next_frames[:, cfg["pre"] - 1:].clone(),
            "train_mask": mask, "train_loss": loss, "eta_schedule": authors_eta(sampling),
            "adam": {"lr": ADAM_LR, "batches": batches, "masks": masks, "etas": etas, "losses": adam},
            "mmnist": mau_mmnist_params(authors)}


def authors_eta(sampling) -> dict:
    """eta after the call at iteration k, threaded as MAU_run.train_wrapper does (Moving MNIST settings)."""
    globals_ = sampling.__globals__
    saved = globals_["args"]
    globals_["args"] = SimpleNamespace(total_length=3, input_length=1, img_height=1, img_width=1, patch_size=1,
                                       scheduled_sampling=True, sampling_stop_iter=50000, sampling_changing_rate=2e-5)
    keep = {0, 1, 12_499, 24_999, 49_998, 49_999, 50_000, 79_999}
    eta, out = 1.0, {}
    for itr in range(80_000):
        eta, _ = sampling(eta, itr, 1, 1)
        if itr in keep:
            out[itr] = eta
    globals_["args"] = saved
    return {"stop_iter": 50000, "max_iterations": 80000, "eta": out}


def mau_mmnist_params(authors) -> dict:
    cfg = dict(MAU_CFG, C=1, H=64, W=64, pre=10, aft=10, tau=5, filter_size=5)
    net = authors.RNN(4, [64] * 4, mau_args(cfg))
    unused = sum(p.numel() for n, p in net.named_parameters() if n.startswith(("merge.", "conv_last_sr.")))
    return {"total": sum(p.numel() for p in net.parameters()), "unused": unused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phydnet", type=Path, required=True, help=f"vincent-leguen/PhyDNet at {PHYDNET_COMMIT}")
    parser.add_argument("--mau", type=Path, required=True, help=f"ZhengChang467/MAU at {MAU_COMMIT}")
    parser.add_argument("--openstl", type=Path, required=True, help=f"OpenSTL at {OPENSTL_COMMIT}")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/reference"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_openstl(args.openstl.resolve())
    meta = {"phydnet_commit": PHYDNET_COMMIT, "mau_commit": MAU_COMMIT, "openstl_commit": OPENSTL_COMMIT,
            "torch": str(torch.__version__)}
    args.out.mkdir(parents=True, exist_ok=True)
    phydnet = {"authors": make_phydnet_authors(args.phydnet.resolve()), "openstl": make_phydnet_openstl(ref), "meta": meta}
    torch.save(phydnet, args.out / "phydnet.pt")
    torch.save({**make_mau(args.mau.resolve(), ref), "meta": meta}, args.out / "mau.pt")
    print("phydnet", phydnet["authors"]["loss_forced"], phydnet["authors"]["mmnist_params"])


if __name__ == "__main__":
    main()
