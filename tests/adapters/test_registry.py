"""The handler registry: one table filled by one decorator, every handler backed by a core rule,
every inflation reported going through that rule, and a new op added by one rule and one handler
(nn.ConvTranspose2d, rule ``conv_transpose``)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from inflate import inflate_model
from inflate.adapters.torch.handlers.conv import InflatedConvTranspose3d
from inflate.adapters.torch.registry import _HANDLERS, HandlerKey, handler_for, handles, list_handlers
from inflate.core import RuleRegistryError, get_rule, list_rules
from inflate.core import rules as core_rules
from inflate.testing import randomize_weights
from tests.helpers import assert_boring_equal

# ----- the registry -----


class _NewOp(nn.Module):
    def forward(self, x):
        return x


@pytest.fixture
def scratch_registry():
    """Undo registrations a test makes."""
    before = dict(_HANDLERS)
    yield
    _HANDLERS.clear()
    _HANDLERS.update(before)


def test_registering_a_target_twice_raises(scratch_registry) -> None:
    handles("pointwise", _NewOp)(lambda rw, node: None)
    with pytest.raises(RuleRegistryError, match=r"a handler for .*_NewOp is already registered"):
        handles("conv", _NewOp)(lambda rw, node: None)
    with pytest.raises(RuleRegistryError, match=r"a handler for F\.gelu is already registered"):
        handles("pointwise", F.gelu)


def test_a_handler_needs_a_core_rule(scratch_registry) -> None:
    with pytest.raises(RuleRegistryError, match=r"op kind 'deconv': the core has no rule"):
        handles("deconv", _NewOp)


def test_every_handler_applies_a_registered_rule() -> None:
    kinds = {rule.key.kind for rule in list_rules()}
    handlers = list_handlers()
    assert len(handlers) == len({h.key for h in handlers}) > 200
    assert {h.kind for h in handlers} <= kinds
    assert handler_for("call_function", F.gelu).kind == "pointwise"
    assert handler_for("call_module", nn.ConvTranspose2d).kind == "conv_transpose"
    assert handler_for("call_method", "view").kind == "axis"
    assert handler_for("call_module", nn.Module) is None
    assert HandlerKey("call_module", nn.Conv2d) in _HANDLERS


# ----- every inflation goes through its rule -----

@pytest.fixture
def described(monkeypatch):
    """Wrap every registered rule so that its ``describe`` calls are logged as (kind, path)."""
    calls: list[tuple[str, str]] = []

    def wrap(rule):
        def describe(op, time):
            calls.append((op.kind, op.path))
            return rule.describe(op, time)
        return dataclasses.replace(rule, describe=describe)

    monkeypatch.setattr(core_rules, "_RULES", {key: wrap(rule) for key, rule in core_rules._RULES.items()})
    return calls


def _assert_rules_consulted(report, calls: list[tuple[str, str]]) -> None:
    inflated = report.inflated
    assert inflated
    for record in inflated:
        assert record.kind, record
        matching = [path for kind, path in calls if kind == record.kind
                    and (path == record.path or path.startswith(record.path + "."))]
        assert matching, f"{record.path} is reported inflated by {record.kind!r}, whose rule was never asked"


def test_resnet_inflation_consults_the_rule_of_every_inflated_op(described) -> None:
    _, report = inflate_model(timm.create_model("resnet18").eval(), t=4, input_size=(3, 64, 64),
                              return_report=True)
    _assert_rules_consulted(report, described)
    kinds = {record.kind for record in report.inflated}
    assert kinds == {"conv", "max_pool", "adaptive_avg_pool"}
    # per-frame ops with a rule go through it as well
    assert sum(kind == "batch_norm" for kind, _ in described) == 20


def test_vit_inflation_consults_the_rule_of_every_inflated_op(described) -> None:
    model2d = timm.create_model("vit_tiny_patch16_224", img_size=64, depth=2).eval()
    _, report = inflate_model(model2d, t=4, return_report=True)
    _assert_rules_consulted(report, described)
    assert {record.kind for record in report.inflated} == {"patch_embed", "attention"}
    embed = next(r for r in report.inflated if r.kind == "patch_embed")
    assert (embed.time_kernel, embed.time_stride, embed.init) == (2, 2, "tile")  # the tubelet's init is shown


# ----- a new op: nn.ConvTranspose2d through one rule and one handler -----

class Decoder(nn.Module):
    """A small decoder: transposed convs upsample space (4×4 stride 2, 3×3 stride 1 with groups)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.refine = nn.ConvTranspose2d(6, 4, 3, padding=1, groups=2)
        self.up2 = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, bias=False)

    def forward(self, x):
        return self.up2(F.relu(self.refine(F.relu(self.bn(self.up(F.relu(self.conv(x))))))))


def _decoder() -> nn.Module:
    return randomize_weights(Decoder().eval())


def test_conv_transpose_inflates_and_matches_2d_on_a_boring_clip() -> None:
    """Replicate time padding: every output frame of a repeated-frame clip is the 2D output."""
    model3d = assert_boring_equal(_decoder(), 5, torch.randn(2, 3, 7, 9), atol=1e-5)
    up = model3d.up
    assert type(up) is InflatedConvTranspose3d
    assert up.kernel_size == (4, 4, 4) and up.stride == (1, 2, 2) and up.output_padding == (0, 0, 0)
    report = model3d.inflation.report
    record = next(r for r in report.layers if r.path == "up")
    assert (record.kind, record.how, record.time_kernel, record.init) == ("conv_transpose", "inflated", 4, "tile")


@pytest.mark.parametrize("time_kernel", [2, 3, 4])
def test_center_init_transposed_conv_sees_the_current_frame(time_kernel: int) -> None:
    """With ``center`` only the middle slice is non-zero: every output frame must be the 2D layer on
    that same input frame, whatever the clip (the odd padding frame sits in front)."""
    layer2d = randomize_weights(nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1)).eval())
    model3d = inflate_model(layer2d, t=6, init="center", input_size=(3, 5, 5),
                            overrides={"0": {"kernel": time_kernel}}).eval()
    clip = torch.randn(1, 3, 6, 5, 5)
    with torch.no_grad():
        got = model3d(clip)
        expected = torch.stack([layer2d(clip[:, :, step]) for step in range(6)], dim=2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_conv_transpose_refuses_a_time_stride() -> None:
    from inflate import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"transposed conv 'up'.*temporal stride \(2\)"):
        inflate_model(_decoder(), t=4, input_size=(3, 7, 9), overrides={"up": {"kernel": 3, "stride": 2}})


def test_weight_file_gives_a_transposed_conv_the_kernels_of_its_rule() -> None:
    """A weight file cannot tell a transposed conv from a conv; the conv_transpose rule maps weights
    exactly as the conv rule (the odd time-padding frame goes in front instead), so the file route
    gives the torch adapter's kernels, with a target and with the policy alone."""
    from inflate.adapters.safetensors import inflate_state_dict

    model2d = _decoder()
    for init in ("tile", "center"):
        model3d = inflate_model(model2d, t=4, init=init, input_size=(3, 7, 9),
                                overrides={"up": 2, "refine": 4})
        state3d = model3d.state_dict()
        for target in (state3d, None):
            out = inflate_state_dict(model2d.state_dict(), 4, init=init, target=target,
                                     overrides=None if target is not None else {"up": 2, "refine": 4})
            for key in ("up.weight", "refine.weight", "up2.weight"):
                torch.testing.assert_close(out[key], state3d[key], atol=0, rtol=0, msg=f"{key} ({init})")


def test_conv_transpose_through_onnx(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from inflate.adapters.onnx import inflate_onnx

    model2d = _decoder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model2d, (torch.randn(1, 3, 7, 9),), str(tmp_path / "2d.onnx"), dynamo=False,
                          input_names=["image"], output_names=["out"], opset_version=17)
    for pad_mode in ("replicate", "zeros"):
        model3d_onnx = inflate_onnx(tmp_path / "2d.onnx", t=5, init="center", pad_mode=pad_mode)
        onnx.checker.check_model(model3d_onnx, full_check=True)
        assert any(n.op_type == "ConvTranspose" for n in model3d_onnx.graph.node)
        session = ort.InferenceSession(model3d_onnx.SerializeToString(), providers=["CPUExecutionProvider"])
        clip = np.random.default_rng(0).standard_normal((1, 3, 5, 7, 9)).astype(np.float32)
        with torch.no_grad():
            reference = inflate_model(model2d, t=5, init="center", pad_mode=pad_mode,
                                      input_size=(3, 7, 9)).eval()(torch.from_numpy(clip)).numpy()
        got = session.run(None, {"image": clip})[0]
        np.testing.assert_allclose(got, reference, atol=1e-5, rtol=1e-4)


def test_conv_transpose_is_listed_with_its_handler() -> None:
    from typer.testing import CliRunner

    from inflate.cli.app import app

    result = CliRunner().invoke(app, ["list", "--rules", "--json"])
    assert result.exit_code == 0, result.output
    import json

    rules = json.loads(result.output)["rules"]
    assert rules["conv_transpose"] == get_rule("conv_transpose").doc
