"""The non-strict fallback at the level of the enclosing module: where an op inside a module
cannot be split into frames (a reshape that moves the batch axis), the whole module runs per
frame, is reported, and the conversion goes on; strict=True still raises, naming the node."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.core.errors import UnsupportedOpError
from inflate.testing import randomize_weights


class ChannelMixer(nn.Module):
    """Splits channels into heads merged with the batch axis head-major, (heads·B, C/heads, H·W),
    mixes positions within each image, and merges back: each image maps to itself, so per frame
    it is exact, but no op inside has the batch axis first, nor batch-major."""

    def __init__(self, channels: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.proj(x).reshape(b, self.heads, c // self.heads, h * w).transpose(0, 1)
        q = q.reshape(self.heads * b, c // self.heads, h * w)
        attn = (q.transpose(1, 2) @ q).softmax(dim=-1)  # (heads·B, HW, HW)
        out = (q @ attn).reshape(self.heads, b, c // self.heads, h * w).transpose(0, 1).reshape(b, c, h, w)
        return out + x


class BatchMajorMixer(ChannelMixer):
    """As :class:`ChannelMixer` with the heads merged batch-major, (B·heads, C/heads, H·W), as
    hand-written attention does (HaloNet, BoTNet): each op inside can run per frame itself,
    time folded into the batch beside each sample's heads."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        q = self.proj(x).reshape(-1, c // self.heads, h * w)
        attn = (q.transpose(1, 2) @ q).softmax(dim=-1)  # (B·heads, HW, HW)
        out = (q @ attn).reshape_as(x)
        return out + x


class Net(nn.Module):
    def __init__(self, mixer: type[nn.Module] = ChannelMixer) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.mixer = mixer(8)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(torch.relu(self.bn(self.stem(x))))
        return self.fc(self.pool(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def model2d() -> nn.Module:
    torch.manual_seed(0)
    return randomize_weights(Net().eval(), input_size=(3, 16, 16))


def test_strict_names_the_node(model2d: nn.Module) -> None:
    with pytest.raises(UnsupportedOpError, match="mixer"):
        inflate_model(model2d, t=4, strict=True, input_size=(3, 16, 16))


def test_enclosing_module_runs_per_frame(model2d: nn.Module) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model3d, report = inflate_model(model2d, t=4, input_size=(3, 16, 16), return_report=True)
    assert [r.path for r in report.frame_wise] == ["mixer"]
    assert any("mixer" in str(w.message) and "frame by frame" in str(w.message) for w in caught)
    boring = check_boring_video(model2d, model3d, t=4)
    assert boring.passed, boring
    # the convs around it still see time: the model is not frame-wise as a whole
    assert check_order_sensitivity(model3d, torch.randn(1, 3, 4, 16, 16)).relative_change > 1e-3


def _convert(model2d: nn.Module, **kwargs: object) -> tuple[nn.Module, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return inflate_model(model2d, t=4, input_size=(3, 16, 16), return_report=True, **kwargs)


def _assert_exact_and_ordered(model2d: nn.Module, model3d: nn.Module) -> None:
    boring = check_boring_video(model2d, model3d, t=4)
    assert boring.passed, boring
    assert check_order_sensitivity(model3d, torch.randn(1, 3, 4, 16, 16)).relative_change > 1e-3


def test_batch_major_ops_run_per_frame_themselves() -> None:
    """Heads merged into the batch axis batch-major (B·heads, ...): each op folds time beside its
    sample's heads and runs per frame on its own; the module around them is traced through."""
    torch.manual_seed(0)
    model2d = randomize_weights(Net(BatchMajorMixer).eval(), input_size=(3, 16, 16))
    model3d, report = _convert(model2d)
    paths = [r.path for r in report.frame_wise]
    assert paths and all(p.startswith("mixer:") for p in paths), paths
    assert "mixer.proj" in {r.path for r in report.inflated}
    _assert_exact_and_ordered(model2d, model3d)


def test_one_trace_finds_every_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three blocks that must run whole are found in one pass: the model is traced twice (the
    pass that finds them, the pass with them kept whole), not once per block."""
    from inflate.adapters.torch import convert

    class ThreeMixers(Net):
        def __init__(self) -> None:
            super().__init__()
            self.mixers = nn.Sequential(*(ChannelMixer(8) for _ in range(3)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.mixers(torch.relu(self.bn(self.stem(x))))
            return self.fc(self.pool(self.conv(x)).flatten(1))

    traces = []
    real_trace = convert.trace
    monkeypatch.setattr(convert, "trace", lambda *a, **k: traces.append(1) or real_trace(*a, **k))
    torch.manual_seed(0)
    model2d = randomize_weights(ThreeMixers().eval(), input_size=(3, 16, 16))
    model3d, report = _convert(model2d)
    assert [r.path for r in report.frame_wise] == ["mixers.0", "mixers.1", "mixers.2"]
    assert len(traces) == 2
    _assert_exact_and_ordered(model2d, model3d)


class SizedEmbed(ChannelMixer):
    """A patch embedding returning (tokens, grid size), as timm's NaFlexEmbeds does, with a
    head-major merge inside (:class:`ChannelMixer`) so it must run per frame as a whole."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:  # type: ignore[override]
        x = super().forward(x)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class TokenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.embed = SizedEmbed(8)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, (h, w) = self.embed(torch.relu(self.stem(x)))
        return self.fc(self.norm(tokens).mean(1) * (h * w) ** -0.5)


def test_module_returning_a_tuple_runs_per_frame() -> None:
    """A module whose output is a tuple of batch-first tensors and sizes runs per frame whole."""
    torch.manual_seed(0)
    model2d = randomize_weights(TokenNet().eval(), input_size=(3, 16, 16))
    model3d, report = _convert(model2d)
    assert [r.path for r in report.frame_wise] == ["embed"]
    _assert_exact_and_ordered(model2d, model3d)


class PixelNet(nn.Module):
    """TNT's pattern: pixel tokens of each 2×2 patch merged into the batch axis, (B·N, 4, C),
    then a block taking them with the (B, N, C) patch tokens, a module inside it with no
    frame-wise op taking the pixels."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mixer = ChannelMixer(8)

        def forward(self, pixels: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n, p, c = pixels.shape
            b = patches.shape[0]
            mixed = self.mixer(pixels.transpose(1, 2).reshape(n, c, 2, 2))
            return mixed.flatten(2).transpose(1, 2), patches + mixed.mean((2, 3)).reshape(b, -1, c)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, stride=2)
        self.block = PixelNet.Block()
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        b, c, h, w = x.shape
        pixels = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1).reshape(-1, 4, c)
        patches = x.reshape(b, c, h // 2, 2, w // 2, 2).mean((3, 5)).flatten(2).transpose(1, 2)
        pixels, patches = self.block(pixels, patches)
        return self.fc(patches.mean(1) + pixels.mean((0, 1)) * 0)


def test_module_taking_tokens_merged_into_the_batch_runs_per_frame() -> None:
    """Inputs whose leading axis is the batch merged batch-major with N items per sample fold
    time beside the batch (B·T·N), so the module sees each frame's N items together."""
    torch.manual_seed(0)
    model2d = randomize_weights(PixelNet().eval(), input_size=(3, 16, 16))
    model3d, report = _convert(model2d)
    assert "block.mixer" in [r.path for r in report.frame_wise]  # on (B·N, C, 2, 2) pixels
    _assert_exact_and_ordered(model2d, model3d)


class MaskedNet(nn.Module):
    """Hiera's signature: ``forward(x, mask=None)``, the mask applied where given."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:  # type: ignore[assignment]
        x = self.stem(x)
        if mask is not None:
            x = x * mask.view(x.shape[0], 1, *x.shape[2:])
        return self.fc(x.mean((2, 3)))


def test_optional_arguments_are_traced_as_none() -> None:
    """An optional argument defaulting to None is traced as None (a placeholder would take the
    mask branch, which the sample batch cannot run)."""
    torch.manual_seed(0)
    model2d = randomize_weights(MaskedNet().eval(), input_size=(3, 16, 16))
    model3d, report = _convert(model2d, strict=True)
    assert not report.frame_wise
    _assert_exact_and_ordered(model2d, model3d)


class TokenMaxNet(nn.Module):
    """VOLO's head: per-token logits, their max over the tokens added to the class token's."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.head = nn.Linear(8, 5)
        self.aux_head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x).flatten(2).transpose(1, 2)
        aux = self.aux_head(tokens)
        return self.head(tokens[:, 0]) + 0.5 * aux.max(1)[0] - 0.1 * aux.min(dim=2, keepdim=True)[0].mean(1)


def test_max_over_the_token_axis_takes_time_too() -> None:
    """max/min over the axis time travels with are joint over (time, tokens): no op runs per
    frame, and the 3D output is the one computed by hand from the 3D stem's tokens with the
    2D heads (the max over every frame's tokens; the class token's logits averaged over time)."""
    torch.manual_seed(0)
    model2d = randomize_weights(TokenMaxNet().eval(), input_size=(3, 16, 16))
    model3d, report = _convert(model2d, strict=True)
    assert not report.frame_wise
    _assert_exact_and_ordered(model2d, model3d)
    clip = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        tokens = model3d.get_submodule("stem")(clip).flatten(3).permute(0, 2, 3, 1)  # (B, T', N, C)
        aux = model2d.aux_head(tokens)
        expected = (model2d.head(tokens[:, :, 0]).mean(1) + 0.5 * aux.flatten(1, 2).max(1)[0]
                    - 0.1 * aux.min(dim=3)[0].mean((1, 2))[:, None])
        torch.testing.assert_close(model3d(clip), expected, rtol=1e-5, atol=1e-6)


class TwoBranchNet(nn.Module):
    """CrossViT's two branches: patch embeddings of the image and of a resized copy of it, their
    tokens joined (the fusion needs every branch at the same time steps)."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers import PatchEmbed

        self.patch_embed = nn.ModuleList([PatchEmbed(16, 4, 3, 8), PatchEmbed(8, 4, 3, 8)])
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)
        tokens = torch.cat([self.patch_embed[0](x), self.patch_embed[1](small)], dim=1)
        return self.fc(tokens.softmax(dim=1).mean(1))


def test_every_branch_reading_the_input_is_a_stem() -> None:
    """Both patch embeddings read the input (one through a resize, which has no weights): both
    are stems and take the same tubelet, so their tokens have the same time steps."""
    torch.manual_seed(0)
    model2d = randomize_weights(TwoBranchNet().eval(), input_size=(3, 16, 16))
    model3d, report = _convert(model2d)
    strides = {r.path: r.time_stride for r in report.inflated if r.path.startswith("patch_embed")}
    assert strides == {"patch_embed.0": 2, "patch_embed.1": 2}, strides
    _assert_exact_and_ordered(model2d, model3d)


class SizeBranch(nn.Module):
    """Python control flow on a traced value (Gemma 4's ViT checks its input's rank and size this
    way): torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2:
            raise ValueError("even widths only")
        return self.conv(x).relu() + x


class WithSizeBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branch = SizeBranch()
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.branch(self.stem(x)).mean(dim=(2, 3)))


def test_untraceable_module_runs_per_frame_as_a_whole() -> None:
    """The module whose control flow fx cannot trace runs per frame whole, reported with fx's reason;
    the rest inflates (the stem's time kernel keeps the model order-sensitive). strict=True raises."""
    from inflate.core.errors import InflateError

    model2d = randomize_weights(WithSizeBranch().eval(), seed=1, input_size=(3, 8, 8))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        model3d, report = inflate_model(model2d, t=4, input_size=(3, 8, 8), return_report=True)
    assert [(r.path, r.how) for r in report.layers if r.how == "frame-wise"] == [("branch", "frame-wise")]
    assert next(r for r in report.layers if r.path == "stem").time_kernel > 1
    assert check_boring_video(model2d, model3d, t=4).passed
    assert check_order_sensitivity(model3d, t=4).passed
    clip = torch.randn(1, 3, 4, 8, 8)
    with torch.no_grad():  # the branch is the 2D module applied to each frame of the 3D stem's output
        frames = model3d.stem(clip).transpose(1, 2).flatten(0, 1)  # (T', 8, H, W)
        expected = model2d.head(model2d.branch(frames).mean(dim=(0, 2, 3), keepdim=True).flatten(1))
        assert torch.allclose(model3d(clip), expected, atol=1e-5)
    with pytest.raises(InflateError, match="could not trace WithSizeBranch in 'branch'"):
        inflate_model(model2d, t=4, input_size=(3, 8, 8), strict=True)
