"""Rewriting a 2D ONNX graph (N, C, H, W) into a 3D one (N, C, T, H, W).

Every value is tracked as either a clip (a 5D tensor with time on axis 2; ``collapsed``
once a global pool has pooled time away) or static (initializers, shapes, the pooled
vector before a classifier). Conv and pooling nodes go through the core's rules, so
kernels are inflated exactly as the torch adapter inflates them; element-wise ops get
their constant operands reshaped to broadcast over time; axes of reductions, concats and
softmaxes are renumbered. ONNX pads only with zeros, so the default replicate time
padding is an explicit ``Pad`` (mode ``edge``) on the time axis before the op.
Imports numpy and onnx only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ...core.errors import InflateError, InvalidInputError, UnsupportedOpError
from ...core.policy import OverrideTable, Policy, get_policy, role_of
from ...core.rules import get_rule
from ...core.spec import InflatedOp, OpSpec

__all__ = ["inflate_onnx", "SUPPORTED_OPS"]

_POINTWISE = {
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Clip", "Elu", "Selu", "Celu",
    "Gelu", "Erf", "Softplus", "Softsign", "Mish", "Identity", "Dropout", "Neg", "Abs", "Exp", "Log", "Sqrt",
    "Reciprocal", "Floor", "Ceil", "Cast", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where",
    "BatchNormalization", "InstanceNormalization", "Not", "Equal", "Greater", "Less", "Sign", "Round",
}
_ELEMENTWISE_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "PRelu",
                          "Equal", "Greater", "Less"}
SUPPORTED_OPS = sorted(_POINTWISE | {
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Gemm", "MatMul",
    "Concat", "ReduceMean", "ReduceMax", "ReduceSum", "Resize", "Pad", "Softmax", "Constant", "Squeeze", "Slice",
})


@dataclass(frozen=True)
class _Clip:
    collapsed: bool = False


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _path(node: Any) -> str:
    """A module-like path from the exporter's node name: "/layer1/layer1.0/conv1/Conv" → "layer1.0.conv1"."""
    name = node.name or node.output[0]
    parts = [p for p in name.strip("/").split("/") if p]
    if len(parts) > 1:
        parts = parts[:-1]  # the op's own name
    # torch's exporter repeats prefixes ("layer1/layer1.0/conv1"): a part that extends the
    # chain so far replaces it.
    chain: list[str] = []
    for part in parts:
        if chain and part.startswith(".".join(chain) + "."):
            chain = part.split(".")
        else:
            chain.extend(part.split("."))
    return ".".join(chain)


class _Rewriter:
    def __init__(self, model: Any, policy: Policy) -> None:
        import onnx
        from onnx import numpy_helper

        self.onnx = onnx
        self.numpy_helper = numpy_helper
        self.model = model
        self.graph = model.graph
        self.policy = policy
        self.layout: dict[str, Optional[_Clip]] = {}
        self.inits = {i.name: i for i in self.graph.initializer}
        self.constants: dict[str, np.ndarray] = {n: numpy_helper.to_array(i) for n, i in self.inits.items()}
        self.new_nodes: list[Any] = []
        self.new_inits: dict[str, Any] = {}
        self.used_names: set[str] = {v for n in self.graph.node for v in n.output} | set(self.inits) | {
            i.name for i in self.graph.input}
        convs = [n for n in self.graph.node if n.op_type == "Conv"]
        self.stem = _path(convs[0]) if convs else None
        self.records: list[tuple[str, str, int, int]] = []

    # ----- helpers -----

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.used_names:
            i += 1
            name = f"{base}_{i}"
        self.used_names.add(name)
        return name

    def const(self, base: str, array: np.ndarray) -> str:
        name = self.fresh(base)
        self.new_inits[name] = self.numpy_helper.from_array(array, name)
        self.constants[name] = array
        return name

    def is_clip(self, name: str) -> bool:
        return isinstance(self.layout.get(name), _Clip)

    def value(self, name: str) -> Optional[np.ndarray]:
        return self.constants.get(name)

    def unsupported(self, node: Any, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(node.name or node.output[0], f"ONNX {node.op_type}", why)

    def emit(self, node: Any) -> None:
        self.new_nodes.append(node)

    def copy(self, node: Any, inputs: Optional[list[str]] = None, **attrs: Any) -> Any:
        from onnx import helper

        merged = _attrs(node)
        merged.update(attrs)
        new = helper.make_node(node.op_type, list(node.input) if inputs is None else inputs, list(node.output),
                               name=node.name, domain=node.domain or None, **merged)
        self.emit(new)
        return new

    def time_pad(self, node: Any, source: str, op: InflatedOp, mode: str) -> str:
        """An explicit Pad of the time axis (edge frames, or -inf/zeros constant) before ``node``."""
        from onnx import helper

        front, back = op.time_pads  # type: ignore[misc]
        pads = self.const(f"{node.name or node.output[0]}_time_pads", np.array([0, 0, front, 0, 0, 0, 0, back, 0, 0], np.int64))
        out = self.fresh(f"{source}_time_padded")
        inputs = [source, pads]
        if mode == "neg_inf":
            inputs.append(self.const(f"{node.name}_neg_inf", np.array(-np.inf, np.float32)))
        self.emit(helper.make_node("Pad", inputs, [out], name=self.fresh(f"{node.name}/TimePad"),
                                   mode="edge" if mode == "replicate" else "constant"))
        return out

    # ----- ops -----

    def windowed(self, node: Any, kind: str, collapsed: bool = False) -> None:
        attrs = _attrs(node)
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.unsupported(node, "auto_pad is not supported; export with explicit pads")
        kernel = tuple(attrs.get("kernel_shape") or self.constants[node.input[1]].shape[2:])
        if len(kernel) != 2:
            raise self.unsupported(node, f"expected a 2D op, got kernel {kernel}")
        strides = tuple(attrs.get("strides", (1, 1)))
        dilations = tuple(attrs.get("dilations", (1, 1)))
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        path = _path(node)
        spec = OpSpec(kind, path, kernel, strides, (pads[0], pads[1]), dilations, attrs.get("group", 1),
                      role=role_of(path, self.stem))
        time = self.policy.time_for(spec)
        op = get_rule(kind).describe(spec, time)
        if op.time_pads == "same":
            raise self.unsupported(node, "TF SAME time padding needs the clip length; use a static padding policy")
        front, back = op.time_pads  # type: ignore[misc]
        source = node.input[0]
        time_in_op = (0, 0)
        if front or back:
            if op.time_pad_mode == "zeros" and kind != "max_pool":
                time_in_op = (front, back)
            else:
                source = self.time_pad(node, source, op, "neg_inf" if kind == "max_pool" and op.time_pad_mode == "zeros"
                                       else op.time_pad_mode)
        new_pads = [time_in_op[0], pads[0], pads[1], time_in_op[1], pads[2], pads[3]]
        inputs = [source] + list(node.input[1:])
        extra: dict[str, Any] = {"kernel_shape": list(op.kernel), "strides": list(op.stride), "pads": new_pads}
        if kind == "conv" or "dilations" in attrs:
            extra["dilations"] = list(op.dilation)
        if kind == "conv":
            weight_name = node.input[1]
            weight = self.value(weight_name)
            if weight is None:
                raise self.unsupported(node, "the kernel is not a constant initializer")
            weights = {"weight": weight}
            _, inflated = get_rule("conv").inflate(spec, time, weights)
            inputs[1] = self.const(f"{weight_name}_3d", inflated["weight"].astype(weight.dtype))
        self.copy(node, inputs, **extra)
        self.layout[node.output[0]] = _Clip(collapsed)  # a pooled-away time axis stays of length 1
        self.records.append((path, node.op_type, op.kernel[0], op.stride[0]))

    def broadcast_operand(self, node: Any, name: str, out_rank2d: int = 4) -> str:
        """A static operand of an element-wise op with a clip: insert the time axis where it straddles it."""
        array = self.value(name)
        if array is None:
            return name  # a computed static tensor: scalars and vectors broadcast as they are
        rank = array.ndim
        pos = 2 - (out_rank2d - rank)
        if 0 < pos <= rank:
            return self.const(f"{name}_t", np.expand_dims(array, pos))
        return name

    def node(self, node: Any) -> None:
        op = node.op_type
        clips = [i for i in node.input if i and self.is_clip(i)]
        if op == "Constant":
            self.copy(node)
            from onnx import numpy_helper

            attr = _attrs(node)
            if "value" in attr:
                self.constants[node.output[0]] = numpy_helper.to_array(attr["value"])
            self.layout[node.output[0]] = None
            return
        if not clips:
            self.copy(node)
            for out in node.output:
                self.layout[out] = None
            return
        collapsed = all(self.layout[i].collapsed for i in clips)  # type: ignore[union-attr]
        if op == "Conv":
            self.windowed(node, "conv", collapsed)
        elif op in ("MaxPool", "AveragePool"):
            if op == "MaxPool" and len(node.output) > 1:
                raise self.unsupported(node, "MaxPool with indices")
            self.windowed(node, "max_pool" if op == "MaxPool" else "avg_pool", collapsed)
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            self.copy(node)
            self.layout[node.output[0]] = _Clip(collapsed=True)
        elif op in _POINTWISE:
            inputs = list(node.input)
            if op in _ELEMENTWISE_BROADCAST:
                inputs = [i if not i or self.is_clip(i) else self.broadcast_operand(node, i) for i in inputs]
            self.copy(node, inputs)
            for out in node.output[:1]:
                self.layout[out] = _Clip(collapsed)
            for out in node.output[1:]:
                self.layout[out] = None
        elif op == "Concat":
            if not all(self.is_clip(i) for i in node.input):
                raise self.unsupported(node, "it joins tensors with and without time")
            axis = _attrs(node)["axis"]
            axis = axis + 4 if axis < 0 else axis
            self.copy(node, axis=axis if axis < 2 else axis + 1)
            self.layout[node.output[0]] = _Clip(collapsed)
        elif op in ("ReduceMean", "ReduceMax", "ReduceSum"):
            self.reduce(node, collapsed)
        elif op == "Softmax":
            axis = _attrs(node).get("axis", -1)
            axis = axis + 4 if axis < 0 else axis
            self.copy(node, axis=axis if axis < 2 else axis + 1)
            self.layout[node.output[0]] = _Clip(collapsed)
        elif op in ("Flatten", "Reshape", "Gemm", "MatMul", "Squeeze"):
            if not collapsed:
                raise self.unsupported(node, "it reshapes a feature map that still has frames; pool globally first")
            self.squeeze_then_copy(node)
        elif op == "Slice":
            self.slice(node, collapsed)
        elif op == "Resize":
            self.resize(node, collapsed)
        elif op == "Pad":
            self.pad(node, collapsed)
        else:
            raise self.unsupported(node, f"no inflation rule; supported ops: {', '.join(SUPPORTED_OPS)}")

    def squeeze_then_copy(self, node: Any) -> None:
        """Time was pooled away: drop its length-1 axis and run the op as in 2D."""
        from onnx import helper

        inputs = list(node.input)
        source = inputs[0]
        squeezed = self.fresh(f"{source}_no_time")
        axes = self.const(f"{source}_time_axis", np.array([2], np.int64))
        self.emit(helper.make_node("Squeeze", [source, axes], [squeezed], name=self.fresh(f"{node.name}/SqueezeTime")))
        self.copy(node, [squeezed] + inputs[1:])
        for out in node.output:
            self.layout[out] = None

    def reduce(self, node: Any, collapsed: bool) -> None:
        attrs = _attrs(node)
        axes_input = node.input[1] if len(node.input) > 1 and node.input[1] else None
        axes = list(attrs["axes"]) if "axes" in attrs else (
            list(self.value(axes_input)) if axes_input is not None and self.value(axes_input) is not None else None)
        if axes is None:
            raise self.unsupported(node, "reduction over all axes or over computed axes")
        axes = [a + 4 if a < 0 else a for a in axes]
        over_time = 2 in axes  # reducing the axis time travels with (H) reduces time too
        new_axes = sorted([a if a < 2 else a + 1 for a in axes] + ([2] if over_time else []))
        keepdims = attrs.get("keepdims", 1)
        if "axes" in attrs:
            self.copy(node, axes=new_axes)
        else:
            self.copy(node, [node.input[0], self.const(f"{node.name}_axes3d", np.array(new_axes, np.int64))])
        if not keepdims and (over_time or 2 not in axes):
            self.layout[node.output[0]] = None if over_time else _Clip(collapsed)
        else:
            self.layout[node.output[0]] = _Clip(collapsed or over_time)

    def slice(self, node: Any, collapsed: bool) -> None:
        axes = self.value(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        if axes is None:
            raise self.unsupported(node, "only Slice with constant axes is supported")
        axes = np.where(axes < 0, axes + 4, axes)
        new_axes = np.where(axes >= 2, axes + 1, axes).astype(np.int64)
        inputs = list(node.input)
        inputs[3] = self.const(f"{node.input[3]}_3d", new_axes)
        self.copy(node, inputs)
        self.layout[node.output[0]] = _Clip(collapsed)

    def resize(self, node: Any, collapsed: bool) -> None:
        inputs = list(node.input) + [""] * (4 - len(node.input))
        scales = self.value(inputs[2]) if inputs[2] else None
        if scales is None or scales.size != 4:
            raise self.unsupported(node, "only Resize with constant scales is supported (sizes need the clip length)")
        inputs[2] = self.const(f"{inputs[2]}_3d", np.insert(scales, 2, 1.0).astype(scales.dtype))
        attrs = _attrs(node)
        mode = attrs.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode == "cubic":
            raise self.unsupported(node, "cubic resizing has no 3D form in ONNX")
        self.copy(node, [i for i in inputs[:3]] + ([inputs[3]] if inputs[3] else []))
        self.layout[node.output[0]] = _Clip(collapsed)

    def pad(self, node: Any, collapsed: bool) -> None:
        pads = self.value(node.input[1]) if len(node.input) > 1 else None
        if pads is None or pads.size != 8:
            raise self.unsupported(node, "only Pad with 8 constant pads (a 4D map) is supported")
        new = np.insert(np.insert(pads, 6, 0), 2, 0).astype(pads.dtype)  # begins [n, c, t, h, w], ends likewise
        inputs = list(node.input)
        inputs[1] = self.const(f"{node.input[1]}_3d", new)
        self.copy(node, inputs)
        self.layout[node.output[0]] = _Clip(collapsed)


def inflate_onnx(
    model: Any,
    t: int = 8,
    *,
    policy: str | Policy = "i3d",
    init: Optional[str] = None,
    pad_mode: Optional[str] = None,
    overrides: OverrideTable = None,
    time_axis_name: str = "time",
) -> Any:
    """Inflate a 2D ONNX model (a path or a ``ModelProto``) into a 3D ``ModelProto``.

    The graph input (N, C, H, W) becomes (N, C, T, H, W) with a dynamic time axis. Every
    Conv kernel is inflated by the core rule (same policy and init as ``inflate_model``
    give the same numbers). An op without a rule raises :class:`UnsupportedOpError` naming
    the node and its type. The result passes ``onnx.checker`` with full check.
    """
    import onnx

    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise InvalidInputError(f"t must be an integer >= 1, got {t!r}")
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InvalidInputError(f"{path} does not exist")
        try:
            model = onnx.load(str(path))
        except Exception as error:  # protobuf raises DecodeError and friends
            raise InvalidInputError(f"{path} is not an ONNX model ({type(error).__name__}: {error})") from None
        if not model.graph.node:
            raise InvalidInputError(f"{path} is not an ONNX model (no graph nodes)")
    elif not isinstance(model, onnx.ModelProto):
        raise InvalidInputError(f"inflate_onnx takes a path or an onnx.ModelProto, got {type(model).__name__}")
    resolved = get_policy(policy, init=init, pad_mode=pad_mode, overrides=overrides)
    model = onnx.ModelProto.FromString(model.SerializeToString())  # never change the caller's model
    graph = model.graph
    init_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if len(inputs) != 1:
        raise InvalidInputError(f"expected one image input, the graph has {len(inputs)}: {[i.name for i in inputs]}")
    image = inputs[0]
    dims = image.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise InvalidInputError(f"the graph input '{image.name}' has rank {len(dims)}; expected (N, C, H, W)")

    rewriter = _Rewriter(model, resolved)
    rewriter.layout[image.name] = _Clip()
    for node in graph.node:
        rewriter.node(node)
    used = {i for n in rewriter.new_nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(rewriter.new_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + [v for k, v in rewriter.new_inits.items() if k in used])
    new_dim = onnx.TensorShapeProto.Dimension(dim_param=time_axis_name)
    dims.insert(2, new_dim)
    del graph.value_info[:]
    for output in graph.output:
        if rewriter.is_clip(output.name) and not rewriter.layout[output.name].collapsed:  # type: ignore[union-attr]
            output.type.tensor_type.shape.dim.insert(2, onnx.TensorShapeProto.Dimension(dim_param=time_axis_name))
        elif rewriter.is_clip(output.name):
            output.type.tensor_type.shape.dim.insert(2, onnx.TensorShapeProto.Dimension(dim_value=1))
    entry = model.metadata_props.add()
    entry.key, entry.value = "inflate", json.dumps({"format_version": 1, "kind": "onnx", "t": t, "policy": resolved.name,
                                                   "init": resolved.init, "pad_mode": resolved.pad_mode})
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:
        raise InflateError(f"the inflated ONNX graph does not check: {error}") from error
    return model
