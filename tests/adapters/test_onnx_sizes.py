"""The frame size of ``export_onnx``'s files: height and width are dynamic axes where the
exported graph follows the size (CNNs with global pooling, TF-SAME padding computed in the
graph), and stay at the example size, with the reason in the report and the file's
metadata, where it does not (a ViT's position table resampled in Python).

Every size is checked in onnxruntime against the torch 3D model, and on boring clips against
the 2D timm model itself."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import timm
import torch
from torch import nn

from inflate import InflateError, inflate_model
from inflate.export import ONNX_METADATA_KEY, OnnxReport, export_onnx, inspect_file
from inflate.testing import randomize_weights

T = 4
# test_efficientnet with TF-SAME padding: Conv2dSame layers whose pads depend on the frame size
# (odd sizes pad differently from even ones after each stride), as tf_efficientnet_lite0's do.
SAME_CNN = ("test_efficientnet", {"pad_type": "same"})


def _models(name: str, **kwargs: Any) -> tuple[nn.Module, nn.Module]:
    model2d = randomize_weights(timm.create_model(name, **kwargs).eval(), seed=0)
    return model2d, inflate_model(model2d, t=T).eval()


class Exported:
    def __init__(self, name: str, kwargs: dict[str, Any], folder: Path) -> None:
        self.model2d, self.model3d = _models(name, **kwargs)
        self.path = folder / f"{name}.onnx"
        self.report: OnnxReport = export_onnx(self.model3d, self.path)
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])

    def run(self, clip: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {"clip": clip.numpy()})[0]

    def input_dims(self) -> list[Any]:
        dims = onnx.load(str(self.path)).graph.input[0].type.tensor_type.shape.dim
        return [d.dim_param or d.dim_value for d in dims]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Exported]:
    cache: dict[str, Exported] = {}

    def get(name: str, **kwargs: Any) -> Exported:
        if name not in cache:
            cache[name] = Exported(name, kwargs, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


def _relative(got: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(got - reference).max() / np.abs(reference).max())


def _clip(height: int, width: int, seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, T, height, width, generator=torch.Generator().manual_seed(seed))


CNNS = [pytest.param(*SAME_CNN, id="test_efficientnet-same"),
        pytest.param("tf_efficientnet_lite0", {}, marks=pytest.mark.slow, id="tf_efficientnet_lite0"),
        pytest.param("resnet34", {}, marks=pytest.mark.slow, id="resnet34")]


@pytest.mark.parametrize("name, kwargs", CNNS)
def test_cnn_export_has_dynamic_height_and_width(exported: Callable[..., Exported], name: str,
                                                 kwargs: dict[str, Any]) -> None:
    model = exported(name, **kwargs)
    assert model.report.passed and model.report.dynamic_size and model.report.fixed_size_reason == ""
    assert model.input_dims() == ["batch", 3, "time", "height", "width"]
    assert model.report.size_checks and model.report.size_checks[0][0][3:] != model.report.clip_shape[3:]
    meta = inspect_file(model.path)["export"]
    assert meta == {"dynamic_axes": {"0": "batch", "2": "time", "3": "height", "4": "width"},
                    "example_size": list(model.report.clip_shape[3:]), "fixed_size_reason": None}


@pytest.mark.parametrize("name, kwargs", CNNS)
def test_cnn_export_runs_at_112_and_224_as_torch_does(exported: Callable[..., Exported], name: str,
                                                      kwargs: dict[str, Any]) -> None:
    """onnxruntime against the torch 3D model at 112², 224² and an odd, non-square size (where
    TF-SAME pads differ from the example size's), and on boring clips against the 2D model."""
    model = exported(name, **kwargs)
    for height, width in ((112, 112), (224, 224), (97, 131)):
        clip = _clip(height, width, seed=height)
        with torch.no_grad():
            expected = model.model3d(clip).numpy()
            image = clip[:, :, 0]
            expected2d = model.model2d(image).numpy()
        error = _relative(model.run(clip), expected)
        boring = _relative(model.run(image.unsqueeze(2).expand(-1, -1, T, -1, -1).contiguous()), expected2d)
        print(f"\n{name} at {height}x{width}: onnxruntime vs torch 3D {error:.2g}, boring clip vs 2D {boring:.2g}")
        assert error <= 1e-4, (height, width)
        assert boring <= 1e-4, (height, width)


def test_pads_frozen_by_the_exporter_are_caught_and_the_size_kept(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Where onnxruntime runs another size but gives other numbers (TF-SAME pads turned into
    constants by the tracer, as before they were computed in the graph), the export keeps the
    example size instead of writing a file that is silently wrong at other sizes."""
    from inflate.adapters.torch import modules

    same_pads = modules._same_pads
    monkeypatch.setattr(modules, "_same_pads", lambda size, *rest: same_pads(int(size), *rest))
    model2d, model3d = _models(SAME_CNN[0], **SAME_CNN[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about int(tensor): that is the point here
        report = export_onnx(model3d, tmp_path / "frozen.onnx")
    assert not report.dynamic_size and report.passed
    assert "onnxruntime differs from torch by" in report.fixed_size_reason
    dims = onnx.load(str(tmp_path / "frozen.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "time", *report.clip_shape[3:]]
    monkeypatch.undo()
    assert export_onnx(model3d, tmp_path / "fixed.onnx").dynamic_size  # the same model, pads in the graph


VITS = [pytest.param("test_vit", id="test_vit"),
        pytest.param("vit_tiny_patch16_224", marks=pytest.mark.slow, id="vit_tiny_patch16_224")]


@pytest.mark.parametrize("name", VITS)
def test_vit_export_keeps_its_size_and_says_why(exported: Callable[..., Exported], name: str) -> None:
    model = exported(name)
    size = model.report.clip_shape[3]
    assert not model.report.dynamic_size and model.report.passed
    assert "position embeddings" in model.report.fixed_size_reason
    assert model.input_dims() == ["batch", 3, "time", size, size]
    proto = onnx.load(str(model.path))
    assert ONNX_METADATA_KEY in {p.key for p in proto.metadata_props}
    meta = inspect_file(model.path)["export"]
    assert meta["dynamic_axes"] == {"0": "batch", "2": "time"}
    assert meta["fixed_size_reason"] == model.report.fixed_size_reason
    clip = _clip(size, size, seed=5)
    with torch.no_grad():
        expected = model.model3d(clip).numpy()
    assert _relative(model.run(clip), expected) <= 1e-4
    with pytest.raises(Exception, match="[Ii]nvalid dimensions|Got invalid dimensions"):  # declared, not silently wrong
        model.run(_clip(112, 112, seed=6))


def test_dynamic_size_true_refuses_a_graph_that_does_not_follow_the_size(tmp_path: Path) -> None:
    _, model3d = _models("test_vit")
    with pytest.raises(InflateError, match="does not follow the frame size.*position embeddings"):
        export_onnx(model3d, tmp_path / "vit.onnx", dynamic_size=True)
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left


def test_example_size_and_fixed_size_on_request(tmp_path: Path) -> None:
    """size= sets the example clip; dynamic_size=False keeps it and says so."""
    model2d, model3d = _models(*SAME_CNN[:1], **SAME_CNN[1])
    report = export_onnx(model3d, tmp_path / "fixed.onnx", size=(96, 128), dynamic_size=False)
    assert report.clip_shape == (1, 3, T, 96, 128) and not report.dynamic_size
    assert report.fixed_size_reason == "fixed on request (dynamic_size=False)"
    assert inspect_file(tmp_path / "fixed.onnx")["inputs"] == ["clip[batch, 3, time, 96, 128]"]
    session = ort.InferenceSession(str(tmp_path / "fixed.onnx"), providers=["CPUExecutionProvider"])
    clip = _clip(96, 128, seed=7, batch=1)
    with torch.no_grad():
        expected = model3d(clip).numpy()
    assert _relative(session.run(None, {"clip": clip.numpy()})[0], expected) <= 1e-4


@pytest.mark.slow
def test_dynamo_exporter_keeps_the_example_size_unless_asked(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    _, model3d = _models("test_vit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_onnx(model3d, tmp_path / "fixed.onnx", exporter="dynamo")
    assert report.passed and not report.dynamic_size and not report.size_checks
    assert report.fixed_size_reason.startswith("the dynamo exporter keeps the example size unless asked")
    assert inspect_file(tmp_path / "fixed.onnx")["export"]["fixed_size_reason"] == report.fixed_size_reason
    # One self-contained file: the dynamo exporter's external "<temporary>.data" is not left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.onnx"]
