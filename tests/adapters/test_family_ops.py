"""Ops the family sweep (issue 13) found running frame by frame, each on a small module that shows
it: no frame-wise op, exact on boring clips against the 2D module, sensitive to frame order, and
the 3D op against an independent computation.

- F.conv2d with a fixed kernel (timm's BlurPool2d, TResNet's anti-aliasing) and with a learnable one;
- nn.AvgPool1d / nn.MaxPool1d and nn.BatchNorm1d on tokens (NextViT's E-MHSA);
- Tensor.norm over axes and torch.addcmul (timm's GlobalResponseNorm, CSATv2 and ConvNeXt-V2);
- a patch embedding with NCHW output after a conv stem (Visformer), and one as the stem;
- a tubelet embedding on a frame size that is not a multiple of the patch (Sequencer at 128²).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.layers import BlurPool2d, PatchEmbed
from timm.layers.grn import GlobalResponseNorm
from torch import nn

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.adapters.torch.handlers.conv import functional_conv3d
from inflate.adapters.torch.layout import clip_vector_norm
from inflate.core.weights import inflate_kernel
from inflate.testing import randomize_weights


def _assert_inflates(model2d: nn.Module, input_size: tuple[int, int, int], t: int = 4, **kwargs):
    """Inflate with no frame-wise op; boring clips give the 2D output; frame order matters."""
    model2d = randomize_weights(model2d.eval(), seed=1, input_size=input_size)
    model3d, report = inflate_model(model2d, t=t, input_size=input_size, return_report=True, strict=True, **kwargs)
    assert report.frame_wise == (), report.table()
    boring = check_boring_video(model2d, model3d, t=t, tolerance=1e-5)
    assert boring.max_abs_2d > 0 and boring.passed, str(boring)
    order = check_order_sensitivity(model3d.eval(), t=t)
    assert order.passed, str(order)
    return model3d, report


# ----- functional convolution -----

class BlurNet(nn.Module):
    """A conv, timm's BlurPool2d (reflect pad, then F.conv2d with a fixed binomial buffer, groups=C), a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.aa = BlurPool2d(6, filt_size=3, stride=2)
        self.conv2 = nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.aa(self.conv1(x).relu())).mean((2, 3))


def test_blur_pool_inflates_as_a_spatial_filter() -> None:
    """The fixed blur kernel takes the ``filter`` rule: time 1 under i3d, no frame-wise op, exact."""
    _, report = _assert_inflates(BlurNet(), (3, 12, 12))
    blur = [r for r in report.layers if r.op2d == "F.conv2d"]
    assert [(r.kind, r.time_kernel) for r in blur] == [("filter", 1)], report.table()


def test_blur_pool_takes_a_time_kernel_from_an_override() -> None:
    model3d, report = _assert_inflates(BlurNet(), (3, 12, 12), overrides={"aa*": {"kernel": 3}})
    assert [r.time_kernel for r in report.layers if r.op2d == "F.conv2d"] == [3]


class LearnedFunctionalConv(nn.Module):
    """F.conv2d with the model's own parameter (padding given as a string, groups 2)."""

    def __init__(self, padding: str | tuple[int, int] = "same") -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.weight = nn.Parameter(torch.randn(6, 2, 3, 3) * 0.3)
        self.bias = nn.Parameter(torch.randn(6))
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.stem(x), self.weight, self.bias, 1, self.padding, 1, 2).mean((2, 3))


@pytest.mark.parametrize("padding", ["same", "valid", (1, 0)], ids=["same", "valid", "tuple"])
def test_functional_conv_with_a_parameter_takes_the_conv_rule(padding: str | tuple[int, int]) -> None:
    """A learnable functional kernel gets a conv's time kernel (3 for 3×3 under i3d), and the 3D model
    equals F.conv3d with the kernel tiled in numpy (core.weights) on an edge-padded clip."""
    model3d, report = _assert_inflates(LearnedFunctionalConv(padding), (3, 9, 9))
    record = next(r for r in report.layers if r.op2d == "F.conv2d")
    assert (record.kind, record.time_kernel, record.init) == ("conv", 3, "tile")
    clip = torch.randn(2, 3, 4, 9, 9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        features = model3d.stem(clip)
        kernel = torch.from_numpy(inflate_kernel(model3d.weight.detach().numpy(), 3, "tile"))
        padded = F.pad(features, (0, 0, 0, 0, 1, 1), mode="replicate")
        spatial = {"same": (1, 1), "valid": (0, 0)}.get(padding, padding)  # type: ignore[arg-type]
        expected = F.conv3d(padded, kernel, model3d.bias, 1, (0, *spatial), 1, 2).mean((2, 3, 4))
        torch.testing.assert_close(model3d(clip), expected, rtol=1e-5, atol=1e-5)


def test_functional_conv3d_centre_init_and_time_stride() -> None:
    """functional_conv3d with k_t 3, time stride 2 and centre init equals F.conv3d on numpy's centred kernel."""
    generator = torch.Generator().manual_seed(0)
    x, weight = torch.randn(1, 4, 6, 8, 8, generator=generator), torch.randn(4, 1, 3, 3, generator=generator)
    got = functional_conv3d(x, weight, None, 3, (2, 1, 1), (1, 1), (1, 1, 1), 4, "center", (1, 1), "zeros")
    kernel = torch.from_numpy(inflate_kernel(weight.numpy(), 3, "center"))
    torch.testing.assert_close(got, F.conv3d(x, kernel, None, (2, 1, 1), (1, 1, 1), 1, 4))


# ----- token pools and batch norm (NextViT's E-MHSA) -----

class TokenReduction(nn.Module):
    """Keys and values pooled over a frame's tokens (AvgPool1d or MaxPool1d), batch-normed per channel,
    attended by every token with F.scaled_dot_product_attention."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.sr = pool
        self.norm = nn.BatchNorm1d(8)
        self.q, self.kv = nn.Linear(8, 8), nn.Linear(8, 16)
        self.head_norm = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv(x).flatten(2).transpose(1, 2)  # (B, N, C)
        reduced = self.norm(self.sr(tokens.transpose(1, 2))).transpose(1, 2)  # (B, N/4, C)
        k, v = self.kv(reduced).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(self.q(tokens).unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return self.fc(self.head_norm(out.mean(1)))


@pytest.mark.parametrize("pool", [nn.AvgPool1d(4, 4), nn.MaxPool1d(4, 4)], ids=["avg", "max"])
def test_token_pool_and_batch_norm_1d(pool: nn.Module) -> None:
    """No frame-wise op, attention joint over time; each frame's tokens are pooled among themselves
    (the pooled keys equal the 2D pool of each frame's tokens)."""
    model3d, report = _assert_inflates(TokenReduction(pool), (3, 8, 8))
    assert any(r.op2d == "F.scaled_dot_product_attention" and r.how == "inflated" for r in report.layers)
    clip = torch.randn(2, 8, 3, 16, generator=torch.Generator().manual_seed(1))  # (B, C, T, N)
    with torch.no_grad():
        got = model3d.sr(clip.unsqueeze(3)).squeeze(3)
        expected = torch.stack([pool(clip[:, :, i]) for i in range(3)], dim=2)
    torch.testing.assert_close(got, expected)


# ----- vector norms and addcmul (GRN) -----

class GrnNet(nn.Module):
    """ConvNeXt-V2 / CSATv2 style: conv, channels-last GRN (Tensor.norm over H, W; torch.addcmul)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.grn = GlobalResponseNorm(8, channels_last=True)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.grn(self.conv(x).permute(0, 2, 3, 1))
        return self.fc(x.mean((1, 2)))


def test_grn_inflates() -> None:
    model2d = GrnNet()
    with torch.no_grad():
        model2d.grn.weight.normal_(generator=torch.Generator().manual_seed(0))
        model2d.grn.bias.normal_(generator=torch.Generator().manual_seed(1))
    _, report = _assert_inflates(model2d, (3, 10, 10))
    assert report.frame_wise == ()


@pytest.mark.parametrize("ord", [2.0, 1.0, 3.0, float("inf")], ids=["l2", "l1", "l3", "inf"])
def test_clip_vector_norm_is_the_power_mean_of_frame_norms(ord: float) -> None:
    """Over (T, H, W), scaled by T^(-1/p): (mean over frames of each frame's norm^p)^(1/p), computed
    in numpy; the maximum for p = inf."""
    x = torch.randn(2, 3, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    got = clip_vector_norm(x, ord, (2, 3, 4), True, 2)
    frames = np.abs(x.double().numpy()).reshape(2, 3, 5, 16)
    if np.isinf(ord):
        expected = frames.max(axis=(2, 3))
    else:
        per_frame = (frames ** ord).sum(axis=3) ** (1 / ord)  # (B, C, T)
        expected = ((per_frame ** ord).mean(axis=2)) ** (1 / ord)
    np.testing.assert_allclose(got.reshape(2, 3).double().numpy(), expected, rtol=1e-5)


# ----- patch embeddings -----

class StagedEmbedding(nn.Module):
    """Visformer's layout: a conv stem, then patch embeddings with NCHW output (BatchNorm2d) per stage."""

    def __init__(self, stem: bool = True) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU()) if stem else nn.Identity()
        self.patch_embed1 = PatchEmbed(None, 2, 8 if stem else 3, 12, norm_layer=nn.BatchNorm2d, flatten=False)
        self.conv = nn.Conv2d(12, 12, 3, padding=1)
        self.patch_embed2 = PatchEmbed(None, 2, 12, 16, norm_layer=nn.BatchNorm2d, flatten=False)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed2(self.conv(self.patch_embed1(self.stem(x))).relu())
        return self.fc(x.mean((2, 3)))


def test_later_nchw_patch_embeddings_are_convs_with_time_one() -> None:
    _, report = _assert_inflates(StagedEmbedding(), (3, 16, 16))
    embeds = [r for r in report.layers if r.op2d == "PatchEmbed"]
    assert [(r.path, r.time_kernel, r.time_stride) for r in embeds] == [
        ("patch_embed1", 1, 1), ("patch_embed2", 1, 1)], report.table()


def test_nchw_patch_embedding_as_the_stem_takes_tubelets() -> None:
    _, report = _assert_inflates(StagedEmbedding(stem=False), (3, 16, 16))
    embeds = [r for r in report.layers if r.op2d == "PatchEmbed"]
    assert [(r.path, r.time_kernel, r.time_stride) for r in embeds] == [
        ("patch_embed1", 2, 2), ("patch_embed2", 1, 1)], report.table()


class FlooredEmbedding(nn.Module):
    """Sequencer's stem: a 7×7 stride-7 patch embedding that floors a 16² frame to 2×2 patches."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = PatchEmbed(None, 7, 3, 8, flatten=False, output_fmt="NHWC", strict_img_size=False)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.stem(x).permute(0, 3, 1, 2)).relu().mean((2, 3)))


def test_tubelet_embedding_floors_space_as_the_2d_conv() -> None:
    """At a frame size that is not a multiple of the patch the 2D model runs (its conv floors): so does
    the 3D one; the clip length must still be a multiple of the tubelet."""
    from inflate import ShapeMismatchError

    model3d, _ = _assert_inflates(FlooredEmbedding(), (3, 16, 16))
    with pytest.raises(ShapeMismatchError, match=r"multiple of the tubelet size 2"):
        model3d(torch.zeros(1, 3, 3, 16, 16))


# ----- timm blocks kept whole: CSATv2's DCT stem, MobileNetV5's fusion adapter -----

class DctNet(nn.Module):
    """CSATv2's LearnableDct2d stem (8×8 block DCT, then three 1×1 convs), a 3×3 conv, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        import importlib

        csatv2 = importlib.import_module("timm.models.csatv2")
        self.stem_dct = csatv2.LearnableDct2d(8, out_chs=16)
        self.conv = nn.Conv2d(16, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.stem_dct(x)).relu().mean((2, 3)))


def test_dct_stem_runs_its_fixed_transform_per_frame_and_inflates_its_convs() -> None:
    """The stem's three 1×1 convs take the stem's time stride (2), all three alike; the output of the
    stem on a clip equals the 2D stem on each kept frame (every other one)."""
    model2d = DctNet()
    model3d, report = _assert_inflates(model2d, (3, 32, 32))  # randomises model2d in place
    record = next(r for r in report.layers if r.path == "stem_dct")
    assert (record.op3d, record.time_stride) == ("LearnableDct3d", 2)
    stem = model3d.stem_dct
    assert [c.stride[0] for c in (stem.conv_y, stem.conv_cb, stem.conv_cr)] == [2, 2, 2]
    clip = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    reference = model2d.stem_dct
    with torch.no_grad():
        got = stem(clip)
        expected = torch.stack([reference(clip[:, :, i]) for i in (0, 2)], dim=2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


class FusionNet(nn.Module):
    """Two stages at two frame sizes fused by MobileNetV5's multi-scale fusion adapter (nearest
    upsampling of the smaller map, an inverted-residual block, a 2×2 average pool to its output size)."""

    def __init__(self) -> None:
        super().__init__()
        import importlib

        mobilenetv5 = importlib.import_module("timm.models.mobilenetv5")
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.msfa = mobilenetv5.MobileNetV5MultiScaleFusionAdapter([8, 12], 16, output_resolution=4)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = self.stem(x).relu()
        return self.fc(self.msfa([high, self.down(high).relu()]).mean((2, 3)))


def test_multi_scale_fusion_adapter_inflates() -> None:
    """No frame-wise op: the adapter's inner block is inflated (its 3×3-free block keeps time 1, the
    model's convs mix time), exact on boring clips and order-sensitive."""
    model3d, report = _assert_inflates(FusionNet(), (3, 32, 32))
    assert any(r.path == "msfa" and r.op3d == "MultiScaleFusion3d" for r in report.layers), report.table()
    assert any(r.path.startswith("msfa.ffn.") and r.kind == "conv" for r in report.layers), report.table()


class _RmsNormed(nn.Module):
    """A conv stem, then RMS norms over the channels of tokens (F.rms_norm and nn.RMSNorm, as
    DeepSeek's ViT uses them; timm's own RmsNorm) and of NCHW maps (timm's RmsNorm2d)."""

    def __init__(self) -> None:
        from timm.layers import RmsNorm, RmsNorm2d

        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.norm2d = RmsNorm2d(8)
        self.norm = nn.RMSNorm(8)
        self.timm_norm = RmsNorm(8)
        self.weight = nn.Parameter(torch.rand(8) + 0.5)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.norm2d(self.stem(x)).flatten(2).transpose(1, 2)  # (B, N, C)
        tokens = F.rms_norm(self.timm_norm(self.norm(tokens)) * 2.0, (8,), self.weight, 1e-6)
        return self.head(tokens.mean(dim=1))


def test_rms_norms_inflate_as_layer_norms() -> None:
    _assert_inflates(_RmsNormed(), (3, 8, 8))  # strict: a norm with no rule would raise


class _ChannelGates(nn.Module):
    """timm's ECA and circular ECA channel gates (``x * gate.expand_as(x)``, ECA-ResNets,
    eca_halonext) after a conv stem."""

    def __init__(self) -> None:
        from timm.layers import CecaModule, EcaModule

        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.eca, self.ceca = EcaModule(16, kernel_size=3), CecaModule(16, kernel_size=3)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.ceca(self.eca(self.stem(x).relu())).mean(dim=(2, 3)))


def test_eca_channel_gates_inflate() -> None:
    _assert_inflates(_ChannelGates(), (3, 8, 8))  # strict: expand_as with no rule would raise
