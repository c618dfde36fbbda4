"""The ONNX adapter: one core serves two adapters. A 2D timm model exported with torch.onnx,
inflated as an ONNX graph, must (a) give onnxruntime's 2D logits on a boring clip and
(b) equal the torch adapter's 3D model on a random clip, under the same policy and init."""

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import timm
import torch
from onnx import TensorProto, helper

from inflate import InvalidInputError, UnsupportedOpError, inflate_model
from inflate.adapters.onnx import inflate_onnx
from inflate.testing import randomize_weights

ARCHITECTURES = ["resnet18", "vgg11", "efficientnet_b0", "mobilenetv3_large_100", "regnetx_002", "densenet121",
                 "inception_v3", "dla34", "hrnet_w18_small", "ghostnet_100"]
DEFAULT = {("resnet18", "tile"), ("resnet18", "center"), ("vgg11", "tile"), ("efficientnet_b0", "tile"),
           ("ghostnet_100", "tile")}
PARAMS = [pytest.param(n, init, marks=() if (n, init) in DEFAULT else pytest.mark.zoo, id=f"{n}-{init}")
          for n in ARCHITECTURES for init in ("tile", "center")]


def export_2d(model: torch.nn.Module, path: Path, size: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, size, size),), str(path), dynamo=False, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=17)


@pytest.mark.parametrize("name,init", PARAMS)
def test_onnx_inflation_matches_2d_and_torch(tmp_path: Path, name: str, init: str) -> None:
    model2d = randomize_weights(timm.create_model(name).eval())
    size = model2d.pretrained_cfg["input_size"][-1]
    export_2d(model2d, tmp_path / "2d.onnx", size)
    model3d_onnx = inflate_onnx(tmp_path / "2d.onnx", t=8, init=init)
    onnx.checker.check_model(model3d_onnx, full_check=True)
    session2d = ort.InferenceSession(str(tmp_path / "2d.onnx"), providers=["CPUExecutionProvider"])
    session3d = ort.InferenceSession(model3d_onnx.SerializeToString(), providers=["CPUExecutionProvider"])

    image = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    out2d = session2d.run(None, {"image": image})[0]
    boring = session3d.run(None, {"image": np.repeat(image[:, :, None], 8, axis=2)})[0]
    boring_error = np.abs(boring - out2d).max() / np.abs(out2d).max()

    clip = np.random.default_rng(1).standard_normal((1, 3, 6, size, size)).astype(np.float32)  # another length
    with torch.no_grad():
        reference = inflate_model(model2d, t=8, init=init).eval()(torch.from_numpy(clip)).numpy()
    got = session3d.run(None, {"image": clip})[0]
    torch_error = np.abs(got - reference).max() / np.abs(reference).max()
    print(f"\n{name} ({init}): boring vs onnxruntime 2D {boring_error:.2g}; random clip vs torch adapter {torch_error:.2g}")
    assert boring_error <= 1e-4
    assert torch_error <= 1e-4


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not protobuf \x00\xff" * 10)
    with pytest.raises(InvalidInputError, match=r"model.onnx is not an ONNX model"):
        inflate_onnx(bad)
    with pytest.raises(InvalidInputError, match="takes a path or an onnx.ModelProto, got dict"):
        inflate_onnx({})


def one_op_model(op_type: str, **attrs) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node(op_type, ["x"], ["y"], name="/block/lrn/LRN", **attrs)
    return helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])


def test_op_without_rule_names_node_and_type() -> None:
    with pytest.raises(UnsupportedOpError, match=r"no inflation rule for ONNX LRN at node '/block/lrn/LRN'"):
        inflate_onnx(one_op_model("LRN", size=3))


def test_replicate_padding_is_an_explicit_edge_pad(tmp_path: Path) -> None:
    model2d = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1)).eval()
    export_2d(model2d, tmp_path / "conv.onnx", 16)
    inflated = inflate_onnx(tmp_path / "conv.onnx", t=4, overrides={"*": {"kernel": 3, "stride": 1}})
    pads = [n for n in inflated.graph.node if n.op_type == "Pad"]
    assert len(pads) == 1 and helper.get_attribute_value(pads[0].attribute[0]) == b"edge"
    conv = next(n for n in inflated.graph.node if n.op_type == "Conv")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs["kernel_shape"] == [3, 3, 3] and attrs["pads"] == [0, 1, 1, 0, 1, 1]
    zeros = inflate_onnx(tmp_path / "conv.onnx", t=4, pad_mode="zeros", overrides={"*": {"kernel": 3, "stride": 1}})
    assert not [n for n in zeros.graph.node if n.op_type == "Pad"]


def test_inflated_onnx_metadata_reads_back(tmp_path: Path) -> None:
    from inflate.export import inspect_file

    model2d = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1)).eval()
    export_2d(model2d, tmp_path / "conv.onnx", 16)
    onnx.save(inflate_onnx(tmp_path / "conv.onnx", t=4, pad_mode="zeros"), str(tmp_path / "conv3d.onnx"))
    meta = inspect_file(tmp_path / "conv3d.onnx")["metadata"]
    assert (meta["kind"], meta["t"], meta["policy"], meta["pad_mode"]) == ("onnx", 4, "i3d", "zeros")
