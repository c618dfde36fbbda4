"""Conversion wall time and peak memory of inflate_model for resnet50 and vgg16 (t=8).

Prints, per model: the median of 5 conversion times, the sizes of the 2D and 3D models
(parameters + buffers), and the peak extra resident memory during a conversion, sampled
every millisecond, relative to the 3D model's size. Goal from the engine issue: resnet50
converts in under 1 s on the CI machine, and peak extra memory stays under the 3D model's
size plus 20%.

    python benchmarks/convert.py [--models resnet50 vgg16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import statistics
import threading
import time

import timm
import torch

from inflate import inflate_model

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakSampler:
    """Samples this process's resident memory on a thread until stopped."""

    def __init__(self) -> None:
        self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def nbytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def one_run(name: str, t: int, queue: "multiprocessing.Queue") -> None:
    """One conversion in a fresh process, so freed memory of earlier runs cannot hide the peak."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    model = timm.create_model(name, pretrained=False).eval()
    inflate_model(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3)), t=t)  # warm the imports, not the model
    gc.collect()
    before = rss()
    with PeakSampler() as sampler:
        start = time.perf_counter()
        model3d = inflate_model(model, t=t)
        elapsed = time.perf_counter() - start
    queue.put((elapsed, sampler.peak - before, nbytes(model), nbytes(model3d)))


def measure(name: str, repeats: int, t: int) -> None:
    context = multiprocessing.get_context("spawn")
    results = []
    for _ in range(repeats):
        queue = context.Queue()
        process = context.Process(target=one_run, args=(name, t, queue))
        process.start()
        results.append(queue.get())
        process.join()
    times = [r[0] for r in results]
    peaks = [r[1] for r in results]
    size2d, size3d = results[0][2], results[0][3]
    mib = 1 << 20
    median_peak = statistics.median(peaks)
    print(f"{name:10s} t={t}  convert median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, n={repeats})  "
          f"2D {size2d / mib:7.1f} MiB  3D {size3d / mib:7.1f} MiB  "
          f"peak extra {median_peak / mib:7.1f} MiB = {median_peak / size3d:.2f} x 3D size "
          f"(goal <= 1.20)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "vgg16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--time", type=int, default=8)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    for name in args.models:
        measure(name, args.repeats, args.time)


if __name__ == "__main__":
    main()
