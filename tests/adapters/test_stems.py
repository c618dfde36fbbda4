"""Where the stem's temporal stride goes (issue 13): every parallel branch reading the input gets it
(RepVGG-style reparameterisable first blocks), and only the stem's patch embedding takes tubelets
(CoaT-, PVT-style models that embed patches again at each stage)."""

from __future__ import annotations

import pytest
import timm
from torch import nn

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.core import OpSpec, get_policy
from inflate.testing import randomize_weights
from tests.helpers import boring_tolerance


def _checked(model2d: nn.Module, t: int, input_size: tuple[int, int, int], **kwargs):
    model3d, report = inflate_model(model2d, t=t, input_size=input_size, return_report=True, **kwargs)
    boring = check_boring_video(model2d, model3d, t=t, tolerance=boring_tolerance(model2d, input_size))
    order = check_order_sensitivity(model3d, t=t)
    print(f"\n{boring}\n{order}")
    assert boring.max_abs_2d > 0
    assert boring.passed, str(boring)
    assert order.passed, str(order)
    return model3d, report


@pytest.mark.parametrize("name", ["repvgg_a0", pytest.param("mobileone_s0", marks=pytest.mark.slow)])
def test_reparameterisable_first_block_strides_every_branch(name: str) -> None:
    """The first block's k×k and 1×1 branches (MobileOne: several k×k) all read the input: each takes
    the stem's temporal stride, so their sum adds clips of one length (it raised a size mismatch)."""
    size = (3, 128, 128)
    model2d = randomize_weights(timm.create_model(name, pretrained=False, num_classes=10).eval(), seed=1,
                                input_size=size)
    model3d, report = _checked(model2d, 8, size)
    assert report.frame_wise == (), report.table()
    first_block = [r for r in report.inflated if r.path.startswith("stem.") and r.kind == "conv"]
    assert len(first_block) >= 2 and {r.time_stride for r in first_block} == {2}, report.table()
    kernels = {r.path.split(".")[1]: r.time_kernel for r in first_block}
    assert kernels["conv_scale" if name == "mobileone_s0" else "conv_1x1"] == 1  # a 1×1 branch: time 1, stride 2
    assert not any(r.time_stride > 1 for r in report.inflated if not r.path.startswith("stem."))


@pytest.mark.parametrize("t", [4, pytest.param(8, marks=pytest.mark.slow)])
def test_only_the_stems_patch_embedding_takes_tubelets(t: int) -> None:
    """coat_lite_tiny embeds patches at each of its 4 stages: only the first halves time; at t=4 the
    later ones would have met one frame (it raised 'expected shape T % 2 == 0, got (1, 28, 28)')."""
    size = (3, 224, 224)
    model2d = randomize_weights(timm.create_model("coat_lite_tiny", pretrained=False, num_classes=10).eval(),
                                seed=1, input_size=size)
    _, report = _checked(model2d, t, size)
    embeds = {r.path: (r.time_kernel, r.time_stride) for r in report.inflated if r.kind == "patch_embed"}
    assert embeds == {"patch_embed1": (2, 2), "patch_embed2": (1, 1), "patch_embed3": (1, 1),
                      "patch_embed4": (1, 1)}, report.table()
    # hand-written factorised attention (matmuls) is another issue-13 class; nothing else runs per frame
    assert all(r.op2d.endswith("matmul") for r in report.frame_wise), report.table()


def test_a_policy_override_gives_a_later_patch_embedding_tubelets() -> None:
    size = (3, 224, 224)
    model2d = timm.create_model("coat_lite_tiny", pretrained=False, num_classes=10).eval()
    _, report = inflate_model(model2d, t=8, input_size=size, return_report=True,
                              overrides={"patch_embed2": {"kernel": 2, "stride": 2}})
    embeds = {r.path: (r.time_kernel, r.time_stride) for r in report.inflated if r.kind == "patch_embed"}
    assert embeds["patch_embed1"] == (2, 2) and embeds["patch_embed2"] == (2, 2) and embeds["patch_embed3"] == (1, 1)


@pytest.mark.slow
def test_pvt_v2_at_short_clips() -> None:
    """pvt_v2_b0 (overlapping patch embeddings at each stage, plain convs): only the stem strides time."""
    size = (3, 224, 224)
    model2d = randomize_weights(timm.create_model("pvt_v2_b0", pretrained=False, num_classes=10).eval(), seed=1,
                                input_size=size)
    _, report = _checked(model2d, 4, size)
    assert report.frame_wise == (), report.table()
    assert [r.path for r in report.inflated if r.time_stride > 1] == ["patch_embed.proj"], report.table()


def test_policy_gives_tubelets_to_the_stem_embedding_only() -> None:
    policy = get_policy("i3d")
    stem = policy.time_for(OpSpec("patch_embed", "patch_embed1", (4, 4), (4, 4), role="stem"))
    later = policy.time_for(OpSpec("patch_embed", "patch_embed2", (2, 2), (2, 2), role="body"))
    assert (stem.kernel, stem.stride) == (2, 2) and (later.kernel, later.stride) == (1, 1)


def test_onnx_export_of_repvgg_strides_every_branch(tmp_path) -> None:
    """The ONNX adapter places the stride alike: repvgg_a0 exported by torch.onnx.export runs in
    onnxruntime and gives the 2D graph's output on a boring clip."""
    import warnings

    import numpy as np
    import onnxruntime as ort
    import torch

    from inflate.adapters.onnx import inflate_onnx

    model2d = randomize_weights(timm.create_model("repvgg_a0", pretrained=False, num_classes=10).eval(), seed=1,
                                input_size=(3, 64, 64))
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "repvgg_a0.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model2d, (image,), str(path), dynamo=False)
    session2d = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    session3d = ort.InferenceSession(inflate_onnx(path, t=8).SerializeToString(), providers=["CPUExecutionProvider"])
    out2d = session2d.run(None, {session2d.get_inputs()[0].name: image.numpy()})[0]
    clip = np.repeat(image.numpy()[:, :, None], 8, axis=2)
    out3d = session3d.run(None, {session3d.get_inputs()[0].name: clip})[0]
    assert out3d.shape == out2d.shape
    assert float(np.abs(out3d - out2d).max() / np.abs(out2d).max()) <= 1e-4
