"""Human3.6M walking (``human36m``): RGB 3 x 128 x 128, 4 -> 4.

Source: Ionescu, Papava, Olaru, Sminchisescu, "Human3.6M: Large Scale Datasets and Predictive
Methods for 3D Human Sensing in Natural Environments", TPAMI 2014 (vision.imar.ro/human3.6m,
licence-restricted: it cannot be downloaded without an account). Protocol (PLA-SM Sec. IV-A,
following MIM, Wang et al. CVPR 2019): the walking scenario, RGB frames of 128 x 128, subjects
S1, S5, S6, S7, S8 for training (2,624 clips) and S9, S11 for test (1,135 clips), clips of 8
frames, 4 input and 4 target.

On-disk layout (our choice where the papers are silent; two accepted forms)::

    DATA/human36m/S1/Walking.54138969/000001.jpg           per-subject folders: S<subject>/<activity>.<camera>/<frame>
    DATA/human36m/images/S1_Walking.54138969_000001.jpg    or one flat folder, the OpenSTL image naming

Frames are the Human3.6M videos dumped to images (.jpg or .png), numbered by their frame index in
the video (any number of digits). Only activities named ``Walking`` (with their repetitions,
e.g. ``Walking 1`` or ``Walking_1``) are used; ``WalkDog`` and ``WalkTogether`` are not (the
papers say "the walking scene"). A frame that is not 128 x 128 is resized (bicubic).

Clips (our choice; the papers give only the counts): frames are taken every 5th video frame
(50 fps -> 10 fps, the sampling step of the SimVP/OpenSTL Human3.6M loader); a clip is 8 such
frames (frame numbers n, n+5, ..., n+35, all present), and clips of one video do not overlap
(starts 40 video frames apart, from the video's first frame). The resulting counts need not equal
the papers' 2,624 / 1,135; ``bench data check human36m`` shows both.

Validation split (our choice): subject S8, held out from the training subjects (subject-disjoint,
like the test split); training uses S1, S5, S6, S7.

Metrics and display (PLA-SM Table II, Sec. IV-D): MSE, MAE, SSIM; MSE shown /10 and MAE /100
(``metric_scale``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.datafiles.identity import files_identity
from bench.datafiles import (CheckReport, ClipSplits, DataSource, FrameFiles, check_loader, data_root,
                                   eval_out_frames, expect_counts, frame_file_splits, register_source, require_root)
from bench.errors import BenchError
from bench.spec.registry import DataConfig, DatasetSpec, get_dataset, register_dataset

NAME = "human36m"
SIZE = 128
STEP = 5
TRAIN_SUBJECTS = frozenset({1, 5, 6, 7})
VAL_SUBJECTS = frozenset({8})
TEST_SUBJECTS = frozenset({9, 11})
PAPER_COUNTS = {"train+val": 2624, "test": 1135}
IMAGE_EXT = (".jpg", ".jpeg", ".png")
LAYOUT = ("DATA/human36m/S<n>/Walking.<camera>/<frame>.jpg (or DATA/human36m/images/S<n>_Walking.<camera>_<frame>.jpg) "
          "for subjects S1, S5-S9, S11")
HOW = ("Human3.6M needs an account at vision.imar.ro/human3.6m (licence): download the Walking videos of S1, S5-S9 "
       "and S11, dump their frames as DATA/human36m/S<n>/Walking.<camera>/000001.jpg ... (e.g. ffmpeg -i "
       "Walking.54138969.mp4 Walking.54138969/%06d.jpg)")
DECODER = "human36m: RGB, bicubic resize to 128x128 (PIL)"  # keys the frame cache: change it with read_frame
_NESTED = re.compile(r"^S(\d+)[/\\]([^/\\]+)\.(\d+)[/\\][^/\\]*?(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
_FLAT = re.compile(r"^images[/\\]S(\d+)_(.+)\.(\d+)_(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
_WALKING = re.compile(r"^walking(?:[ _]?\d+)?$", re.IGNORECASE)


@dataclass
class Video:
    subject: int
    name: str  # activity.camera
    files: dict[int, Path]  # frame number -> file


def scan(root: Path) -> list[Video]:
    base = root / NAME
    if not base.is_dir():
        raise BenchError(f"{base} is missing: expected {LAYOUT}; {HOW}")
    videos: dict[tuple[int, str], Video] = {}
    for path in base.rglob("*"):
        if path.suffix.lower() not in IMAGE_EXT:
            continue
        rel = path.relative_to(base).as_posix()
        m = _NESTED.match(rel) or _FLAT.match(rel)
        if m is None:
            continue
        subject, activity, camera, frame = int(m.group(1)), m.group(2), m.group(3), int(m.group(4))
        if not _WALKING.match(activity):
            continue
        key = (subject, f"{activity}.{camera}")
        videos.setdefault(key, Video(subject, key[1], {})).files[frame] = path
    if not videos:
        raise BenchError(f"{base} holds no Walking frames: expected {LAYOUT}; {HOW}")
    return [videos[k] for k in sorted(videos)]


def clip_frames(numbers: set[int], first: int, last: int, length: int) -> list[list[int]]:
    """Non-overlapping clips of ``length`` frames sampled every STEP video frames."""
    out = []
    span = length * STEP
    for start in range(first, last - (length - 1) * STEP + 1, span):
        frames = [start + k * STEP for k in range(length)]
        if all(f in numbers for f in frames):
            out.append(frames)
    return out


def index(videos: list[Video]) -> tuple[list[Path], dict[tuple[int, int], int]]:
    """The frames a clip can use (every STEP-th frame from a video's first: :func:`clip_frames` takes no
    other, whatever the clip length), numbered: (files, (video, frame number) -> id). A dump of every
    video frame is thus decoded into the frame cache at a fifth of its size."""
    files, ids = [], {}
    for vi, v in enumerate(videos):
        first = min(v.files, default=0)
        for n in sorted(v.files):
            if (n - first) % STEP == 0:
                ids[(vi, n)] = len(files)
                files.append(v.files[n])
    return files, ids


def build_clips(videos: list[Video], ids: dict[tuple[int, int], int], subjects: frozenset[int], length: int) -> np.ndarray:
    rows = []
    for vi, v in enumerate(videos):
        if v.subject in subjects and v.files:
            nums = set(v.files)
            for frames in clip_frames(nums, min(nums), max(nums), length):
                rows.append([ids[(vi, n)] for n in frames])
    return np.array(rows, dtype=np.int64).reshape(-1, length)


def source_identity(config: DataConfig) -> dict:
    """The digest of every Walking frame the loader indexes, named ``S<n>/<activity.camera>/<frame number>``
    so both accepted layouts of the same frames have one identity (:mod:`bench.datafiles.identity`); {} without
    a data directory (the presence check reports it)."""
    root = data_root(config.data_dir)
    if root is None:
        return {}
    return files_identity(root / NAME, {f"S{v.subject}/{v.name}/{n}": path for v in scan(root)
                                        for n, path in v.files.items()})


def read_frame(path: Path) -> np.ndarray:
    """One frame as (3, 128, 128) uint8 RGB, bicubic resize when needed."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (SIZE, SIZE):
                im = im.resize((SIZE, SIZE), Image.BICUBIC)
            a = np.asarray(im)
    except Exception as exc:
        raise BenchError(f"{path}: expected a readable image, found a corrupt or unreadable file "
                         f"({type(exc).__name__}); re-extract that video's frames") from None
    return np.ascontiguousarray(a.transpose(2, 0, 1))


@register_dataset(
    NAME,
    in_frames=4, out_frames=4, channels=3, height=SIZE, width=SIZE,
    display_name="Human3.6M", source_identity=source_identity,
    description="Human3.6M walking, RGB 128x128, 4 -> 4; DATA/human36m/S<n>/Walking.<camera>/<frame>.jpg",
    citation="Ionescu et al., Human3.6M: Large Scale Datasets and Predictive Methods for 3D Human Sensing, TPAMI 2014",
    sizes={},
    quick_sizes={"train": 32, "val": 8, "test": 8},
    metrics=("mse", "mae", "ssim"),
    metric_scale={"mse": 0.1, "mae": 0.01},
)
def load_human36m(spec: DatasetSpec, config: DataConfig) -> ClipSplits:
    root = require_root(config.data_dir, NAME, LAYOUT)
    videos = scan(root)
    files, ids = index(videos)
    train_len = spec.in_frames + spec.out_frames
    eval_len = spec.in_frames + eval_out_frames(spec, config)
    clips = {"train": build_clips(videos, ids, TRAIN_SUBJECTS, train_len),
             "val": build_clips(videos, ids, VAL_SUBJECTS, eval_len),
             "test": build_clips(videos, ids, TEST_SUBJECTS, eval_len)}
    frames = FrameFiles(root / NAME, files, read_frame, DECODER)
    return frame_file_splits(spec, config, frames, clips, {
        "source": str(root / NAME), "frame_step": STEP, "videos": len(videos),
        "validation": "subject S8 (training uses S1, S5, S6, S7)"})


def _present(root: Path | None) -> tuple[str, str]:
    if root is None or not (root / NAME).is_dir():
        return "missing", LAYOUT
    return "present", str(root / NAME)


def _check(root: Path, report: CheckReport) -> None:
    try:
        videos = scan(root)
    except BenchError as exc:
        report.error(str(exc))
        return
    subjects = sorted({v.subject for v in videos})
    report.ok(f"{len(videos)} Walking videos, {sum(len(v.files) for v in videos)} frames, subjects "
              f"{', '.join(f'S{s}' for s in subjects)}")
    absent = sorted((TRAIN_SUBJECTS | VAL_SUBJECTS | TEST_SUBJECTS) - set(subjects))
    if absent:
        report.warn(f"no Walking videos of {', '.join(f'S{s}' for s in absent)} (the protocol uses S1, S5-S9, S11)")
    _, ids = index(videos)
    counts = {"train+val": len(build_clips(videos, ids, TRAIN_SUBJECTS | VAL_SUBJECTS, 8)),
              "test": len(build_clips(videos, ids, TEST_SUBJECTS, 8))}
    expect_counts(report, counts, PAPER_COUNTS, note=" (clip rule: our choice, see the module docstring)")
    check_loader(get_dataset(NAME), root, report)


register_source(DataSource(dataset=NAME, layout=LAYOUT, how_to_get=HOW, present=_present, check=_check))
