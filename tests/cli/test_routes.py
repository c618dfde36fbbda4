"""Options reach the route they apply to: --init left out means the policy's own init, on
every command that inflates; the ONNX route honours --no-verify and reports the policy it
used. (Options that do not apply are refused: see test_bad_inputs.py.)"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from inflate.cli import app
from inflate.core import Policy, list_policies, register_policy

CNN = "test_efficientnet"
CENTER_POLICY = "test_routes_center"  # a policy whose own init is "center"

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def center_policy() -> None:
    if CENTER_POLICY not in list_policies():
        register_policy(Policy(CENTER_POLICY, init="center", description="i3d with center init (tests)"))


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _meta(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["inflate"])


@pytest.mark.parametrize("policy,init,expected", [(CENTER_POLICY, None, "center"), (CENTER_POLICY, "tile", "tile"),
                                                  (None, None, "tile")],
                         ids=["policy-own", "explicit-init-wins", "default-policy"])
def test_convert_init_defaults_to_the_policy_own(tmp_path: Path, policy, init, expected) -> None:
    args = ["convert", CNN, "-t", 2, "-o", tmp_path / "o.safetensors", "--json"]
    args += ["--policy", policy] if policy else []
    args += ["--init", init] if init else []
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["init"] == expected
    assert _meta(tmp_path / "o.safetensors")["init"] == expected  # what the file rebuilds with


def test_weights_init_defaults_to_the_policy_own(tmp_path: Path) -> None:
    kernel = torch.randn(4, 3, 3, 3)
    save_file({"conv.weight": kernel}, str(tmp_path / "conv.safetensors"))
    result = invoke("weights", tmp_path / "conv.safetensors", tmp_path / "o.safetensors", "-t", 4,
                    "--policy", CENTER_POLICY)
    assert result.exit_code == 0, result.output
    with safe_open(str(tmp_path / "o.safetensors"), framework="pt") as handle:
        inflated = handle.get_tensor("conv.weight")
    # center init (computed here by hand): the 2D kernel in the middle slice, zeros elsewhere
    expected = torch.zeros(4, 3, 3, 3, 3)
    expected[:, :, 1] = kernel
    torch.testing.assert_close(inflated, expected, rtol=0, atol=0)
    assert "init center" in result.output


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "conv.onnx"
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False, input_names=["image"],
                          opset_version=17)
    return path


def test_onnx_route_honours_no_verify_and_reports_its_policy(tmp_path: Path, conv_onnx: Path) -> None:
    import onnx

    result = invoke("convert", conv_onnx, "-t", 4, "--policy", CENTER_POLICY, "--no-verify", "-o", tmp_path / "a.onnx")
    assert result.exit_code == 0, result.output
    assert "not verified" in result.output and f"policy {CENTER_POLICY}, init center" in result.output
    meta = json.loads(next(p.value for p in onnx.load(str(tmp_path / "a.onnx")).metadata_props if p.key == "inflate"))
    assert (meta["kind"], meta["policy"], meta["init"]) == ("onnx", CENTER_POLICY, "center")

    result = invoke("convert", conv_onnx, "-t", 4, "-o", tmp_path / "b.onnx", "--json")
    payload = json.loads(result.stdout)
    assert result.exit_code == 0 and payload["passed"] and payload["boring_video_max_rel_error"] <= 1e-4
    assert np.isfinite(payload["boring_video_max_rel_error"])
