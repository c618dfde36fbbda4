"""Issue 13's fixed failure classes, one row per model: boring-video error, its bound, order effect.

Classes: weight-standardised convs (test_nfnet, a one-block BiT ResNetV2, resnetv2_50x1_bit),
multi-branch reparameterisable first blocks (repvgg_a0, mobileone_s0, fastvit_t8), and patch
embeddings at every stage (coat_lite_tiny at t=4 and 8, pvt_v2_b0). Randomised weights
(inflate.testing.randomize_weights). The bound is issue 13's: max(1e-4, 10 × the 2D model's
own float32-vs-float64 error). "frame-wise" counts the ops with no rule, applied per frame.

    python benchmarks/failure_classes.py [--models test_nfnet repvgg_a0 ...] [--device cuda]
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from functools import partial

import timm
import torch

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.testing import randomize_weights

# name → (clip lengths, input size)
MODELS: dict[str, tuple[tuple[int, ...], int]] = {
    "test_nfnet": ((8,), 96),
    "bit_resnetv2_tiny": ((8,), 64),
    "resnetv2_50x1_bit": ((4,), 64),
    "repvgg_a0": ((8,), 128),
    "mobileone_s0": ((8,), 128),
    "fastvit_t8": ((8,), 128),
    "coat_lite_tiny": ((4, 8), 224),
    "pvt_v2_b0": ((4, 8), 224),
}


def build(name: str) -> torch.nn.Module:
    if name == "bit_resnetv2_tiny":  # BiT's layers (StdConv2d eps 1e-8, GroupNormAct), one block per stage
        from timm.layers import GroupNormAct, StdConv2d
        from timm.models.resnetv2 import ResNetV2

        return ResNetV2(layers=[1, 1, 1, 1], channels=(64, 128, 256, 512), num_classes=10, stem_type="fixed",
                        conv_layer=partial(StdConv2d, eps=1e-8), norm_layer=partial(GroupNormAct, num_groups=8))
    return timm.create_model(name, pretrained=False, num_classes=10)


def float64_error(model2d: torch.nn.Module, size: tuple[int, int, int], device: torch.device) -> float:
    """The 2D model's float32 vs float64 output difference, relative, on the boring check's image."""
    image = torch.randn(1, *size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        out32 = model2d(image).double()
        out64 = copy.deepcopy(model2d).double()(image.double())
    return float((out32 - out64).abs().max() / out64.abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    warnings.filterwarnings("ignore")
    print(f"{'model':<20} {'t':>2} {'size':>5} {'boring':>9} {'bound':>9} {'order':>8} {'frame-wise':>10} "
          f"{'convert s':>9}  verdict")
    for name in args.models:
        lengths, side = MODELS[name]
        size = (3, side, side)
        torch.manual_seed(0)  # timm's initialisation draws from the global generator
        model2d = randomize_weights(build(name).eval(), seed=1, input_size=size).to(device)
        bound = max(1e-4, 10 * float64_error(model2d, size, device))
        for t in lengths:
            start = time.perf_counter()
            model3d, report = inflate_model(model2d, t=t, input_size=size, return_report=True)
            seconds = time.perf_counter() - start
            boring = check_boring_video(model2d, model3d, t=t, tolerance=bound)
            order = check_order_sensitivity(model3d, t=t)
            verdict = "pass" if boring.passed and order.passed else "FAIL"
            print(f"{name:<20} {t:>2} {side:>4}² {boring.max_rel_error:>9.2g} {bound:>9.2g} "
                  f"{order.relative_change:>8.3g} {len(report.frame_wise):>10} {seconds:>9.2f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
