"""Moving MNIST, generated offline (``mmnist``): two digits bouncing in a 64x64 frame, 10 -> 10.

Dynamics (Srivastava et al., "Unsupervised Learning of Video Representations using LSTMs",
ICML 2015, the standard generator): each digit (28x28) starts at a uniform position in the unit
square of admissible top-left corners, moves with unit-speed direction theta ~ U[0, 2pi) and step
length 0.1 of the canvas range per frame, and reflects off the borders (position clamped, velocity
component negated). The position is updated before each frame is drawn, positions are scaled to
the (64 - 28) pixel range and truncated to integers, and the two digits are combined with a
pixel-wise maximum. Generation is vectorised over sequences in torch (a loop over the 20 time
steps only): about 1,600 sequences of 20 frames per second on one CPU core (measured); chunks of
sequences are generated in worker processes when the run asks for them (``--workers``).

On the device (a CUDA run, ``DataConfig.device``): the random draws (digit choice, start, direction)
are the CPU generator's, from the same seeded ``torch.Generator``, and the bouncing trajectories are
computed on the CPU as before (n x 20 x 2 positions: nothing to speed up); only the rendering moves to
the device, as a gather and a max (:func:`render_gather`: each canvas pixel reads its digit pixel at
(y - row, x - col), zero outside the 28 x 28 box, the two digits combined with a maximum). The frames
are the same integers as the CPU generator's (``tests/test_mmnist_device.py``: bit-identical, by the
device path run on the CPU everywhere and on CUDA where there is one); the float batches are too, as
the conversion to [0, 1] is a lookup of the CPU's values (:func:`bench.spec.splits.to_unit_float`).

Digit sources (recorded as ``digit_source`` in every result and report):
- ``mnist-idx``: the MNIST training images ``train-images-idx3-ubyte(.gz)`` found in the data
  directory (``--data-dir`` or ``$BENCH_DATA``, also under ``mmnist/`` or ``mnist/`` there). The
  60,000 images are split into disjoint pools: 50,000 train, 5,000 validation, 5,000 test digits.
- ``sklearn-digits``: otherwise, scikit-learn's bundled ``load_digits`` (1,797 real handwritten
  digits, 8x8, 17 grey levels; UCI optdigits). We chose it over rendering font glyphs because it is
  real handwriting with writer variation, as MNIST is. Each 8x8 digit is upsampled bilinearly to
  20x20 and centred in a 28x28 box with a 4-pixel margin, the geometry of MNIST digits. The pool is
  split disjointly: 70% train, 15% validation, 15% test digits. Numbers from this source are NOT
  comparable with published Moving MNIST numbers; the report says so.

Splits: the training stream draws fresh sequences every epoch from the run seed (as the standard
online generator does); the validation and test sets are fixed by ``data_seed`` (default 0),
independent of the run seed, generated in fixed chunks so their content does not depend on the
batch size. Standard sizes: 10,000 train sequences per epoch, 10,000 test (TAU Table 1), and 1,000
validation (our choice; the papers select on the test set, which this harness does not).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from bench.spec.batching import LoaderSettings, load_batches
from bench.spec.splits import shard_range, to_unit_float
from bench.datafiles.identity import files_identity
from bench.datafiles import data_root
from bench.errors import BenchError
from bench.spec.registry import DataConfig, DatasetSpec, register_dataset

CANVAS = 64
DIGIT = 28
NUM_DIGITS = 2
FRAMES = 20
STEP = 0.1
CHUNK = 256  # val/test sequences are generated in chunks of this size, each from its own seed
_SPLIT_ID = {"train": 1, "val": 2, "test": 3}
#: fewest images an idx file may hold: pools of n*5//6, n*11//12 - n*5//6 and n - n*11//12 are all non-empty
MIN_IMAGES = 12
IDX_FIX = ("replace it with the MNIST training images (`bench data download mmnist`) or remove it (the generated "
           "mmnist then uses its bundled digits)")
MNIST_TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte")


def data_dir(config_dir: str | None) -> Path | None:
    """The data directory: the explicit setting, else ``$BENCH_DATA``, else none; one that is named must
    exist (:func:`bench.datafiles.data_root`), so a typo never silently means "use the bundled digits"."""
    return data_root(config_dir)


def find_mnist_idx(root: Path | None) -> Path | None:
    """The MNIST training-image idx file under ``root`` (or its mmnist/ or mnist/ subfolder)."""
    if root is None:
        return None
    for sub in (root, root / "mmnist", root / "mnist", root / "MNIST" / "raw"):
        for name in MNIST_TRAIN_FILES:
            if (sub / name).is_file():
                return sub / name
    return None


def digit_source_identity(config: DataConfig) -> dict[str, Any]:
    """Which digits the sequences are drawn from (for the run spec's hash): the bundled digits, or the
    SHA-256 of the MNIST file's bytes (:mod:`bench.datafiles.identity`, cached: a ``stat`` once digested).
    The idx header is checked here too, so a file that cannot work fails in one line before any training."""
    idx = find_mnist_idx(data_dir(config.data_dir))
    if idx is None:
        return {"digit_source": "sklearn-digits"}
    idx_header(idx)
    return {"digit_source": "mnist-idx", **files_identity(idx.parent, {idx.name: idx})}


def _idx_fields(head: bytes, path: Path) -> tuple[int, int, int]:
    """(images, rows, cols) of an idx3 header; a wrong magic number is one BenchError."""
    if len(head) < 16 or int.from_bytes(head[0:4], "big") != 2051:
        raise BenchError(f"{path} is not an MNIST idx3 image file (bad magic number); {IDX_FIX}")
    n, rows, cols = (int.from_bytes(head[i:i + 4], "big") for i in (4, 8, 12))
    return n, rows, cols


def _check_idx(path: Path, n: int, rows: int, cols: int, size: int | None) -> None:
    """The payload size (when known) and the geometry: 28x28 digits, at least MIN_IMAGES of them."""
    if size is not None and size != 16 + n * rows * cols:
        raise BenchError(f"{path} is truncated or corrupt: expected {16 + n * rows * cols} bytes for {n} images of "
                         f"{rows}x{cols}, found {size}; {IDX_FIX}")
    if (rows, cols) != (DIGIT, DIGIT):
        raise BenchError(f"{path} holds {n} images of {rows}x{cols} pixels, expected 28x28 MNIST digits; {IDX_FIX}")
    if n < MIN_IMAGES:
        raise BenchError(f"{path} holds {n} image{'s' if n != 1 else ''}; Moving MNIST needs at least {MIN_IMAGES} "
                         f"(disjoint train/validation/test digit pools of 5/6, 1/12 and 1/12 of them); {IDX_FIX}")


def _read_idx(path: Path, limit: int = -1) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(limit)
    except (OSError, EOFError, zlib.error) as exc:
        raise BenchError(f"cannot read MNIST file {path}: {exc}; {IDX_FIX}") from None


def idx_header(path: Path) -> tuple[int, int, int]:
    """(images, rows, cols) from an idx3 file's 16-byte header (gzipped or not), checked as far as it can
    be without decompressing: the magic number, 28x28 digits, at least :data:`MIN_IMAGES` images, and for
    an uncompressed file its size."""
    n, rows, cols = _idx_fields(_read_idx(path, 16), path)
    _check_idx(path, n, rows, cols, None if path.suffix == ".gz" else path.stat().st_size)
    return n, rows, cols


def read_idx_images(path: Path) -> np.ndarray:
    """Read an idx3-ubyte image file (optionally gzipped) into a (N, 28, 28) uint8 array of at least
    :data:`MIN_IMAGES` images; anything else is one BenchError naming the file and the fix."""
    raw = _read_idx(path)
    n, rows, cols = _idx_fields(raw[:16], path)
    _check_idx(path, n, rows, cols, len(raw))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def sklearn_digits_28() -> np.ndarray:
    """scikit-learn's 8x8 handwritten digits as MNIST-like 28x28 uint8 images (20x20 box, centred)."""
    from sklearn.datasets import load_digits

    images = torch.as_tensor(load_digits().images, dtype=torch.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    box = F.interpolate(images[:, None], size=(20, 20), mode="bilinear", align_corners=False)[:, 0]
    out = torch.zeros(len(images), DIGIT, DIGIT)
    out[:, 4:24, 4:24] = box.clamp(0, 1)
    return (out * 255).round().to(torch.uint8).numpy()


def digit_pools(root: Path | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Disjoint train/val/test digit pools (uint8, (N, 28, 28)) and a description of the source."""
    idx = find_mnist_idx(root)
    if idx is not None:
        images = read_idx_images(idx)  # 28x28, at least MIN_IMAGES: every pool below is non-empty
        n = len(images)
        cut1, cut2 = n * 5 // 6, n * 11 // 12
        pools = {"train": images[:cut1], "val": images[cut1:cut2], "test": images[cut2:]}
        info = {"digit_source": "mnist-idx", "digit_file": str(idx)}
    else:
        images = sklearn_digits_28()
        order = np.random.default_rng(20150101).permutation(len(images))
        n = len(images)
        cut1, cut2 = int(n * 0.70), int(n * 0.85)
        pools = {"train": images[order[:cut1]], "val": images[order[cut1:cut2]], "test": images[order[cut2:]]}
        info = {"digit_source": "sklearn-digits",
                "digit_note": "scikit-learn load_digits 8x8 upsampled to 28x28; not comparable with MNIST-digit results"}
    info["digit_pool_sizes"] = {k: int(len(v)) for k, v in pools.items()}
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in pools.items()}, info


def trajectories(n: int, frames: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left pixel positions (rows, cols) of shape (n, frames, NUM_DIGITS), bouncing dynamics."""
    pos = torch.rand(2, n, NUM_DIGITS, generator=generator, dtype=torch.float64)  # (y, x) in [0, 1]
    theta = torch.rand(n, NUM_DIGITS, generator=generator, dtype=torch.float64) * (2 * np.pi)
    vel = torch.stack([torch.sin(theta), torch.cos(theta)])
    out = torch.empty(frames, 2, n, NUM_DIGITS, dtype=torch.float64)
    for t in range(frames):
        pos = pos + vel * STEP
        low, high = pos <= 0, pos >= 1
        vel = torch.where(low | high, -vel, vel)
        pos = pos.clamp(0.0, 1.0)
        out[t] = pos
    pix = (out * (CANVAS - DIGIT)).to(torch.int64)  # truncation, as the standard generator does
    return pix[:, 0].permute(1, 0, 2), pix[:, 1].permute(1, 0, 2)


def render(digits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Draw (n, NUM_DIGITS, 28, 28) uint8 digits at per-frame positions -> (n, frames, 64, 64) uint8."""
    n, frames, _ = rows.shape
    ar = torch.arange(DIGIT)
    canvas = torch.zeros(n, frames, CANVAS, CANVAS, dtype=torch.uint8)
    ni = torch.arange(n)[:, None, None, None]
    ti = torch.arange(frames)[None, :, None, None]
    for d in range(NUM_DIGITS):
        r = (rows[:, :, d, None] + ar)[:, :, :, None]  # (n, frames, 28, 1)
        c = (cols[:, :, d, None] + ar)[:, :, None, :]  # (n, frames, 1, 28)
        layer = torch.zeros_like(canvas)
        layer[ni, ti, r, c] = digits[:, d][:, None].expand(n, frames, DIGIT, DIGIT)
        canvas = torch.maximum(canvas, layer)
    return canvas


def render_gather(digits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """:func:`render` as a gather and a max, on the device of ``digits``: canvas pixel (y, x) of a frame reads
    pixel (y - row, x - col) of each digit (zero outside its 28 x 28 box); the digits combine by maximum."""
    n, frames, _ = rows.shape
    span = torch.arange(CANVAS, device=digits.device)
    ni = torch.arange(n, device=digits.device)[:, None, None, None]
    canvas = torch.zeros(n, frames, CANVAS, CANVAS, dtype=torch.uint8, device=digits.device)
    for d in range(NUM_DIGITS):
        dy = span - rows[:, :, d, None]  # (n, frames, 64): the digit row each canvas row reads
        dx = span - cols[:, :, d, None]
        inside = (((dy >= 0) & (dy < DIGIT))[..., :, None] & ((dx >= 0) & (dx < DIGIT))[..., None, :])
        layer = digits[:, d][ni, dy.clamp(0, DIGIT - 1)[..., :, None], dx.clamp(0, DIGIT - 1)[..., None, :]]
        canvas = torch.maximum(canvas, layer.masked_fill_(~inside, 0))
    return canvas


def draws(pool_size: int, n: int, seed: list[int] | int,
          frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random part of ``n`` sequences: digit choices (n, NUM_DIGITS) and trajectories (rows, cols)."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)[0] >> 1))
    choice = torch.randint(pool_size, (n, NUM_DIGITS), generator=g)
    rows, cols = trajectories(n, frames, g)
    return choice, rows, cols


def generate(pool: torch.Tensor, n: int, seed: list[int] | int, frames: int = FRAMES) -> torch.Tensor:
    """``n`` Moving MNIST sequences (n, frames, 64, 64) uint8, fully determined by ``seed``."""
    choice, rows, cols = draws(len(pool), n, seed, frames)
    return render(pool[choice], rows, cols)


def generate_on(pool: torch.Tensor, n: int, seed: list[int] | int, frames: int = FRAMES) -> torch.Tensor:
    """:func:`generate` rendered on the device of ``pool`` (the same draws, the same frames)."""
    choice, rows, cols = draws(len(pool), n, seed, frames)
    device = pool.device
    return render_gather(pool[choice.to(device)], rows.to(device), cols.to(device))


class MovingMNISTSplits:
    """Train stream + fixed validation/test sets of generated Moving MNIST (see module docstring)."""

    def __init__(self, spec: DatasetSpec, config: DataConfig):
        self.spec = spec
        self.config = config
        # validation/test sequences hold max(T', --pred-len) targets; the trajectories are prefix-stable, so
        # their first T + T' frames are the same whatever the horizon
        self.eval_out = max(spec.out_frames, int(getattr(config, "pred_len", None) or 0))
        self.sizes = {**spec.sizes, **config.sizes}  # DataConfig checked them (bench.spec.splits.check_sizes)
        self.pools, self.info = digit_pools(data_dir(config.data_dir))
        self.device = torch.device(config.device) if config.device else None  # None: the CPU generator
        self.loader: LoaderSettings = getattr(config, "loader", LoaderSettings())
        if self.device is not None:
            self.pools = {k: v.to(self.device) for k, v in self.pools.items()}
        self.info = {**self.info, "generator": "bouncing digits (Srivastava et al. 2015), step 0.1, max-combined",
                     "data_seed": config.data_seed, "sizes": dict(self.sizes)}

    def size(self, split: str) -> int:
        return len(shard_range(self.sizes[split], self.config.rank, self.config.world_size))

    def _chunk(self, split: str, epoch: int, index: int, n: int) -> torch.Tensor:
        seed = self.config.seed if split == "train" else self.config.data_seed
        make = generate if self.device is None else generate_on
        return make(self.pools[split], n, [seed, _SPLIT_ID[split], epoch if split == "train" else 0, index],
                    self.spec.in_frames + self._out(split))

    def _mine(self, item: tuple[str, int, int, int, list[int]]) -> torch.Tensor:
        """This rank's sequences ``mine`` of chunk ``index`` (of ``n``) of ``split`` in ``epoch``."""
        split, epoch, index, n, mine = item
        return self._chunk(split, epoch, index, n)[mine]

    def _out(self, split: str) -> int:
        return self.spec.out_frames if split == "train" else self.eval_out

    def sequences(self, split: str, epoch: int = 0) -> Iterator[torch.Tensor]:
        """This rank's sequences of ``split`` in order, as uint8 chunks (n, T + T', 64, 64): on the device
        (when one is set), else generated by the loader's worker processes (0: here)."""
        if split not in _SPLIT_ID:
            raise BenchError(f"mmnist has no split {split!r}; choose train, val or test")
        total, rank, world = self.sizes[split], self.config.rank, self.config.world_size
        plan = []
        for index, start in enumerate(range(0, total, CHUNK)):
            n = min(CHUNK, total - start)
            mine = [i - start for i in shard_range(total, rank, world) if start <= i < start + n]
            if mine:
                plan.append((split, epoch, index, n, mine))
        workers = 0 if self.device is not None else self.loader.for_compute()
        return load_batches(self._mine, plan, workers)

    def raw_batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches as uint8 frames (B, T, 1, 64, 64) and (B, T', 1, 64, 64), on the generator's device."""
        pending: list[torch.Tensor] = []
        count = 0
        for chunk in self.sequences(split, epoch):
            pending.append(chunk)
            count += len(chunk)
            while count >= batch_size:
                block = torch.cat(pending)
                yield self._split(block[:batch_size], split)
                pending, count = [block[batch_size:]], count - batch_size
        if count:
            yield self._split(torch.cat(pending), split)

    def batches(self, split: str, batch_size: int, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.raw_batches(split, batch_size, epoch):
            yield to_unit_float(x), to_unit_float(y)

    def _split(self, block: torch.Tensor, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.spec.in_frames
        return block[:, :t, None], block[:, t:t + self._out(split), None]


@register_dataset(
    "mmnist",
    in_frames=10, out_frames=10, channels=1, height=64, width=64,
    display_name="Moving MNIST",
    source_identity=digit_source_identity,
    description="Moving MNIST generated offline: two bouncing digits, 64x64, 10 -> 10",
    citation="Srivastava et al., Unsupervised Learning of Video Representations using LSTMs, ICML 2015",
    sizes={"train": 10000, "val": 1000, "test": 10000},
    quick_sizes={"train": 64, "val": 32, "test": 32},
    metrics=("mse", "mae", "ssim", "psnr"),
)
def load_mmnist(spec: DatasetSpec, config: DataConfig) -> MovingMNISTSplits:
    return MovingMNISTSplits(spec, config)
