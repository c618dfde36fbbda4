"""Time and peak memory to inflate a ~1 GB safetensors file at t=8 with the weight-file adapter.

Generates a file of 3×3 conv kernels (512×512×3×3 float32, 9 MiB each) plus biases, inflates
it to k_t = 3 (i3d policy), and reports wall time and the peak resident memory of the
inflating process (sampled every millisecond, in a fresh process) next to the input and
output sizes. Memory should stay near one tensor, far below input + output.

    python benchmarks/weights.py [--gib 1.0] [--folder /tmp]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def make_file(path: Path, gib: float) -> None:
    from safetensors.numpy import save_file

    kernel_bytes = 512 * 512 * 9 * 4
    count = max(1, int(gib * (1 << 30) / kernel_bytes))
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(count):
        tensors[f"layer{i}.conv.weight"] = rng.standard_normal((512, 512, 3, 3), dtype=np.float32)
        tensors[f"layer{i}.bn.bias"] = np.zeros(512, np.float32)
    save_file(tensors, str(path))


def inflate_in_child(source: str, output: str, queue: "multiprocessing.Queue") -> None:
    from inflate.adapters.safetensors import inflate_weights_file

    peak = [rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    baseline = rss()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    inflate_weights_file(source, output, t=8, force=True)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    queue.put((elapsed, max(peak[0], rss()), baseline))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir=args.folder))
    source, output = folder / "weights2d.safetensors", folder / "weights3d.safetensors"
    make_file(source, args.gib)
    context = multiprocessing.get_context("spawn")
    runs = []
    for _ in range(args.repeats):
        queue = context.Queue()
        child = context.Process(target=inflate_in_child, args=(str(source), str(output), queue))
        child.start()
        runs.append(queue.get())
        child.join()
    mib = 1 << 20
    in_size, out_size = source.stat().st_size, output.stat().st_size
    runs.sort()
    elapsed, peak, baseline = runs[len(runs) // 2]
    print(f"input {in_size / mib:.0f} MiB -> output {out_size / mib:.0f} MiB (t=8, i3d: 3×3 → 3×3×3)")
    print(f"inflate time median {elapsed:.2f} s of {args.repeats} (min {runs[0][0]:.2f}, max {runs[-1][0]:.2f}); "
          f"{(in_size + out_size) / mib / elapsed:.0f} MiB/s read+written")
    print(f"peak RSS {peak / mib:.0f} MiB (process baseline {baseline / mib:.0f} MiB, growth {(peak - baseline) / mib:.0f} MiB) "
          f"= {(peak - baseline) / (in_size + out_size):.3f} x (input + output)")
    source.unlink()
    output.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
