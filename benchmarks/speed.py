"""Inflated models against their 2D parents: median step time and its ratio to the 2D model.

    python benchmarks/speed.py                       # CPU: float32, 2 threads, 1×8×112² (i3d_rgb 1×16×224²)
    python benchmarks/speed.py --device cuda         # CUDA: bf16 autocast, channels_last(_3d), 16×8×224²,
                                                     # cudnn.benchmark on (--no-cudnn-benchmark to turn it off)
    python benchmarks/speed.py --models resnet50 --repeats 5 --modes forward

For each model (timm's resnet50 and convnext_tiny, and the I3D preset i3d_rgb, whose 2D parent is
Inception-v1) the variants are:

* ``2d``: the 2D model on the clip's frames folded into the batch, (B·T, C, H, W);
* ``kt1``: the model inflated with every time kernel 1 and time stride 1
  (``overrides={"*": {"kernel": 1, "stride": 1}}``): the 2D model's work, so ideally 1.00×;
* ``i3d``: the I3D policy (``i3d_rgb`` itself for i3d_rgb; the "i3d" policy for the timm models);
* ``kt1-3d``, ``i3d-3d``: the same two models with time-1 layers run as the 3D ops they are
  (``frame_folding(False)``): the figures before time-1 layers ran folded.

Modes: ``forward`` (inference mode, eval) and ``train`` (train mode: forward, cross-entropy,
backward, SGD step). The variants run interleaved, one step of each per round after warm-up
rounds, so that load from other processes falls on all of them alike; a variant's ratio is the
median over rounds of its time divided by the 2D model's time in the same round.

Goals (issue 15): ``kt1`` at most 1.05× the 2D model; ``i3d`` at most its FLOP ratio to the 2D
model (forward FLOPs from torch.utils.flop_counter, batch 1) times 1.10.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from inflate import create_model, inflate_model  # noqa: E402
from inflate.adapters.torch.modules import frame_folding  # noqa: E402

MODELS = ("resnet50", "convnext_tiny", "i3d_rgb")
VARIANTS = ("2d", "kt1", "i3d", "kt1-3d", "i3d-3d")
KT1 = {"*": {"kernel": 1, "stride": 1}}
KT1_GOAL = 1.05
FLOP_MARGIN = 1.10
NUM_CLASSES = 400


@dataclass
class Setup:
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype, None: the models' own float32
    channels_last: bool
    batch: int
    frames: int
    size: int


def build(name: str, frames: int) -> dict[str, nn.Module]:
    """The 2D parent and its kt1 and I3D inflations, on the CPU in float32."""
    if name == "i3d_rgb":
        from inflate.presets.inception_v1 import InceptionV1

        model2d = InceptionV1(num_classes=NUM_CLASSES)
        i3d = create_model("i3d_rgb", num_classes=NUM_CLASSES, t=frames)
    else:
        import timm

        model2d = timm.create_model(name, num_classes=NUM_CLASSES)
        i3d = inflate_model(model2d, t=frames)
    return {"2d": model2d, "kt1": inflate_model(model2d, t=frames, overrides=KT1), "i3d": i3d}


def flop_count(model: nn.Module, clip: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(clip)
    return counter.get_total_flops()


def frames_of(clip: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) → (B·T, C, H, W), a dense copy."""
    return clip.transpose(1, 2).flatten(0, 1).contiguous()


def place(models: dict[str, nn.Module], shape: tuple[int, ...], setup: Setup) -> tuple[torch.Tensor, torch.Tensor]:
    """Move ``models`` to the setup's device and memory format (channels_last for the 2D model,
    channels_last_3d for the others, where asked); return a random clip of ``shape`` and its
    frames folded into the batch, in the same formats."""
    clip = torch.randn(*shape, device=setup.device)
    inputs2d = frames_of(clip)
    if setup.channels_last:
        clip = clip.contiguous(memory_format=torch.channels_last_3d)
        inputs2d = inputs2d.contiguous(memory_format=torch.channels_last)
    for key, model in models.items():
        model.to(setup.device)
        if setup.channels_last:
            model.to(memory_format=torch.channels_last if key == "2d" else torch.channels_last_3d)
    return clip, inputs2d


def make_step(model: nn.Module, inputs: torch.Tensor, mode: str, setup: Setup, folding: bool) -> Callable[[], None]:
    """One forward (or training step) of ``model`` on ``inputs``, synchronised on CUDA."""
    labels = torch.randint(0, NUM_CLASSES, (inputs.shape[0] if inputs.dim() == 4 else setup.batch,),
                           device=setup.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9) if mode == "train" else None
    autocast = setup.dtype is not None

    def step() -> None:
        with frame_folding(folding), torch.autocast(setup.device.type, dtype=setup.dtype or torch.float32,
                                                    enabled=autocast):
            if optimizer is None:
                with torch.inference_mode():
                    model(inputs)
            else:
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(inputs).float(), labels)
                loss.backward()
                optimizer.step()
        if setup.device.type == "cuda":
            torch.cuda.synchronize(setup.device)

    return step


def measure(steps: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Median seconds per step and median per-round ratio to ``steps["2d"]``, rounds interleaved."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    base = times["2d"]
    return {name: (statistics.median(t), statistics.median(a / b for a, b in zip(t, base)))
            for name, t in times.items()}


def run_model(name: str, setup: Setup, args: argparse.Namespace) -> list[str]:
    frames = args.i3d_frames if name == "i3d_rgb" else setup.frames
    size = args.i3d_size if name == "i3d_rgb" else setup.size
    shape = (setup.batch, 3, frames, size, size)
    print(f"\n{name}: clip {'×'.join(map(str, shape))}", flush=True)
    built = time.perf_counter()
    models = build(name, frames)
    print(f"  built in {time.perf_counter() - built:.1f} s", flush=True)

    clip, inputs2d = place(models, shape, setup)

    clip1 = torch.randn(1, 3, frames, size, size, device=setup.device)  # FLOPs per clip, float32
    flops = {key: flop_count(models[key], frames_of(clip1) if key == "2d" else clip1) for key in ("2d", "kt1", "i3d")}
    flop_ratio = {key: flops[key] / flops["2d"] for key in flops}
    print(f"  forward GFLOPs per clip: 2d {flops['2d'] / 1e9:.1f}, kt1 {flops['kt1'] / 1e9:.1f} "
          f"({flop_ratio['kt1']:.2f}×), i3d {flops['i3d'] / 1e9:.1f} ({flop_ratio['i3d']:.2f}×)", flush=True)

    lines = []
    for mode in args.modes:
        for model in models.values():
            model.train(mode == "train")
        steps = {}
        for variant in ("2d",) + tuple(v for v in args.variants if v != "2d"):
            key = variant.removesuffix("-3d")
            steps[variant] = make_step(models[key], inputs2d if key == "2d" else clip, mode, setup,
                                       folding=not variant.endswith("-3d"))
        results = measure(steps, args.warmup, args.repeats)
        print(f"  {mode:7s} {'variant':8s} {'median ms':>10s} {'× 2d':>6s}  goal", flush=True)
        for variant, (seconds, ratio) in results.items():
            goal = ""
            if variant == "kt1":
                goal = f"≤ {KT1_GOAL:.2f}×: {'met' if ratio <= KT1_GOAL else 'MISSED'}"
            elif variant == "i3d":
                limit = flop_ratio["i3d"] * FLOP_MARGIN
                goal = f"≤ {limit:.2f}× (FLOPs {flop_ratio['i3d']:.2f}× + 10%): {'met' if ratio <= limit else 'MISSED'}"
            print(f"  {mode:7s} {variant:8s} {seconds * 1000:>10.1f} {ratio:>6.2f}  {goal}", flush=True)
            lines.append(f"{name:14s} {mode:7s} {variant:8s} {seconds * 1000:>9.1f} ms {ratio:>6.2f}×  {goal}")
    del models, steps
    gc.collect()
    if setup.device.type == "cuda":
        torch.cuda.empty_cache()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="which models to time besides the 2D one (always timed: ratios are to it)")
    parser.add_argument("--modes", nargs="+", choices=("forward", "train"), default=["forward", "train"])
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default: CPU 7, CUDA 15)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default: CPU 1, CUDA 3)")
    parser.add_argument("--batch", type=int, default=None, help="clips per batch (default: CPU 1, CUDA 16)")
    parser.add_argument("--frames", type=int, default=8, help="clip length for the timm models")
    parser.add_argument("--size", type=int, default=None, help="frame size for the timm models (CPU 112, CUDA 224)")
    parser.add_argument("--i3d-frames", type=int, default=16)
    parser.add_argument("--i3d-size", type=int, default=224, help="at least 224: I3D's logits pool is 2×7×7 VALID")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                        help="autocast dtype (default: CPU float32, CUDA bfloat16)")
    parser.add_argument("--memory-format", choices=("contiguous", "channels_last"), default=None,
                        help="channels_last: channels_last_3d clips and models, channels_last 2D frames "
                             "(default: CPU contiguous, CUDA channels_last)")
    parser.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="leave torch.backends.cudnn.benchmark off (it is turned on by default on CUDA)")
    args = parser.parse_args()

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    args.repeats = args.repeats or (15 if cuda else 7)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    dtype_name = args.dtype or ("bfloat16" if cuda else "float32")
    setup = Setup(
        device=torch.device(args.device),
        dtype=None if dtype_name == "float32" else getattr(torch, dtype_name),
        channels_last=(args.memory_format or ("channels_last" if cuda else "contiguous")) == "channels_last",
        batch=args.batch or (16 if cuda else 1),
        frames=args.frames,
        size=args.size or (224 if cuda else 112),
    )
    torch.manual_seed(0)
    if cuda:
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
        where = f"{torch.cuda.get_device_name()}, cudnn {torch.backends.cudnn.version()}, " \
                f"cudnn.benchmark {torch.backends.cudnn.benchmark}"
    else:
        torch.set_num_threads(args.threads)
        where = f"CPU, {torch.get_num_threads()} threads of {os.cpu_count()} cores"
    print(f"torch {torch.__version__}, {where}; {dtype_name}{' autocast' if setup.dtype else ''}, "
          f"{'channels_last' if setup.channels_last else 'contiguous'}; {args.warmup} warm-up + "
          f"{args.repeats} timed rounds, variants interleaved", flush=True)

    started = time.perf_counter()
    lines = []
    for name in args.models:
        lines += run_model(name, setup, args)
    print(f"\nsummary ({args.device}, {time.perf_counter() - started:.0f} s):")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
