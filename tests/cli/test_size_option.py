"""`inflate convert/check --size H W` (and timm's `--input-size C H W`): the frame size of the
sample clip that traces the model, checks it and is the ONNX export's example input. Bad
values give one line and exit code 2, and leave nothing behind."""

from __future__ import annotations

import json
import os
import shlex
import warnings
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
from inflate.testing import randomize_weights

CNN, VIT = "test_efficientnet", "test_vit"
BAD_INPUT = 2
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2D CNN's weights (non-default batch-norm statistics), so a test can rebuild the
    same 3D model in Python."""
    path = tmp_path_factory.mktemp("weights") / "cnn.pth"
    torch.save(randomize_weights(timm.create_model(CNN).eval(), seed=0).state_dict(), path)
    return path


def _reference(weights: Path, size: tuple[int, int]) -> torch.nn.Module:
    model2d = timm.create_model(CNN)
    model2d.load_state_dict(torch.load(weights, weights_only=True))
    return inflate_model(model2d.eval(), t=2, input_size=(3, *size)).eval()


def test_convert_records_the_size_and_rebuilds_at_it(tmp_path: Path, weights: Path) -> None:
    out = tmp_path / "cnn.safetensors"
    result = invoke("convert", CNN, "-t", 2, "-w", weights, "--size", 96, 128, "-o", out)
    assert result.exit_code == 0, result.output
    info = json.loads(invoke("inspect", out, "--json").output)
    assert info["metadata"]["input_size"] == [3, 96, 128]
    loaded = load_inflated(out)
    assert loaded.inflation.input_size == (3, 96, 128)
    clip = torch.randn(1, 3, 2, 96, 128)
    with torch.no_grad():
        assert torch.equal(loaded(clip), _reference(weights, (96, 128))(clip))


def test_input_size_is_the_same_as_size(tmp_path: Path) -> None:
    out = tmp_path / "cnn.safetensors"
    assert invoke("convert", CNN, "-t", 2, "--input-size", 3, 80, 64, "-o", out).exit_code == 0
    assert json.loads(invoke("inspect", out, "--json").output)["metadata"]["input_size"] == [3, 80, 64]


def test_convert_onnx_at_size_runs_at_112_and_224(tmp_path: Path, weights: Path) -> None:
    out = tmp_path / "cnn.onnx"
    result = invoke("convert", CNN, "-t", 2, "-w", weights, "--size", 112, 112, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["onnx_dynamic_size"] is True and payload["onnx_fixed_size_reason"] is None
    assert payload["onnx_input"] == "batch×3×time×height×width" and payload["onnx_max_rel_diff"] <= 1e-4
    assert json.loads(invoke("inspect", out, "--json").output)["export"]["example_size"] == [112, 112]
    reference = _reference(weights, (112, 112))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for size in (112, 224):
        clip = torch.randn(2, 3, 2, size, size)
        with torch.no_grad():
            expected = reference(clip).numpy()
        got = session.run(None, {"clip": clip.numpy()})[0]
        assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4, size


def test_convert_vit_to_onnx_says_why_its_size_is_fixed(tmp_path: Path) -> None:
    result = invoke("convert", VIT, "-t", 2, "-o", tmp_path / "vit.onnx")
    assert result.exit_code == 0, result.output
    assert "ONNX input clip[batch×3×time×160×160]; height and width fixed at 160×160:" in result.output
    assert "position embeddings" in result.output
    assert "height and width fixed: onnxruntime cannot run it at" in invoke("inspect", tmp_path / "vit.onnx").output


def test_check_runs_at_the_size(tmp_path: Path) -> None:
    result = invoke("check", CNN, "-t", 2, "--size", 64, 80, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["size"] == [64, 80] and payload["passed"]
    assert payload["boring_video"]["max_rel_error"] <= 1e-4


@pytest.fixture(scope="module")
def fixed_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D graph exported at a fixed 64×64."""
    path = tmp_path_factory.mktemp("onnx") / "cnn64.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(timm.create_model(CNN).eval(), (torch.randn(1, 3, 64, 64),), str(path), dynamo=False)
    return path


def test_onnx_input_with_dynamic_size_is_checked_at_size(tmp_path: Path) -> None:
    path = tmp_path / "dynamic.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(randomize_weights(timm.create_model(CNN).eval()), (torch.randn(1, 3, 64, 64),), str(path),
                          dynamo=False, input_names=["image"], dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}})
    result = invoke("convert", path, "-t", 2, "--size", 72, 56, "-o", tmp_path / "out.onnx", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["boring_video_max_rel_error"] <= 1e-4


# (id, arguments with {in} and {out} placeholders, what the one line must name)
CASES = [
    ("size-zero", "convert CNN -t 2 --size 0 64 -o {out}/o.safetensors",
     "--size 0 64: height and width must be positive"),
    ("size-negative", "check CNN -t 2 --size 64 -8", "--size 64 -8: height and width must be positive"),
    ("size-not-an-integer", "convert CNN -t 2 --size 64 1.5 -o {out}/o.safetensors", "'--size'"),
    ("size-one-value", "check CNN -t 2 --size 64", "'--size' requires 2 arguments"),
    ("size-and-input-size", "convert CNN -t 2 --size 64 64 --input-size 3 64 64 -o {out}/o.safetensors",
     "give --size H W or --input-size C H W, not both"),
    ("input-size-two-values", "check CNN -t 2 --input-size 64 64", "'--input-size' requires 3 arguments"),
    ("input-size-zero-channels", "check CNN -t 2 --input-size 0 64 64", "--input-size 0 64 64: channels"),
    ("input-size-wrong-channels", "convert CNN -t 2 --input-size 1 64 64 -o {out}/o.safetensors",
     "--input-size 1 64 64: test_efficientnet takes 3-channel input"),
    ("size-below-the-minimum", "convert inception_v3 -t 2 --size 64 64 -o {out}/o.onnx",
     "--size 64 64: inception_v3 does not run on 64×64 images"),
    ("size-vit-fixed-grid", "check vit_tiny_patch16_224 -t 2 --size 112 112",
     "--size 112 112: vit_tiny_patch16_224 does not run on 112×112 images (Input height (112) doesn't match model"),
    ("size-preset-safetensors", "convert i3d_rgb -t 16 --size 224 224 -o {out}/o.safetensors",
     "--size does not apply to the ready 3D model i3d_rgb written as safetensors"),
    ("size-onnx-fixed-graph", "convert {in} -t 2 --size 112 112 -o {out}/o.onnx",
     "was exported for 64×64 images only; use --size 64 64"),
]


@pytest.mark.parametrize("template, culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_size(fixed_onnx: Path, tmp_path: Path, template: str, culprit: str) -> None:
    names = {"CNN": CNN, "VIT": VIT}
    argv = [names.get(part) or part.replace("{in}", str(fixed_onnx)).replace("{out}", str(tmp_path))
            for part in shlex.split(template)]
    result = runner.invoke(app, argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == BAD_INPUT, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert culprit in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "unexpected" not in lines[0]
    assert result.stdout == ""
    assert os.listdir(tmp_path) == []
