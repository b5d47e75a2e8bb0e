"""Interface tests run for EVERY registered method and variant (tiny configurations).

A method added later (in-tree or through a plugin) is covered here without writing new tests.
"""

from __future__ import annotations

import sys

import pytest
import torch

from bench.spec.method import training_loss
from bench.spec.registry import DatasetSpec, get_method, iter_method_keys, parse_method_key
from toy_data import toy_dataset

SMALL = toy_dataset(4, 4, 1, 16, 16, name="mmnist")
SHORTER = toy_dataset(4, 2, 1, 16, 16, name="mmnist")
COLOUR = toy_dataset(3, 3, 3, 16, 16, name="colour")

KEYS = list(iter_method_keys())


def build(key: str, data: DatasetSpec, seed: int = 0):
    mkey = parse_method_key(key)
    hp = mkey.resolve(data.name, tiny=True)
    torch.manual_seed(seed)
    return mkey.spec, mkey.spec.create_model(data, hp), hp


def batch(data: DatasetSpec, n: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, data.in_frames, *data.frame_shape, generator=g)
    y = torch.rand(n, data.out_frames, *data.frame_shape, generator=g)
    return x, y


def test_every_builtin_is_registered():
    for name in ("simvp", "tau", "convlstm", "predrnn", "predrnnpp", "predrnnv2", "plasm", "phydnet", "mau", "crevnet"):
        assert name in KEYS, f"{name} is not registered"
    for variant in ("tau:no-sa", "tau:no-da", "tau:no-ddr", "tau:conv", "predrnnpp:openstl-v02", "simvp:sm",
                    "phydnet:sm", "mau:sm"):
        assert variant in KEYS


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("data", [SMALL, SHORTER, COLOUR], ids=["T4-4", "T4-2", "C3"])
def test_shapes(key, data):
    spec, model, hp = build(key, data)
    x, y = batch(data)
    model.eval()
    with torch.no_grad():
        out = spec.predict(model, x, hp)
    assert out.shape == y.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("key", KEYS)
def test_backward_and_finite_loss(key):
    spec, model, hp = build(key, SMALL)
    x, y = batch(SMALL)
    model.train()
    out = spec.train_step(model, x, y, hp, 0.0)
    pred, target = out[:2]
    assert pred.shape == target.shape
    assert len(out) == 2 or (len(out) == 3 and out[2].ndim == 0)  # (pred, target[, extra loss term])
    loss = training_loss(spec, out, hp)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@pytest.mark.parametrize("key", KEYS)
def test_overfits_one_batch(key):
    spec, model, hp = build(key, SMALL)
    x, y = batch(SMALL)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()

    def loss_now():
        return training_loss(spec, spec.train_step(model, x, y, hp, 0.0), hp)

    first = loss_now().item()
    for _ in range(25):
        opt.zero_grad()
        loss = loss_now()
        loss.backward()
        opt.step()
    assert loss_now().item() < 0.9 * first


@pytest.mark.parametrize("key", KEYS)
def test_same_seed_same_output(key):
    x, _ = batch(SMALL)
    outs = []
    for _ in range(2):
        spec, model, hp = build(key, SMALL, seed=123)
        model.eval()
        with torch.no_grad():
            outs.append(spec.predict(model, x, hp))
    assert torch.equal(outs[0], outs[1])
    spec, model, hp = build(key, SMALL, seed=124)
    model.eval()
    with torch.no_grad():
        assert not torch.equal(outs[0], spec.predict(model, x, hp)), "the seed does not affect initialisation"


@pytest.mark.parametrize("name", sorted({k.split(":")[0] for k in KEYS}))
def test_method_metadata(name):
    spec = get_method(name)
    assert spec.citation, f"{name} has no citation"
    module_doc = sys.modules[spec.build.__module__].__doc__ or ""
    assert len(module_doc) > 200, f"{name}'s module needs a docstring citing its paper and stating its choices"
    hp = spec.resolve_hparams("mmnist")
    assert int(hp["epochs"]) >= 1 and int(hp["batch_size"]) >= 1 and float(hp["lr"]) > 0
