"""ONNX figures of issue 13, in onnxruntime on the CPU:

1. inflate's ONNX adapter on 2D graphs exported by ``torch.onnx.export`` (eval mode, default
   settings): the 3D graph on a boring clip against onnxruntime's 2D output on its frame;
2. ``export_onnx`` of the torch-inflated model: onnxruntime against the torch 3D model at
   112² and 224² from one file (dynamic height and width), or why the size is fixed.

    python benchmarks/onnx_sizes.py [--models resnet34,tf_efficientnet_lite0,vit_tiny_patch16_224]
                                    [--time 4] [--clips 3] [--sizes 112,224] [--exporter torchscript]

Weights are timm's random initialisation with randomised norm statistics (no network). Each
error is max |Δ| / max |reference| on one random input; the table shows the median and the
largest over --clips inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import timm
import torch

from inflate import inflate_model
from inflate.adapters.onnx import inflate_onnx
from inflate.export import export_onnx
from inflate.testing import randomize_weights

MODELS = "resnet34,tf_efficientnet_lite0,vit_tiny_patch16_224"


def relative(got: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(got - reference).max() / np.abs(reference).max())


def summary(errors: list[float]) -> str:
    return f"{statistics.median(errors):.2g} / {max(errors):.2g}"


def export_2d(model: torch.nn.Module, path: Path, size: int, exporter: str) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        example = (torch.randn(1, 3, size, size),)
        if exporter == "default":
            torch.onnx.export(model, example, str(path))  # every default: dynamo in torch >= 2.9
        else:
            torch.onnx.export(model, example, str(path), dynamo=False)


def adapter_boring_errors(ort, model2d: torch.nn.Module, folder: Path, t: int, clips: int, size: int,
                          exporter: str) -> list[float]:
    """The ONNX adapter: 3D graph on boring clips vs the 2D graph, both in onnxruntime."""
    export_2d(model2d, folder / "2d.onnx", size, exporter)
    graph3d = inflate_onnx(folder / "2d.onnx", t=t)
    session2d = ort.InferenceSession(str(folder / "2d.onnx"), providers=["CPUExecutionProvider"])
    session3d = ort.InferenceSession(graph3d.SerializeToString(), providers=["CPUExecutionProvider"])
    name2d, name3d = session2d.get_inputs()[0].name, session3d.get_inputs()[0].name
    errors = []
    for seed in range(clips):
        image = np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32)
        out2d = session2d.run(None, {name2d: image})[0]
        out3d = session3d.run(None, {name3d: np.repeat(image[:, :, None], t, axis=2)})[0]
        errors.append(relative(out3d, out2d))
    return errors


def export_size_errors(ort, model3d: torch.nn.Module, folder: Path, t: int, clips: int,
                       sizes: list[int]) -> tuple[object, dict[int, list[float] | str]]:
    """The 3D export: onnxruntime vs torch at each size, from the one file export_onnx wrote."""
    report = export_onnx(model3d, folder / "3d.onnx", force=True)
    session = ort.InferenceSession(str(folder / "3d.onnx"), providers=["CPUExecutionProvider"])
    example = report.clip_shape[3:]
    out: dict[int, list[float] | str] = {}
    for size in sizes:
        if not report.dynamic_size and (size, size) != tuple(example):
            out[size] = f"fixed at {example[0]}×{example[1]}"
            continue
        errors = []
        for seed in range(clips):
            clip = torch.randn(1, 3, t, size, size, generator=torch.Generator().manual_seed(seed))
            with torch.no_grad():
                expected = model3d(clip).numpy()
            errors.append(relative(session.run(None, {"clip": clip.numpy()})[0], expected))
        out[size] = errors
    return report, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="comma-separated timm names")
    parser.add_argument("--time", type=int, default=4)
    parser.add_argument("--clips", type=int, default=3, help="random inputs per figure")
    parser.add_argument("--sizes", default="112,224", help="frame sizes the 3D export is run at")
    parser.add_argument("--exporter", choices=("torchscript", "default"), default="torchscript",
                        help="2D export: torchscript (dynamo=False) or every default (dynamo, needs onnxscript)")
    args = parser.parse_args()
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: these are onnxruntime (CPU) figures; run where it is installed")
        sys.exit(0)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"torch {torch.__version__}, timm {timm.__version__}, onnxruntime {ort.__version__}; t={args.time}, "
          f"{args.clips} inputs per figure (median / max of max|Δ|/max|ref|); 2D export: {args.exporter}")
    header = f"{'model':24} {'adapter: boring 3D vs 2D':>26} {'3D export axes':>30}" + "".join(
        f" {f'ORT vs torch {s}²':>22}" for s in sizes) + f" {'seconds':>8}"
    print(header)
    notes = []
    for name in args.models.split(","):
        start = time.perf_counter()
        torch.manual_seed(0)
        model2d = randomize_weights(timm.create_model(name, pretrained=False).eval(), seed=0)
        size = model2d.pretrained_cfg["input_size"][1]
        with tempfile.TemporaryDirectory() as folder:
            boring = adapter_boring_errors(ort, model2d, Path(folder), args.time, args.clips, size, args.exporter)
            model3d = inflate_model(model2d, t=args.time).eval()
            report, by_size = export_size_errors(ort, model3d, Path(folder), args.time, args.clips, sizes)
        cells = "".join(f" {v if isinstance(v, str) else summary(v):>22}" for v in by_size.values())
        print(f"{name:24} {summary(boring):>26} {report.axes:>30}{cells} {time.perf_counter() - start:8.1f}")
        if report.fixed_size_reason:
            notes.append(f"{name}: height and width fixed: {report.fixed_size_reason}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
