"""Moving MNIST rendered on the device: the same sequences as the CPU generator for the same seed, bit for bit.

The device path (``DataConfig.device``: the CPU generator's draws, rendering as a gather and a max on the
device, :func:`bench.datasets.mmnist.render_gather`) runs here on the CPU as a stand-in everywhere, and on
CUDA where there is a GPU.
"""

from __future__ import annotations

import pytest
import torch

from bench.datasets import mmnist
from bench.spec.registry import DataConfig, get_dataset

SIZES = {"train": 264, "val": 24, "test": 8}  # train spans two generator chunks


def batches(device: str | None, split: str, raw: bool = True, **kw) -> list[tuple[torch.Tensor, torch.Tensor]]:
    spec = get_dataset("mmnist")
    splits = spec.load(spec, DataConfig(seed=3, sizes=SIZES, device=device, **kw))
    made = splits.raw_batches(split, 16, 2) if raw else splits.batches(split, 16, 2)
    return [(x.cpu(), y.cpu()) for x, y in made]


def equal(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))


def test_render_gather_draws_what_render_draws_at_every_position():
    digits = torch.randint(1, 256, (37 * 37, 2, mmnist.DIGIT, mmnist.DIGIT), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    span = torch.arange(37)
    rows = span.repeat_interleave(37)[:, None, None].expand(-1, 1, 2).clone()  # every top-left corner, 0..36
    cols = span.repeat(37)[:, None, None].expand(-1, 1, 2).clone()
    rows[:, :, 1], cols[:, :, 1] = 36 - rows[:, :, 0], cols[:, :, 0].flip(0)  # the second digit elsewhere
    assert torch.equal(mmnist.render_gather(digits, rows, cols), mmnist.render(digits, rows, cols))


def test_the_device_path_gives_the_cpu_generators_sequences_on_a_cpu_stand_in():
    for split in ("train", "val"):
        assert equal(batches("cpu", split), batches(None, split)), split
    assert equal(batches("cpu", "val", world_size=2, rank=1), batches(None, "val", world_size=2, rank=1))
    assert equal(batches("cpu", "val", raw=False), batches(None, "val", raw=False))  # the float batches too


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_device_path_on_cuda_gives_the_cpu_generators_sequences():
    spec = get_dataset("mmnist")
    splits = spec.load(spec, DataConfig(seed=3, sizes=SIZES, device="cuda"))
    x, _ = next(iter(splits.raw_batches("train", 16, 2)))
    assert x.device.type == "cuda"
    for split in ("train", "val"):
        assert equal(batches("cuda", split), batches(None, split)), split
        assert equal(batches("cuda", split, raw=False), batches(None, split, raw=False)), split
