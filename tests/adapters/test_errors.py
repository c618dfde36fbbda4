"""Bad input gets an error that names the problem and the fix."""

import pytest
import timm
import torch
from torch import nn

from inflate import InvalidInputError, UnsupportedOpError, inflate_model


class Opaque(nn.Module):
    """A leaf with no rule (as a user's custom op would be)."""

    def forward(self, x):
        return x * 2 + x.roll(1, dims=-1)


class WithOpaque(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.custom = Opaque()

    def forward(self, x):
        return self.custom(self.conv(x)).mean((2, 3))


@pytest.fixture(scope="module")
def resnet3d() -> nn.Module:
    return inflate_model(timm.create_model("resnet18", num_classes=5).eval(), t=4)


def test_image_where_a_clip_is_expected(resnet3d: nn.Module) -> None:
    with pytest.raises(InvalidInputError, match=r"clip of shape \(B, C, T, H, W\), got a 4D tensor of shape "
                                                r"\(1, 3, 64, 64\); for one image use x.unsqueeze\(2\)"):
        resnet3d(torch.randn(1, 3, 64, 64))
    with pytest.raises(InvalidInputError, match="the clip has 4 channels on axis 1 but the model takes 3"):
        resnet3d(torch.randn(1, 4, 3, 64, 64))


@pytest.mark.parametrize("t", [0, -2, 2.5, True], ids=["zero", "negative", "float", "bool"])
def test_bad_t(t) -> None:
    with pytest.raises(InvalidInputError, match=r"t \(the clip length in frames\) must be an integer >= 1"):
        inflate_model(nn.Conv2d(3, 3, 1), t=t)


def test_not_a_module() -> None:
    with pytest.raises(InvalidInputError, match="takes a torch.nn.Module, got str; for a timm name use timm.create_model"):
        inflate_model("resnet50", t=8)


def test_unsupported_op_is_frame_wise_and_reported() -> None:
    model = WithOpaque().eval()
    model3d, report = inflate_model(model, t=3, input_size=(3, 8, 8), leaf_modules=[Opaque], return_report=True)
    assert [r.path for r in report.frame_wise] == ["custom"]
    assert "tests.adapters.test_errors.Opaque" in report.frame_wise[0].op2d
    clip = torch.randn(2, 3, 3, 8, 8)
    with torch.no_grad():
        out = model3d(clip)
        conv = model3d.conv(clip)
        frames = [model.custom(conv[:, :, i]) for i in range(conv.shape[2])]
        expected = torch.stack(frames, 2).mean((2, 3, 4))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_unsupported_op_under_strict_names_the_node() -> None:
    with pytest.raises(UnsupportedOpError, match=r"no inflation rule for tests\.adapters\.test_errors\.Opaque "
                                                 r"at node 'custom'"):
        inflate_model(WithOpaque(), t=3, input_size=(3, 8, 8), leaf_modules=[Opaque], strict=True)


def test_untraceable_model_says_what_to_do() -> None:
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(Exception, match="could not trace Branchy with torch.fx.*leaf_modules"):
        inflate_model(Branchy(), t=2, input_size=(3, 4, 4))


def test_unknown_policy_and_init() -> None:
    with pytest.raises(InvalidInputError, match="unknown policy 'i4d'"):
        inflate_model(nn.Conv2d(3, 3, 1), t=2, policy="i4d")
    with pytest.raises(InvalidInputError, match="unknown init 'middle'"):
        inflate_model(nn.Conv2d(3, 3, 1), t=2, init="middle")
