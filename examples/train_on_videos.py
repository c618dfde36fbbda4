"""Fine-tune an inflated model on a folder of videos, evaluate it, and classify one clip.

With no --data, writes a small dataset first: a textured square moving left, right, up or down
over a textured background, which no single frame can tell apart (so a 2D model cannot learn it
and an inflated one must use time). With --data, use your own videos: DATA/train/<class>/*.mp4
and DATA/val/<class>/*.mp4, or UCF-101/HMDB-51 as distributed.

    python examples/train_on_videos.py                       # generated videos, test_resnet, about 2 min on 2 cores
    python examples/train_on_videos.py --data videos/ --model i3d_rgb --frames 64 --size 224 --epochs 30

The same as three commands: `inflate train`, `inflate evaluate`, `inflate predict`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from inflate.train import TrainConfig, evaluate, fit, predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a video folder (default: generate one)")
    parser.add_argument("--model", default="test_resnet", help="a timm name, i3d_rgb, or a .safetensors file")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="inflate-example-"))
    data = args.data
    flip = 0.5
    if data is None:
        from inflate.data import make_motion_dataset

        data = make_motion_dataset(scratch / "videos", per_class=40, per_class_val=10, frames=12, size=args.size,
                                   step=2)
        flip = 0.0  # a mirror turns "left" into "right"
        print(f"generated 160 training and 40 validation videos in {data}")
    run = args.out or scratch / "run"
    cfg = TrainConfig(model=args.model, data=str(data), out=str(run), frames=args.frames, size=args.size,
                      epochs=args.epochs, batch=args.batch, optimizer="adamw", lr=3e-3, schedule="cosine", flip=flip,
                      workers=2)
    result = fit(cfg)
    print(f"best validation top-1 {result.best_top1:.3f}; run folder {run}")
    scores = evaluate(run, data, views="multi", num_clips=3, num_crops=3, workers=2)
    print(f"video top-1 {scores['top1']:.3f}, clip top-1 {scores['clip_top1']:.3f} on {scores['n']} videos")
    video = next(p for p in sorted((Path(data) / "val").rglob("*")) if p.is_file())
    label, probability = predict(run, video, top=1)[0]
    print(f"{video.name}: {label} ({probability:.2f})")


if __name__ == "__main__":
    main()
