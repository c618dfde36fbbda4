"""Graph patterns the rewriter must get right, each on a small model checked against 2D."""

import torch
import torch.nn.functional as F
from torch import nn

from inflate import inflate_model
from inflate.checks import boring_clip
from inflate.testing import randomize_weights
from tests.helpers import assert_boring_equal


class SqueezeExcite(nn.Module):
    """x.mean((2, 3)) must pool (T, H, W), never (T, H)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.reduce = nn.Conv2d(8, 2, 1)
        self.expand = nn.Conv2d(2, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        s = x.mean((2, 3), keepdim=True)
        return x * self.expand(F.relu(self.reduce(s))).sigmoid()


def test_squeeze_excite_mean_pools_space_and_time() -> None:
    model3d = assert_boring_equal(SqueezeExcite(), 6, torch.randn(2, 3, 10, 12))
    clip = torch.randn(1, 3, 6, 10, 12)
    with torch.no_grad():
        gates = model3d.conv(clip).mean((2, 3, 4), keepdim=True)
        expected = model3d.conv(clip) * model3d.expand(F.relu(model3d.reduce(gates))).sigmoid()
        torch.testing.assert_close(model3d(clip), expected, atol=1e-5, rtol=1e-5)


class ChannelsLast(nn.Module):
    """ConvNeXt's pattern: permute to NHWC, LayerNorm + Linear on channels, a (1, C, 1, 1) scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.gamma = nn.Parameter(torch.rand(8) + 0.5)

    def forward(self, x):
        x = self.conv(x)
        y = self.fc(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + y.mul(self.gamma.reshape(1, -1, 1, 1))


def test_channels_last_block() -> None:
    assert_boring_equal(ChannelsLast(), 5, torch.randn(2, 3, 7, 9))


class SplitAttention(nn.Module):
    """ResNeSt's pattern: reshape with sizes read from x.shape, sum over the radix, softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Conv2d(4, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        B, C, H, W = x.shape
        x = x.reshape((B, 2, C // 2, H, W))
        gap = self.fc(x.sum(dim=1).mean((2, 3), keepdim=True))
        attn = gap.view(B, 2, -1).softmax(dim=1).reshape(B, 2, C // 2, 1, 1)
        return (x * attn).sum(dim=1)


def test_reshape_with_traced_sizes() -> None:
    assert_boring_equal(SplitAttention(), 4, torch.randn(2, 3, 6, 6))


class SliceCatSplit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        a, b = torch.split(x, [3, 5], dim=1)
        c = torch.cat([b, a], 1)[:, :6, :, 1:]
        first, second = c.chunk(2, dim=1)
        return torch.cat([first * second, x[..., :6, 1:]], dim=1)


def test_slicing_split_chunk_cat() -> None:
    assert_boring_equal(SliceCatSplit(), 4, torch.randn(2, 3, 6, 7))


class FlattenHead(nn.Module):
    """A head that flattens spatial features without pooling: per-frame logits, averaged."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(x), 1))


def test_flatten_head_gives_time_averaged_logits() -> None:
    model = FlattenHead().eval()
    model3d = inflate_model(model, t=4, input_size=(3, 7, 7), overrides={"conv": {"kernel": 1, "stride": 1}}).eval()
    image, clip = torch.randn(2, 3, 7, 7), torch.randn(2, 3, 4, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(model3d(boring_clip(image, 4)), model(image), atol=1e-5, rtol=1e-5)
        per_frame = torch.stack([model(clip[:, :, i]) for i in range(4)], 0).mean(0)
        torch.testing.assert_close(model3d(clip), per_frame, atol=1e-5, rtol=1e-5)


def test_settings_and_attributes_are_kept() -> None:
    import timm

    model = timm.create_model("resnet18", num_classes=7).eval()
    model3d = inflate_model(model, t=8, init="center")
    assert model3d.fc is model3d.get_classifier()
    assert isinstance(model3d, type(model))
    assert model3d.inflation.t == 8 and model3d.inflation.init == "center" and model3d.inflation.policy == "i3d"
    model3d.reset_classifier(3)
    with torch.no_grad():
        assert model3d(torch.randn(1, 3, 4, 64, 64)).shape == (1, 3)
    # not in place by default: the 2D model is untouched and still works on images
    assert type(model.conv1) is nn.Conv2d
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    assert not any(p1.data_ptr() == p2.data_ptr() for p1 in model.parameters() for p2 in model3d.parameters())


def test_inplace_reuses_the_model_object() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model3d = inflate_model(model, t=2, inplace=True, input_size=(3, 8, 8))
    assert model3d is model and model[0].weight.dim() == 5


def test_training_graph_updates_batch_norm_and_backpropagates() -> None:
    import timm

    model3d = inflate_model(randomize_weights(timm.create_model("resnet18", num_classes=4)), t=4)
    model3d.train()
    before = model3d.bn1.running_mean.clone()
    loss = model3d(torch.randn(2, 3, 4, 64, 64)).logsumexp(1).mean()
    loss.backward()
    assert not torch.equal(before, model3d.bn1.running_mean)
    assert model3d.conv1.weight.grad is not None and model3d.conv1.weight.grad.shape == (64, 3, 7, 7, 7)
