"""The ONNX adapter on graphs as ``torch.onnx.export`` writes them with its default settings,
on the TorchScript exporter (``dynamo=False``: fixed batch and size, BN folded into convs,
identical initializers deduplicated behind Identity nodes) and, where onnxscript is installed,
with every default (the dynamo exporter since torch 2.9; marked slow): resnet34, tf_efficientnet_lite0 (TF-SAME padding
computed at run time by Shape/Gather/arithmetic subgraphs) and vit_tiny_patch16_224
(MatMul/Softmax/Transpose/Reshape/LayerNormalization, class token, position embedding).

Each 3D graph must give onnxruntime's 2D output on a boring clip (the 2D graph run on the
single frame), reordering the frames must change a CNN's output, and resnet34's 3D graph
must run at 112² and 224² (the 112² result checked against the 2D timm model in torch)."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import timm
import torch
from onnx import TensorProto, helper, numpy_helper

from inflate import InvalidInputError
from inflate.adapters.onnx import inflate_onnx
from inflate.testing import randomize_weights

T = 4
SIZE = 224


def _export(model: torch.nn.Module, path: Path, **options: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, SIZE, SIZE),), str(path), dynamo=False, **options)


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = randomize_weights(timm.create_model(name, pretrained=False).eval(), seed=0)
    if name == "resnet34":
        # Two blocks with the same folded kernel: the exporter keeps one initializer and
        # feeds both convs through Identity nodes (timm's zero-initialised last BN does the
        # same on a fresh model, for every block at once).
        with torch.no_grad():
            model.layer1[2].conv2.load_state_dict(model.layer1[1].conv2.state_dict())
            model.layer1[2].bn2.load_state_dict(model.layer1[1].bn2.state_dict())
    return model


class Exported:
    """One timm model, its default ONNX export, and the inflated graph (built once per module)."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.torch_model = _model(name)
        self.path = folder / f"{name}.onnx"
        _export(self.torch_model, self.path)
        self.graph2d = onnx.load(str(self.path))
        self.graph3d = inflate_onnx(self.path, t=T)
        self.session2d = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.session3d = ort.InferenceSession(self.graph3d.SerializeToString(), providers=["CPUExecutionProvider"])

    def run2d(self, image: np.ndarray) -> np.ndarray:
        return self.session2d.run(None, {self.session2d.get_inputs()[0].name: image})[0]

    def run3d(self, clip: np.ndarray) -> np.ndarray:
        return self.session3d.run(None, {self.session3d.get_inputs()[0].name: clip})[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cache: dict[str, Exported] = {}

    def get(name: str) -> Exported:
        if name not in cache:
            cache[name] = Exported(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


def _relative(got: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(got - reference).max() / np.abs(reference).max())


def _image(size: int = SIZE, seed: int = 0, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


MODELS = ["resnet34", "tf_efficientnet_lite0", "vit_tiny_patch16_224"]


@pytest.mark.parametrize("name", MODELS)
def test_default_export_matches_2d_graph_on_boring_clip(exported: Any, name: str) -> None:
    model = exported(name)
    image = _image()
    out2d = model.run2d(image)
    out3d = model.run3d(np.repeat(image[:, :, None], T, axis=2))
    error = _relative(out3d, out2d)
    print(f"\n{name}: boring clip vs onnxruntime 2D {error:.2g}")
    assert out3d.shape == out2d.shape
    assert error <= 1e-4
    assert len(model.graph3d.graph.input[0].type.tensor_type.shape.dim) == 5


def test_resnet34_kernels_behind_identity_nodes_are_inflated(exported: Any) -> None:
    model = exported("resnet34")
    identity_outputs = {o for n in model.graph2d.graph.node if n.op_type == "Identity" for o in n.output}
    shared = [n for n in model.graph2d.graph.node if n.op_type == "Conv" and n.input[1] in identity_outputs]
    assert shared, "the export no longer routes kernels through Identity nodes; the test lost its subject"
    kernels = {i.name: numpy_helper.to_array(i) for i in model.graph3d.graph.initializer}
    convs = [n for n in model.graph3d.graph.node if n.op_type == "Conv"]
    assert len(convs) == 36 and all(kernels[c.input[1]].ndim == 5 for c in convs)
    assert not [n for n in model.graph3d.graph.node if n.op_type == "Identity"]  # pruned with the 2D kernels


@pytest.mark.parametrize("name", ["resnet34", "tf_efficientnet_lite0", "vit_tiny_patch16_224"])
def test_reordering_frames_changes_the_output(exported: Any, name: str) -> None:
    """A frame-wise graph gives 0; inflated kernels (or tubelets) see the order."""
    model = exported(name)
    rng = np.random.default_rng(1)
    clip = rng.standard_normal((1, 3, T, SIZE, SIZE)).astype(np.float32)
    base = model.run3d(clip)
    other = _relative(model.run3d(rng.standard_normal(clip.shape).astype(np.float32)), base)
    orders = {"reversed": clip[:, :, ::-1], "shifted": np.roll(clip, 1, axis=2)}
    effects = {k: _relative(model.run3d(np.ascontiguousarray(v)), base) / other for k, v in orders.items()}
    print(f"\n{name}: order effect / other-clip effect {effects}")
    assert max(effects.values()) >= 0.01


def test_resnet34_3d_graph_runs_at_112_and_224(exported: Any) -> None:
    model = exported("resnet34")
    dims = [d.dim_param or d.dim_value for d in model.graph3d.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "time", "height", "width"]
    image224 = _image(224, seed=2, batch=2)  # the 2D graph's batch is fixed at 1: run it per image
    reference224 = np.concatenate([model.run2d(image224[i:i + 1]) for i in range(2)])
    assert _relative(model.run3d(np.repeat(image224[:, :, None], T, axis=2)), reference224) <= 1e-4
    image112 = _image(112, seed=3, batch=2)
    with torch.no_grad():
        reference112 = model.torch_model(torch.from_numpy(image112)).numpy()
    got112 = model.run3d(np.repeat(image112[:, :, None], T, axis=2))
    print(f"\nresnet34 at 112²: boring clip vs the 2D torch model {_relative(got112, reference112):.2g}")
    assert _relative(got112, reference112) <= 1e-4


def test_size_fixed_by_the_exporter_stays_fixed(exported: Any) -> None:
    """tf_efficientnet_lite0 exported at a fixed size has its stem padding computed for
    224²: the 3D graph keeps that size, and asking for a dynamic one names the cause."""
    model = exported("tf_efficientnet_lite0")
    dims = [d.dim_param or d.dim_value for d in model.graph3d.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "time", 224, 224]
    with pytest.raises(InvalidInputError, match=r"conv_stem/Pad \(Pad\): its pads were computed by the exporter"):
        inflate_onnx(model.path, t=T, dynamic_size=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "resnet34"])
def test_dynamic_size_export_follows_the_2d_graph_at_other_sizes(tmp_path: Path, name: str) -> None:
    """Exported with dynamic height and width, a TF-SAME graph computes its padding from
    Shape ops: the 3D graph must pad as the 2D graph does at odd sizes too."""
    model = _model(name)
    _export(model, tmp_path / "2d.onnx", input_names=["image"], dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}})
    graph3d = inflate_onnx(tmp_path / "2d.onnx", t=T)
    session2d = ort.InferenceSession(str(tmp_path / "2d.onnx"), providers=["CPUExecutionProvider"])
    session3d = ort.InferenceSession(graph3d.SerializeToString(), providers=["CPUExecutionProvider"])
    for size in (112, 131):
        image = _image(size, seed=size, batch=2)
        out2d = session2d.run(None, {"image": image})[0]
        out3d = session3d.run(None, {"image": np.repeat(image[:, :, None], T, axis=2)})[0]
        assert _relative(out3d, out2d) <= 1e-4, size


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_graph_exported_with_every_default(tmp_path: Path, name: str) -> None:
    """``torch.onnx.export(model, args, path)`` and nothing else: since torch 2.9 that is the
    dynamo (torch.export-based) exporter, which needs onnxscript; its graphs differ from the
    TorchScript exporter's (decomposed ops, other names, constants folded by its optimiser)."""
    pytest.importorskip("onnxscript", reason="the default (dynamo) exporter needs onnxscript")
    model = _model(name)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, SIZE, SIZE),), str(tmp_path / "2d.onnx"))
    graph3d = inflate_onnx(tmp_path / "2d.onnx", t=T)
    session2d = ort.InferenceSession(str(tmp_path / "2d.onnx"), providers=["CPUExecutionProvider"])
    session3d = ort.InferenceSession(graph3d.SerializeToString(), providers=["CPUExecutionProvider"])
    image = _image()
    out2d = session2d.run(None, {session2d.get_inputs()[0].name: image})[0]
    out3d = session3d.run(None, {session3d.get_inputs()[0].name: np.repeat(image[:, :, None], T, axis=2)})[0]
    print(f"\n{name} (default exporter): boring clip vs onnxruntime 2D {_relative(out3d, out2d):.2g}")
    assert _relative(out3d, out2d) <= 1e-4


# ----- small graphs written by hand: one exporter habit each -----

def _conv_graph(kernel_nodes: list[Any], kernel_name: str, second_kernel: str) -> onnx.ModelProto:
    """image → conv(a) → relu → conv(b) → output, kernels given by name."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    nodes = kernel_nodes + [
        helper.make_node("Conv", ["image", kernel_name], ["a"], name="/conv_a/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"], name="/act/Relu"),
        helper.make_node("Conv", ["r", second_kernel], ["out"], name="/conv_b/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    kernel = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 3, 3, 3)).astype(np.float32), "w")
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], [kernel]), opset_imports=[helper.make_opsetid("", 17)])


def _boring_error(graph2d: onnx.ModelProto, graph3d: onnx.ModelProto) -> float:
    session2d = ort.InferenceSession(graph2d.SerializeToString(), providers=["CPUExecutionProvider"])
    session3d = ort.InferenceSession(graph3d.SerializeToString(), providers=["CPUExecutionProvider"])
    image = _image(16)
    out3d = session3d.run(None, {"image": np.repeat(image[:, :, None], T, axis=2)})[0]  # every frame a 2D map
    return _relative(out3d, session2d.run(None, {"image": image})[0][:, :, None])


def test_one_initializer_feeding_convs_with_different_time_settings() -> None:
    graph2d = _conv_graph([helper.make_node("Identity", ["w"], ["w_a"]), helper.make_node("Identity", ["w"], ["w_b"])],
                          "w_a", "w_b")
    graph3d = inflate_onnx(graph2d, t=T, overrides={"conv_b": 1, "conv_a": {"kernel": 3, "stride": 1}})
    kernels = {i.name: numpy_helper.to_array(i) for i in graph3d.graph.initializer}
    shapes = [kernels[n.input[1]].shape for n in graph3d.graph.node if n.op_type == "Conv"]
    assert shapes == [(3, 3, 3, 3, 3), (3, 3, 1, 3, 3)]
    assert _boring_error(graph2d, graph3d) <= 1e-5
    same = inflate_onnx(graph2d, t=T, overrides={"*": {"kernel": 3, "stride": 1}})
    assert len({n.input[1] for n in same.graph.node if n.op_type == "Conv"}) == 1  # one 3D copy when settings agree


def test_kernel_from_a_constant_node_and_computed_from_constants() -> None:
    weight = np.random.default_rng(0).standard_normal((3, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(weight, "c")),
             helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(np.array(0.5, np.float32), "h")),
             helper.make_node("Mul", ["w", "half"], ["w_half"])]
    graph2d = _conv_graph(nodes, "c", "w_half")
    graph3d = inflate_onnx(graph2d, t=T, overrides={"*": {"kernel": 3, "stride": 1}})
    kernels = {i.name: numpy_helper.to_array(i) for i in graph3d.graph.initializer}
    convs = [n for n in graph3d.graph.node if n.op_type == "Conv"]
    assert [kernels[c.input[1]].shape for c in convs] == [(3, 3, 3, 3, 3)] * 2
    np.testing.assert_allclose(kernels[convs[1].input[1]].sum(axis=2),
                               0.5 * numpy_helper.to_array(graph2d.graph.initializer[0]), rtol=1e-6)
    assert _boring_error(graph2d, graph3d) <= 1e-5


def test_kernel_computed_from_the_input_is_refused() -> None:
    from inflate import UnsupportedOpError

    graph2d = _conv_graph([helper.make_node("Identity", ["w"], ["w_a"])], "w_a", "w_a")
    graph2d.graph.node[-1].input[1] = "a"  # conv_b's kernel is an activation
    with pytest.raises(UnsupportedOpError, match=r"ONNX Conv at node '/conv_b/Conv': its kernel depends on the input"):
        inflate_onnx(graph2d, t=T)


class _Reshuffling(torch.nn.Module):
    """Feature-map reshapes exporters write as Reshape/Transpose: GroupNorm (InstanceNormalization
    between two reshapes), a channel shuffle, and a channels-last LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.GroupNorm(2, 8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.layer_norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv1(x)).relu()
        n, c, h, w = x.shape
        x = self.conv2(x.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w))
        x = self.layer_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(x.mean((2, 3)))


def test_feature_map_reshapes_keep_boring_clips_and_see_order(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _Reshuffling().eval()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.normal_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(tmp_path / "2d.onnx"), dynamo=False,
                          input_names=["image"])
    graph2d = onnx.load(str(tmp_path / "2d.onnx"))
    assert {"InstanceNormalization", "Transpose", "Reshape"} <= {n.op_type for n in graph2d.graph.node}
    graph3d = inflate_onnx(graph2d, t=T)
    session3d = ort.InferenceSession(graph3d.SerializeToString(), providers=["CPUExecutionProvider"])
    image = _image(16)
    with torch.no_grad():
        reference = model(torch.from_numpy(image)).numpy()
    assert _relative(session3d.run(None, {"image": np.repeat(image[:, :, None], T, axis=2)})[0], reference) <= 1e-4
    rng = np.random.default_rng(1)
    clip = rng.standard_normal((1, 3, T, 16, 16)).astype(np.float32)
    base = session3d.run(None, {"image": clip})[0]
    other = _relative(session3d.run(None, {"image": rng.standard_normal(clip.shape).astype(np.float32)})[0], base)
    shifted = _relative(session3d.run(None, {"image": np.roll(clip, 1, axis=2)})[0], base)
    assert shifted / other >= 0.01
