"""Cost of each attention policy: vit_small_patch16_224 (or --model) inflated with joint, divided
and frames attention, forward latency (median) and peak memory at 8×224² and 16×224².

    python benchmarks/attention.py [--repeats 5] [--frames 8 16] [--model swin_tiny_patch4_window7_224]

Each (policy, clip length) runs in a fresh process; peak memory is the growth of the resident
set during the timed forwards (sampled every millisecond), float32, CPU, batch 1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def run(name: str, mode: str, frames: int, repeats: int, queue: "multiprocessing.Queue") -> None:
    import timm
    import torch

    from inflate import inflate_model

    model = inflate_model(timm.create_model(name).eval(), t=frames, attention=mode).eval()
    clip = torch.randn(1, 3, frames, 224, 224)
    with torch.inference_mode():
        model(clip)  # warm-up
        baseline = rss()
        peak = [baseline]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss())
                time.sleep(0.001)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(clip)
            times.append(time.perf_counter() - start)
        stop.set()
        thread.join()
    queue.put((statistics.median(times), min(times), max(times), peak[0] - baseline, peak[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--model", default="vit_small_patch16_224", help="a timm model name")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; {args.model}, "
          f"tubelet 2, batch 1, float32")
    print(f"{'clip':>10s} {'attention':>9s} {'tokens':>7s} {'median ms':>10s} {'min-max ms':>13s} {'peak +MiB':>10s}")
    context = multiprocessing.get_context("spawn")
    for frames in args.frames:
        for mode in ("joint", "divided", "frames"):
            queue = context.Queue()
            process = context.Process(target=run, args=(args.model, mode, frames, args.repeats, queue))
            process.start()
            median, low, high, growth, _ = queue.get()
            process.join()
            tokens = (frames // 2) * (196 + 1) if args.model == "vit_small_patch16_224" else "-"
            print(f"{frames:>4d}x224^2 {mode:>9s} {tokens:>7} {median * 1000:>10.0f} "
                  f"{low * 1000:>6.0f}-{high * 1000:<6.0f} {growth / (1 << 20):>10.0f}", flush=True)


if __name__ == "__main__":
    main()
