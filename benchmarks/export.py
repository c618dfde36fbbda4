"""Export time and file size for an inflated model in safetensors and ONNX, and
onnxruntime vs torch CPU latency of the exported model.

    python benchmarks/export.py [--model resnet50] [--time 8] [--repeats 5]

All figures are medians of --repeats runs in this process (one warm-up run first). The ONNX
export time is the export alone with the axes the verified export chose (dynamic height and
width where the model follows the size; benchmarks/onnx_sizes.py prints those figures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import timm
import torch

from inflate import inflate_model
from inflate.export import export_onnx, save_safetensors


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--time", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {threads} threads, {os.cpu_count()} cores")

    model3d = inflate_model(timm.create_model(args.model, pretrained=False).eval(), t=args.time).eval()
    folder = Path(tempfile.mkdtemp())
    st_path, onnx_path = folder / "model.safetensors", folder / "model.onnx"

    st_times = timed(lambda: save_safetensors(model3d, st_path, force=True), args.repeats)
    report = export_onnx(model3d, onnx_path, force=True, verify=True)  # also decides whether H and W are dynamic
    onnx_times = timed(lambda: export_onnx(model3d, onnx_path, force=True, verify=False,
                                           dynamic_size=report.dynamic_size), max(1, args.repeats // 2))
    mib = 1 << 20
    print(f"{args.model} t={args.time}")
    print(f"  safetensors: export median {statistics.median(st_times):.3f} s, {st_path.stat().st_size / mib:.1f} MiB")
    print(f"  onnx (opset {report.opset}): export median {statistics.median(onnx_times):.3f} s "
          f"(checker full check included, verification not), {onnx_path.stat().st_size / mib:.1f} MiB; "
          f"onnxruntime vs torch max |Δ| {report.max_abs_diff:.2g} ({report.max_rel_diff:.2g} relative); "
          f"input clip[{report.axes}]")

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    clip = torch.randn(1, 3, args.time, 224, 224)
    feed = {"clip": clip.numpy()}
    with torch.inference_mode():
        torch_times = timed(lambda: model3d(clip), args.repeats)
    ort_times = timed(lambda: session.run(None, feed), args.repeats)
    t_med, o_med = statistics.median(torch_times), statistics.median(ort_times)
    print(f"  latency 1x3x{args.time}x224x224, float32, CPU: torch median {t_med * 1000:.0f} ms, "
          f"onnxruntime median {o_med * 1000:.0f} ms, torch/onnxruntime = {t_med / o_med:.2f}")
    np.testing.assert_allclose(session.run(None, feed)[0], model3d(clip).detach().numpy(), rtol=1e-3, atol=1e-3)


if __name__ == "__main__":
    main()
