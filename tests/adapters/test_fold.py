"""Time-1 layers on folded frames: each folded op against the 3D op computed independently
(F.conv3d, F.batch_norm, F.max_pool3d, F.avg_pool3d on a contiguous copy) in every memory
layout, gradients included; whole models give the figures they gave unfolded; state dicts
and ONNX exports are those of the 3D ops."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.adapters.torch import modules as m3d
from inflate.adapters.torch.modules import (
    BatchNormAct3d, InflatedAvgPool3d, InflatedBatchNorm3d, InflatedConv3d, InflatedMaxPool3d, fold_frames,
    frame_folding, frame_major, unfold_frames,
)
from inflate.testing import randomize_weights

LAYOUTS = ("contiguous", "channels_last_3d", "frame_major")


def in_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values in another memory order; "frame_major" is (B, T, C, H, W) order."""
    if layout == "channels_last_3d":
        return x.contiguous(memory_format=torch.channels_last_3d)
    if layout == "frame_major":
        return x.transpose(1, 2).contiguous().transpose(1, 2)
    return x.contiguous()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the 2D ops ran (so a test sees whether a layer folded)."""
    counts = {"conv2d": 0, "max_pool2d": 0, "avg_pool2d": 0}
    for name in counts:
        original = getattr(F, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(F, name, spy)
    return counts


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fold_is_a_view_where_frame_major(layout: str) -> None:
    x = in_layout(torch.randn(2, 3, 4, 5, 6), layout)
    folded = fold_frames(x)
    assert folded.shape == (8, 3, 5, 6)
    torch.testing.assert_close(folded, torch.stack([x[b, :, t] for b in range(2) for t in range(4)]), rtol=0, atol=0)
    assert frame_major(x) == (layout != "contiguous")
    assert (folded.data_ptr() == x.data_ptr()) == frame_major(x)  # a view, or a copy
    back = unfold_frames(folded, 2)
    torch.testing.assert_close(back, x, rtol=0, atol=0)
    if layout != "contiguous":  # the unfolded clip keeps the layout it came in
        assert back.stride() == x.stride()


# (kernel, stride, padding, dilation, groups, bias, time_pads); padding "same" is TF SAME
CONVS = {
    "pointwise": ((1, 1, 1), (1, 1, 1), (0, 0), (1, 1, 1), 1, True, (0, 0)),
    "3x3": ((1, 3, 3), (1, 1, 1), (1, 1), (1, 1, 1), 1, False, (0, 0)),
    "strided-dilated": ((1, 3, 3), (1, 2, 2), (2, 2), (1, 2, 2), 1, True, (0, 0)),
    "asymmetric-1x3": ((1, 1, 3), (1, 1, 1), (0, 1), (1, 1, 1), 1, True, (0, 0)),
    "grouped": ((1, 3, 3), (1, 1, 1), (1, 1), (1, 1, 1), 2, True, (0, 0)),
    "depthwise-same-stride2": ((1, 5, 5), (1, 2, 2), "same", (1, 1, 1), 8, False, "same"),
    "pointwise-same-stride2": ((1, 1, 1), (1, 2, 2), "same", (1, 1, 1), 1, False, "same"),
}


def reference_conv(x: torch.Tensor, weight: torch.Tensor, conv: InflatedConv3d) -> torch.Tensor:
    """F.conv3d with ``conv``'s settings on a contiguous copy, TF SAME spatial padding computed here."""
    x = x.contiguous()
    padding = conv.padding
    if conv.same_padding:
        pads = []
        for size, k, s, d in zip(x.shape[:2:-1], conv.kernel_size[:0:-1], conv.stride[:0:-1], conv.dilation[:0:-1]):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
    return F.conv3d(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", list(CONVS))
def test_time1_conv_matches_conv3d(case: str, layout: str, calls: dict[str, int]) -> None:
    kernel, stride, padding, dilation, groups, bias, time_pads = CONVS[case]
    conv = InflatedConv3d(8, 16, kernel, stride, padding, dilation, groups, bias, time_pads=time_pads)
    x = in_layout(torch.randn(2, 8, 3, 11, 13), layout).requires_grad_(True)
    expected_x = x.detach().clone().requires_grad_(True)
    weight = conv.weight.detach().clone().requires_grad_(True)

    got = conv(x)
    expected = reference_conv(expected_x, weight, conv)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

    grad = torch.randn_like(expected)
    got.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, expected_x.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, weight.grad, rtol=1e-4, atol=1e-4)
    folds = layout != "contiguous" or kernel[1:] != (1, 1)  # a contiguous clip folds for spatial kernels only
    assert calls["conv2d"] == (1 if folds else 0)


@pytest.mark.parametrize("time_pads,kernel", [((1, 1), (3, 3, 3)), ((0, 1), (1, 1, 1)), ((0, 0), (2, 1, 1))])
def test_temporal_conv_does_not_fold(time_pads: tuple[int, int], kernel: tuple[int, int, int],
                                     calls: dict[str, int]) -> None:
    conv = InflatedConv3d(4, 4, kernel, time_pads=time_pads, time_pad_mode="zeros")
    x = in_layout(torch.randn(1, 4, 5, 6, 6), "channels_last_3d")
    expected = F.conv3d(F.pad(x.contiguous(), (0, 0, 0, 0, *time_pads)), conv.weight, conv.bias)
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)
    assert calls["conv2d"] == 0


def test_other_padding_modes_keep_the_3d_op(calls: dict[str, int]) -> None:
    conv = InflatedConv3d(4, 4, (1, 3, 3), padding=(1, 1))
    conv.padding_mode = "reflect"
    x = in_layout(torch.randn(1, 4, 3, 6, 7), "channels_last_3d")
    expected = F.conv3d(F.pad(x.contiguous(), (1, 1, 1, 1, 0, 0), mode="reflect"), conv.weight, conv.bias)
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)
    assert calls["conv2d"] == 0


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_folds_with_the_same_statistics(layout: str, momentum: float | None) -> None:
    bn = InflatedBatchNorm3d(6, momentum=momentum)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.normal_()
    running_mean, running_var = torch.zeros(6), torch.ones(6)
    for step in range(2):  # training: batch statistics over (B, T, H, W), running averages updated
        x = in_layout(torch.randn(2, 6, 3, 5, 4) * 3 + 1, layout)
        factor = 1.0 / (step + 1) if momentum is None else momentum
        expected = F.batch_norm(x.contiguous(), running_mean, running_var, bn.weight, bn.bias, True, factor, bn.eps)
        torch.testing.assert_close(bn(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_mean, running_mean)
    torch.testing.assert_close(bn.running_var, running_var)
    assert int(bn.num_batches_tracked) == 2
    bn.eval()
    expected = F.batch_norm(x.contiguous(), running_mean, running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    torch.testing.assert_close(bn(x), expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_act_folds() -> None:
    bn = BatchNormAct3d(4, act=nn.ReLU())
    bn.eval().running_mean.normal_()
    x = in_layout(torch.randn(1, 4, 3, 5, 5), "frame_major")
    expected = F.relu(F.batch_norm(x.contiguous(), bn.running_mean, bn.running_var, bn.weight, bn.bias, False,
                                   0.0, bn.eps))
    torch.testing.assert_close(bn(x), expected)
    with pytest.raises(ValueError, match="expected a 5D"):
        bn(torch.randn(4, 5))


POOLS = {
    "max-3x3-s2": lambda: InflatedMaxPool3d((1, 3, 3), (1, 2, 2), (1, 1)),
    "max-same-ceil": lambda: InflatedMaxPool3d((1, 3, 3), (1, 2, 2), "same", ceil_mode=True, time_pads="same"),
    "avg-3x3-exclude-pad": lambda: InflatedAvgPool3d((1, 3, 3), (1, 1, 1), (1, 1), count_include_pad=False),
    "avg-2x2-divisor": lambda: InflatedAvgPool3d((1, 2, 2), (1, 2, 2), divisor_override=3),
}


def reference_pool(x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
    x = x.contiguous()
    if isinstance(pool, InflatedMaxPool3d):
        if pool.same_padding:
            x = m3d.pad_same_spatial(x, pool.kernel_size[1:], pool.stride[1:], pool.dilation[1:], float("-inf"))
        return F.max_pool3d(x, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)
    return F.avg_pool3d(x, pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, pool.count_include_pad,
                        pool.divisor_override)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", list(POOLS))
def test_time1_pool_matches_3d_pool(case: str, layout: str, calls: dict[str, int]) -> None:
    pool = POOLS[case]()
    x = in_layout(torch.randn(2, 4, 3, 9, 8), layout)
    torch.testing.assert_close(pool(x), reference_pool(x, pool), rtol=1e-6, atol=1e-6)
    assert calls["max_pool2d"] + calls["avg_pool2d"] == (0 if layout == "contiguous" else 1)


def test_switch_turns_folding_off(calls: dict[str, int]) -> None:
    conv = InflatedConv3d(4, 4, (1, 3, 3), padding=(1, 1))
    x = in_layout(torch.randn(1, 4, 3, 6, 6), "channels_last_3d")
    with frame_folding(False):
        off = conv(x)
        with frame_folding(True):
            conv(x)
        conv(x)
    assert calls["conv2d"] == 1
    torch.testing.assert_close(conv(x), off, rtol=1e-5, atol=1e-5)
    assert calls["conv2d"] == 2


# time 1 in layer1 and layer3 (strided stage), the i3d policy's 3×3×3 in layer2 and layer4
MIXED = {"layer1.*": 1, "layer3.*": {"kernel": 1, "stride": 1}}


def state_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@pytest.fixture(scope="module")
def mixed_models() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model2d = randomize_weights(timm.create_model("resnet10t", num_classes=10).eval(), input_size=(3, 64, 64))
    model3d = inflate_model(model2d, t=6, overrides=MIXED, input_size=(3, 64, 64)).eval()
    return model2d, model3d


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d"])
def test_mixed_model_checks_unchanged_by_folding(mixed_models: tuple[nn.Module, nn.Module], layout: str,
                                                 calls: dict[str, int]) -> None:
    model2d, model3d = mixed_models
    fmt = torch.channels_last_3d if layout == "channels_last_3d" else torch.contiguous_format
    model3d = model3d.to(memory_format=fmt)
    try:
        boring = check_boring_video(model2d, model3d)
        order_clip = torch.randn(1, 3, 6, 64, 64).contiguous(memory_format=fmt)
        before = calls["conv2d"]
        order = check_order_sensitivity(model3d, order_clip)  # the 3D model alone
        folded_calls = calls["conv2d"] - before
        with frame_folding(False):
            boring_3d = check_boring_video(model2d, model3d)
            before = calls["conv2d"]
            order_3d = check_order_sensitivity(model3d, order_clip)
            unfolded_calls = calls["conv2d"] - before
    finally:
        model3d.to(memory_format=torch.contiguous_format)
    assert folded_calls > 0 and unfolded_calls == 0
    assert boring.passed, boring
    assert boring.max_rel_error == pytest.approx(boring_3d.max_rel_error, abs=1e-6)
    assert order.relative_change == pytest.approx(order_3d.relative_change, rel=1e-3, abs=1e-6)
    assert order.relative_change > 1e-3  # layer2's time-3 convs see frame order


def test_state_dict_keys_and_5d_shapes(mixed_models: tuple[nn.Module, nn.Module]) -> None:
    model2d, model3d = mixed_models
    before = state_shapes(model3d)
    with torch.no_grad():
        model3d(torch.randn(1, 3, 6, 64, 64).contiguous(memory_format=torch.channels_last_3d))
    assert state_shapes(model3d) == before  # running folded adds and changes nothing
    shapes2d = state_shapes(model2d)
    assert set(before) == set(shapes2d)
    for key, shape in shapes2d.items():
        if len(shape) == 4:  # conv weights gain the time axis: (O, I, k_t, kh, kw)
            kernel_t = model3d.get_submodule(key.rsplit(".", 1)[0]).kernel_size[0]
            assert before[key] == (shape[0], shape[1], kernel_t, *shape[2:]), key
        else:
            assert before[key] == shape, key
    assert before["layer1.0.conv1.weight"][2] == 1 and before["layer2.0.conv1.weight"][2] == 3


def test_onnx_export_keeps_3d_ops_and_matches_onnxruntime(tmp_path: Path,
                                                          mixed_models: tuple[nn.Module, nn.Module]) -> None:
    import onnx
    import onnxruntime as ort

    from inflate.export import export_onnx

    _, model3d = mixed_models
    report = export_onnx(model3d, tmp_path / "folded.onnx")  # verifies against torch itself
    with frame_folding(False):
        export_onnx(model3d, tmp_path / "unfolded.onnx", verify=False)
    graphs = [onnx.load(str(tmp_path / name)).graph for name in ("folded.onnx", "unfolded.onnx")]
    assert [n.op_type for n in graphs[0].node] == [n.op_type for n in graphs[1].node]
    kernels = [list(a.ints) for n in graphs[0].node if n.op_type == "Conv" for a in n.attribute
               if a.name == "kernel_shape"]
    assert kernels and all(len(k) == 3 for k in kernels)

    clip = torch.randn(2, 3, 5, 64, 64)  # another batch and length than the export's
    with torch.no_grad():
        expected = model3d(clip.contiguous(memory_format=torch.channels_last_3d)).numpy()
    session = ort.InferenceSession(str(tmp_path / "folded.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"clip": clip.numpy()})[0]
    assert report.passed
    assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-5


def test_tracing_sees_the_3d_ops(mixed_models: tuple[nn.Module, nn.Module], calls: dict[str, int]) -> None:
    _, model3d = mixed_models
    clip = torch.randn(1, 3, 4, 64, 64).contiguous(memory_format=torch.channels_last_3d)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model3d, (clip,), check_trace=False)  # no eager re-runs
    assert calls["conv2d"] == 0
    with torch.no_grad():
        torch.testing.assert_close(traced(clip), model3d(clip), rtol=1e-5, atol=1e-5)


# ----- depthwise convolutions with a time kernel: one 2D depthwise convolution per time tap -----

DEPTHWISE_CASES = [  # (time kernel, frames, time pads, pad mode, time dilation, spatial "same")
    (3, 5, (1, 1), "replicate", 1, False), (3, 5, (1, 1), "zeros", 1, False), (7, 4, (3, 3), "replicate", 1, False),
    (7, 4, (3, 3), "zeros", 1, True), (3, 1, (2, 0), "replicate", 1, False), (3, 2, (0, 2), "zeros", 1, False),
    (3, 6, "same", "replicate", 2, False), (2, 3, (0, 1), "replicate", 1, True), (5, 2, (4, 4), "zeros", 1, False),
]


@pytest.fixture
def cpu_taps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The taps as CUDA takes them, on the CPU: in both autograd modes, the forward-convolution
    backward (_DepthwiseConv3d) off."""
    monkeypatch.setitem(m3d._depthwise_taps_on, ("cpu", False), True)
    monkeypatch.setitem(m3d._depthwise_taps_on, ("cpu", True), True)
    monkeypatch.setitem(m3d._depthwise_backward_as_forward_on, "cpu", False)


def _depthwise_against_conv3d(case: tuple, layout: str, count: Callable[[], int]) -> tuple[int, int]:
    """A depthwise convolution of ``case`` run in its default form against autograd through F.conv3d
    (frame_folding(False)): values and input, weight and bias gradients. Returns ``count()`` after
    the default form and after the reference, so that a test sees which form ran."""
    kernel_t, frames, time_pads, mode, dilation, same = case
    torch.manual_seed(0)
    conv = InflatedConv3d(6, 6, (kernel_t, 3, 3), padding="same" if same else (1, 1), dilation=(dilation, 1, 1),
                          groups=6, time_pads=time_pads, time_pad_mode=mode)
    x = in_layout(torch.randn(2, 6, frames, 9, 9), layout)
    x_default, x_3d = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y = conv(x_default)
    after_default = count()
    grad_out = torch.randn_like(y)
    (y * grad_out).sum().backward()
    weight_grad, bias_grad = conv.weight.grad, conv.bias.grad
    conv.zero_grad(set_to_none=True)
    with frame_folding(False):
        reference = conv(x_3d)
    after_reference = count()
    (reference * grad_out).sum().backward()
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_default.grad, x_3d.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weight_grad, conv.weight.grad, rtol=1e-4, atol=1e-4)  # sums over B·T·H·W
    torch.testing.assert_close(bias_grad, conv.bias.grad, rtol=1e-4, atol=1e-4)
    return after_default, after_reference


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
@pytest.mark.parametrize("layout", ["channels_last_3d", "frame_major"])
def test_depthwise_time_taps_match_conv3d(case: tuple, layout: str, calls: dict[str, int], cpu_taps: None) -> None:
    taps, after_reference = _depthwise_against_conv3d(case, layout, lambda: calls["conv2d"])
    assert taps >= 1  # ran as 2D depthwise convolutions, one per tap that reads a real frame
    assert after_reference == taps  # the reference is F.conv3d


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of the InflatedConv3d method ``name``."""
    seen: list[int] = []
    original = getattr(InflatedConv3d, name)

    def spy(self, *args, **kwargs):
        seen.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(InflatedConv3d, name, spy)
    return seen


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_depthwise_gradients_as_forward_convolutions_match_conv3d(case: tuple, layout: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU's training form of a depthwise convolution with a time kernel (_DepthwiseConv3d: its
    input and weight gradients computed as forward convolutions) against autograd through
    F.conv3d, in every layout and time padding."""
    taken = _spy(monkeypatch, "_forward_depthwise")
    after_default, after_reference = _depthwise_against_conv3d(case, layout, lambda: len(taken))
    assert after_default == 1
    assert after_reference == 1  # the reference is autograd through F.conv3d


def test_depthwise_gradients_as_forward_convolutions_pass_gradcheck() -> None:
    """Float64 gradcheck and gradgradcheck (gradient penalties differentiate the backward) of the
    CPU's training form, with time dilation, "same" time pads, a batch of two and asymmetric
    spatial padding; and with only the weight, or only the input, requiring a gradient."""
    torch.manual_seed(0)
    conv = InflatedConv3d(3, 3, (3, 2, 3), padding="same", dilation=(2, 1, 1), groups=3, time_pads="same").double()
    x = torch.randn(2, 3, 5, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv._forward_depthwise, (x,))
    small = torch.randn(1, 3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 1, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda clip, kernel: m3d._DepthwiseConv3d.apply(clip, kernel, (1, 0, 1), (2, 1, 1)),
                                        (small, weight))
    frozen = x.detach()
    y = conv(frozen)
    (weight_grad,) = torch.autograd.grad(y.sum(), conv.weight)
    with frame_folding(False):
        (reference,) = torch.autograd.grad(conv(frozen).sum(), conv.weight)
    torch.testing.assert_close(weight_grad, reference)
    conv.requires_grad_(False)
    (input_grad,) = torch.autograd.grad(conv(x).sum(), x)
    with frame_folding(False):
        (reference,) = torch.autograd.grad(conv(x).sum(), x)
    torch.testing.assert_close(input_grad, reference)


def test_depthwise_on_the_cpu_conv3d_forward_gradients_as_forward_convolutions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU oneDNN's 3D depthwise convolution is the fastest forward and its backward the
    slowest (measured in _DepthwiseConv3d): inference runs conv3d, training the forward-convolution
    backward, never the taps; the same values. Spatial strides, autocast and export tracing keep
    autograd's backward."""
    taps, forwards = _spy(monkeypatch, "_forward_taps"), _spy(monkeypatch, "_forward_depthwise")
    conv = InflatedConv3d(6, 6, (3, 3, 3), padding=(1, 1), groups=6, time_pads=(1, 1))
    x = torch.randn(1, 6, 4, 8, 8)
    with torch.no_grad():
        inference = conv(x)
    assert not taps and not forwards
    training = conv(x)
    assert len(forwards) == 1 and not taps
    torch.testing.assert_close(inference, training.detach(), rtol=1e-5, atol=1e-5)
    InflatedConv3d(6, 6, (3, 3, 3), stride=(1, 2, 2), padding=(1, 1), groups=6, time_pads=(1, 1))(x)
    with torch.autocast("cpu", torch.bfloat16):
        conv(x)
    with frame_folding(False):
        conv(x)
    assert len(forwards) == 1


def test_depthwise_time_taps_only_for_depthwise_time_stride_one(monkeypatch: pytest.MonkeyPatch,
                                                                cpu_taps: None) -> None:
    taps = _spy(monkeypatch, "_forward_taps")
    x = torch.randn(1, 6, 4, 8, 8).contiguous(memory_format=torch.channels_last_3d)
    InflatedConv3d(6, 6, (3, 3, 3), padding=(1, 1), groups=3, time_pads=(1, 1))(x)  # grouped, not depthwise
    InflatedConv3d(6, 6, (3, 3, 3), stride=(2, 1, 1), padding=(1, 1), groups=6, time_pads=(1, 1))(x)
    InflatedConv3d(6, 6, (3, 3, 3), padding=(1, 1), groups=6, time_pads=(1, 1))(x.contiguous())  # not frame-major
    assert not taps
    InflatedConv3d(6, 6, (3, 3, 3), padding=(1, 1), groups=6, time_pads=(1, 1))(x)
    assert len(taps) == 1


# ----- convolutions with a time kernel: each window's frames stacked on the channels, one conv2d -----

STACKED_CASES = [  # (time kernel, frames, time pads, pad mode, time stride, spatial stride, "same", groups)
    (3, 5, (1, 1), "replicate", 1, 1, False, 1), (3, 5, (1, 1), "zeros", 1, 2, False, 1),
    (7, 8, (3, 3), "replicate", 2, 2, False, 1), (2, 4, (0, 1), "zeros", 2, 1, True, 2),
    (3, 1, (2, 0), "replicate", 1, 1, False, 1), (5, 3, (2, 2), "zeros", 1, 1, False, 3),
    (3, 6, "same", "replicate", 2, 1, True, 1), (3, 4, (1, 1), "replicate", 1, 1, False, 6),
    (3, 4, (1, 1), "zeros", 1, 1, False, 2),
]


@pytest.mark.parametrize("case", STACKED_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_time_kernel_as_one_conv2d_over_stacked_frames(case: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Values and gradients as conv3d's (frame_folding(False)), forward under no_grad and training;
    grouped convolutions are not stacked."""
    kernel_t, frames, time_pads, mode, stride_t, stride_s, same, groups = case
    stacked = _spy(monkeypatch, "_forward_stacked")
    torch.manual_seed(0)
    conv = InflatedConv3d(18, 6, (kernel_t, 3, 3), stride=(stride_t, stride_s, stride_s),
                          padding="same" if same else (1, 1), groups=groups, time_pads=time_pads,
                          time_pad_mode=mode).train()
    x = torch.randn(2, 18, frames, 15, 15)
    with torch.no_grad():
        inference = conv(x)
    x_stacked, x_3d = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y = conv(x_stacked)
    assert len(stacked) == (2 if groups == 1 else 0)  # grouped convolutions keep conv3d
    grad_out = torch.randn_like(y)
    (y * grad_out).sum().backward()
    weight_grad, conv.weight.grad = conv.weight.grad, None
    with frame_folding(False):
        reference = conv(x_3d)
    (reference * grad_out).sum().backward()
    torch.testing.assert_close(inference, reference.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_stacked.grad, x_3d.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weight_grad, conv.weight.grad, rtol=1e-4, atol=1e-4)


def test_stacked_frames_only_where_measured_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training only for frames of 7×7 or more; never for inputs of under 16 channels (an RGB stem)
    or frames over 28² (the k_t-fold copy outweighs the gain)."""
    stacked = _spy(monkeypatch, "_forward_stacked")
    conv = InflatedConv3d(16, 4, (3, 3, 3), padding=(1, 1), time_pads=(1, 1))
    conv(torch.randn(1, 16, 4, 4, 4))  # 4×4 frames, training: conv3d (the stacked backward is slower there)
    assert not stacked
    with torch.no_grad():
        conv(torch.randn(1, 16, 4, 4, 4))
        assert len(stacked) == 1
        conv(torch.randn(1, 16, 4, 32, 32))  # frames over 28²
        InflatedConv3d(3, 4, (3, 3, 3), padding=(1, 1), time_pads=(1, 1))(torch.randn(1, 3, 4, 8, 8))  # 3 channels
    assert len(stacked) == 1


# ----- in-place activations after folded layers -----


def _backward_nodes(loss: torch.Tensor) -> set[str]:
    seen, names, stack = set(), set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return names


def test_inplace_activations_after_folds_leave_no_copy_slices() -> None:
    """An in-place ReLU on a folded layer's output (a view) would make autograd clone and copy
    the whole gradient in the backward pass (CopySlices): a quarter of resnet50's training step."""
    torch.manual_seed(0)
    model2d = timm.create_model("resnet10t", num_classes=10)
    model3d = inflate_model(model2d, t=4, overrides={"*": {"kernel": 1, "stride": 1}}, input_size=(3, 64, 64))
    x = torch.randn(2, 3, 4, 64, 64).contiguous(memory_format=torch.channels_last_3d)
    loss = model3d(x).square().mean()
    assert "CopySlices" not in _backward_nodes(loss)
    assert not model3d.layer1[0].act1.inplace and model2d.layer1[0].act1.inplace  # the 2D model is untouched
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model3d.named_parameters()}
    model3d.zero_grad()
    with frame_folding(False):
        model3d(x).square().mean().backward()
    for name, p in model3d.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-5, msg=name)


class _ReadAfterWrite(nn.Module):
    """An in-place ReLU whose input is read again afterwards: the write must stay in place."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bn(self.conv(x))
        y = self.act(b)
        return self.pool(y + b).flatten(1)  # b holds relu(b) by now: 2·relu


def test_inplace_activation_kept_where_its_input_is_read_again() -> None:
    torch.manual_seed(0)
    model2d = randomize_weights(_ReadAfterWrite().eval(), input_size=(3, 16, 16))
    model3d = inflate_model(model2d, t=4, input_size=(3, 16, 16)).eval()
    assert model3d.act.inplace
    image = torch.randn(1, 3, 16, 16)
    clip = image.unsqueeze(2).expand(-1, -1, 4, -1, -1).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        torch.testing.assert_close(model3d(clip), model2d(image.clone()), rtol=1e-4, atol=1e-5)


def test_residual_sum_writes_into_its_dead_operand_only_without_autograd() -> None:
    from inflate.adapters.torch.inplace import add_into_dead

    dead, other = torch.randn(2, 3, 4), torch.randn(3, 1)
    expected = dead + other
    with torch.no_grad():
        out = add_into_dead(dead, other)
        assert out is dead and torch.equal(out, expected)  # written in place
        grows = torch.randn(1, 3, 1)
        assert add_into_dead(grows, other.expand(2, 3, 4)) is not grows  # the sum is larger than the operand
        ints = torch.ones(2, dtype=torch.int64)
        assert add_into_dead(ints, torch.ones(2)).dtype == torch.float32  # promotion: a new tensor
    dead = torch.randn(2, 3, 4)
    assert add_into_dead(dead, other) is not dead  # autograd on: out of place


def test_residual_sums_of_resnet_blocks_run_in_place_at_inference() -> None:
    """ResNet's ``x += shortcut`` (traced by fx as ``x + shortcut``) writes into the block's last
    batch norm output under no_grad, with the same logits as the out-of-place sums that autograd
    sees; training still backpropagates."""
    torch.manual_seed(0)
    model2d = randomize_weights(timm.create_model("resnet10t", num_classes=10).eval(), input_size=(3, 64, 64))
    model3d = inflate_model(model2d, t=4, overrides={"*": {"kernel": 1, "stride": 1}}, input_size=(3, 64, 64)).eval()
    assert "add_into_dead" in type(model3d)._inflated_code
    clip = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        in_place = model3d(clip)
    out_of_place = model3d(clip)  # autograd records: every sum out of place
    torch.testing.assert_close(in_place, out_of_place.detach(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # and the 2D model on each frame: time-1 layers do the 2D work
        frames = model2d(clip.transpose(1, 2).flatten(0, 1)).unflatten(0, (2, 4)).mean(dim=1)
    torch.testing.assert_close(in_place, frames, rtol=1e-4, atol=1e-5)
    out_of_place.square().mean().backward()


def test_convnext_training_step_matches_conv3d_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole ConvNeXt under the I3D policy (7×7×7 depthwise convolutions): the CPU's training step,
    whose depthwise gradients are forward convolutions, gives the loss and every parameter's
    gradient of autograd through the plain 3D ops (frame_folding(False))."""
    forwards = _spy(monkeypatch, "_forward_depthwise")
    torch.manual_seed(0)
    model2d = randomize_weights(timm.create_model("convnext_atto", num_classes=5), input_size=(3, 64, 64))
    model3d = inflate_model(model2d, t=8, input_size=(3, 64, 64)).train()
    clip, labels = torch.randn(2, 3, 8, 64, 64), torch.tensor([1, 3])

    def gradients() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model3d.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model3d(clip), labels)
        loss.backward()
        return loss.detach(), {name: p.grad.clone() for name, p in model3d.named_parameters()}

    loss, grads = gradients()
    depthwise = sum(1 for m in model3d.modules() if isinstance(m, InflatedConv3d) and m.groups > 1)
    assert depthwise > 0 and len(forwards) == depthwise
    with frame_folding(False):
        loss_3d, grads_3d = gradients()
    assert len(forwards) == depthwise  # the reference ran autograd through F.conv3d
    torch.testing.assert_close(loss, loss_3d, rtol=1e-5, atol=1e-6)
    assert grads.keys() == grads_3d.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_3d[name], rtol=1e-3, atol=1e-5, msg=name)


def test_depthwise_gradients_as_forward_convolutions_under_torch_func(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-sample gradients (torch.func.vmap over torch.func.grad, as Opacus-style training takes
    them) through the CPU's training form equal those through plain conv3d."""
    from torch.func import functional_call, grad, vmap

    taken = _spy(monkeypatch, "_forward_depthwise")
    torch.manual_seed(0)
    conv = InflatedConv3d(4, 4, (3, 3, 3), padding=(1, 1), groups=4, time_pads=(1, 1))
    clips = torch.randn(3, 4, 5, 6, 6)
    params = {name: p.detach() for name, p in conv.named_parameters()}

    def loss(parameters: dict[str, torch.Tensor], clip: torch.Tensor) -> torch.Tensor:
        return (functional_call(conv, parameters, (clip.unsqueeze(0),)) ** 2).sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0))(params, clips)
    assert taken
    with frame_folding(False):
        reference = vmap(grad(loss), in_dims=(None, 0))(params, clips)
    for name in params:
        assert per_sample[name].shape == (3, *params[name].shape)
        torch.testing.assert_close(per_sample[name], reference[name], rtol=1e-4, atol=1e-4)
