"""TaxiBJ (``taxibj``): Beijing taxi in/out flows, 2 x 32 x 32 frames, 4 -> 4.

Source and protocol: Zhang et al., "Deep Spatio-Temporal Residual Networks for Citywide Crowd
Flows Prediction", AAAI 2017 (data: github.com/TolicWang/DeepST/tree/master/data/TaxiBJ, the
PLA-SM paper's footnote 3); preprocessing as in MIM (Wang et al., CVPR 2019), which both papers
follow (TAU Sec. 4.1, PLA-SM Sec. IV-A): flows normalised to [-1, 1], clips of 4 input and 4
target half-hour frames, the last four weeks as the test set. TAU Table 1 / PLA-SM: 19,627
training clips and 1,334 test clips, shape (2, 32, 32) (in-flow, out-flow).

On-disk layout (the standard preprocessed file, as distributed with the SimVP/OpenSTL code)::

    DATA/taxibj/dataset.npz     keys X_train, Y_train (19627, 4, 2, 32, 32)
                                     X_test,  Y_test  (1334, 4, 2, 32, 32)   float, in [-1, 1]

``DATA`` is ``--data-dir`` or ``$BENCH_DATA``. There is no public direct-download address for the
preprocessed file (it is shared through cloud drives), so ``bench data download taxibj`` explains
where to put it instead of fetching it.

Normalisation: values v in [-1, 1] are mapped to (v + 1) / 2 in [0, 1] ("we normalize the data
into [0, 1]", TAU Sec. 4.1), kept as float32 (8-bit quantisation would change the MSE).

Validation split (our choice; the papers have none and select on the test set): the LAST
``min(1000, N // 10)`` clips of ``X_train`` (1,000 of 19,627, i.e. about three weeks at 48 frames a
day, temporally next to the test weeks), and the 7 clips before them are dropped. Clips are
sliding windows of 8 consecutive frames, so neighbours share up to 7 frames; dropping 7 clips
means no frame of a validation clip is also in a training clip (assuming the file keeps the
temporal order of the standard preprocessing). Standard sizes: train 18,620, val 1,000, test 1,334.

Metrics and display (PLA-SM Sec. IV-A, TAU Table 3): MSE, MAE, SSIM; MSE is shown x100
(``metric_scale``; TAU Table 3 header "MSE x 100", PLA-SM Sec. IV-D).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.spec.splits import ArraySplits
from bench.datafiles.identity import files_identity
from bench.datafiles import (CheckReport, DataSource, SPLIT_SALT, bad_file, check_loader, data_root, expect_counts,
                                   load_npz, missing, pick, register_source, require_root)
from bench.errors import BenchError
from bench.spec.registry import DataConfig, DatasetSpec, get_dataset, register_dataset

NAME = "taxibj"
FILE = "taxibj/dataset.npz"
KEYS = ("X_train", "Y_train", "X_test", "Y_test")
FRAME = (2, 32, 32)
PAPER_COUNTS = {"train+val": 19627, "test": 1334}
VAL_CLIPS = 1000
GAP = 7  # clips dropped between train and val: 8-frame sliding windows share up to 7 frames
LAYOUT = "DATA/taxibj/dataset.npz (keys X_train, Y_train, X_test, Y_test; arrays (N, 4, 2, 32, 32) in [-1, 1])"
HOW = ("no public direct-download address exists: get the preprocessed TaxiBJ dataset.npz distributed with the "
       "SimVP/OpenSTL code (or build it from github.com/TolicWang/DeepST data with the MIM preprocessing) and save it "
       "as DATA/taxibj/dataset.npz")
FIX = f"put the standard preprocessed file there ({HOW.split(': ', 1)[1]})"


def val_layout(n_train: int) -> tuple[range, range]:
    """(train clip range, val clip range) of ``X_train``: val = last min(1000, N // 10), gap of 7."""
    n_val = max(1, min(VAL_CLIPS, n_train // 10))
    stop = max(0, n_train - n_val - GAP)
    if stop < 1:
        raise BenchError(f"{FILE} holds only {n_train} training clips; at least {n_val + GAP + 1} are needed "
                         f"for a training and a validation split")
    return range(0, stop), range(n_train - n_val, n_train)


def read_arrays(root: Path) -> dict[str, np.ndarray]:
    path = root / FILE
    if not path.is_file():
        raise missing(path, "the preprocessed TaxiBJ file (X_train, Y_train, X_test, Y_test)", FIX)
    arrays = load_npz(path, KEYS, FIX)
    for key, a in arrays.items():
        if a.ndim != 5 or a.shape[1] != 4 or a.shape[2:] != FRAME or a.dtype.kind not in "fiu":
            raise bad_file(path, f"{key} of shape (N, 4, 2, 32, 32)", f"{a.dtype} array of shape {a.shape}", FIX)
        if len(a) == 0:
            raise bad_file(path, f"{key} with at least one clip", "an empty array (no sequences)", FIX)
    for xk, yk in (("X_train", "Y_train"), ("X_test", "Y_test")):
        if len(arrays[xk]) != len(arrays[yk]):
            raise bad_file(path, f"{xk} and {yk} with as many clips", f"{len(arrays[xk])} and {len(arrays[yk])}", FIX)
    return arrays


def source_identity(config: DataConfig) -> dict:
    """The SHA-256 of ``dataset.npz`` (:mod:`bench.datafiles.identity`); {} without a data directory (the
    presence check then says what is missing)."""
    root = data_root(config.data_dir)
    if root is None:
        return {}
    path = root / FILE
    if not path.is_file():
        raise missing(path, "the preprocessed TaxiBJ file (X_train, Y_train, X_test, Y_test)", FIX)
    return files_identity(path.parent, {path.name: path})


def value_problem(a: np.ndarray) -> str | None:
    """What is wrong with the values of a TaxiBJ array (NaN/infinity first: a range of NaN says nothing), or None."""
    lo, hi = float(a.min()), float(a.max())  # NaN and infinity propagate: counted only then
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        return f"{bad} non-finite value{'s' if bad != 1 else ''} (NaN or infinity) among {a.size}"
    if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
        return f"values in [{lo:.4g}, {hi:.4g}]"
    return None


def to_unit(a: np.ndarray, path: Path, key: str) -> np.ndarray:
    problem = value_problem(a)
    if problem is not None:
        raise bad_file(path, f"{key} values in [-1, 1] (the normalised TaxiBJ flows)", problem, FIX)
    return np.clip((a.astype(np.float32) + 1.0) * 0.5, 0.0, 1.0)


@register_dataset(
    NAME,
    in_frames=4, out_frames=4, channels=2, height=32, width=32,
    display_name="TaxiBJ", max_pred_len=4, source_identity=source_identity,
    description="TaxiBJ traffic in/out flows (Beijing), 2x32x32, 4 -> 4; file DATA/taxibj/dataset.npz",
    citation="Zhang et al., Deep Spatio-Temporal Residual Networks for Citywide Crowd Flows Prediction, AAAI 2017",
    sizes={"train": 18620, "val": 1000, "test": 1334},
    quick_sizes={"train": 256, "val": 64, "test": 64},
    metrics=("mse", "mae", "ssim"),
    metric_scale={"mse": 100.0},
)
def load_taxibj(spec: DatasetSpec, config: DataConfig) -> ArraySplits:
    root = require_root(config.data_dir, NAME, LAYOUT)
    spec.check_pred_len(config.pred_len)  # the clips hold max_pred_len = T' target frames
    arrays = read_arrays(root)
    path = root / FILE
    tr, va = val_layout(len(arrays["X_train"]))
    base = {"train": (arrays["X_train"], arrays["Y_train"], tr), "val": (arrays["X_train"], arrays["Y_train"], va),
            "test": (arrays["X_test"], arrays["Y_test"], range(len(arrays["X_test"])))}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    clamped = {}
    for split, (x, y, rng) in base.items():
        want = config.sizes.get(split)
        if want is not None and int(want) > len(rng):
            clamped[split] = {"requested": int(want), "used": len(rng)}
        sel = np.asarray(rng)[pick(len(rng), want, config.data_seed, SPLIT_SALT[split])]
        out[split] = (to_unit(x[sel], path, split), to_unit(y[sel], path, split))
    info = {"source": str(path), "normalisation": "(v + 1) / 2 from [-1, 1]",
            "validation": f"last {len(va)} clips of X_train, {GAP} clips before them dropped",
            "available": {"train": len(tr), "val": len(va), "test": len(arrays["X_test"])}}
    if clamped:
        info["clamped"] = clamped
    return ArraySplits(out, seed=config.seed, rank=config.rank, world_size=config.world_size, info=info)


def _present(root: Path | None) -> tuple[str, str]:
    if root is not None and (root / FILE).is_file():
        return "present", str(root / FILE)
    return "missing", LAYOUT


def _check(root: Path, report: CheckReport) -> None:
    path = root / FILE
    try:
        arrays = read_arrays(root)
    except BenchError as exc:
        report.error(str(exc))
        return
    for key, a in arrays.items():
        problem = value_problem(a)
        if problem is not None:
            report.error(str(bad_file(path, f"{key} values in [-1, 1] (the normalised TaxiBJ flows)", problem, FIX)))
        else:
            report.ok(f"{path.name}[{key}]: {a.dtype} {a.shape}, values in [{float(a.min()):.3f}, {float(a.max()):.3f}]")
    expect_counts(report, {"train+val": len(arrays["X_train"]), "test": len(arrays["X_test"])}, PAPER_COUNTS)
    if not report.failed:  # the loader would only repeat the problem above
        check_loader(get_dataset(NAME), root, report)


register_source(DataSource(dataset=NAME, layout=LAYOUT, how_to_get=HOW, present=_present, check=_check))
