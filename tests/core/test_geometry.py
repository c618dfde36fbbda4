"""inflate.core.geometry against independent computations: brute-force window counts,
numpy reductions, and the frameworks' own op tables."""

import math

import numpy as np
import pytest

from inflate.core import InvalidInputError
from inflate.core.geometry import (
    NEG_INF,
    POINTWISE_OPS,
    StemCandidate,
    axis_to_3d,
    check_clip_length,
    find_stem,
    find_stems,
    onnx_pointwise,
    pad_mode_for,
    pad_value,
    reduce_axes,
    tf_same_pads,
    torch_pointwise,
)


@pytest.mark.parametrize("size", range(1, 17))
@pytest.mark.parametrize("kernel,stride,dilation", [(1, 1, 1), (3, 1, 1), (7, 2, 1), (3, 2, 2), (2, 2, 1), (4, 3, 1)],
                         ids=lambda v: str(v))
def test_tf_same_pads_gives_ceil_outputs_odd_element_at_the_back(size, kernel, stride, dilation) -> None:
    front, back = tf_same_pads(size, kernel, stride, dilation)
    span = dilation * (kernel - 1) + 1
    outputs = (size + front + back - span) // stride + 1
    assert outputs == math.ceil(size / stride)  # TensorFlow's SAME output length
    assert back - front in (0, 1)
    # the smallest total that fits ceil(size / stride) windows (brute force)
    smallest = next(total for total in range(span + 1) if (size + total - span) // stride + 1 >= outputs
                    and size + total >= span)
    assert front + back == smallest


def test_tf_same_pads_reference_values() -> None:
    # REFERENCES.md: a 7-frame kernel of stride 2 on 64 frames pads 2 + 3 frames.
    assert tf_same_pads(64, 7, 2) == (2, 3)
    assert tf_same_pads(224, 7, 2) == (2, 3)
    assert tf_same_pads(8, 1, 1) == (0, 0)


@pytest.mark.parametrize(
    "kind,mode,expected",
    [("max_pool", "zeros", NEG_INF), ("max_pool", "replicate", "replicate"), ("max_pool", NEG_INF, NEG_INF),
     ("avg_pool", "zeros", "zeros"), ("conv", "zeros", "zeros"), ("conv", "replicate", "replicate")],
    ids=["max-zeros", "max-replicate", "max-neginf", "avg-zeros", "conv-zeros", "conv-replicate"],
)
def test_pad_mode_for(kind, mode, expected) -> None:
    from inflate.core import get_rule

    assert pad_mode_for(get_rule(kind).temporal.pool, mode) == expected


def test_neg_inf_padding_never_wins_a_max() -> None:
    frames = -np.abs(np.random.default_rng(0).normal(size=(5, 3))) - 1.0  # all negative activations
    padded = np.concatenate([np.full((1, 3), pad_value(NEG_INF)), frames, np.full((1, 3), pad_value(NEG_INF))])
    windows = np.stack([padded[i:i + 3].max(0) for i in range(5)])
    edges = np.stack([frames[max(i - 1, 0):i + 2].max(0) for i in range(5)])
    np.testing.assert_array_equal(windows, edges)
    assert pad_value("zeros") == 0.0


@pytest.mark.parametrize("rank2d,time_axis", [(4, 2), (3, 1), (4, 1), (2, 1), (4, 4), (3, 0)],
                         ids=["nchw", "tokens", "nhwc", "vector", "time-last", "time-first"])
def test_axis_to_3d_matches_inserting_an_axis(rank2d, time_axis) -> None:
    shape2d = tuple(range(2, 2 + rank2d))
    x3 = np.zeros(shape2d[:time_axis] + (1,) + shape2d[time_axis:])
    for axis in range(-rank2d, rank2d):
        assert x3.shape[axis_to_3d(axis, time_axis, rank2d)] == shape2d[axis]


@pytest.mark.parametrize(
    "rank2d,time_axis,axes",
    [(4, 2, (2, 3)), (4, 2, (-1, -2)), (4, 2, (1,)), (3, 1, (1,)), (3, 1, (2,)), (4, 1, (1, 2)), (4, 4, (3,)),
     (4, 4, (1,)), (2, 1, (1,)), (4, 2, (0, 1, 2, 3))],
    ids=["global-pool", "negative", "channels", "token-mean", "feature-mean", "nhwc-pool", "time-last-last",
         "time-last-other", "vector", "all"],
)
def test_reduce_axes_against_numpy(rank2d, time_axis, axes) -> None:
    rng = np.random.default_rng(1)
    shape2d = tuple(range(2, 2 + rank2d))
    frames = 3
    x3 = rng.normal(size=shape2d[:time_axis] + (frames,) + shape2d[time_axis:])
    r = reduce_axes(axes, time_axis, rank2d)
    y3 = x3.sum(axis=r.axes)
    follows = time_axis if time_axis < rank2d else rank2d - 1
    assert r.over_time == (follows in {a % rank2d for a in axes})
    assert len(r.axes) == len({a % rank2d for a in axes}) + r.over_time
    assert r.rank2d == rank2d - len({a % rank2d for a in axes})
    per_frame = [np.take(x3, i, axis=time_axis).sum(axis=tuple(a % rank2d for a in set(axes))) for i in range(frames)]
    if r.over_time:
        assert r.time_axis is None
        np.testing.assert_allclose(y3, np.sum(per_frame, axis=0))
    else:  # the reduction ran per frame, and time sits where the result says
        assert y3.ndim == r.rank2d + 1
        np.testing.assert_allclose(np.moveaxis(y3, r.time_axis, 0), np.stack(per_frame))


def test_find_stem_first_conv_in_run_order() -> None:
    ops = [StemCandidate("norm"), StemCandidate("conv1", "conv"), StemCandidate("layer1.0.conv1", "conv")]
    assert find_stem(ops) == "conv1"
    assert find_stem([StemCandidate("fc")]) is None


def test_find_stem_an_op_holding_a_conv_is_the_stem() -> None:
    ops = [StemCandidate("patch_embed", "holds_conv"), StemCandidate("blocks.0.conv", "conv")]
    assert find_stem(ops) == "patch_embed"


def test_find_stems_adds_the_convs_reading_the_stems_input() -> None:
    """A RepVGG-style first block: a 3×3 and a 1×1 conv both read the input and are summed."""
    ops = [StemCandidate("stem.conv_kxk.conv", "conv", "x"), StemCandidate("stem.conv_kxk.bn", "other", "conv"),
           StemCandidate("stem.conv_1x1.conv", "conv", "x"), StemCandidate("stages.0.0.conv", "conv", "add"),
           StemCandidate("stem.pool", "other", "x")]
    assert find_stems(ops) == ("stem.conv_kxk.conv", "stem.conv_1x1.conv")
    assert find_stems(ops, ["stem.conv_1x1.conv"]) == ("stem.conv_1x1.conv", "stem.conv_kxk.conv")
    assert find_stems([StemCandidate("conv1", "conv")]) == ("conv1",)  # input unknown: the stem alone
    assert find_stems([StemCandidate("fc")]) == ()


def test_find_stem_declared_wins_inside_an_op() -> None:
    ops = [StemCandidate("patch_embed", "holds_conv"), StemCandidate("blocks.0.conv", "conv")]
    assert find_stem(ops, ["patch_embed.proj"]) == "patch_embed.proj"
    assert find_stem(ops, ["missing.conv", "blocks.0.conv"]) == "blocks.0.conv"
    assert find_stem(ops, ["missing"]) == "patch_embed"  # a declared name the model lacks is ignored


@pytest.mark.parametrize("t", [1, 8, 64])
def test_check_clip_length_accepts(t) -> None:
    assert check_clip_length(t) == t


@pytest.mark.parametrize("t", [0, -1, 2.0, True, "8", None], ids=["zero", "negative", "float", "bool", "str", "none"])
def test_check_clip_length_refuses(t) -> None:
    with pytest.raises(InvalidInputError, match=r"^t \(the clip length in frames\) must be an integer >= 1, got "):
        check_clip_length(t)
    with pytest.raises(InvalidInputError, match=r"^--time \(the clip length"):
        check_clip_length(t, "--time")


def test_pointwise_table_has_no_repeats() -> None:
    spellings = [name for op in POINTWISE_OPS for name in op.torch]
    assert len(spellings) == len(set(spellings))
    onnx_names = [op.onnx for op in POINTWISE_OPS if op.onnx]
    assert len(onnx_names) == len(set(onnx_names))
    assert not onnx_pointwise(True) & onnx_pointwise(False)
    assert "gelu" in torch_pointwise("F") and torch_pointwise("F").count("gelu") == 1


def test_pointwise_onnx_names_are_onnx_ops() -> None:
    defs = pytest.importorskip("onnx.defs")
    for name in onnx_pointwise(True) | onnx_pointwise(False):
        assert defs.has(name), name


def test_pointwise_torch_names_exist() -> None:
    torch = pytest.importorskip("torch")
    import operator

    import torch.nn.functional as F

    spaces = {"operator": operator, "torch": torch, "F": F, "Tensor": torch.Tensor, "nn": torch.nn}
    for space, module in spaces.items():
        for name in torch_pointwise(space):
            assert hasattr(module, name), f"{space}.{name}"
    assert len(torch_pointwise("operator") + torch_pointwise("torch") + torch_pointwise("F")
               + torch_pointwise("Tensor") + torch_pointwise("nn")) == sum(len(op.torch) for op in POINTWISE_OPS)
