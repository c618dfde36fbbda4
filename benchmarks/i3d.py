"""CPU forward latency of the I3D RGB stream (float32, batch 1): 64×224² and 16×224² clips.

    python benchmarks/i3d.py [--repeats 5] [--threads N]

Prints the median of --repeats timed runs after one warm-up, per clip length.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from inflate import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--frames", type=int, nargs="+", default=[64, 16])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, float32, CPU")
    model = create_model("i3d_rgb")
    for frames in args.frames:
        clip = torch.rand(1, 3, frames, 224, 224) * 2 - 1
        times = []
        with torch.inference_mode():
            model(clip)  # warm-up
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(clip)
                times.append(time.perf_counter() - start)
        print(f"i3d_rgb 1x3x{frames}x224x224: median {statistics.median(times) * 1000:.0f} ms "
              f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, n={args.repeats})")


if __name__ == "__main__":
    main()
