"""Where an inflated model's step time goes, against its 2D parent: the profiler's per-op CUDA (or CPU)
time for each variant of benchmarks/speed.py, and the ops whose time differs most.

    python benchmarks/profile_step.py --device cuda --models resnet50 --variants 2d kt1 --modes train
    python benchmarks/profile_step.py --depthwise          # depthwise k_t×7×7 convolution: conv3d vs 2D forms
    python benchmarks/profile_step.py --dense              # dense k_t×3×3 convolution: conv3d vs stacked frames
    python benchmarks/profile_step.py --rates --models convnext_tiny --variants 2d i3d   # GFLOP/s by layer kind

Figures for the issue come from benchmarks/speed.py; this script is for finding what to fix.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import speed  # noqa: E402


def op_times(step, rounds: int, cuda: bool) -> dict[str, tuple[float, int]]:
    """Per-op (self device time in ms per step, calls per step) over ``rounds`` profiled steps."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(rounds):
            step()
    table = {}
    for event in prof.key_averages():
        self_time = event.self_device_time_total if cuda else event.self_cpu_time_total
        if self_time > 0:
            table[event.key] = (self_time / 1000 / rounds, event.count // rounds)
    return table


def _placed_models(args: argparse.Namespace):
    """For each of ``args.models``: (name, speed.py's setup for the device, the built models, a clip,
    its frames folded for the 2D model), placed as speed.py places them."""
    cuda = args.device == "cuda"
    setup = speed.Setup(device=torch.device(args.device), dtype=torch.bfloat16 if cuda else None,
                        channels_last=cuda, batch=16 if cuda else 1, frames=8, size=224 if cuda else 112)
    for name in args.models:
        frames = args.i3d_frames if name == "i3d_rgb" else setup.frames
        size = args.i3d_size if name == "i3d_rgb" else setup.size
        models = speed.build(name, frames)
        clip, inputs2d = speed.place(models, (setup.batch, 3, frames, size, size), setup)
        yield name, setup, models, clip, inputs2d
        del models
        if cuda:
            torch.cuda.empty_cache()


def profile_models(args: argparse.Namespace) -> None:
    cuda = args.device == "cuda"
    for name, setup, models, clip, inputs2d in _placed_models(args):
        for mode in args.modes:
            tables = {}
            for variant in args.variants:
                key = variant.removesuffix("-3d")
                model = models[key].train(mode == "train")
                step = speed.make_step(model, inputs2d if key == "2d" else clip, mode, setup,
                                       folding=not variant.endswith("-3d"))
                for _ in range(3):
                    step()
                times = []
                for _ in range(5):
                    start = time.perf_counter()
                    step()
                    times.append(time.perf_counter() - start)
                tables[variant] = op_times(step, 3, cuda)
                total = sum(t for t, _ in tables[variant].values())
                print(f"\n=== {name} {mode} {variant}: median step {statistics.median(times) * 1000:.1f} ms, "
                      f"profiled self time {total:.1f} ms/step", flush=True)
                for op, (ms, calls) in sorted(tables[variant].items(), key=lambda kv: -kv[1][0])[:args.top]:
                    print(f"  {ms:8.2f} ms {calls:5d}×  {op[:110]}")
            base = tables.get("2d", {})
            for variant, table in tables.items():
                if variant == "2d":
                    continue
                diff = {op: table.get(op, (0, 0))[0] - base.get(op, (0, 0))[0] for op in set(table) | set(base)}
                print(f"\n--- {name} {mode}: {variant} minus 2d, largest differences (ms/step)")
                for op, ms in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:args.top]:
                    print(f"  {ms:+8.2f} ms  {table.get(op, (0, 0))[1]:5d}× vs {base.get(op, (0, 0))[1]:5d}×  {op[:100]}")


def _time(fn, rounds: int, cuda: bool) -> float:
    for _ in range(3):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _layer_times(variants: tuple, device: torch.device, dtype: torch.dtype, rounds: int) -> str:
    """For each (label, callable, input, frame folding) variant, "label forward / train": median ms of
    a no-grad forward and of a forward+backward, under autocast on CUDA."""
    from inflate.adapters.torch.modules import frame_folding

    cuda = device.type == "cuda"
    line = ""
    for label, module, inputs, folding in variants:
        def forward(module=module, inputs=inputs, folding=folding):
            with frame_folding(folding), torch.no_grad(), torch.autocast(device.type, dtype, enabled=cuda):
                module(inputs)

        def train(module=module, inputs=inputs, folding=folding):
            with frame_folding(folding), torch.autocast(device.type, dtype, enabled=cuda):
                module(inputs).float().sum().backward()

        line += f"  {label} {_time(forward, rounds, cuda):7.3f} / {_time(train, rounds, cuda):7.3f}"
    return line


def depthwise(args: argparse.Namespace) -> None:
    """A depthwise k_t×7×7 convolution as inflated (InflatedConv3d, replicate time padding) run three
    ways: cuDNN's/oneDNN's conv3d with autograd's backward (``frame_folding(False)``); one 2D
    depthwise convolution per time tap over the folded frames (CUDA's default); conv3d with both
    gradients as forward convolutions (``_DepthwiseConv3d``, the CPU's default while training);
    and the 2D model's 7×7 depthwise convolution on the same frames for scale. Forward and
    forward+backward, median ms."""
    from inflate.adapters.torch.modules import InflatedConv3d

    cuda = args.device == "cuda"
    device = torch.device(args.device)
    dtype = torch.bfloat16 if cuda else torch.float32
    batch = 16 if cuda else 1
    kt, k, frames = args.kt, 7, 4
    shapes = [(96, 56), (192, 28), (384, 14), (768, 7)] if cuda else [(96, 28), (192, 14), (384, 7), (768, 3)]
    print(f"\ndepthwise {kt}×{k}×{k}, batch {batch}, {frames} frames, {dtype}: median ms (forward / train)")
    for channels, size in shapes:
        conv = InflatedConv3d(channels, channels, (kt, k, k), padding=(k // 2, k // 2), groups=channels,
                              time_pads=(kt // 2, kt // 2)).to(device)
        conv2d = torch.nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels).to(device)
        x = torch.randn(batch, channels, frames, size, size, device=device, requires_grad=True)
        fmt = torch.channels_last_3d if cuda else torch.contiguous_format
        x = x.detach().contiguous(memory_format=fmt).requires_grad_(True)
        x2d = x.detach().transpose(1, 2).flatten(0, 1).contiguous(
            memory_format=torch.channels_last if cuda else torch.contiguous_format).requires_grad_(True)
        if cuda:
            conv, conv2d = conv.to(memory_format=torch.channels_last_3d), conv2d.to(memory_format=torch.channels_last)
        line = f"  C {channels:4d} @ {size:3d}²:"
        # taps and forward-convolution gradients called directly: the default picks per device and autograd mode
        variants = (("conv3d", conv, x, False), ("taps", conv._forward_taps, x, True),
                    ("bwd as fwd", conv._forward_depthwise, x, True), ("2d 1×7×7", conv2d, x2d, True))
        print(line + _layer_times(variants, device, dtype, args.rounds), flush=True)


def dense(args: argparse.Namespace) -> None:
    """A dense k_t×3×3 convolution C → C as inflated (InflatedConv3d, replicate time padding) run two
    ways: oneDNN's/cuDNN's conv3d (``frame_folding(False)``), and one 2D convolution over each
    window's k_t frames stacked on the channels (``_forward_stacked``, called directly: the default
    picks it per device, autograd mode and frame size, ``time_stacking_enabled``); and the 2D
    model's 3×3 convolution on the frames before the stem halved them, for scale. Forward and
    forward+backward, median ms."""
    from inflate.adapters.torch.modules import InflatedConv3d

    cuda = args.device == "cuda"
    device = torch.device(args.device)
    dtype = torch.bfloat16 if cuda else torch.float32
    batch, kt, slots = (16 if cuda else 1), args.kt, 4
    shapes = [(64, 56), (128, 28), (256, 14), (512, 7)] if cuda else [(64, 28), (128, 14), (256, 7), (512, 4)]
    print(f"\ndense {kt}×3×3, batch {batch}, {slots} time slots (2D: {2 * slots} frames), {dtype}: "
          "median ms (forward / train)")
    for channels, size in shapes:
        conv = InflatedConv3d(channels, channels, (kt, 3, 3), padding=(1, 1), time_pads=(kt // 2, kt // 2)).to(device)
        conv2d = torch.nn.Conv2d(channels, channels, 3, padding=1).to(device)
        x = torch.randn(batch, channels, slots, size, size, device=device, requires_grad=True)
        x2d = torch.randn(batch * 2 * slots, channels, size, size, device=device, requires_grad=True)
        line = f"  C {channels:4d} @ {size:3d}²:"
        variants = (("conv3d", conv, x, False), ("stacked", conv._forward_stacked, x, True),
                    ("2d 3×3", conv2d, x2d, True))
        print(line + _layer_times(variants, device, dtype, args.rounds), flush=True)


def rates(args: argparse.Namespace) -> None:
    """Forward FLOP rates by layer kind for each variant: depthwise convolutions (groups > 1), other
    convolutions and linear layers, each as GFLOP per clip (2 × output elements × kernel elements
    per output, as torch.utils.flop_counter counts them), median ms per forward (forward hooks
    around the layers, rounds after a warm-up) and GFLOP/s; the rest of the forward (norms,
    activations, copies: no FLOPs counted) as "other"; the whole forward for scale.

    With the 2D model among the variants, each other variant also gets its time at the 2D
    model's own rates: each kind's 2D time scaled by the variant's FLOPs of that kind, "other"
    scaled by the layers' output elements (what norms and activations walk over), as a ratio to
    the 2D forward beside speed.py's bound (FLOP ratio + 10%). A variant whose estimate is over
    the bound cannot meet it without running some kind faster than the 2D model does."""
    from torch import nn

    from inflate.adapters.torch.modules import frame_folding

    cuda = args.device == "cuda"
    for name, setup, models, clip, inputs2d in _placed_models(args):
        summaries: dict[str, tuple[dict[str, tuple[float, float]], float, float]] = {}
        for variant in args.variants:
            key = variant.removesuffix("-3d")  # "-3d": the same model with folding off, as in speed.py
            model = models[key].eval()
            inputs = inputs2d if key == "2d" else clip
            kinds: dict[str, list[float]] = {}  # kind → [flops per forward, seconds this forward]
            outputs = [0]  # output elements of the hooked layers, one forward
            started: dict[int, float] = {}

            def kind_of(module: nn.Module) -> str | None:
                if isinstance(module, nn.Linear):
                    return "linear"
                if isinstance(module, nn.modules.conv._ConvNd):
                    return "depthwise conv" if module.groups > 1 else "conv"
                return None

            def before(module: nn.Module, _inputs) -> None:
                if cuda:
                    torch.cuda.synchronize()
                started[id(module)] = time.perf_counter()

            def after(module: nn.Module, _inputs, output: torch.Tensor) -> None:
                if cuda:
                    torch.cuda.synchronize()
                entry = kinds.setdefault(kind_of(module), [0.0, 0.0])
                entry[0] += 2 * output.numel() * module.weight[0].numel()  # multiply-adds per output element
                outputs[0] += output.numel()
                entry[1] += time.perf_counter() - started.pop(id(module))

            hooks = []
            for module in model.modules():
                if kind_of(module) is not None:
                    hooks += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
            samples: dict[str, list[tuple[float, float]]] = {}
            totals = []
            autocast = torch.autocast(setup.device.type, dtype=setup.dtype or torch.float32,
                                      enabled=setup.dtype is not None)
            with frame_folding(not variant.endswith("-3d")), torch.inference_mode(), autocast:
                for round_ in range(3 + args.rounds):
                    kinds.clear()
                    outputs[0] = 0
                    start = time.perf_counter()
                    model(inputs)
                    if cuda:
                        torch.cuda.synchronize()
                    if round_ >= 3:
                        total = time.perf_counter() - start
                        totals.append(total)
                        for kind, (flops, seconds) in kinds.items():
                            samples.setdefault(kind, []).append((flops, seconds))
                        samples.setdefault("other", []).append((0.0, total - sum(v[1] for v in kinds.values())))
            for hook in hooks:
                hook.remove()
            total = statistics.median(totals)
            print(f"\n{name} {variant} forward: median {total * 1000:.1f} ms "
                  f"(layers timed through hooks, which add their own overhead)")
            summary = {}
            for kind, values in sorted(samples.items()):
                flops = values[0][0]
                seconds = statistics.median(v[1] for v in values)
                summary[kind] = (flops, seconds)
                rate = f"{flops / seconds / 1e9:7.1f} GFLOP/s" if flops else ""
                print(f"  {kind:15s} {flops / 1e9:7.3f} GFLOP  {seconds * 1000:8.2f} ms  {rate}", flush=True)
            summaries[variant] = (summary, total, outputs[0])
        if "2d" in summaries:
            _at_2d_rates(name, summaries)


def _at_2d_rates(name: str, summaries: dict[str, tuple[dict[str, tuple[float, float]], float, float]]) -> None:
    """Each variant's forward time estimated at the 2D model's rates per layer kind (see :func:`rates`)."""
    base, base_total, base_outputs = summaries["2d"]
    base_flops = sum(flops for flops, _ in base.values())
    base_rate = base_flops / sum(seconds for kind, (_, seconds) in base.items() if kind != "other")
    for variant, (kinds, total, outputs) in summaries.items():
        if variant == "2d":
            continue
        estimate = base["other"][1] * outputs / base_outputs
        for kind, (flops, _) in kinds.items():
            if kind != "other":  # a kind the 2D model lacks: at the 2D layers' overall rate
                estimate += base[kind][1] * flops / base[kind][0] if kind in base else flops / base_rate
        flop_ratio = sum(flops for flops, _ in kinds.values()) / base_flops
        print(f"\n{name} {variant} at the 2D model's rates per kind: {estimate * 1000:.1f} ms, "
              f"{estimate / base_total:.2f}× the 2D forward (measured here {total / base_total:.2f}×); "
              f"FLOPs {flop_ratio:.2f}×, bound (+10%) {flop_ratio * speed.FLOP_MARGIN:.2f}×", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="*", default=["resnet50"])
    parser.add_argument("--variants", nargs="+", default=["2d", "kt1"])
    parser.add_argument("--modes", nargs="+", default=["train"])
    parser.add_argument("--i3d-frames", type=int, default=16)
    parser.add_argument("--i3d-size", type=int, default=224, help="at least 224: I3D's logits pool is 2×7×7 VALID")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--depthwise", action="store_true", help="only the depthwise convolution comparison")
    parser.add_argument("--dense", action="store_true", help="only the dense time-kernel convolution comparison")
    parser.add_argument("--rates", action="store_true",
                        help="forward FLOP rates by layer kind (depthwise conv, conv, linear) for each variant")
    parser.add_argument("--kt", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}")
    if args.depthwise:
        depthwise(args)
    elif args.dense:
        dense(args)
    elif args.rates:
        rates(args)
    else:
        profile_models(args)


if __name__ == "__main__":
    main()
