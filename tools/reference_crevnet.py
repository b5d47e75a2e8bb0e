"""Write the golden fixture of tests/test_reference_crevnet.py (tests/fixtures/reference/crevnet.pt).

A throwaway generator kept outside the package, like ``tools/make_reference_fixtures.py``: it
imports the reference code from local checkouts (it contains none of it), runs it in float64 at
small configurations and saves inputs, outputs, losses, the losses of three Adam steps and the
state they leave.

References (pin these commits)
------------------------------
* The authors' Moving MNIST release (a copy of their Google-Drive archive at rrxi/CrevNet)
  c5278881d76b6dcccfe824202191cf5e80fc4d60: ``layers_3d.py`` (``autoencoder``, ``zig_rev_predictor``)
  with ``utils_3d.py`` (``psi``), and ``model_mnist.py``'s ``train`` and ``plot``, taken out of the
  script with ``ast`` (it parses arguments and loads data at import) and run with their globals
  (``opt``, ``encoder``, ``frame_predictor``, the TWO Adam optimisers, ``mse_criterion``) supplied
  here exactly as the script builds them. ``train`` is the training step; ``plot`` is the test loop
  (warm-up on the early context stacks, then the rollout); it returns only an SSIM, so its
  ``pytorch_ssim.ssim`` is replaced by a recorder of the generated frames it is given.
* OpenSTL, branch OpenSTLv0.3.0, 0a0f36c0eb917a199d0310a209bc5fd751d1c5e6:
  ``openstl/modules/crevnet_modules.py`` and ``openstl/models/crevnet_model.py`` (``CrevNet_Model``:
  its training forward returns the authors' summed loss; its test loop has no warm-up, which equals
  the authors' when the context is one stack, T_in = 3, the geometry used here).

Departures neutralised here (see ``bench/baselines/crevnet.py``): ``.cuda()`` is the identity (CPU);
the predictor state's hard-coded 8 x 8 latent is set to the fixture's latent (the authors'
``zig_rev_predictor`` takes it as constructor arguments; OpenSTL's attributes ``w``/``h`` are set);
the batch size is the configured one. OpenSTL's output holds channel 0 only (the test compares
that channel). Weights AND BatchNorm running statistics are seeded (``tests/reference_crevnet.py``).

How to run (the reference needs only torch; the authors' ``model_mnist.py`` is parsed, not imported)
-----------------------------------------------------------------------------------------------------
    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch==2.13.0 numpy
    git -C /tmp/CrevNet checkout c5278881d76b6dcccfe824202191cf5e80fc4d60
    git -C /tmp/OpenSTL checkout 0a0f36c0eb917a199d0310a209bc5fd751d1c5e6
    /tmp/refenv/bin/python tools/reference_crevnet.py --authors /tmp/CrevNet --openstl /tmp/OpenSTL \
        --out tests/fixtures/reference
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fixture_helpers import float64_default, rand  # noqa: E402
from reference_crevnet import load_reference_values, make_recipe  # noqa: E402

AUTHORS_COMMIT = "c5278881d76b6dcccfe824202191cf5e80fc4d60"
OPENSTL_V03_COMMIT = "0a0f36c0eb917a199d0310a209bc5fd751d1c5e6"
ADAM_LR = 1e-3

#: The authors' script at reduced depth: T_in = n_past + 2 = 4 context frames, 3 future frames.
AUTHORS_CFG = dict(batch=2, n_past=2, n_future=3, C=1, H=16, W=16, n_blocks=[2, 2, 2], layers=3)
#: OpenSTL's model (its fixed [4, 5, 3] blocks), 2 channels, non-square frames, T_in = 3.
OPENSTL_CFG = dict(batch=2, pre=3, aft=3, C=2, H=16, W=24, n_blocks=[4, 5, 3], layers=2)


def cpu_cuda() -> None:
    """The references call ``.cuda()`` on new tensors: make it the identity on this CPU run."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self


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
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


class Reference(nn.Module):
    """The two reference objects under one namespace (``encoder.*``, ``frame_predictor.*``) for the recipe."""

    def __init__(self, encoder: nn.Module, frame_predictor: nn.Module):
        super().__init__()
        self.encoder, self.frame_predictor = encoder, frame_predictor


class SSIMRecorder:
    """Stands in for ``pytorch_ssim``: ``ssim(truth, generated)`` records the generated frames."""

    def __init__(self):
        self.frames: list[torch.Tensor] = []

    def ssim(self, truth, generated):
        self.frames.append(generated.detach().clone())
        return torch.zeros(())


def bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in module.named_buffers()}


def param_moments(module: nn.Module) -> dict[str, tuple[float, float]]:
    """Per parameter: (sum, sum of squares) -- the fixture holds no full weights (see reference_crevnet)."""
    return {n: (float(p.detach().sum()), float((p.detach() ** 2).sum())) for n, p in module.named_parameters()}


def authors_stacks(seq: torch.Tensor, n_eval: int) -> list[torch.Tensor]:
    """The authors' input list: stack j = frames j, j+1, j+2 of channel 0, (B, 1, 3, H, W) (their main loop)."""
    return [torch.cat([seq[:, j + k, 0][:, None, None] for k in range(3)], dim=2) for j in range(n_eval)]


def make_authors(root: Path) -> dict:
    cfg = AUTHORS_CFG
    sys.path.insert(0, str(root))
    layers = load_file(root / "layers_3d.py", "crevnet_authors_layers")
    b, c, h, w = cfg["batch"], cfg["C"], cfg["H"], cfg["W"]
    rnn = 2 * c * 4 ** (len(cfg["n_blocks"]) - 1)
    opt = SimpleNamespace(batch_size=b, n_past=cfg["n_past"], n_future=cfg["n_future"],
                          n_eval=cfg["n_past"] + cfg["n_future"], rnn_size=rnn, image_width=w, channels=c,
                          lr=ADAM_LR, beta1=0.9, log_dir="unused")
    encoder = layers.autoencoder(nBlocks=cfg["n_blocks"], nStrides=[1, 2, 2], nChannels=None, init_ds=2,
                                 dropout_rate=0., affineBN=True, in_shape=[c, h, w], mult=2).double()
    grid = h // 2 ** len(cfg["n_blocks"])
    frame_predictor = layers.zig_rev_predictor(rnn, rnn, rnn, cfg["layers"], b, 3, grid, grid).double()
    ref = Reference(encoder, frame_predictor)
    recipe = make_recipe(ref, seed=30)
    load_reference_values(ref, recipe)
    # model_mnist.py's optimisers: one Adam per module, the same settings
    fp_opt = torch.optim.Adam(frame_predictor.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
    enc_opt = torch.optim.Adam(encoder.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
    recorder = SSIMRecorder()
    ns = {"torch": torch, "Variable": torch.autograd.Variable, "opt": opt, "encoder": encoder,
          "frame_predictor": frame_predictor, "frame_predictor_optimizer": fp_opt, "encoder_optimizer": enc_opt,
          "mse_criterion": nn.MSELoss(), "pytorch_ssim": recorder, "data_utils": None}
    script = root / "model_mnist.py"
    train, plot = load_function(script, "train", ns), load_function(script, "plot", ns)

    gen = torch.Generator().manual_seed(31)
    frames = opt.n_eval + 2
    seq = rand(gen, b, frames, c, h, w)
    batches = [rand(gen, b, frames, c, h, w) for _ in range(3)]
    out: dict = {"config": cfg, "weights": recipe, "seq": seq}

    def test_output(x: torch.Tensor) -> torch.Tensor:
        recorder.frames.clear()
        encoder.eval(), frame_predictor.eval()
        with torch.no_grad():
            plot(authors_stacks(x, opt.n_eval), 0)
        first_row = recorder.frames[:opt.n_eval - opt.n_past]  # plot scores every row with the whole batch
        return torch.stack(first_row, dim=1)  # (B, T_out, 1, H, W)

    with float64_default():
        out["test_output"] = test_output(seq.double())
        encoder.train(), frame_predictor.train()
        losses = [float(train(authors_stacks(x.double(), opt.n_eval), 0)) * (opt.n_past + opt.n_future)
                  for x in batches]  # train() returns the summed loss / (n_past + n_future)
        out["adam"] = {"lr": ADAM_LR, "batches": batches, "losses": losses,
                       "buffers": bn_buffers(ref), "moments": param_moments(ref)}
        out["test_output_trained"] = test_output(seq.double())
    return out


def load_openstl(root: Path) -> types.ModuleType:
    """OpenSTL v0.3.0's CrevNet files without the package __init__ files (they import timm)."""
    for name in ("openstl", "openstl.modules", "openstl.models"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    modules = importlib.import_module("openstl.modules.crevnet_modules")
    for key, value in vars(modules).items():
        if not key.startswith("_"):
            setattr(sys.modules["openstl.modules"], key, value)
    return importlib.import_module("openstl.models.crevnet_model")


def make_openstl(root: Path) -> dict:
    cfg = OPENSTL_CFG
    models = load_openstl(root)
    b, c, h, w = cfg["batch"], cfg["C"], cfg["H"], cfg["W"]
    total = cfg["pre"] + cfg["aft"]
    rnn = 2 * c * 4 ** (len(cfg["n_blocks"]) - 1)
    # OpenSTL's method rewrites pre_seq_length to pre - 2 (the number of context stacks)
    model = models.CrevNet_Model(in_shape=(total, c, h, w), rnn_size=rnn, batch_size=b,
                                 predictor_rnn_layers=cfg["layers"], pre_seq_length=cfg["pre"] - 2,
                                 aft_seq_length=cfg["aft"], n_eval=total - 2).double()
    model.frame_predictor.w, model.frame_predictor.h = h // 8, w // 8  # its init_hidden's hard-coded 8 x 8
    recipe = make_recipe(model, seed=40)
    load_reference_values(model, recipe)
    gen = torch.Generator().manual_seed(41)
    seq = rand(gen, b, total, c, h, w)
    out: dict = {"config": cfg, "weights": recipe, "seq": seq}
    with float64_default():
        model.eval()
        with torch.no_grad():
            out["test_output_channel0"], _ = model(seq.double(), training=False)
        model.train()
        out["train_loss"] = float(model(seq.double(), training=True).detach())
        out["buffers"] = bn_buffers(model)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors", type=Path, required=True, help=f"rrxi/CrevNet checkout at {AUTHORS_COMMIT}")
    parser.add_argument("--openstl", type=Path, required=True, help=f"OpenSTL checkout at {OPENSTL_V03_COMMIT}")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpu_cuda()
    fixture = {"commits": {"authors": AUTHORS_COMMIT, "openstl": OPENSTL_V03_COMMIT},
               "authors": make_authors(args.authors), "openstl": make_openstl(args.openstl)}
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, args.out / "crevnet.pt")
    print(f"wrote {args.out / 'crevnet.pt'}")


if __name__ == "__main__":
    main()
