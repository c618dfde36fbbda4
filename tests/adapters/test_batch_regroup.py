"""Reshapes that regroup the batch axis (handlers/axis.py ``_regrouped_time_axis``): TNT moves
each patch's pixel grid into the batch, (B·N, C, p, p), and the pixel tokens back out as patch
tokens, (B, N, C·p²). Time then takes its conventional place beside the tokens, so TNT's
hand-written inner and outer attentions (handlers/matmul.py) attend across time: the pixels of
a patch over that patch in every frame, the patch and class tokens over every frame's tokens."""

from __future__ import annotations

import pytest
import torch

from inflate import inflate_model
from inflate.testing import randomize_weights

timm = pytest.importorskip("timm")

SIZE, T = 32, 4


def _tiny_tnt() -> torch.nn.Module:
    """timm's legacy TNT-S layout (7×7 stride-4 stem, nn.Unfold into 4×4 pixel grids) at 32²:
    2 blocks, 4 patches of 16 pixels."""
    torch.manual_seed(0)
    model = timm.create_model("tnt_s_legacy_patch16_224", img_size=SIZE, depth=2, embed_dim=32, inner_dim=8,
                              num_heads_inner=2, num_heads_outer=2, num_classes=5)
    model = randomize_weights(model.eval(), input_size=(3, SIZE, SIZE))
    with torch.no_grad():  # timm's 0.02-std init leaves attention near uniform and its residual tiny
        for name, param in model.named_parameters():
            if ".attn_" in name and name.endswith("weight"):
                param.normal_(0.0, param.shape[1] ** -0.5)
    return model


@pytest.fixture(scope="module")
def tnt() -> tuple[torch.nn.Module, torch.nn.Module, object]:
    model2d = _tiny_tnt()
    model3d, report = inflate_model(model2d, t=T, strict=True, input_size=(3, SIZE, SIZE), return_report=True)
    return model2d, model3d.eval(), report


def _attention(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's ``tnt.Attention`` on (items, L, C) tokens, written out: heads, softmax over all L keys."""
    items, length, dim = x.shape
    heads = attn.num_heads
    q, k = attn.qk(x).reshape(items, length, 2, heads, -1).permute(2, 0, 3, 1, 4)
    v = attn.v(x).reshape(items, length, heads, -1).permute(0, 2, 1, 3)
    weights = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(dim=-1)
    return attn.proj((weights @ v).transpose(1, 2).reshape(items, length, dim))


def _joint_reference(model2d: torch.nn.Module, stem: torch.Tensor) -> torch.Tensor:
    """The joint space-time TNT computed frame by frame from the 2D modules, with the two
    attentions spanning time: ``stem`` is the (B, C, T, H', W') output of the inflated stem
    conv; returns the logits averaged over time."""
    batch, _, frames = stem.shape[:3]
    embed = model2d.pixel_embed
    pixels, patches = [], []
    for t in range(frames):
        x = embed.unfold(stem[:, :, t]).transpose(1, 2)
        x = x.reshape(batch * embed.num_patches, embed.in_dim, *embed.new_patch_size) + model2d.pixel_pos
        p = x.reshape(batch * embed.num_patches, embed.in_dim, -1).transpose(1, 2)  # (B·N, P, C)
        tokens = model2d.norm2_proj(model2d.proj(model2d.norm1_proj(p.reshape(batch, embed.num_patches, -1))))
        tokens = torch.cat([model2d.cls_token.expand(batch, -1, -1), tokens], dim=1) + model2d.patch_pos
        pixels.append(p)
        patches.append(tokens)
    pixel = torch.stack(pixels, 1)  # (B·N, T, P, C)
    patch = torch.stack(patches, 1)  # (B, T, 1+N, D)
    for block in model2d.blocks:
        items, _, length, dim = pixel.shape
        # inner: each patch's pixels attend to that patch's pixels in every frame (a tube)
        joint = _attention(block.attn_in, block.norm_in(pixel).reshape(items, frames * length, dim))
        pixel = pixel + joint.reshape(pixel.shape)
        pixel = pixel + block.mlp_in(block.norm_mlp_in(pixel))
        projected = block.proj(block.norm1_proj(pixel)
                               .reshape(batch, -1, frames, length * dim).transpose(1, 2))  # (B, T, N, D)
        patch = torch.cat([patch[:, :, :1], patch[:, :, 1:] + projected], dim=2)
        # outer: every patch and class token attends to the tokens of every frame
        _, _, count, width = patch.shape
        joint = _attention(block.attn_out, block.norm_out(patch).reshape(batch, frames * count, width))
        patch = patch + joint.reshape(patch.shape)
        patch = patch + block.mlp(block.norm_mlp(patch))
    return model2d.head(model2d.norm(patch)[:, :, 0]).mean(1)


def test_tnt_converts_strictly_with_joint_attention(tnt) -> None:
    _, _, report = tnt
    assert not report.frame_wise
    joint = [r.path for r in report.layers if r.op2d == "matmul (q·kᵀ)" and r.how == "inflated"]
    assert joint == ["blocks.0.attn_in:matmul", "blocks.0.attn_out:matmul_2",
                     "blocks.1.attn_in:matmul_4", "blocks.1.attn_out:matmul_6"]


def test_tnt_is_exact_on_boring_clips(tnt) -> None:
    model2d, model3d, _ = tnt
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model2d(images)
        got = model3d(images.unsqueeze(2).expand(-1, -1, T, -1, -1).contiguous())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_tnt_sees_frame_order(tnt) -> None:
    _, model3d, _ = tnt
    torch.manual_seed(1)
    clip, other = torch.randn(2, 2, 3, T, SIZE, SIZE)
    with torch.no_grad():
        out = model3d(clip)
        effect = (out - model3d(clip[:, :, torch.tensor([2, 0, 3, 1])])).abs().max()
        scale = (out - model3d(other)).abs().max()
    assert effect > 0.01 * scale


def test_tnt_attention_spans_time_as_written_by_hand(tnt) -> None:
    """On a random clip, the 3D model equals a joint TNT written out from the 2D modules (the
    stem's output taken from the inflated stem conv, which other tests cover)."""
    model2d, model3d, _ = tnt
    torch.manual_seed(2)
    clip = torch.randn(2, 3, T, SIZE, SIZE)
    stem = {}
    hook = model3d.pixel_embed.proj.register_forward_hook(lambda m, i, o: stem.setdefault("out", o))
    try:
        with torch.no_grad():
            got = model3d(clip)
            expected = _joint_reference(model2d, stem["out"])
            frames = inflate_model(model2d, t=T, attention="frames", input_size=(3, SIZE, SIZE)).eval()(clip)
    finally:
        hook.remove()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert (got - frames).abs().max() > 1e-3  # the keys of other frames count
