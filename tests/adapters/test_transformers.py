"""Vision transformers inflated with tubelet embedding and space-time attention.

Each time slot keeps its own prefix tokens (class, distillation, registers), which keeps
joint attention exact on boring clips. Frame order is checked after the zero-initialised
temporal parameters (temporal embedding, divided attention's temporal_fc) get values, as
training would give them: at their zero start every policy is the image model per tubelet.
"""

import warnings
from pathlib import Path

import pytest
import timm
import torch

from inflate import ShapeMismatchError, check_boring_video, check_order_sensitivity, inflate_model
from inflate.checks import boring_clip
from inflate.testing import randomize_weights, randomize_zero_parameters

MODELS = {  # name: clip length (t=4 where memory or time needs it)
    "vit_tiny_patch16_224": 8,
    "deit_tiny_distilled_patch16_224": 8,  # two prefix tokens
    "vit_small_patch16_224": 8,
    "vit_base_patch16_224": 4,
    "vit_small_patch14_reg4_dinov2": 4,  # register tokens, 518² input
    "beit_base_patch16_224": 4,  # relative position bias (tiled over temporal offsets)
    "eva02_tiny_patch14_224": 4,  # rotary embedding, traced: joint SDPA in the graph
    "swin_tiny_patch4_window7_224": 4,  # shifted windows → space-time windows over the clip
    "maxvit_tiny_tf_224": 4,  # block and grid partitions
    "coatnet_0_rw_224": 4,  # conv stages, then attention on NCHW maps
    "convit_tiny": 4,  # gated positional attention: its own joint form
    "pit_ti_224": 4,  # overlapping patch conv → tubelets; pooling between stages
    "levit_128": 4,  # attention computed by hand, BatchNorm1d on tokens
    "twins_svt_small": 4,  # local windows and sub-sampled global attention
    "mvitv2_tiny": 4,  # pooling attention with decomposed relative positions
}
DEFAULT = {"vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224", "convit_tiny", "levit_128", "pit_ti_224"}
PARAMS = [pytest.param(name, mode, marks=() if name in DEFAULT else pytest.mark.zoo, id=f"{name}-{mode}")
          for name in MODELS for mode in ("joint", "divided", "frames")]


@pytest.fixture(scope="module")
def models_2d() -> dict:
    return {}


def model_2d(cache: dict, name: str) -> torch.nn.Module:
    if name not in cache:
        cache[name] = randomize_weights(timm.create_model(name, pretrained=False).eval())
    return cache[name]


@pytest.mark.parametrize("name,mode", PARAMS)
def test_boring_video_and_frame_order(models_2d, name: str, mode: str) -> None:
    t = MODELS[name]
    model2d = model_2d(models_2d, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no attention may fall back to frames
        model3d, report = inflate_model(model2d, t=t, attention=mode, return_report=True)
    assert report.frame_wise == ()
    attention = [r for r in report.layers if r.op3d.startswith("SpaceTimeAttention") or "attention" in r.op2d]
    assert attention and all(r.op3d in (f"SpaceTimeAttention({mode})", "joint over time slots") for r in attention)
    boring = check_boring_video(model2d, model3d, t=t)
    print(f"\n{name} [{mode}]: {boring}")
    assert boring.passed, str(boring)
    randomize_zero_parameters(model3d)
    order = check_order_sensitivity(model3d, t=t)
    print(f"{name} [{mode}]: {order}")
    assert order.passed, str(order)


@pytest.mark.parametrize("name", [
    "levit_128",  # a joint form of its own
    pytest.param("swin_tiny_patch4_window7_224", marks=pytest.mark.zoo),  # SDPA calls in a folded block
    pytest.param("eva02_tiny_patch14_224", marks=pytest.mark.zoo),  # an SDPA node of the traced graph
])
def test_joint_attention_mixes_time_slots(models_2d, name: str) -> None:
    """Same weights, "joint" against "frames": only attention across time slots tells them apart
    (the temporal embedding is left at zero), so their outputs on a random clip must differ
    (float32 noise is ~1e-7; small random attention weights keep the gap small), and stay equal
    on a boring clip."""
    t = MODELS[name]
    model2d = model_2d(models_2d, name)
    joint, frames = (inflate_model(model2d, t=t, attention=mode).eval() for mode in ("joint", "frames"))
    torch.manual_seed(0)
    clip, image = torch.randn(1, 3, t, 224, 224), torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        gap = (joint(clip) - frames(clip)).abs().max() / frames(clip).abs().max()
        boring, reference = joint(boring_clip(image, t)), frames(boring_clip(image, t))
    assert (boring - reference).abs().max() <= 1e-4 * reference.abs().max()
    assert gap > 1e-5, f"joint attention gave the per-frame output (relative gap {gap:.2e})"


@pytest.mark.parametrize("mode", ["joint", "divided", "frames"])
def test_single_frame_through_one_frame_tubelets_is_the_2d_model(mode: str) -> None:
    model2d = randomize_weights(timm.create_model("deit_tiny_distilled_patch16_224").eval())
    model3d = inflate_model(model2d, t=1, tubelet=1, attention=mode).eval()
    image = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model3d(image.unsqueeze(2)), model2d(image), rtol=1e-5, atol=1e-5)


def test_tubelet_embedding_weights_and_layout() -> None:
    model2d = timm.create_model("vit_tiny_patch16_224").eval()
    model3d = inflate_model(model2d, t=8)
    proj = model3d.patch_embed.proj
    assert proj.kernel_size == (2, 16, 16) and proj.stride == (2, 16, 16)
    torch.testing.assert_close(proj.weight.sum(2), model2d.patch_embed.proj.weight)
    centred = inflate_model(model2d, t=8, init="center", tubelet=3).patch_embed.proj
    assert centred.kernel_size == (3, 16, 16)
    torch.testing.assert_close(centred.weight[:, :, 1], model2d.patch_embed.proj.weight)
    assert not centred.weight[:, :, [0, 2]].any()


def test_clip_size_not_divisible_names_the_sizes() -> None:
    model3d = inflate_model(timm.create_model("vit_tiny_patch16_224").eval(), t=8)
    with pytest.raises(ShapeMismatchError, match=r"\(7, 224, 224\).*multiple of the tubelet size 2"):
        model3d(torch.zeros(1, 3, 7, 224, 224))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    from inflate.export import load_inflated, save_safetensors

    model3d = inflate_model(timm.create_model("vit_tiny_patch16_224", num_classes=5).eval(), t=4, attention="divided")
    randomize_zero_parameters(model3d)
    save_safetensors(model3d, tmp_path / "vit.safetensors")
    loaded = load_inflated(tmp_path / "vit.safetensors")
    clip = torch.randn(1, 3, 4, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model3d.eval()(clip))


def test_position_table_resampled_for_another_frame_size() -> None:
    model2d = randomize_weights(timm.create_model("vit_tiny_patch16_224").eval())
    model3d = inflate_model(model2d, t=4)
    assert model2d.dynamic_img_size is False and model2d.patch_embed.flatten  # the user's model is left as it was
    # independent reference: timm's own dynamic-size model with the same weights, on one 160×192 frame
    reference = timm.create_model("vit_tiny_patch16_224", dynamic_img_size=True).eval()
    reference.load_state_dict(model2d.state_dict())
    image = torch.randn(2, 3, 160, 192)
    with torch.no_grad():
        torch.testing.assert_close(model3d(boring_clip(image, 4)), reference(image), rtol=1e-4, atol=1e-5)


def test_joint_sdpa_matches_attention_over_concatenated_time_slots() -> None:
    """Reference: the keys of all time slots written out one after another, the (heads, L, S)
    bias copied for every (query slot, key slot) pair with torch.cat."""
    from inflate.adapters.torch.space_time import joint_sdpa

    torch.manual_seed(0)
    batch, slots, heads, length, dim = 2, 3, 2, 5, 4
    q, k, v = (torch.randn(batch, slots, heads, length, dim) for _ in range(3))
    bias = torch.randn(heads, length, length)
    out = joint_sdpa(q, k, v, 1, attn_mask=bias)
    tiled = torch.cat([torch.cat([bias] * slots, dim=-1)] * slots, dim=-2)
    keys = torch.cat(k.unbind(1), dim=-2)  # (B, heads, T·S, E)
    values = torch.cat(v.unbind(1), dim=-2)
    for t in range(slots):
        scores = q[:, t] @ keys.transpose(-2, -1) / dim ** 0.5 + tiled[:, t * length:(t + 1) * length]
        torch.testing.assert_close(out[:, t], scores.softmax(-1) @ values)


def test_attention_computed_by_hand_falls_back_to_frames_with_a_warning(monkeypatch) -> None:
    """A module with no F.scaled_dot_product_attention switch and no joint form of ours."""
    from inflate.adapters.torch.handlers import attention as attention_handlers

    monkeypatch.setattr(attention_handlers, "_enable_fused_attention", lambda module: False)
    model2d = timm.create_model("twins_svt_small").eval()
    with pytest.warns(UserWarning, match="could not be applied to .* attention ops"):
        _, report = inflate_model(model2d, t=4, attention="joint", return_report=True)
    assert any(r.op3d == "SpaceTimeAttention(frames)" for r in report.layers)


@pytest.mark.parametrize("name,mode", [("twins_svt_small", "joint"), ("convit_tiny", "divided")])
def test_space_time_attention_exports_to_onnx(tmp_path: Path, name: str, mode: str) -> None:
    """Joint attention made by rewriting SDPA calls inside folded modules, and divided
    attention's temporal branch, as onnxruntime runs them (export_onnx compares the two)."""
    from inflate.export import export_onnx

    model3d = inflate_model(randomize_weights(timm.create_model(name).eval()), t=4, attention=mode)
    report = export_onnx(model3d, tmp_path / f"{name}.onnx")
    print(f"\n{name} [{mode}] onnx: {report}")
    assert report.max_abs_diff <= 1e-4 * max(1.0, report.max_abs_torch)
