"""The family sweep (issue 13): one model per timm model module, inflated non-strictly.

Per family, the module's smallest model (``inflate.testing.timm_families``; the table is
cached per timm version in timm_families.json beside this file) with randomised weights at
t=8, at its native size and at 128² (else 112²) where the 2D model runs: no exception,
boring-video error ≤ max(1e-4, 10 × the 2D model's own float32-vs-float64 error), the
largest frame-reordering effect ≥ 1% of a different clip's, no frame-wise op. The same code
prints the README's family table (benchmarks/zoo.py).

``-m families`` runs every family (slow: tens of minutes on 2 cores); the default run takes
the unmarked cheap representatives below. Families that cannot pass yet are in KNOWN with
the reason (xfail, not strict: a fix turns them into XPASS, then drop them from KNOWN).
"""

from pathlib import Path

import pytest

from inflate.testing import check_family, timm_families

FAMILIES = timm_families(Path(__file__).with_name("timm_families.json"))

# Cheap representatives run by default (each a few seconds on 2 cores): residual CNN, depthwise
# + SE (timm test models), channels-last norms, a plain ViT, a configurable byobnet, MobileNetV3.
REPRESENTATIVE = {"resnet", "efficientnet", "convnext", "vision_transformer", "byobnet", "mobilenetv3"}

# family → why it does not pass yet (frame-wise ops or an error), from benchmarks/zoo.py.
KNOWN: dict[str, str] = {
    # raise in non-strict mode or crash on the clip
    "byoanet": "frame-wise: HaloAttention's reshapes move the batch axis; the attention modules run per frame",
    "coat": "a patch embedding per stage gets a tubelet each: a late stage sees one frame",
    "crossvit": "two-branch token fusion: the branches' tubelets give 4 vs 8 time slots",
    "csatv2": "non-strict raises: the DCT stem's reshape moves the batch axis",
    "efficientvim": "non-strict raises: torch.split on a tensor whose batch axis moved (HSM-SSD mixer)",
    "fastvit": "MobileOne multi-branch stem: the temporal stride lands on one branch (8 vs 4 frames)",
    "gcvit": "non-strict raises: window-partition views move the batch axis",
    "nest": "non-strict raises: Tensor.unbind of qkv on block-partitioned tokens whose batch axis moved",
    "volo": "non-strict raises: Tensor.max over tokens whose batch axis moved",
    "hieradet_sam2": "non-strict raises: window-partition views move the batch axis",
    "sequencer": "non-strict raises: nn.LSTM token mixers have no rule and the fallback refuses them",
    "hiera": "conversion fails on the adapter's sample batch (Hiera's forward reads a None mask)",
    "davit": "non-strict raises: window-partition views move the batch axis",
    "swin_transformer_v2": "non-strict raises: window-partition views move the batch axis",
    "swin_transformer_v2_cr": "non-strict raises: window-partition views move the batch axis",
    "tnt": "non-strict raises: the inner attention's Tensor.unbind on pixel tokens whose batch axis moved",
    # exact and order-sensitive, but parts run frame by frame
    "cait": "talking-heads attention by hand (matmul, head-mixing Linear) runs frame-wise",
    "cpubone": "ConvAttention runs frame-wise",
    "edgenext": "XCA attention by hand (F.normalize + matmul) runs frame-wise",
    "efficientformer": "the last stage's attention by hand (matmul with attention biases) runs frame-wise",
    "efficientformer_v2": "attention by hand (matmul with attention biases) runs frame-wise",
    "efficientvit_mit": "LiteMLA linear attention runs frame-wise",
    "efficientvit_msra": "LocalWindowAttention (by hand) runs frame-wise",
    "lowformer": "F.group_norm and ConvAttention run frame-wise",
    "mobilevit": "MobileVitBlock (patch unfolding that moves the batch axis) runs frame-wise",
    "shvit": "single-head attention by hand runs frame-wise",
    "mobilenetv5": "the multi-scale fusion adapter (MobileNetV5MultiScaleFusionAdapter) runs frame-wise",
    "naflexvit": "non-strict raises: NaFlexViT's patch embedding of variable-size patch sequences has no rule",
    "vision_transformer_sam": "non-strict raises: the decomposed relative-position einsum over tokens whose batch axis moved",
    "nextvit": "E-MHSA's AvgPool1d spatial reduction and its norm run frame-wise",
    "tresnet": "anti-aliasing blur (F.conv2d with a fixed filter) runs frame-wise",
    "tiny_vit": "TinyVitBlock (window attention by hand) runs frame-wise",
    "vision_transformer_hybrid": "the ResNetV2 backbone's StdConv2dSame and F.group_norm run frame-wise",
    "visformer": "stage patch embeddings and matmul attention run frame-wise",
    "xcit": "XCA attention by hand (F.normalize + matmul) runs frame-wise",
    # frame-wise and blind to frame order
    "nfnet": "weight-standardised convolutions (ScaledStdConv2d) run frame-wise: order effect 0",
    # not exact
    "swiftformer": "additive attention by hand runs frame-wise and the boring-video error is 4e-3",
}


def _params() -> list:
    params = []
    for family, model in FAMILIES.items():
        marks = [] if family in REPRESENTATIVE else [pytest.mark.slow, pytest.mark.families]
        if family in KNOWN:
            marks.append(pytest.mark.xfail(reason=KNOWN[family], strict=False))
        params.append(pytest.param(family, model, marks=marks, id=f"{family}-{model}"))
    return params


def test_one_representative_per_timm_module() -> None:
    import timm
    from timm.models import _registry

    modules = {_registry._model_to_module[name] for name in timm.list_models()}
    assert set(FAMILIES) == modules, sorted(modules ^ set(FAMILIES))
    for family, model in FAMILIES.items():
        assert _registry._model_to_module[model] == family


@pytest.mark.parametrize("family, model", _params())
def test_family_inflates_exactly_and_sees_frame_order(family: str, model: str) -> None:
    checks = check_family(family, model, t=8)
    for check in checks:
        print(f"\n{family} {model} {check.size}: boring {check.boring_error:.3g} (threshold {check.threshold:.3g}), "
              f"order effect {check.order_effect:.3g}, conversion {check.seconds:.2f} s {check.reason}")
    errors = [f"{c.size}: {c.error}" for c in checks if c.error]
    assert not errors, errors
    assert checks[0].passed, checks[0].reason
    small = checks[-1]
    assert small.passed or small.skipped.startswith("the 2D model refuses"), small.reason
