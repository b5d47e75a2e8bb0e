"""Spatial-masking (SM) pretraining for any encoder -> translator -> decoder method.

Spec: PLA-SM (Li et al.), sections III-C (sparse convolution), III-F (the SM module), III-G
(eq. 4, then training with the encoder frozen) and IV-B (settings); Table VII applies the same
pretraining to other methods ("SimVP + SM"). PLA-SM's own choices where the paper is silent are
documented in :mod:`bench.methods.plasm`; the ones that belong to the pretraining itself are
repeated here.

How a method uses it
--------------------
The method describes its encoder and decoder with an :class:`SMRecipe` and registers
``pretrain=sm_pretrain_stage(recipe)`` plus the :data:`SM_HPARAMS` defaults. The stage then:

1. builds a pretraining network (:class:`MaskedAutoencoder`): a FRESH encoder and decoder of the
   method (``recipe.build_parts``, same hyperparameters as the model) around the SM module
   (or nothing when ``sm`` is False: the "Mask" row of Table VI, a masked convolutional
   autoencoder); the translator is not part of it (III-B: "Translator is substituted by the SM
   module");
2. reconstructs every training INPUT frame from a pixel-masked copy (``pixel_mask``: each frame
   independently, floor(r0*H*W) pixel locations, all channels together), loss MSE over ALL pixels,
   masked and visible (eq. 4), Adam (0.9, 0.999) at ``pretrain_lr`` for ``pretrain_epochs`` epochs
   with batches of ``batch_size`` sequences (IV-B: lr 0.01, batch 16, 50 epochs);
3. copies the pretrained encoder and decoder weights into the model, freezes the encoder
   (III-G: "the parameters in Encoder are frozen") and calls ``recipe.after_load`` (PLA-SM
   re-initialises its translator there).

The encoder sees the masked frame through the method's ``recipe.encode(encoder, frames, mask)``,
which must emulate a sparse convolution (III-C): :func:`bench.blocks.masked_layers.sparse_conv_norm_act`
does that for one conv + GroupNorm + activation layer, so a stack of such layers needs no more than
a loop. The layers (pixel masks, sparse emulation, SM module) live in :mod:`bench.blocks.masked_layers`.

Sparse-convolution emulation (III-C; no sparse-conv library is a dependency): the masked frame
enters as zeros; after every conv, norm and activation the features are multiplied by the layer's
active-site mask, so a masked pixel never reaches any output. A stride-1 layer keeps the active set
(submanifold conv); a strided layer's output site is active iff its receptive field holds an
active site (max-pool of the mask with the conv's kernel, stride and padding), which is what a
strided sparse conv does. GroupNorm statistics use the active sites only (a sparse norm).

SM module (III-F, per frame): Q, K = squeeze(Conv1x1(GAP(S))) in R^C~ (separate convs, with
bias); A = Q K^T / sqrt(C~) (C~ x C~); the leading floor(r*C~^2) entries of A (by value, ties
broken by ``topk``) are set to -inf; output = Softmax(A-hat) V with the softmax over each row of
A-hat (the last axis) and V = DWConv3x3(S); a row whose entries are all masked outputs zeros
instead of NaN. No residual (the paper gives the output as Softmax(A-hat) V). It is Kaiming-
initialised (IV-B) unless the recipe initialises it.

Cache: with ``ctx.cache_dir`` set, the pretrained encoder + decoder are stored as
``<recipe.name>-pretrain-<sha256[:16]>.pt`` of everything they depend on (the recipe name and its
``key_hparams``, frame geometry, T, dataset, sm, r0, r (only with SM), pretrain epochs and lr,
batch size, seed, ``ctx.extra["sizes"]``/``["data_seed"]``, :data:`PRETRAIN_VERSION`) and reused
when present; a file that cannot be read is recomputed and overwritten.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from bench.core import atomic
from bench.core.jsonio import spaced_text
from bench.errors import BenchError
from bench.spec.hparams import MAX_EPOCHS, Bool, Float, HParam, Int
from bench.blocks.masked_layers import SpatialMasking, kaiming_init, pixel_mask
from bench.spec.registry import DatasetSpec

#: Bump when a change to the code changes what pretraining produces (invalidates cached encoders).
PRETRAIN_VERSION = 2

#: Pixel mask ratio r0 per dataset (PLA-SM Table I).
R0_TABLE_I: dict[str, float] = {"mmnist": 0.96, "taxibj": 0.97, "human36m": 0.95, "kitti_caltech": 0.95,
                                "kth": 0.90}

#: Defaults of the pretraining hyperparameters (IV-B; r0 of Moving MNIST from Table I).
#: pretrain: bool, run the stage; sm: bool, SM module in the pretraining network; r0: float in
#: [0, 1], pixel mask ratio; r: float in [0, 1], SM mask ratio; pretrain_epochs: int >= 1;
#: pretrain_lr: float > 0.
SM_HPARAMS: dict[str, Any] = {"pretrain": True, "sm": True, "r0": R0_TABLE_I["mmnist"], "r": 0.1,
                              "pretrain_epochs": 50, "pretrain_lr": 0.01}

#: Declarations of the pretraining hyperparameters (see bench.spec.hparams); methods add them to ``params``.
SM_PARAMS: dict[str, HParam] = {
    "pretrain": Bool(doc="run the spatial-masking pretraining stage"),
    "sm": Bool(doc="apply the SM module to the masked encoder features"),
    "r0": Float(min=0.0, max=1.0, doc="pixel mask ratio"),
    "r": Float(min=0.0, max=1.0, doc="feature mask ratio of the SM module"),
    "pretrain_epochs": Int(min=1, max=MAX_EPOCHS),
    "pretrain_lr": Float(min=0.0, min_exclusive=True),
}


def r0_per_dataset(base_r0: float) -> dict[str, dict[str, float]]:
    """Table I's r0 of every dataset whose r0 differs from a base configuration's ``base_r0``, as the
    per-dataset differences of a method's configuration (see :mod:`bench.spec.config`)."""
    return {name: {"r0": r0} for name, r0 in R0_TABLE_I.items() if r0 != base_r0}


# ------------------------------------------------------------------------------- recipe and network


@dataclass(frozen=True)
class SMRecipe:
    """How a method's encoder and decoder take part in SM pretraining.

    name: cache-file prefix and log label. build_parts(data, hp) -> (encoder, decoder, C~): a fresh
    encoder and decoder as the method builds them, and the per-frame channel count of the
    encoder's output. encode(encoder, frames (N, C, H, W), mask (N, 1, H, W) 1 = visible) ->
    (features (N, C~, H', W'), side): the sparse-conv emulation of the encoder; ``side`` goes to the
    decoder untouched (e.g. SimVP's skip). decode(decoder, features, side) -> (N, C, H, W).
    key_hparams: the hyperparameters the encoder/decoder weights depend on (cache key).
    encoder / decoder: the model's attribute names of the two parts. init(net, hp): initialises the
    whole :class:`MaskedAutoencoder` after it is built (default: Kaiming on the SM module only, the
    parts keep the method's own initialisation). after_load(model, ctx): runs after the weights are
    loaded and the encoder frozen (e.g. re-initialise the translator).
    """

    name: str
    build_parts: Callable[[DatasetSpec, Mapping[str, Any]], tuple[nn.Module, nn.Module, int]]
    encode: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, Any]]
    decode: Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]
    key_hparams: tuple[str, ...]
    encoder: str = "encoder"
    decoder: str = "decoder"
    init: Callable[[nn.Module, Mapping[str, Any]], None] | None = None
    after_load: Callable[[nn.Module, Any], None] | None = None


class MaskedAutoencoder(nn.Module):
    """The pretraining network (III-F, Fig. 2): encoder on masked frames -> SM (or nothing) -> decoder."""

    def __init__(self, recipe: SMRecipe, encoder: nn.Module, sm: nn.Module, decoder: nn.Module):
        super().__init__()
        self.recipe = recipe
        self.encoder = encoder  # registration order encoder, sm, decoder: the order of init draws
        self.sm = sm
        self.decoder = decoder

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) frames and (N, 1, H, W) visibility mask -> reconstructed (N, C, H, W)."""
        feats, side = self.recipe.encode(self.encoder, frames, mask)
        return self.recipe.decode(self.decoder, self.sm(feats), side)


def build_pretrain_net(recipe: SMRecipe, data: DatasetSpec, hp: Mapping[str, Any]) -> MaskedAutoencoder:
    """A freshly built and initialised pretraining network (SM only when ``hp["sm"]``)."""
    encoder, decoder, channels = recipe.build_parts(data, hp)
    sm = SpatialMasking(channels, float(hp["r"])) if hp["sm"] else nn.Identity()
    net = MaskedAutoencoder(recipe, encoder, sm, decoder)
    if recipe.init is not None:
        recipe.init(net, hp)
    else:
        kaiming_init(net.sm, float(hp.get("slope", 0.2)))
    return net


def reconstruction_loss(pred: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Eq. (4): squared error over ALL pixels of every input frame, masked and visible (mean)."""
    return F.mse_loss(pred, frames)


def pretrain_key(recipe: SMRecipe, data: DatasetSpec, hp: Mapping[str, Any], seed: int,
                 extra: Mapping[str, Any]) -> str:
    """Hash of everything the pretrained encoder/decoder depend on."""
    parts = {
        "version": PRETRAIN_VERSION,
        "recipe": recipe.name,
        "dataset": data.name,
        "frame_shape": list(data.frame_shape),
        "in_frames": data.in_frames,
        **{k: hp[k] for k in recipe.key_hparams},
        "sm": bool(hp["sm"]),
        "r": hp["r"] if hp["sm"] else None,
        "r0": hp["r0"],
        "pretrain_epochs": hp["pretrain_epochs"],
        "pretrain_lr": hp["pretrain_lr"],
        "batch_size": hp["batch_size"],
        "seed": seed,
        "sizes": dict(sorted((extra.get("sizes") or {}).items())),
        "data_seed": extra.get("data_seed"),
        "data_source": dict(sorted((extra.get("data_source") or {}).items())),  # e.g. MNIST vs bundled digits
    }
    text = spaced_text(parts)  # the text the keys were first made of (bench.core.jsonio)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------- the stage


def run_pretraining(net: MaskedAutoencoder, ctx: Any) -> list[float]:
    """Masked reconstruction of the training input frames (eq. 4); returns the mean loss per epoch."""
    hp = ctx.hp
    opt = torch.optim.Adam(net.parameters(), lr=hp["pretrain_lr"], betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(int(ctx.seed) * 1_000_003 + 17)
    net.train()
    step, losses = 0, []
    for epoch in range(int(hp["pretrain_epochs"])):
        total, count = 0.0, 0
        for x, _ in ctx.splits.batches("train", int(hp["batch_size"]), epoch):
            b, t, c, h, w = x.shape
            frames = x.reshape(b * t, c, h, w).to(ctx.device)
            mask = pixel_mask(b * t, h, w, hp["r0"], gen, ctx.device)
            loss = reconstruction_loss(net(frames, mask), frames)
            ctx.check_finite(loss, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * b
            count += b
            step += 1
        if count == 0:
            raise BenchError(f"{net.recipe.name} SM pretraining got an empty training split; "
                             "give the dataset training sequences")
        losses.append(total / count)
        ctx.log(f"{net.recipe.name} pretrain epoch {epoch + 1}/{hp['pretrain_epochs']}: loss {losses[-1]:.6f}")
    return losses


def _corrupt(path: Path | None, why: str) -> BenchError:
    return BenchError(f"the pretraining cache {path} is corrupt or from another version ({why}); delete it and "
                      f"run again to pretrain afresh")


def _read_cache(path: Path) -> dict[str, Any]:
    """A cached pretraining product, checked to hold what a stage stores (one-line BenchError otherwise)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or not a torch file
        raise _corrupt(path, type(exc).__name__) from None
    missing = [k for k in ("encoder", "decoder", "epoch_loss", "seconds") if not isinstance(state, dict) or k not in state]
    if missing:
        raise _corrupt(path, f"it lacks {', '.join(missing)}")
    return state


def sm_pretrain(recipe: SMRecipe, model: nn.Module, ctx: Any) -> dict:
    """Stage 1 (III-F/G) for ``model``: SM pretraining (or the cached result), load, freeze the encoder."""
    hp = ctx.hp
    if not hp["pretrain"]:
        return {"pretrained": False, "reason": "variant without SM pretraining: encoder trained from scratch"}
    key = pretrain_key(recipe, ctx.data, hp, ctx.seed, ctx.extra)
    path = Path(ctx.cache_dir) / f"{recipe.name}-pretrain-{key}.pt" if ctx.cache_dir is not None else None
    start = time.perf_counter()
    state = None
    if path is not None and path.exists():
        state = _read_cache(path)
        ctx.log(f"{recipe.name}: reusing pretrained encoder/decoder {path}")
    reused = state is not None
    if state is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.seed))
            net = build_pretrain_net(recipe, ctx.data, hp)
        net.to(ctx.device)
        losses = run_pretraining(net, ctx)
        state = {
            "encoder": {k: v.detach().cpu() for k, v in net.encoder.state_dict().items()},
            "decoder": {k: v.detach().cpu() for k, v in net.decoder.state_dict().items()},
            "epoch_loss": losses,
            "seconds": time.perf_counter() - start,
        }
        if path is not None:
            atomic.atomic_torch_save(path, state)
    encoder, decoder = getattr(model, recipe.encoder), getattr(model, recipe.decoder)
    try:
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]}") from None
    encoder.requires_grad_(False)
    if recipe.after_load is not None:
        recipe.after_load(model, ctx)
    return {
        "pretrained": True,
        "reused": reused,
        "cache_key": key,
        "cache_file": str(path) if path is not None else None,
        "sm": bool(hp["sm"]),
        "r0": hp["r0"],
        "r": hp["r"],
        "epochs": int(hp["pretrain_epochs"]),
        "epoch_loss": [float(v) for v in state["epoch_loss"]],
        "pretrain_seconds": float(state["seconds"]),
        "seconds": time.perf_counter() - start,
    }


def sm_pretrain_stage(recipe: SMRecipe) -> Callable[[nn.Module, Any], dict]:
    """The ``MethodSpec.pretrain`` stage of a method described by ``recipe``."""

    def stage(model: nn.Module, ctx: Any) -> dict:
        return sm_pretrain(recipe, model, ctx)

    stage.__name__ = f"sm_pretrain_{recipe.name.replace('-', '_')}"
    stage.recipe = recipe  # type: ignore[attr-defined]
    return stage
