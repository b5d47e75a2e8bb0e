"""KTH Action (``kth``): grey-scale human actions, 1 x 128 x 128, 10 -> 20 (test also 10 -> 40).

Source: Schuldt, Laptev, Caputo, "Recognizing Human Actions: A Local SVM Approach", ICPR 2004
(www.csc.kth.se/cvap/actions/): 25 persons, six actions (walking, jogging, running, boxing,
hand waving, hand clapping), four scenarios, 25 fps. Protocol of the papers (TAU Sec. 4.1 and
4.4, PLA-SM Sec. IV-A, both following PredRNN / E3D-LSTM): persons 1-16 train, 17-25 test; frames
grey-scale and resized to 128 x 128; 10 input frames, 20 predicted in training, 20 or 40 in test;
TAU Table 1 / PLA-SM: 5,200 training and 3,167 test clips of 30 frames.

On-disk layout (the PredRNN frame-folder layout, which the SimVP/OpenSTL KTH loader also reads)::

    DATA/kth/<action>/<video>/image_NNNN.png      (or .jpg)
      <action>  boxing, handclapping, handwaving, walking, jogging, running  (all six required)
      <video>   e.g. person01_boxing_d1_uncomp  (the person number is read from "personNN")
      NNNN      the frame number within the video (frames are the video's frames, in order)

The frames are the KTH videos (160 x 120 AVI) dumped to images; a frame that is not 128 x 128 is
resized to 128 x 128 (bilinear, aspect not kept, as the PredRNN loader does). Colour images use
their first channel (the KTH videos are grey, stored as RGB). The raw KTH download is AVI video,
which this harness does not decode, so ``bench data download kth`` explains the steps instead.

Clips (the PredRNN/OpenSTL clip rule, re-implemented): within one video, scan backwards from its
last frame; a window of L consecutive frames is a clip when its first and last frame numbers differ
by exactly L - 1 (no gap); after a clip the scan jumps back L frames for boxing, hand clapping, hand
waving and walking (non-overlapping clips) and 3 frames for jogging and running (these actions
leave the frame quickly, so their clips overlap). L = 10 + 20 = 30 for training.

Flexible-length test (TAU Sec. 4.4), our decision: ONE dataset ``kth`` trained 10 -> 20; test and
validation clips hold ``max(20, pred_len)`` target frames, so ``bench run --datasets kth
--pred-len 40`` evaluates 10 -> 40 on 50-frame clips (feed-forward methods roll out recursively,
recurrent ones natively), and results group with the papers' KTH 10 -> 40 columns under
(kth, pred_len 40). ``pred_len`` reaches the loader through the ``DataConfig`` (attribute
``pred_len``, read when present).

Validation split (our choice; the papers have none): the clips of person 16, held out from the
training persons 1-16 (subject-disjoint, like the test split); training uses persons 1-15. The
papers' 5,200 training clips are therefore our train + val together (``bench data check`` compares
that sum).

Loading: the folder scan and clip index are built at once; frames are decoded (PIL) on first use
and kept in memory as uint8 (16 KB a frame; the full training persons take about 3 GB), so the
first epoch pays the decoding and a ``--quick`` run decodes only the frames of its clips.

Metrics (TAU Table 5, PLA-SM Table IV): SSIM and PSNR.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.datafiles.identity import files_identity
from bench.datafiles import (CheckReport, ClipSplits, DataSource, FrameFiles, check_loader, data_root,
                                   eval_out_frames, expect_counts, frame_file_splits, register_source, require_root)
from bench.errors import BenchError
from bench.spec.registry import DataConfig, DatasetSpec, get_dataset, register_dataset

NAME = "kth"
SIZE = 128
NON_OVERLAP = ("boxing", "handclapping", "handwaving", "walking")
OVERLAP = ("jogging", "running")
ACTIONS = NON_OVERLAP + OVERLAP
OVERLAP_STRIDE = 3
TRAIN_PERSONS = frozenset(range(1, 16))
VAL_PERSONS = frozenset({16})
TEST_PERSONS = frozenset(range(17, 26))
PAPER_COUNTS = {"train+val": 5200, "test": 3167}
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")
LAYOUT = ("DATA/kth/<action>/<video>/image_NNNN.png for the six actions (boxing, handclapping, handwaving, walking, "
          "jogging, running), video folders named personNN_<action>_dK[_uncomp]")
HOW = ("download the six action zips from www.csc.kth.se/cvap/actions/, dump every video's frames as "
       "DATA/kth/<action>/<video name>/image_0001.png ... (e.g. ffmpeg -i person01_boxing_d1_uncomp.avi "
       "person01_boxing_d1_uncomp/image_%04d.png), or use the PredRNN/OpenSTL preprocessed kth frame folders")
DECODER = "kth: first channel, bilinear resize to 128x128 (PIL)"  # keys the frame cache: change it with read_frame
_PERSON = re.compile(r"person(\d+)", re.IGNORECASE)
_FRAME = re.compile(r"(\d+)(?!.*\d)")


@dataclass
class Video:
    action: str
    person: int
    name: str
    files: list[Path]
    numbers: np.ndarray  # frame numbers, ascending


def scan(root: Path) -> list[Video]:
    """Every video folder under DATA/kth, with its frame files sorted by frame number."""
    base = root / "kth"
    if not base.is_dir():
        raise BenchError(f"{base} is missing: expected {LAYOUT}; {HOW}")
    absent = [a for a in ACTIONS if not (base / a).is_dir()]
    if absent:
        raise BenchError(f"{base} has no folder for {', '.join(absent)}: expected all six action folders "
                         f"({', '.join(ACTIONS)}); {HOW}")
    videos: list[Video] = []
    for action in ACTIONS:
        for vdir in sorted(p for p in (base / action).iterdir() if p.is_dir()):
            m = _PERSON.search(vdir.name)
            if m is None:
                raise BenchError(f"{vdir}: expected a video folder named personNN_{action}_dK (person number "
                                 f"needed for the train/test split), found {vdir.name!r}; rename it")
            frames = []
            for f in vdir.iterdir():
                if f.suffix.lower() in IMAGE_EXT and f.name.lower().startswith("image"):
                    n = _FRAME.search(f.stem)
                    if n is not None:
                        frames.append((int(n.group(1)), f))
            frames.sort()
            videos.append(Video(action, int(m.group(1)), vdir.name, [f for _, f in frames],
                                np.array([n for n, _ in frames], dtype=np.int64)))
    if not any(len(v.files) for v in videos):
        raise BenchError(f"{base} holds no frame images (image_NNNN.png) in its video folders; {HOW}")
    return videos


def clip_starts(numbers: np.ndarray, length: int, stride_overlap: bool) -> list[int]:
    """Start positions of clips of ``length`` frames in one video (the backward PredRNN scan)."""
    starts = []
    index = len(numbers) - 1
    while index >= length - 1:
        first = index - length + 1
        if numbers[index] - numbers[first] == length - 1:
            starts.append(first)
            index -= OVERLAP_STRIDE if stride_overlap else length
        else:
            index -= 1
    return sorted(starts)


def build_clips(videos: list[Video], offsets: np.ndarray, persons: frozenset[int], length: int) -> np.ndarray:
    rows = []
    for v, off in zip(videos, offsets):
        if v.person in persons:
            for s in clip_starts(v.numbers, length, v.action in OVERLAP):
                rows.append(off + s + np.arange(length))
    return np.array(rows, dtype=np.int64).reshape(-1, length)


def source_identity(config: DataConfig) -> dict:
    """The digest of every frame file the loader indexes, named by its path under DATA/kth
    (:mod:`bench.datafiles.identity`); {} without a data directory (the presence check reports it)."""
    root = data_root(config.data_dir)
    if root is None:
        return {}
    base = root / "kth"
    cut = len(str(base)) + 1  # the frames' names under DATA/kth (string slicing: 100,000s of files)
    return files_identity(base, {str(f)[cut:].replace(os.sep, "/"): f for v in scan(root) for f in v.files})


def read_frame(path: Path) -> np.ndarray:
    """One KTH frame as (1, 128, 128) uint8: first channel, bilinear resize when needed."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            a = np.asarray(im)
    except Exception as exc:
        raise BenchError(f"{path}: expected a readable image, found a corrupt or unreadable file "
                         f"({type(exc).__name__}); re-extract that video's frames") from None
    if a.ndim == 3:
        a = a[..., 0]
    if a.ndim != 2:
        raise BenchError(f"{path}: expected a grey or RGB image, found an array of shape {a.shape}; re-extract it")
    if a.dtype != np.uint8:
        raise BenchError(f"{path}: expected 8-bit pixels, found {a.dtype}; save the frames as 8-bit PNG/JPEG")
    if a.shape != (SIZE, SIZE):
        a = np.asarray(Image.fromarray(a).resize((SIZE, SIZE), Image.BILINEAR))
    return a[None]


@register_dataset(
    NAME,
    in_frames=10, out_frames=20, channels=1, height=SIZE, width=SIZE,
    display_name="KTH", source_identity=source_identity,
    description="KTH actions, grey 128x128, 10 -> 20 (test 10 -> 40 with --pred-len 40); DATA/kth/<action>/<video>/",
    citation="Schuldt, Laptev, Caputo, Recognizing Human Actions: A Local SVM Approach, ICPR 2004",
    sizes={},
    quick_sizes={"train": 32, "val": 8, "test": 8},
    metrics=("ssim", "psnr"),
)
def load_kth(spec: DatasetSpec, config: DataConfig) -> ClipSplits:
    root = require_root(config.data_dir, NAME, LAYOUT)
    videos = scan(root)
    files = [f for v in videos for f in v.files]
    offsets = np.cumsum([0] + [len(v.files) for v in videos[:-1]])
    train_len = spec.in_frames + spec.out_frames
    eval_len = spec.in_frames + eval_out_frames(spec, config)
    clips = {"train": build_clips(videos, offsets, TRAIN_PERSONS, train_len),
             "val": build_clips(videos, offsets, VAL_PERSONS, eval_len),
             "test": build_clips(videos, offsets, TEST_PERSONS, eval_len)}
    frames = FrameFiles(root / "kth", files, read_frame, DECODER)
    return frame_file_splits(spec, config, frames, clips, {
        "source": str(root / "kth"), "clip_frames": {"train": train_len, "val": eval_len, "test": eval_len},
        "validation": "person 16 (training uses persons 1-15)", "videos": len(videos)})


def _present(root: Path | None) -> tuple[str, str]:
    if root is None or not (root / "kth").is_dir():
        return "missing", LAYOUT
    have = [a for a in ACTIONS if (root / "kth" / a).is_dir()]
    return ("present" if len(have) == len(ACTIONS) else "partial"), f"{root / 'kth'} ({len(have)}/6 action folders)"


def _check(root: Path, report: CheckReport) -> None:
    try:
        videos = scan(root)
    except BenchError as exc:
        report.error(str(exc))
        return
    persons = sorted({v.person for v in videos})
    report.ok(f"{len(videos)} videos, {sum(len(v.files) for v in videos)} frames, persons {persons[0]}-{persons[-1]}")
    absent = sorted(set(range(1, 26)) - set(persons))
    if absent:
        report.warn(f"no videos of person(s) {absent} (the full set has persons 1-25)")
    offsets = np.cumsum([0] + [len(v.files) for v in videos[:-1]])
    counts = {"train+val": len(build_clips(videos, offsets, TRAIN_PERSONS | VAL_PERSONS, 30)),
              "test": len(build_clips(videos, offsets, TEST_PERSONS, 30))}
    report.ok(f"10 -> 40 test clips (50 frames): {len(build_clips(videos, offsets, TEST_PERSONS, 50))}")
    expect_counts(report, counts, PAPER_COUNTS)
    check_loader(get_dataset(NAME), root, report)


register_source(DataSource(dataset=NAME, layout=LAYOUT, how_to_get=HOW, present=_present, check=_check))
