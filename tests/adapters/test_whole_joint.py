"""Modules the non-strict fallback would run per frame as a whole, made to attend across time:
under attention="joint", a module whose attention goes through F.scaled_dot_product_attention
(once timm's fused_attn switches are on, or hand-written window attention has its SDPA form)
becomes SpaceTimeAttention(joint) instead of the frame-wise fallback. Each test compares with
the 2D module run frame by frame: equal on boring clips, different once the frames differ."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.adapters.torch.modules import SpaceTimeAttention
from inflate.testing import randomize_weights


class WindowAttention(nn.Module):
    """Attention within 2×2 windows of a (B, C, H, W) map, the windows merged into the batch
    axis, (B·windows, heads, 4, C/heads), as Swin-style code does: no op inside keeps the batch
    axis, so the fallback runs it as a whole. ``by_hand`` computes the scores with matmuls;
    ``heads_first`` puts the heads before the images on the merged axis (not clip-major)."""

    def __init__(self, channels: int, heads: int = 2, by_hand: bool = False, heads_first: bool = False) -> None:
        super().__init__()
        self.heads, self.by_hand, self.heads_first = heads, by_hand, heads_first
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        windows = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1).reshape(-1, 4, c)
        qkv = self.qkv(windows).reshape(-1, 4, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B·windows, heads, 4, d)
        if self.heads_first:
            q, k, v = (t.transpose(0, 1).reshape(-1, 4, c // self.heads) for t in (q, k, v))
        if self.by_hand:
            out = ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        if self.heads_first:
            out = out.reshape(self.heads, -1, 4, c // self.heads).transpose(0, 1)
        out = self.proj(out.transpose(1, 2).reshape(-1, 4, c))
        out = out.reshape(b, h // 2, w // 2, 2, 2, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)
        return x + out


class Net(nn.Module):
    def __init__(self, by_hand: bool = False, heads_first: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mixer = WindowAttention(8, by_hand=by_hand, heads_first=heads_first)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(torch.relu(self.stem(x)))
        return self.fc(self.pool(self.conv(x)).flatten(1))


SIZE = (3, 12, 12)


def _net(by_hand: bool = False, heads_first: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return randomize_weights(Net(by_hand, heads_first).eval(), input_size=SIZE)


def _per_frame(module: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """The 2D module on each frame of a (B, C, T, H, W) clip."""
    frames = clip.transpose(1, 2).flatten(0, 1)
    with torch.no_grad():
        return module(frames).unflatten(0, (clip.shape[0], -1)).transpose(1, 2)


def test_sdpa_module_attends_jointly_across_time() -> None:
    model2d = _net()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*frame by frame as a whole")
        model3d, report = inflate_model(model2d, t=4, input_size=SIZE, return_report=True)
    assert report.frame_wise == ()
    record = next(r for r in report.layers if r.path == "mixer")
    assert (record.op3d, record.how) == ("SpaceTimeAttention(joint)", "inflated")
    mixer = model3d.mixer
    assert isinstance(mixer, SpaceTimeAttention) and mixer.mode == "joint"

    torch.manual_seed(1)
    clip = torch.randn(2, 8, 4, 12, 12)
    boring = clip[:, :, :1].expand_as(clip).contiguous()
    with torch.no_grad():
        torch.testing.assert_close(mixer(boring), _per_frame(model2d.mixer, boring), rtol=1e-5, atol=1e-5)
        joint = mixer(clip)
        # every frame's output depends on the other frames: not the per-frame module
        assert (joint - _per_frame(model2d.mixer, clip)).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-3
        # the clips of a batch stay apart
        torch.testing.assert_close(mixer(clip[:1]), joint[:1], rtol=1e-5, atol=1e-6)
    assert check_boring_video(model2d, model3d, t=4).passed
    assert check_order_sensitivity(model3d, torch.randn(1, 3, 4, 12, 12)).passed


@pytest.mark.parametrize("by_hand,heads_first", [(True, False), (False, True)], ids=["by-hand", "heads-first"])
def test_unverified_module_stays_frame_wise(by_hand: bool, heads_first: bool) -> None:
    """Matmul attention has no SDPA call to make joint; attention whose batch axis is not
    clip-major would mix clips: the fallback stands, and says so."""
    model2d = _net(by_hand=by_hand, heads_first=heads_first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model3d, report = inflate_model(model2d, t=4, input_size=SIZE, return_report=True)
    # the module whole, or its ops one by one where its windows merge into the batch batch-major
    assert report.frame_wise and {r.path.split(":")[0] for r in report.frame_wise} == {"mixer"}
    assert not any(r.path == "mixer" and r.how == "inflated" for r in report.layers)
    assert check_boring_video(model2d, model3d, t=4).passed


def test_frames_policy_keeps_the_fallback() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, report = inflate_model(_net(), t=4, input_size=SIZE, attention="frames", return_report=True)
    assert report.frame_wise and {r.path.split(":")[0] for r in report.frame_wise} == {"mixer"}
    assert not any(r.path == "mixer" and r.how == "inflated" for r in report.layers)


def _byoanet(self_attn_layer: str, **attn_kwargs) -> nn.Module:
    """A two-stage byoanet ByobNet (a bottleneck stage, then two self-attention blocks, the first
    with stride 2) for 32² inputs: HaloNet's or BoTNet's attention on an 8×8 map."""
    from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg

    cfg = ByoModelCfg(blocks=(ByoBlockCfg(type="bottle", d=1, c=16, s=1, gs=0, br=0.25),
                              ByoBlockCfg(type="self_attn", d=2, c=32, s=2, gs=0, br=0.5)),
                      stem_chs=8, stem_type="tiered", stem_pool="maxpool", fixed_input_size=True,
                      self_attn_layer=self_attn_layer, self_attn_kwargs=attn_kwargs)
    return ByobNet(cfg, num_classes=5, img_size=32)


# Small configurations of the timm families with hand-written window attention (SDPA forms):
# family: (timm class or a function building the model, its arguments, input size)
SMALL = {
    "swin_v2": ("swin_transformer_v2.SwinTransformerV2", dict(img_size=64, window_size=4, embed_dim=16,
                                                              depths=(2, 2), num_heads=(2, 2)), 64),
    "swin_v2_cr": ("swin_transformer_v2_cr.SwinTransformerV2Cr", dict(img_size=(64, 64), window_size=4, embed_dim=16,
                                                                      depths=(2, 2), num_heads=(2, 2)), 64),
    "efficientvit_msra": ("efficientvit_msra.EfficientVitMsra", dict(img_size=64, embed_dim=(16, 32, 48),
                                                                     depth=(1, 1, 1), num_heads=(2, 2, 2),
                                                                     window_size=(4, 4, 4)), 64),
    "gcvit": ("gcvit.GlobalContextVit", dict(img_size=64, embed_dim=16, depths=(1, 1, 1, 1),
                                             num_heads=(2, 2, 2, 2)), 64),
    # HaloNet: 4×4 query blocks, each attending to its 6×6 halo window (the first block strided)
    "byoanet_halo": (_byoanet, dict(self_attn_layer="halo", block_size=4, halo_size=1, num_heads=2), 32),
    # BoTNet: global attention over the map, relative position logits scaled with the scores
    "byoanet_bottleneck": (_byoanet, dict(self_attn_layer="bottleneck", num_heads=2, scale_pos_embed=True), 32),
}


@pytest.fixture(scope="module")
def small_models() -> dict:
    return {}


def _small(cache: dict, family: str) -> nn.Module:
    if family not in cache:
        import importlib

        name, kwargs, size = SMALL[family]
        if callable(name):
            build = name
        else:
            module, _, cls = name.rpartition(".")
            build = getattr(importlib.import_module(f"timm.models.{module}"), cls)
        torch.manual_seed(0)
        model = build(**kwargs)
        cache[family] = randomize_weights(model.eval(), input_size=(3, size, size))
    return cache[family]


@pytest.mark.parametrize("family", list(SMALL))
def test_sdpa_form_is_the_2d_module(small_models: dict, family: str) -> None:
    from inflate.adapters.torch.timm_sdpa import use_sdpa_forms

    model2d = _small(small_models, family)
    routed = copy.deepcopy(model2d)
    assert use_sdpa_forms(routed) > 0
    size = SMALL[family][2]
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(routed(images), model2d(images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", list(SMALL))
def test_window_attention_family_is_joint(small_models: dict, family: str) -> None:
    model2d = _small(small_models, family)
    size = SMALL[family][2]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*frame by frame as a whole")
        model3d, report = inflate_model(model2d, t=4, input_size=(3, size, size), return_report=True)
    assert report.frame_wise == ()
    joint = [r.path for r in report.layers if r.op3d == "SpaceTimeAttention(joint)"]
    assert joint
    boring = check_boring_video(model2d, model3d, t=4)
    assert boring.passed, boring
    order = check_order_sensitivity(model3d, torch.randn(1, 3, 4, size, size))
    assert order.passed, order
    # the first joint module, on what it gets from a clip: not the 2D module on each frame
    wrapped, inner2d = model3d.get_submodule(joint[0]), model2d.get_submodule(joint[0])
    assert isinstance(wrapped, SpaceTimeAttention)
    seen = []
    handle = wrapped.register_forward_hook(lambda module, args, out: seen.append((args[0], out)))
    with torch.no_grad():
        model3d(torch.randn(1, 3, 4, size, size))
    handle.remove()
    x, out = seen[0]
    frames = x.movedim(wrapped.time_dim, 1).flatten(0, 1)
    with torch.no_grad():
        per_frame = inner2d(frames).unflatten(0, (1, -1)).movedim(1, wrapped.time_dim)
    assert (out - per_frame).abs().max() > 1e-3 * out.abs().max()


# timm's byoanet attention modules alone: (class in timm.layers, its arguments, input shape)
BYOANET_ATTENTION = {
    "halo": ("halo_attn.HaloAttn", dict(dim=16, dim_out=32, num_heads=2, block_size=4, halo_size=1), (16, 8, 12)),
    "halo-strided-scaled": ("halo_attn.HaloAttn", dict(dim=16, dim_out=32, stride=2, num_heads=2, block_size=4,
                                                       halo_size=1, qkv_bias=True, scale_pos_embed=True), (16, 8, 12)),
    "halo-avg-down": ("halo_attn.HaloAttn", dict(dim=16, dim_out=32, stride=2, num_heads=4, dim_head=6, block_size=6,
                                                 halo_size=2, avg_down=True), (16, 12, 6)),
    "bottleneck": ("bottleneck_attn.BottleneckAttn", dict(dim=16, dim_out=32, feat_size=(6, 8), num_heads=2),
                   (16, 6, 8)),
    "bottleneck-strided-scaled": ("bottleneck_attn.BottleneckAttn", dict(dim=16, dim_out=32, feat_size=(6, 8),
                                                                         stride=2, num_heads=2, qkv_bias=True,
                                                                         scale_pos_embed=True), (16, 6, 8)),
}


@pytest.mark.parametrize("case", list(BYOANET_ATTENTION))
def test_byoanet_attention_sdpa_form(case: str) -> None:
    """timm's hand-written halo / bottleneck attention and its SDPA form: the same output on
    images; under JointAttention, on 2 clips of 3 frames, each query also attends to the other
    frames of its clip (the 2D output again on a boring clip, another once the frames differ)."""
    import importlib

    from inflate.adapters.torch import space_time
    from inflate.adapters.torch.timm_sdpa import use_sdpa_forms

    name, kwargs, shape = BYOANET_ATTENTION[case]
    module, _, cls = name.rpartition(".")
    torch.manual_seed(0)
    original = getattr(importlib.import_module(f"timm.layers.{module}"), cls)(**kwargs).eval()
    routed = copy.deepcopy(original)
    assert use_sdpa_forms(routed) == 1 and type(routed) is not type(original)
    images = torch.randn(4, *shape)
    with torch.no_grad():
        torch.testing.assert_close(routed(images), original(images), rtol=1e-5, atol=1e-6)
        clips = torch.randn(2, 3, *shape)
        clips[1] = clips[1, :1]  # the second clip boring
        with space_time.JointAttention(2, 3, case) as joint:
            out = routed(clips.flatten(0, 1)).unflatten(0, (2, 3))
        per_frame = original(clips.flatten(0, 1)).unflatten(0, (2, 3))
    assert joint.calls == 1
    torch.testing.assert_close(out[1], per_frame[1], rtol=1e-5, atol=1e-6)
    assert (out[0] - per_frame[0]).abs().amax(dim=(1, 2, 3)).min() > 1e-3 * per_frame[0].abs().max()


@pytest.mark.parametrize("family", ["byoanet_halo", "byoanet_bottleneck"])
def test_byoanet_attention_has_a_rule(small_models: dict, family: str) -> None:
    """HaloAttn and BottleneckAttn are handled as modules (their reshapes of the batch axis
    cannot run per frame op by op): strict conversion succeeds, joint across time; under
    attention="frames" they run per frame as declared, exact on boring clips."""
    model2d = _small(small_models, family)
    model3d, report = inflate_model(model2d, t=4, input_size=(3, 32, 32), strict=True, return_report=True)
    attention = [r for r in report.layers if r.path.endswith(".self_attn")]
    assert len(attention) == 2 and {(r.op3d, r.how) for r in attention} == {("SpaceTimeAttention(joint)", "inflated")}
    model3d, report = inflate_model(model2d, t=4, input_size=(3, 32, 32), attention="frames", return_report=True)
    assert report.frame_wise == ()
    assert {r.how for r in report.layers if r.path.endswith(".self_attn")} == {"per-frame"}
    assert check_boring_video(model2d, model3d, t=4).passed


@pytest.mark.parametrize("family", ["swin_v2", "gcvit", "byoanet_halo"])
def test_joint_window_attention_exports_to_onnx(small_models: dict, family: str, tmp_path) -> None:
    """SDPA forms run jointly on folded frames, as onnxruntime runs them (export_onnx compares the two)."""
    from inflate.export import export_onnx

    size = SMALL[family][2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model3d = inflate_model(_small(small_models, family), t=4, input_size=(3, size, size))
        report = export_onnx(model3d, tmp_path / f"{family}.onnx")
    assert report.max_abs_diff <= 1e-4 * max(1.0, report.max_abs_torch)
