"""Attention written by hand with ``@`` (handlers/matmul.py): joint over time slots, exact on
boring clips, the same as the F.scaled_dot_product_attention form of the same module."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inflate import inflate_model
from inflate.adapters.torch import layout

torch.manual_seed(0)


class HandAttention(nn.Module):
    """Conv stem → tokens → attention (scale, a learned (heads, N, N) bias, optional talking
    heads after the softmax) → mean-pooled classifier. ``fused`` computes the same attention
    with F.scaled_dot_product_attention instead."""

    def __init__(self, fused: bool = False, talking: bool = False, dim: int = 16, heads: int = 2, size: int = 6):
        super().__init__()
        self.fused, self.heads = fused, heads
        self.stem = nn.Conv2d(3, dim, 3, padding=1)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(0.1 * torch.randn(heads, size * size, size * size))
        nn.init.normal_(self.qkv.weight)  # scores that depend on the content, not only on the bias
        self.talk = nn.Linear(heads, heads) if talking else None
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(tokens).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias)
        else:
            attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5 + self.bias
            attn = attn.softmax(dim=-1)
            if self.talk is not None:
                attn = self.talk(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            out = attn @ v
        tokens = tokens + self.proj(out.transpose(1, 2).reshape(b, h * w, c))
        return self.head(tokens.mean(1))


class CrossCovariance(nn.Module):
    """XCiT-style attention over channels (normalised over tokens, contracted over tokens), a
    CoaT-style softmax over tokens, and a SwiftFormer-style sum over tokens."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 3, padding=1)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.gate = nn.Linear(dim, 1)
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x).flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, C, N)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        channels = ((q @ k.transpose(-2, -1)) * 2.0).softmax(dim=-1)  # (B, C, C)
        mixed = (channels @ v).transpose(1, 2)  # (B, N, C)
        weights = self.gate(tokens).softmax(dim=1)  # over tokens
        pooled = (weights.transpose(1, 2) @ mixed)  # (B, 1, C)
        summed = torch.sum(mixed * weights, dim=1, keepdim=True)
        return self.head((pooled + summed).squeeze(1) + mixed.mean(1))


def _boring(clip_frame: torch.Tensor, t: int) -> torch.Tensor:
    return clip_frame.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()


def _checks(model2d: nn.Module, t: int = 4, size: int = 6) -> nn.Module:
    """Inflate strictly (no frame-wise op), check the boring-clip invariant and that reordering
    frames changes the output; return the 3D model."""
    model2d.eval()
    model3d = inflate_model(model2d, t=t, strict=True, input_size=(3, size, size)).eval()
    image = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = model2d(image)
        got = model3d(_boring(image, t))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        clip = torch.randn(2, 3, t, size, size)
        other = torch.randn(2, 3, t, size, size)
        out = model3d(clip)
        reordered = model3d(clip[:, :, torch.tensor([2, 0, 3, 1])])
        effect = (out - reordered).abs().max() / (out - model3d(other)).abs().max()
    assert effect > 0.01
    return model3d


def test_hand_written_attention_equals_its_sdpa_form() -> None:
    hand = HandAttention()
    fused = HandAttention(fused=True)
    fused.load_state_dict(hand.state_dict())
    hand3d, fused3d = _checks(hand), _checks(fused)
    clip = torch.randn(2, 3, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(hand3d(clip), fused3d(clip), rtol=1e-4, atol=1e-5)
    records = [r for r in hand3d.inflation.report.layers if r.op2d.startswith("matmul (q")]
    assert records and records[0].how == "inflated"


def test_talking_heads_attend_across_time() -> None:
    model2d = HandAttention(talking=True)
    joint = _checks(model2d)
    frames = inflate_model(model2d, t=4, attention="frames", input_size=(3, 6, 6)).eval()
    clip = torch.randn(2, 3, 4, 6, 6)
    with torch.no_grad():
        assert (joint(clip) - frames(clip)).abs().max() > 1e-3  # the keys of other frames count


def test_cross_covariance_and_token_reductions_are_exact_on_boring_clips() -> None:
    _checks(CrossCovariance())


def test_scores_region_with_an_unsupported_op_falls_back() -> None:
    class Indexed(HandAttention):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.stem(x).flatten(2).transpose(1, 2)
            attn = (tokens @ tokens.transpose(-2, -1)).softmax(-1)
            return self.head((attn[:, :1] @ tokens).squeeze(1))  # indexing the scores

    model2d = Indexed().eval()
    model3d, report = inflate_model(model2d, t=4, input_size=(3, 6, 6), return_report=True)
    assert any(r.how == "frame-wise" and "matmul" in r.op2d for r in report.layers)
    image = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model3d.eval()(_boring(image, 4)), model2d(image), rtol=1e-4, atol=1e-5)


def test_layout_reductions_keep_2d_values_on_boring_input() -> None:
    x = torch.randn(2, 3, 5)
    tokens = x.unsqueeze(2).expand(2, 3, 4, 5)  # (B, C, T, N): time before the token axis
    torch.testing.assert_close(layout.softmax_over_time(tokens, 3, 2), x.softmax(-1).unsqueeze(2).expand_as(tokens))
    torch.testing.assert_close(layout.normalize_over_time(tokens, 2.0, 3, 2),
                               F.normalize(x, dim=-1).unsqueeze(2).expand_as(tokens))
    weights = layout.softmax_over_time(torch.randn(2, 3, 4, 5), 3, 2)
    torch.testing.assert_close(weights.sum(dim=(2, 3)), torch.full((2, 3), 4.0))  # T × a distribution
    torch.testing.assert_close(layout.repeat_axis(torch.arange(3), 0, 2), torch.tensor([0, 1, 2, 0, 1, 2]))


def test_scores_export_to_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from inflate.export import export_onnx

    model3d = inflate_model(HandAttention(talking=True).eval(), t=4, input_size=(3, 6, 6)).eval()
    report = export_onnx(model3d, tmp_path / "hand.onnx")
    assert report.max_abs_diff <= 1e-4 * max(1.0, report.max_abs_torch)


@pytest.mark.parametrize("kind", ["lite_mla", "conv_attention"])
def test_timm_leaf_attention_traced_through(kind: str) -> None:
    """timm marks EfficientViT's LiteMLA (ReLU linear attention) and CPUBone's ConvAttention
    untraceable; traced through (LiteMLA on its TorchScript path), their attention spans time."""
    pytest.importorskip("timm")
    from timm.models import cpubone, efficientvit_mit

    inner = efficientvit_mit.LiteMLA(16, 16, dim=8) if kind == "lite_mla" else \
        cpubone.ConvAttention(16, att_stride=2, att_kernel=3)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), inner, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 3))
    for p in model.parameters():
        nn.init.normal_(p, std=0.5)
    model3d = _checks(model, size=8)
    assert any(r.kind == "attention" and r.how == "inflated" for r in model3d.inflation.report.layers)


class ClassAttention(nn.Module):
    """CaiT/VOLO-style class attention: a learned class token per frame queries the patch tokens,
    then a VOLO-style local product of two tensors whose frames sit on different leading axes."""

    def __init__(self, dim: int = 8, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.stem = nn.Conv2d(3, dim, 3, padding=1)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)
        nn.init.normal_(self.q.weight), nn.init.normal_(self.kv.weight)
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x).flatten(2).transpose(1, 2)  # (B, N, C)
        b, n, c = tokens.shape
        u = torch.cat([self.cls.expand(b, -1, -1), tokens], dim=1)
        q = self.q(u[:, :1, :]).reshape(b, self.heads, 1, c // self.heads)  # as VOLO's: heads before the token
        k, v = self.kv(u).reshape(b, n + 1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(dim=-1)  # (B, h, 1, N+1)
        cls = (attn @ v).transpose(1, 2).reshape(b, 1, c)
        return self.head(cls[:, 0])


def test_class_token_per_frame_attends_across_time() -> None:
    model2d = ClassAttention()
    joint = _checks(model2d, size=6)
    assert any(r.op2d.startswith("matmul (q") and r.how == "inflated" for r in joint.inflation.report.layers)
    frames = inflate_model(model2d, t=4, attention="frames", input_size=(3, 6, 6)).eval()
    clip = torch.randn(2, 3, 4, 6, 6)
    with torch.no_grad():
        assert (joint(clip) - frames(clip)).abs().max() > 1e-3
