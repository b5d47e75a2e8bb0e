"""Write the golden fixtures of PredRNN++ and PredRNN-V2 (tests/test_reference_predrnn{pp,v2}.py).

A throwaway generator kept outside the package, in the manner of ``make_reference_fixtures.py``
(its helpers are in ``fixture_helpers.py``, the loading of the three references in
``predrnn_references.py``): it runs the reference implementations from local checkouts (it contains
none of their code) at small configurations and saves their randomly initialised weights, fixed
inputs, outputs, losses (float64) and the losses of three Adam steps; the tests load the weights
into our models and must reproduce every number.

References (pin these commits)
------------------------------
* OpenSTL (chengtan9907/OpenSTL) c74deb5d4c3da585291f9f18281f3fefdbba3a54 (branch OpenSTL-Lightning,
  2024-03-04): PredRNN++ with the fixed causal LSTM (``conv_c`` reads C, since 9da43f4), PredRNN-V2,
  and the PredRNN method's test-time ``forward`` and ``training_step`` (with its scheduled-sampling
  and reverse-scheduled-sampling masks), which both methods inherit.
* OpenSTL v0.2.0, 41831fade7baf9c96b6dc17e860976e8087fa4dd (2023-06-16): the causal LSTM of the
  benchmark era (``conv_c`` reads M); v0.3.0 (0a0f36c) has the same cell. Its model file is run
  with the method functions of c74deb5 (the v0.2 method classes are the pre-Lightning runner).
* thuml/predrnn-pytorch 49d3b0f3a2757ad9c299716ec455a96868455d67 (the PredRNN-V2 authors):
  ``core/models/predrnn_v2.py`` and ``core/trainer.py::train``, whose ``reverse_input`` step
  (a second optimiser step on the time-reversed sequence with the same mask) OpenSTL drops. The
  trainer is called as is; its model argument is a stand-in with the authors' ``Model.train``
  (zero_grad, forward, backward, Adam step) in float64 (the authors' ``Model.train`` converts its
  inputs to float32). The trainer's module-level imports that do not take part (cv2, skimage,
  lpips, and matplotlib/sklearn through ``core.utils.tsne``) are replaced by inert modules.

How to run (torch and numpy only; fvcore for the reference FLOPs)
-----------------------------------------------------------------
    python3 -m venv --system-site-packages /tmp/refenv      # or: pip install torch==2.13.0 numpy fvcore
    git -C <mirror> archive c74deb5 openstl | tar -x -C /tmp/openstl-head
    git -C <mirror> archive 41831fa openstl | tar -x -C /tmp/openstl-v020
    git -C <mirror> archive 49d3b0f | tar -x -C /tmp/predrnn-pytorch
    /tmp/refenv/bin/python tools/reference_predrnnpp_v2.py --openstl /tmp/openstl-head \\
        --openstl-v020 /tmp/openstl-v020 --authors /tmp/predrnn-pytorch --out tests/fixtures/reference

Fixture conventions (as in make_reference_fixtures.py): weights stored as created (float32), models
run in float64; LayerNorm affines perturbed; the GHU's convolutions, initialised uniform in
+-0.001 by both references, are scaled by 100 so that the highway's gates move the output far
above the tolerance (a swapped gate must show); that scaling is part of the stored weights.
The reverse-scheduled-sampling schedule is read off the reference's own function
(``predrnn_utils.reserve_schedule_sampling_exp``, whose formula is the authors' ``run.py`` one) by
bisection on the coin it compares with, for the authors' iteration constants.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixture_helpers import (  # noqa: E402  (the shared fixture helpers)
    ADAM_LR,
    OPENSTL_COMMIT,
    MaskRecorder,
    cpu_state,
    float64_default,
    per_step_mask,
    perturb_norms,
    rand,
)
from predrnn_references import load_authors, load_openstl, load_openstl_v020_predrnnpp  # noqa: E402
OPENSTL_V020_COMMIT = "41831fade7baf9c96b6dc17e860976e8087fa4dd"
AUTHORS_COMMIT = "49d3b0f3a2757ad9c299716ec455a96868455d67"

PP_CFG = dict(batch=2, pre=3, aft=3, C=2, H=8, W=8, patch_size=2, num_hidden=[8, 8, 8], filter_size=3)
V2_CFG = dict(batch=2, pre=3, aft=3, C=2, H=8, W=8, patch_size=2, num_hidden=[8, 8], filter_size=3,
              decouple_beta=0.1)
MMNIST = dict(pre=10, aft=10, C=1, H=64, W=64, patch_size=4, num_hidden=[128] * 4, filter_size=5, decouple_beta=0.1)
#: The authors' reverse scheduled sampling constants (mnist_script/, kth_script/predrnn_v2_*_train.sh).
AUTHORS_RSS = {"mmnist": (25000, 50000, 2500), "kth": (5000, 50000, 2000)}
PROBE_ITERS = [0, 10000, 24999, 25000, 26000, 30000, 37500, 45000, 49999, 50000, 70000]
GHU_SCALE = 100.0


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class Shim:
    """What OpenSTL's PredRNN method functions read from ``self``."""

    def __init__(self, hparams: SimpleNamespace, model: nn.Module):
        self.hparams, self.model, self.device = hparams, model, "cpu"
        self.eta, self.global_step = 1.0, 0

    def log(self, *args, **kwargs):
        pass


def hparams(cfg: dict, rss: int, layer_norm: int = 0, rss_constants=(25000, 50000, 5000)) -> SimpleNamespace:
    s1, s2, alpha = rss_constants
    return SimpleNamespace(
        in_shape=(cfg["pre"], cfg["C"], cfg["H"], cfg["W"]), patch_size=cfg["patch_size"],
        filter_size=cfg["filter_size"], stride=1, layer_norm=layer_norm, pre_seq_length=cfg["pre"],
        aft_seq_length=cfg["aft"], total_length=cfg["pre"] + cfg["aft"], reverse_scheduled_sampling=rss,
        scheduled_sampling=1, sampling_stop_iter=50000, sampling_changing_rate=0.25, device="cpu",
        r_sampling_step_1=s1, r_sampling_step_2=s2, r_exp_alpha=alpha, decouple_beta=cfg.get("decouple_beta", 0.0))


def batches(gen: torch.Generator, cfg: dict, n: int) -> list:
    b = cfg["batch"]
    return [(rand(gen, b, cfg["pre"], cfg["C"], cfg["H"], cfg["W"]), rand(gen, b, cfg["aft"], cfg["C"], cfg["H"],
                                                                        cfg["W"])) for _ in range(n)]


def train_steps(method, shim, recorder, data, steps) -> tuple[list[float], list[torch.Tensor]]:
    """The reference's training_step with Adam, at the given global steps; its masks recorded."""
    opt = torch.optim.Adam(recorder.inner.parameters(), lr=ADAM_LR)
    losses, masks = [], []
    for (bx, by), step in zip(data, steps):
        shim.global_step = step
        opt.zero_grad()
        with float64_default():
            loss = method.training_step(shim, (bx.double(), by.double()), step)
            loss.backward()
        opt.step()
        losses.append(loss.item())
        masks.append(per_step_mask(recorder.masks[-1]))
    return losses, masks


def mixed(mask: torch.Tensor, context: int) -> bool:
    """Every part of the mask (context steps, future steps) mixes true frames and predictions."""
    parts = [mask[:, :context], mask[:, context:]] if context else [mask]
    return all(0 < float(p.sum()) < p.numel() for p in parts if p.numel())


def reference_flops(model: nn.Module, cfg: dict, mask_steps: int) -> int:
    """fvcore on ``model(frames, mask)`` with a batch-1 dummy, as OpenSTL's ``display_method_info``."""
    from fvcore.nn import FlopCountAnalysis

    h, w, c = cfg["H"] // cfg["patch_size"], cfg["W"] // cfg["patch_size"], cfg["patch_size"] ** 2 * cfg["C"]
    frames = torch.ones(1, cfg["pre"] + cfg["aft"], h, w, c)
    flag = torch.ones(1, mask_steps, h, w, c)
    with torch.no_grad():
        analysis = FlopCountAnalysis(model, (frames, flag))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return int(analysis.total())


def counts(model: nn.Module, cfg: dict, rss: int) -> dict:
    """Parameters, those no gradient reaches after a training forward, and fvcore FLOPs (full length)."""
    h, w, c = cfg["H"] // cfg["patch_size"], cfg["W"] // cfg["patch_size"], cfg["patch_size"] ** 2 * cfg["C"]
    short = dict(cfg, pre=2, aft=2)  # the sequence length does not change which weights run
    full_configs, model.configs = model.configs, hparams(short, rss)
    _, loss = model(torch.rand(1, 4, h, w, c), torch.zeros(1, 2 if rss else 1, h, w, c))
    loss.backward()
    model.configs = full_configs
    mask_steps = cfg["pre"] + cfg["aft"] - 2 if rss else cfg["aft"] - 1
    unused = sorted(n for n, p in model.named_parameters() if p.grad is None)
    named = dict(model.named_parameters())
    return {"config": cfg, "total": sum(p.numel() for p in model.parameters()),
            "unused": sum(named[n].numel() for n in unused), "unused_names": unused,
            "flops": reference_flops(model, cfg, mask_steps)}


# --------------------------------------------------------------------------------------------
# PredRNN++ (fixed cell at c74deb5, benchmark-era cell at v0.2.0)
# --------------------------------------------------------------------------------------------


def build_pp(cls, cfg: dict) -> nn.Module:
    return cls(len(cfg["num_hidden"]), list(cfg["num_hidden"]), hparams(cfg, 0))


def make_predrnnpp(ref, v020_cls) -> dict:
    cfg = PP_CFG
    torch.manual_seed(0)
    model = build_pp(ref.PredRNNpp_Model, cfg)
    with torch.no_grad():
        for conv in model.gradient_highway.modules():
            if isinstance(conv, nn.Conv2d):
                assert conv.weight.abs().max() <= 1e-3, "the reference initialises the GHU uniform in +-0.001"
                conv.weight.mul_(GHU_SCALE)
    state = cpu_state(model)
    gen = torch.Generator().manual_seed(21)
    x, y = batches(gen, cfg, 1)[0]
    data = batches(gen, cfg, 3)
    out = {"config": cfg, "ghu_scale": GHU_SCALE, "state_dict": state, "x": x, "y": y}
    method = ref.PredRNNMethod
    for version, cls in (("head", ref.PredRNNpp_Model), ("v020", v020_cls)):
        model = build_pp(cls, cfg)
        model.load_state_dict(state)
        model = model.double()
        recorder = MaskRecorder(model)
        shim = Shim(model.configs, recorder)
        with float64_default(), torch.no_grad():
            test_output = method.forward(shim, x.double(), y.double())
        np.random.seed(5)
        with float64_default():
            loss = method.training_step(shim, (x.double(), y.double()), 0)
        mask = per_step_mask(recorder.masks[-1])
        assert mixed(mask, 0), "choose another seed: the mask is not mixed"
        shim.eta = 1.0
        losses, masks = train_steps(method, shim, recorder, data, [0, 1, 2])
        out[version] = {"test_output": test_output, "train_mask": mask, "train_loss": loss.item(),
                        "adam": {"lr": ADAM_LR, "batches": data, "masks": masks, "losses": losses}}
    gap = (out["head"]["test_output"] - out["v020"]["test_output"]).abs().max().item()
    assert gap > 1e-5, f"the two cells must differ far above the tests' tolerance (1e-10), got {gap:.3g}"
    torch.manual_seed(0)
    out["small_flops"] = reference_flops(build_pp(ref.PredRNNpp_Model, cfg), cfg, cfg["aft"] - 1)
    torch.manual_seed(0)
    out["mmnist"] = counts(build_pp(ref.PredRNNpp_Model, MMNIST), MMNIST, 0)
    return out


# --------------------------------------------------------------------------------------------
# PredRNN-V2 (OpenSTL's model and method; the authors' trainer for reverse_input; the RSS schedule)
# --------------------------------------------------------------------------------------------


def build_v2(ref, cfg: dict, layer_norm: int, rss_constants=(25000, 50000, 5000)) -> nn.Module:
    return ref.PredRNNv2_Model(len(cfg["num_hidden"]), list(cfg["num_hidden"]),
                               hparams(cfg, 1, layer_norm, rss_constants))


def rss_probe(ref, constants) -> dict:
    """(r_eta, eta) of the reference's reserve_schedule_sampling_exp at PROBE_ITERS, by bisection on its coin."""
    args = SimpleNamespace(in_shape=(2, 1, 1, 1), patch_size=1, pre_seq_length=2, aft_seq_length=2, total_length=4,
                           r_sampling_step_1=constants[0], r_sampling_step_2=constants[1], r_exp_alpha=constants[2],
                           device="cpu")
    real = np.random.random_sample

    def true_at(itr: int, coin: float, column: int) -> bool:
        np.random.random_sample = lambda shape: np.full(shape, coin)
        try:
            return bool(ref.utils.reserve_schedule_sampling_exp(itr, 1, args)[0, column].flatten()[0] == 1)
        finally:
            np.random.random_sample = real

    def threshold(itr: int, column: int) -> float:  # the smallest coin that is not < the probability
        lo, hi = 0.0, 1.0 + 1e-9
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if true_at(itr, mid, column) else (lo, mid)
        return hi

    return {"constants": list(constants), "iters": PROBE_ITERS,
            "r_eta": [threshold(i, 0) for i in PROBE_ITERS], "eta": [threshold(i, 1) for i in PROBE_ITERS]}


class AuthorsModel:
    """The authors' ``core/models/model_factory.Model.train`` (zero_grad, forward, backward, Adam step), float64."""

    def __init__(self, network: nn.Module, lr: float):
        self.network = network
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr)
        self.pass_losses: list[float] = []

    def train(self, frames: np.ndarray, mask: np.ndarray):
        self.optimizer.zero_grad()
        with float64_default():
            _, loss = self.network(torch.from_numpy(np.ascontiguousarray(frames)).double(),
                                   torch.from_numpy(np.ascontiguousarray(mask)).double())
            loss.backward()
        self.optimizer.step()
        self.pass_losses.append(loss.item())
        return loss.detach().cpu().numpy()


def authors_configs(cfg: dict) -> SimpleNamespace:
    return SimpleNamespace(visual=0, visual_path="", patch_size=cfg["patch_size"], img_channel=cfg["C"],
                           img_width=cfg["W"], filter_size=cfg["filter_size"], stride=1, layer_norm=0, device="cpu",
                           total_length=cfg["pre"] + cfg["aft"], input_length=cfg["pre"],
                           reverse_scheduled_sampling=1, decouple_beta=cfg["decouple_beta"], reverse_input=1,
                           display_interval=10 ** 9)


def make_reverse_input(ref, authors, cfg: dict, state: dict, data: list, masks: list) -> dict:
    """The authors' trainer.train with reverse_input on three batches (two Adam steps each)."""
    configs = authors_configs(cfg)
    torch.manual_seed(0)
    network = authors.RNN(len(cfg["num_hidden"]), list(cfg["num_hidden"]), configs)
    network.load_state_dict(state)  # the same names as OpenSTL's model
    network = network.double()
    model = AuthorsModel(network, ADAM_LR)
    p, h, w = cfg["patch_size"], cfg["H"] // cfg["patch_size"], cfg["W"] // cfg["patch_size"]
    for itr, ((bx, by), mask) in enumerate(zip(data, masks), start=1):
        seq = torch.cat([bx, by], 1).double().permute(0, 1, 3, 4, 2).numpy()
        ims = authors.preprocess.reshape_patch(seq, p)
        flag = np.broadcast_to(mask.numpy()[:, :, None, None, None], (*mask.shape, h, w, p * p * cfg["C"])).copy()
        authors.trainer.train(model, ims, flag, configs, itr)
    return {"batches": data, "masks": masks, "lr": ADAM_LR, "pass_losses": model.pass_losses}


def make_predrnnv2(ref, authors) -> dict:
    cfg = V2_CFG
    method = ref.PredRNNMethod
    out: dict = {"config": cfg}
    for layer_norm in (0, 1):
        torch.manual_seed(0)
        model = build_v2(ref, cfg, layer_norm, AUTHORS_RSS["mmnist"])
        gen = torch.Generator().manual_seed(31 + layer_norm)
        perturb_norms(model, gen)
        state = cpu_state(model)
        model = model.double()
        x, y = batches(gen, cfg, 1)[0]
        data = batches(gen, cfg, 3)
        recorder = MaskRecorder(model)
        shim = Shim(model.configs, recorder)
        with float64_default(), torch.no_grad():
            test_output = method.forward(shim, x.double(), y.double())
        entry = {"state_dict": state, "x": x, "y": y, "test_output": test_output}
        if layer_norm == 0:
            # the authors' network on the same weights gives the same test-time output (identical code)
            torch.manual_seed(0)
            network = authors.RNN(len(cfg["num_hidden"]), list(cfg["num_hidden"]), authors_configs(cfg))
            network.load_state_dict(state)
            network = network.double()
            with float64_default(), torch.no_grad():
                test_mask = recorder.masks[-1]
                seq = torch.cat([x, y], 1).double().permute(0, 1, 3, 4, 2)
                theirs, _ = network(ref.utils.reshape_patch(seq, cfg["patch_size"]), test_mask)
                ours_ref, _ = model(ref.utils.reshape_patch(seq, cfg["patch_size"]), test_mask, return_loss=True)
            assert torch.equal(theirs, ours_ref), "OpenSTL's PredRNNv2_Model and the authors' RNN differ"
            # one training step mid-schedule (iteration 30000 of the authors' schedule): mask and loss
            seed = 0
            while True:
                np.random.seed(seed)
                shim.global_step = 30000
                with float64_default():
                    loss = method.training_step(shim, (x.double(), y.double()), 30000)
                mask = per_step_mask(recorder.masks[-1])
                if mixed(mask, cfg["pre"] - 1):
                    break
                seed += 1
            # the loss's parts: MSE alone (beta 0) and the decoupling mean (beta 1 minus MSE), same mask
            flag = recorder.masks[-1]
            seq = ref.utils.reshape_patch(torch.cat([x, y], 1).double().permute(0, 1, 3, 4, 2), cfg["patch_size"])
            parts = {}
            for beta in (0.0, 1.0):
                model.configs.decouple_beta = beta
                with float64_default():
                    parts[beta] = model(seq, flag)[1].item()
            model.configs.decouple_beta = cfg["decouple_beta"]
            assert abs(parts[0.0] + cfg["decouple_beta"] * (parts[1.0] - parts[0.0]) - loss.item()) < 1e-12
            entry.update(train_mask=mask, train_seed=seed, train_loss=loss.item(), train_mse=parts[0.0],
                         train_decoupling=parts[1.0] - parts[0.0])
            losses, masks = train_steps(method, shim, recorder, data, [0, 30000, 60000])
            entry["adam"] = {"lr": ADAM_LR, "batches": data, "masks": masks, "losses": losses,
                             "steps": [0, 30000, 60000]}
            entry["reverse_input"] = make_reverse_input(ref, authors, cfg, state, batches(gen, cfg, 3), masks)
        out["layer_norm" if layer_norm else "plain"] = entry
    out["rss"] = {name: rss_probe(ref, constants) for name, constants in AUTHORS_RSS.items()}
    torch.manual_seed(0)
    out["small_flops"] = reference_flops(build_v2(ref, cfg, 0), cfg, cfg["pre"] + cfg["aft"] - 2)
    torch.manual_seed(0)
    out["mmnist"] = counts(build_v2(ref, MMNIST, 0), MMNIST, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openstl", type=Path, required=True, help=f"OpenSTL checkout at {OPENSTL_COMMIT}")
    parser.add_argument("--openstl-v020", type=Path, required=True, help=f"OpenSTL checkout at {OPENSTL_V020_COMMIT}")
    parser.add_argument("--authors", type=Path, required=True, help=f"thuml/predrnn-pytorch at {AUTHORS_COMMIT}")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/reference"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_openstl(args.openstl.resolve())
    v020 = load_openstl_v020_predrnnpp(args.openstl_v020.resolve())
    authors = load_authors(args.authors.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"openstl_commit": OPENSTL_COMMIT, "openstl_v020_commit": OPENSTL_V020_COMMIT,
            "authors_commit": AUTHORS_COMMIT, "torch": str(torch.__version__)}
    for name, make in (("predrnnpp", lambda: make_predrnnpp(ref, v020)),
                       ("predrnnv2", lambda: make_predrnnv2(ref, authors))):
        data = make()
        data["meta"] = meta
        torch.save(data, args.out / f"{name}.pt")
        print(name, json.dumps({k: v for k, v in data["mmnist"].items() if k != "config"}, default=str)[:400])


if __name__ == "__main__":
    main()
