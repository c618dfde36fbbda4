"""Rewriting a 2D ONNX graph (N, C, H, W) into a 3D one (N, C, T, H, W).

Every value is tracked as either *timed* (the 2D tensor with a time axis inserted at a
known position: axis 2 for feature maps, after the batch for token sequences; marked
``collapsed`` once a global pool has pooled time away) or *static* (no time axis:
initializers, shape arithmetic, the pooled vector before a classifier). Conv and pooling
nodes go through the core's rules, so kernels are inflated exactly as the torch adapter
inflates them. Other ops are renumbered for the inserted axis: element-wise ops get their
static operands reshaped to broadcast over time; reductions, concats, softmaxes, layer
norms, splits, slices, gathers, transposes and matmuls get their axes mapped; ``Reshape``
targets get the time length inserted where the 2D shapes allow it (else time is moved to
the front, where every reshape keeps it intact); ``Shape`` of a timed value answers the
2D shape (time dropped), so the shape arithmetic of exporters (TF-SAME padding, token
reshapes) runs unchanged and the ``Pad`` it feeds gets a zero time entry. ONNX pads only
with zeros, so the default replicate time padding is an explicit ``Pad`` (mode ``edge``).

Exporter graphs: kernels reached through ``Identity``/``Constant`` nodes or computed from
constants (folded with ``onnx.reference``) inflate like initializers; an initializer
shared by convs with different time settings gets one 3D copy per setting.

Transformers: the patch embedding (a conv under ``patch_embed``) becomes a tubelet
(policy ``tubelet`` frames, stride as many); tokens keep a time axis after the batch, so
attention runs within each tubelet step (the ``"frames"`` attention of the torch
adapter). The class token and position embeddings are broadcast over time. A
classifier (``Gemm``/``Flatten``) of a tensor that still has frames sees its time
average (as I3D averages its logits over time). Imports numpy and onnx only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...core.errors import InflateError, InvalidInputError, UnsupportedOpError
from ...core.metadata import METADATA_KEY, write_metadata
from ...core.geometry import (NEG_INF, StemCandidate, axis_to_3d, check_clip_length, find_stems, onnx_pointwise,
                              pad_mode_for, pad_value, reduce_axes)
from ...core.policy import OverrideTable, Policy, get_policy, role_of
from ...core.rules import get_rule
from ...core.spec import InflatedOp, OpSpec

__all__ = ["inflate_onnx", "SUPPORTED_OPS"]

_UNARY = onnx_pointwise(broadcasts=False)
_ELEMENTWISE_BROADCAST = onnx_pointwise(broadcasts=True)
_NORMS = {"BatchNormalization", "InstanceNormalization"}
_REDUCE = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceSumSquare", "ReduceLogSumExp"}
_SOFTMAX = {"Softmax", "LogSoftmax", "Hardmax"}
SUPPORTED_OPS = sorted(_UNARY | _ELEMENTWISE_BROADCAST | _NORMS | _REDUCE | _SOFTMAX | {
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Gemm", "MatMul",
    "Concat", "Resize", "Pad", "Constant", "Squeeze", "Unsqueeze", "Slice", "Split", "Gather", "Transpose", "Shape",
    "LayerNormalization", "Expand", "Tile", "ArgMax", "ArgMin",
})
# The core rule each windowed ONNX op is inflated by.
_WINDOWED_KINDS = {"Conv": "conv", "ConvTranspose": "conv_transpose", "MaxPool": "max_pool", "AveragePool": "avg_pool"}
# Static (time-free) nodes are copied whatever their type; these never fold into constants.
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
            "If", "Loop", "Scan"}
_FOLD_LIMIT = 1 << 22  # elements: fold shape arithmetic and weight preprocessing, not big activations
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class _Clip:
    """A timed value: the 2D tensor of ``rank`` axes with a time axis inserted at ``axis``
    (so ``axis`` 2D axes come before it); ``collapsed`` once time is pooled to length 1."""

    axis: int = 2
    rank: int = 4
    collapsed: bool = False

    def to3d(self, axis2d: int) -> int:
        """The 3D index of a 2D axis (negative counts from the end of the 2D tensor)."""
        return axis_to_3d(axis2d, self.axis, self.rank)


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


def _transpose_time_position(perm: list[int], clip: _Clip) -> int:
    """Where time goes in a Transpose's output (a free choice, since time is a batch-like
    axis): just before the 2D axis that followed it, so NCHW↔NHWC round trips keep time
    in place; after the axis that preceded it when that would leave time among the last
    two axes (a matmul's matrix axes)."""
    rank3 = len(perm) + 1
    candidates = []
    if clip.axis < len(perm):
        candidates.append(perm.index(clip.axis))
    if clip.axis > 0:
        candidates.append(perm.index(clip.axis - 1) + 1)
    for position in candidates:
        if position <= rank3 - 3:
            return position
    return max(0, min(candidates[0] if candidates else 0, rank3 - 3))


class _Rewriter:
    def __init__(self, model: Any, policy: Policy) -> None:
        import onnx
        from onnx import numpy_helper

        self.onnx = onnx
        self.numpy_helper = numpy_helper
        self.graph = model.graph
        self.policy = policy
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
        self.layout: dict[str, Optional[_Clip]] = {}
        self.inits = {i.name: i for i in self.graph.initializer}
        self.constants: dict[str, np.ndarray] = {n: numpy_helper.to_array(i) for n, i in self.inits.items()}
        self.literal: set[str] = set(self.inits)  # constants written in the graph, not computed by it
        self.aliases: dict[str, str] = {}  # Identity outputs → the value they pass on
        self.new_nodes: list[Any] = []
        self.new_inits: dict[str, Any] = {}
        self.used_names: set[str] = {v for n in self.graph.node for v in n.output} | set(self.inits) | {
            i.name for i in self.graph.input}
        # the stem conv and the convs reading its input (a RepVGG first block's parallel branches)
        self.stem = find_stems(StemCandidate(_path(n), "conv", n.input[0]) for n in self.graph.node
                               if n.op_type == "Conv")
        self.records: list[tuple[str, str, int, int]] = []
        self.inflated_kernels: dict[tuple[Any, ...], str] = {}
        self.time_lengths: dict[tuple[str, int], str] = {}
        self.small_consts: dict[tuple[Any, ...], str] = {}
        # Why the graph's batch/height/width cannot be left free (node: reason), for the
        # decision to make them dynamic.
        self.size_bound: list[str] = []
        self.shapes2d = self._infer_2d_shapes(model)

    def _infer_2d_shapes(self, model: Any) -> dict[str, Optional[list[Any]]]:
        """The 2D graph's value shapes (int, symbol or None per axis) from ONNX shape inference."""
        try:
            inferred = self.onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:  # inference is a help (reshape placement), never a requirement
            inferred = model
        shapes: dict[str, Optional[list[Any]]] = {}
        for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            tensor = info.type.tensor_type
            if not tensor.HasField("shape"):
                continue
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                 for d in tensor.shape.dim]
        return shapes

    # ----- helpers -----

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.used_names:
            i += 1
            name = f"{base}_{i}"
        self.used_names.add(name)
        return name

    def const(self, base: str, array: np.ndarray) -> str:
        small = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 16 else None
        if small is not None and small in self.small_consts:  # one initializer per small value (axes, ones)
            return self.small_consts[small]
        name = self.fresh(base)
        if small is not None:
            self.small_consts[small] = name
        self.new_inits[name] = self.numpy_helper.from_array(array, name)
        self.constants[name] = array
        self.literal.add(name)
        return name

    def is_clip(self, name: str) -> bool:
        return isinstance(self.layout.get(name), _Clip)

    def clip(self, name: str) -> _Clip:
        return self.layout[name]  # type: ignore[return-value]

    def value(self, name: str) -> Optional[np.ndarray]:
        return self.constants.get(name)

    def rank2d(self, name: str) -> Optional[int]:
        if self.is_clip(name):
            return self.clip(name).rank
        if name in self.constants:
            return self.constants[name].ndim
        shape = self.shapes2d.get(name)
        return None if shape is None else len(shape)

    def unsupported(self, node: Any, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(node.name or node.output[0], f"ONNX {node.op_type}", why)

    def emit(self, node: Any) -> None:
        self.new_nodes.append(node)

    def make(self, op_type: str, inputs: list[str], base: str, **attrs: Any) -> str:
        """Emit a helper node with one fresh output; returns the output's name."""
        from onnx import helper

        out = self.fresh(base)
        self.emit(helper.make_node(op_type, inputs, [out], name=self.fresh(f"{base}/{op_type}"), **attrs))
        return out

    def copy(self, node: Any, inputs: Optional[list[str]] = None, **attrs: Any) -> Any:
        from onnx import helper

        merged = _attrs(node)
        merged.update(attrs)
        new = helper.make_node(node.op_type, list(node.input) if inputs is None else inputs, list(node.output),
                               name=node.name, domain=node.domain or None, **merged)
        self.emit(new)
        return new

    def bound(self, node: Any, why: str) -> None:
        self.size_bound.append(f"{node.name or node.output[0]} ({node.op_type}): {why}")

    def time_length(self, name: str) -> str:
        """A 1-element int64 tensor holding the length of ``name``'s time axis (computed at run time)."""
        clip = self.clip(name)
        key = (name, clip.axis)
        if key not in self.time_lengths:
            shape = self.make("Shape", [name], f"{name}_shape3d")
            start = self.const("time_axis_start", np.array([clip.axis], np.int64))
            end = self.const("time_axis_end", np.array([clip.axis + 1], np.int64))
            self.time_lengths[key] = self.make("Slice", [shape, start, end],
                                               f"{name}_time_length")
        return self.time_lengths[key]

    def move_time(self, name: str, to: int) -> str:
        """Transpose ``name`` so its time axis sits at 3D index ``to``; returns the new name."""
        clip = self.clip(name)
        if clip.axis == to:
            return name
        order = [i for i in range(clip.rank + 1) if i != clip.axis]
        order.insert(to, clip.axis)
        out = self.make("Transpose", [name], f"{name}_time_at_{to}", perm=order)
        self.layout[out] = replace(clip, axis=to)
        return out

    def squeeze_time(self, name: str, node: Any) -> str:
        """A timed value as its 2D counterpart: time pooled (mean) if it still has frames, then dropped."""
        clip = self.clip(name)
        axes = self.const(f"{name}_time_axis", np.array([clip.axis], np.int64))
        if clip.collapsed:
            return self.make("Squeeze", [name, axes], f"{name}_no_time")
        if self.opset >= 18:
            return self.make("ReduceMean", [name, axes], f"{name}_time_mean", keepdims=0)
        return self.make("ReduceMean", [name], f"{name}_time_mean", axes=[clip.axis], keepdims=0)

    def insert_time_axis(self, name: str, position: int) -> str:
        """A static value with a length-1 axis inserted at ``position`` (to broadcast over time)."""
        array = self.value(name)
        if array is not None and name in self.literal:
            return self.const(f"{name}_t", np.expand_dims(array, position))
        return self.make("Unsqueeze", [name, self.const(f"{name}_t_axis", np.array([position], np.int64))], f"{name}_t")

    def broadcast_static(self, node: Any, name: str, after_time: int) -> str:
        """A static operand of a broadcasting op with timed operands whose time axis has
        ``after_time`` axes after it: insert a length-1 time axis where the operand reaches it."""
        rank = self.rank2d(name)
        if rank is None:
            raise self.unsupported(node, f"the rank of its operand '{name}' is unknown")
        if rank <= after_time:
            return name
        array = self.value(name)
        if array is not None:
            out_rank = max(rank, after_time + 1)
            dims = dict(zip(range(out_rank - rank, out_rank), array.shape))  # right-aligned to the output
            gap = out_rank - after_time
            sized = [0] + (list(range(2, out_rank)) if out_rank == 4 and gap == 2 else list(range(gap, out_rank - 1)))
            if any(dims.get(a, 1) > 1 for a in sized):
                self.bound(node, f"a constant operand of shape {array.shape} is tied to the exported size")
        return self.insert_time_axis(name, rank - after_time)

    def expand_over_time(self, name: str, like: str, clip: _Clip) -> str:
        """A static value of the 2D rank of ``clip`` repeated over ``like``'s time axis."""
        unsqueezed = self.insert_time_axis(name, clip.axis)
        ones = np.ones(clip.rank + 1, np.int64)
        before = self.const(f"{name}_ones_before", ones[:clip.axis])
        after = self.const(f"{name}_ones_after", ones[clip.axis + 1:])
        shape = self.make("Concat", [before, self.time_length(like), after], f"{name}_time_shape", axis=0)
        return self.make("Expand", [unsqueezed, shape], f"{name}_over_time")

    def insert_into_vector(self, vector: str, position: int, entry: str) -> str:
        """A 1-D int64 vector with the 1-element tensor ``entry`` inserted at ``position``."""
        values = self.value(vector)
        if values is not None:
            parts = [self.const(f"{vector}_head", values[:position].astype(np.int64)), entry,
                     self.const(f"{vector}_tail", values[position:].astype(np.int64))]
        else:
            start = self.const("zero", np.array([0], np.int64))
            cut = self.const(f"{vector}_cut", np.array([position], np.int64))
            end = self.const("int64_max", np.array([_INT64_MAX], np.int64))
            parts = [self.make("Slice", [vector, start, cut], f"{vector}_head"), entry,
                     self.make("Slice", [vector, cut, end], f"{vector}_tail")]
        return self.make("Concat", parts, f"{vector}_3d", axis=0)

    def time_pad(self, node: Any, source: str, op: InflatedOp, mode: str) -> str:
        """An explicit Pad of the time axis (edge frames, or -inf/zeros constant) before ``node``."""
        from onnx import helper

        front, back = op.time_pads  # type: ignore[misc]
        pads = self.const(f"{node.name or node.output[0]}_time_pads",
                          np.array([0, 0, front, 0, 0, 0, 0, back, 0, 0], np.int64))
        out = self.fresh(f"{source}_time_padded")
        inputs = [source, pads]
        if mode == NEG_INF:
            inputs.append(self.const(f"{node.name}_neg_inf", np.array(pad_value(mode), np.float32)))
        self.emit(helper.make_node("Pad", inputs, [out], name=self.fresh(f"{node.name}/TimePad"),
                                   mode="edge" if mode == "replicate" else "constant"))
        return out

    def fold(self, node: Any) -> None:
        """Record the value of a static node whose inputs are all constants (kernels behind
        Identity nodes, the exporter's shape arithmetic, weight preprocessing)."""
        if node.op_type in _NO_FOLD or node.domain not in ("", "ai.onnx") or any(
                i and i not in self.constants for i in node.input):
            return
        if node.op_type == "Identity":
            self.constants[node.output[0]] = self.constants[node.input[0]]
            self.aliases[node.output[0]] = self.aliases.get(node.input[0], node.input[0])
            if node.input[0] in self.literal:
                self.literal.add(node.output[0])
            return
        if node.op_type == "Constant":
            self.literal.add(node.output[0])
            attr = _attrs(node)
            if "value" in attr:
                self.constants[node.output[0]] = self.numpy_helper.to_array(attr["value"])
                return
        if sum(self.constants[i].size for i in node.input if i) > _FOLD_LIMIT or self.folds_big(node):
            return
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        inputs = [helper.make_tensor_value_info(f"in{k}", 0, None) for k, i in enumerate(node.input) if i]
        names = iter(f"in{k}" for k, i in enumerate(node.input) if i)
        single = helper.make_node(node.op_type, [next(names) if i else "" for i in node.input],
                                  [f"out{k}" for k in range(len(node.output))], **_attrs(node))
        model = helper.make_model(
            helper.make_graph([single], "fold", inputs, [helper.make_tensor_value_info(f"out{k}", 0, None)
                                                         for k in range(len(node.output))]),
            opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            results = ReferenceEvaluator(model).run(None, {f"in{k}": self.constants[i]
                                                           for k, i in enumerate(node.input) if i})
        except Exception:  # an op the reference runtime lacks: leave it to run in the graph
            return
        for out, result in zip(node.output, results):
            if out and isinstance(result, np.ndarray):
                self.constants[out] = result

    def folds_big(self, node: Any) -> bool:
        """Whether a node would make a tensor too large to fold from small inputs."""
        values = [self.constants[i] if i else None for i in node.input]
        try:
            if node.op_type == "ConstantOfShape":
                return int(np.prod(values[0])) > _FOLD_LIMIT
            if node.op_type == "Expand":
                return int(np.prod(np.broadcast_shapes(values[0].shape, tuple(int(d) for d in values[1])))) > _FOLD_LIMIT
            if node.op_type == "Tile":
                return values[0].size * int(np.prod(values[1])) > _FOLD_LIMIT
            if node.op_type == "Range":
                return abs(float(values[1]) - float(values[0])) / max(abs(float(values[2])), 1e-12) > _FOLD_LIMIT
        except (ValueError, TypeError, OverflowError):
            return True
        return False

    # ----- ops -----

    def windowed(self, node: Any, kind: str, collapsed: bool) -> None:
        attrs = _attrs(node)
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.unsupported(node, "auto_pad is not supported; export with explicit pads")
        rule = get_rule(kind)
        weight = self.value(node.input[1]) if rule.temporal.weighted else None
        if rule.temporal.weighted and weight is None:
            raise self.unsupported(node, "the kernel is neither an initializer nor computed from constants")
        kernel = tuple(attrs.get("kernel_shape") or weight.shape[2:])  # type: ignore[union-attr]
        strides = tuple(attrs.get("strides", (1,) * len(kernel)))
        dilations = tuple(attrs.get("dilations", (1,) * len(kernel)))
        pads = tuple(attrs.get("pads", (0,) * 2 * len(kernel)))
        source = self.move_time(node.input[0], 2)
        if len(kernel) == 1:  # a Conv1d / pool over a sequence: per frame, time as a spatial axis of size 1
            if node.op_type == "ConvTranspose":
                raise self.unsupported(node, "a 1D transposed conv has no rule")
            self.per_frame_1d(node, source, kernel, strides, dilations, pads, weight, collapsed)
            return
        if len(kernel) != 2:
            raise self.unsupported(node, f"expected a 2D op, got kernel {kernel}")
        path = _path(node)
        if kind == "conv" and path in self.stem and "patch_embed" in path.split(".") and kernel == strides \
                and not any(pads) and kernel[0] > 1:
            kind = "patch_embed"  # timm's PatchEmbed as the stem: non-overlapping tubelets (later stages keep time)
            rule = get_rule(kind)
        spec = OpSpec(kind, path, kernel, strides, (pads[0], pads[1]), dilations, attrs.get("group", 1),
                      role=role_of(path, self.stem))
        time = self.policy.time_for(spec)
        op = rule.describe(spec, time)
        if op.time_pads == "same":
            raise self.unsupported(node, "TF SAME time padding needs the clip length; use a static padding policy")
        front, back = op.time_pads  # type: ignore[misc]
        time_in_op = (0, 0)
        transposed = node.op_type == "ConvTranspose"
        if front or back:
            mode = pad_mode_for(rule.temporal.pool, op.time_pad_mode)
            if mode == "zeros" and not transposed:  # ONNX pads with zeros itself
                time_in_op = (front, back)
            else:
                source = self.time_pad(node, source, op, mode)
        if transposed:  # its own time padding trims d·(k_t − 1) frames: the output keeps the clip length
            if attrs.get("output_shape"):
                raise self.unsupported(node, "ConvTranspose with output_shape; export with pads instead")
            trim = op.dilation[0] * (op.kernel[0] - 1)
            time_in_op = (trim, trim)
        new_pads = [time_in_op[0], pads[0], pads[1], time_in_op[1], pads[2], pads[3]]
        inputs = [source] + [self.aliases.get(i, i) for i in node.input[1:]]  # biases behind Identity nodes
        extra: dict[str, Any] = {"kernel_shape": list(op.kernel), "strides": list(op.stride), "pads": new_pads}
        if rule.temporal.weighted or "dilations" in attrs:
            extra["dilations"] = list(op.dilation)
        if "output_padding" in attrs:
            extra["output_padding"] = [0, *attrs["output_padding"]]
        if weight is not None:
            root = self.aliases.get(node.input[1], node.input[1])
            key = (root, op.kernel[0], time.init, kind)
            if key not in self.inflated_kernels:  # one 3D copy per initializer and time setting
                _, inflated = get_rule(kind).inflate(spec, time, {"weight": weight})
                self.inflated_kernels[key] = self.const(f"{root}_3d", inflated["weight"].astype(weight.dtype))
            inputs[1] = self.inflated_kernels[key]
        if rule.temporal.pool and self.spatial_size(node.input[0]) == kernel and kernel != (1, 1):
            self.bound(node, "its window covers the whole feature map")
        self.copy(node, inputs, **extra)
        self.layout[node.output[0]] = _Clip(2, 4, collapsed)  # a pooled-away time axis stays of length 1
        self.records.append((path, node.op_type, op.kernel[0], op.stride[0]))

    def spatial_size(self, name: str) -> Optional[tuple[Any, ...]]:
        shape = self.shapes2d.get(name)
        return tuple(shape[2:]) if shape and len(shape) == 4 else None

    def per_frame_1d(self, node: Any, source: str, kernel: tuple[int, ...], strides: tuple[int, ...],
                     dilations: tuple[int, ...], pads: tuple[int, ...], weight: Optional[np.ndarray],
                     collapsed: bool) -> None:
        inputs = [source] + list(node.input[1:])
        if weight is not None:
            inputs[1] = self.const(f"{node.input[1]}_3d", weight[:, :, None])
        extra: dict[str, Any] = {"kernel_shape": [1, *kernel], "strides": [1, *strides],
                                 "pads": [0, pads[0], 0, pads[1]]}
        if node.op_type == "Conv" or "dilations" in _attrs(node):
            extra["dilations"] = [1, *dilations]
        self.copy(node, inputs, **extra)
        self.layout[node.output[0]] = _Clip(2, 3, collapsed)

    def node(self, node: Any) -> None:
        op = node.op_type
        clips = [i for i in node.input if i and self.is_clip(i)]
        if not clips:
            self.copy(node)
            for out in node.output:
                self.layout[out] = None
            self.fold(node)
            return
        collapsed = all(self.clip(i).collapsed for i in clips)
        if op in ("Conv", "ConvTranspose"):
            if node.input[0] not in clips or any(self.is_clip(i) for i in node.input[1:] if i):
                raise self.unsupported(node, "its kernel depends on the input")
            self.windowed(node, _WINDOWED_KINDS[op], collapsed)
        elif op in ("MaxPool", "AveragePool"):
            if op == "MaxPool" and len(node.output) > 1:
                raise self.unsupported(node, "MaxPool with indices")
            self.windowed(node, _WINDOWED_KINDS[op], collapsed)
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            self.copy(node, [self.move_time(node.input[0], 2)])
            self.layout[node.output[0]] = _Clip(2, self.clip(node.input[0]).rank, collapsed=True)
        elif op in _NORMS:
            source = node.input[0]
            if self.clip(source).axis < 2:  # channels stay on axis 1; time joins the normalised axes
                source = self.move_time(source, 2)
            self.copy(node, [source] + list(node.input[1:]))
            self.layout[node.output[0]] = self.clip(source)
        elif op in _UNARY:
            self.copy(node)
            self.layout[node.output[0]] = self.clip(node.input[0])
            for out in node.output[1:]:
                self.layout[out] = self.clip(node.input[0])
        elif op in _ELEMENTWISE_BROADCAST:
            self.broadcasting(node, list(node.input), collapsed)
        elif op == "MatMul":
            self.matmul(node, collapsed)
        elif op == "Concat":
            self.concat(node, collapsed)
        elif op in _REDUCE:
            self.reduce(node)
        elif op in _SOFTMAX or op in ("ArgMax", "ArgMin"):
            self.along_axis(node, collapsed)
        elif op == "LayerNormalization":
            self.layer_norm(node)
        elif op in ("Flatten", "Gemm"):
            if node.input[0] not in clips or any(self.is_clip(i) for i in node.input[1:] if i):
                raise self.unsupported(node, "its weights depend on the input")
            self.copy(node, [self.squeeze_time(node.input[0], node)] + list(node.input[1:]))
            for out in node.output:
                self.layout[out] = None
        elif op == "Reshape":
            self.reshape(node, collapsed)
        elif op == "Transpose":
            self.transpose(node)
        elif op == "Shape":
            self.shape(node)
        elif op == "Split":
            self.split(node)
        elif op == "Squeeze":
            self.squeeze(node)
        elif op == "Unsqueeze":
            self.unsqueeze(node)
        elif op == "Gather":
            self.gather(node)
        elif op == "Slice":
            self.slice(node, collapsed)
        elif op == "Resize":
            self.resize(node, collapsed)
        elif op == "Pad":
            self.pad(node, collapsed)
        elif op in ("Expand", "Tile"):
            self.expand(node, collapsed)
        else:
            raise self.unsupported(node, f"no inflation rule; supported ops: {', '.join(SUPPORTED_OPS)}")

    def data_only(self, node: Any) -> _Clip:
        """The layout of input 0, for ops whose other inputs are parameters (axes, shapes)."""
        if not self.is_clip(node.input[0]) or any(self.is_clip(i) for i in node.input[1:] if i):
            raise self.unsupported(node, "only its data input may carry frames")
        return self.clip(node.input[0])

    def const_axes(self, node: Any, attr: str = "axes", index: int = 1) -> Optional[list[int]]:
        """An op's axes, from the attribute (older opsets) or the constant input."""
        attrs = _attrs(node)
        if attr in attrs:
            value = attrs[attr]
            return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
        if len(node.input) > index and node.input[index]:
            values = self.value(node.input[index])
            if values is None:
                raise self.unsupported(node, "its axes are computed at run time")
            return [int(v) for v in np.atleast_1d(values)]
        return None

    def broadcasting(self, node: Any, inputs: list[str], collapsed: bool) -> None:
        ranks = [self.rank2d(i) if i else 0 for i in inputs]
        if any(r is None for i, r in zip(inputs, ranks) if i):
            raise self.unsupported(node, "an operand's rank is unknown")
        clips = [i for i in inputs if i and self.is_clip(i)]
        lead = max(clips, key=lambda i: (not self.clip(i).collapsed, self.clip(i).rank))
        after = self.clip(lead).rank - self.clip(lead).axis  # axes after time, shared by all timed operands
        new_inputs = []
        for name, rank in zip(inputs, ranks):
            if not name:
                new_inputs.append(name)
            elif self.is_clip(name):
                if rank - after < 0:  # type: ignore[operator]
                    raise self.unsupported(node, "its timed operands cannot be aligned on time")
                new_inputs.append(self.move_time(name, rank - after))  # type: ignore[operator]
            else:
                new_inputs.append(self.broadcast_static(node, name, after))
        self.copy(node, new_inputs)
        rank = max(r for r in ranks if r is not None)
        self.layout[node.output[0]] = _Clip(rank - after, rank, collapsed)

    def matmul(self, node: Any, collapsed: bool) -> None:
        a, b = node.input[:2]
        ranks = [self.rank2d(a), self.rank2d(b)]
        if None in ranks or min(ranks) < 2:  # type: ignore[type-var]
            raise self.unsupported(node, "matrix-vector products and unknown ranks")
        timed = [n for n in (a, b) if self.is_clip(n)]
        # time must be a batch axis (not among the last two) of every timed operand
        after = 2
        for name in timed:
            clip = self.clip(name)
            after = max(after, min(clip.rank - clip.axis, clip.rank))
        after = min(after, min(self.clip(n).rank for n in timed))
        new_inputs = [self.move_time(n, self.clip(n).rank - after) if self.is_clip(n)
                      else self.broadcast_static(node, n, after) for n in (a, b)]
        self.copy(node, new_inputs)
        rank = max(ranks)  # type: ignore[type-var]
        self.layout[node.output[0]] = _Clip(rank - after, rank, collapsed)

    def concat(self, node: Any, collapsed: bool) -> None:
        clips = [i for i in node.input if self.is_clip(i)]
        lead = clips[0]
        clip = self.clip(lead)
        axis = _attrs(node)["axis"]
        axis = axis + clip.rank if axis < 0 else axis
        if axis < 0 or axis >= clip.rank:
            raise self.unsupported(node, f"axis {axis} is out of range")
        inputs = []
        for name in node.input:
            if self.is_clip(name):
                inputs.append(self.move_time(name, clip.axis))
            else:  # a class token or other static part: the same for every frame
                self.bound(node, f"it joins '{name}', which has no time axis, whose size is fixed")
                inputs.append(self.expand_over_time(name, lead, clip))
        self.copy(node, inputs, axis=clip.to3d(axis))
        self.layout[node.output[0]] = _Clip(clip.axis, clip.rank, collapsed)

    def along_axis(self, node: Any, collapsed: bool) -> None:
        clip = self.data_only(node)
        attrs = _attrs(node)
        axis = attrs.get("axis", -1 if node.op_type in _SOFTMAX else 0)
        axis = axis + clip.rank if axis < 0 else axis
        source = node.input[0]
        if node.op_type in _SOFTMAX and self.opset < 13 and clip.axis > axis:  # old softmax flattens from axis
            source = self.move_time(source, axis)
            clip = self.clip(source)
        self.copy(node, [source] + list(node.input[1:]), axis=clip.to3d(axis))
        if node.op_type in ("ArgMax", "ArgMin") and not attrs.get("keepdims", 1):
            self.layout[node.output[0]] = _Clip(clip.axis - (axis < clip.axis), clip.rank - 1, collapsed)
        else:
            self.layout[node.output[0]] = _Clip(clip.axis, clip.rank, collapsed)

    def layer_norm(self, node: Any) -> None:
        clip = self.data_only(node)
        axis = _attrs(node).get("axis", -1)
        axis = axis + clip.rank if axis < 0 else axis
        source = node.input[0]
        if clip.axis > axis:  # time must stay out of the normalised axes
            source = self.move_time(source, axis)
            clip = self.clip(source)
        self.copy(node, [source] + list(node.input[1:]), axis=clip.to3d(axis))
        for out in node.output:
            self.layout[out] = clip

    def reduce(self, node: Any) -> None:
        clip = self.data_only(node)
        attrs = _attrs(node)
        axes = self.const_axes(node)
        if axes is None:
            if attrs.get("noop_with_empty_axes", 0):
                self.copy(node)
                self.layout[node.output[0]] = clip
                return
            axes = list(range(clip.rank))
        reduction = reduce_axes(axes, clip.axis, clip.rank)  # the axis after time pools time with it
        new_axes = list(reduction.axes)
        keepdims = attrs.get("keepdims", 1)
        if "axes" in attrs:
            self.copy(node, axes=new_axes)
        else:
            self.copy(node, [node.input[0], self.const(f"{node.name}_axes3d", np.array(new_axes, np.int64))])
        if keepdims:
            self.layout[node.output[0]] = _Clip(clip.axis, clip.rank, clip.collapsed or reduction.over_time)
        elif reduction.time_axis is None:
            self.layout[node.output[0]] = None
        else:
            self.layout[node.output[0]] = _Clip(reduction.time_axis, reduction.rank2d, clip.collapsed)

    def reshape(self, node: Any, collapsed: bool) -> None:
        clip = self.data_only(node)
        source, target = node.input[0], node.input[1]
        target_value = self.value(target)
        if target_value is not None:
            self.bound(node, f"its target shape {target_value.tolist()} is a constant")
        out_shape = self.shapes2d.get(node.output[0])
        out_rank: Optional[int] = None
        if target_value is not None:
            out_rank = int(target_value.size)
        elif out_shape is not None:
            out_rank = len(out_shape)
        else:
            target_shape = self.shapes2d.get(target)
            out_rank = target_shape[0] if target_shape and isinstance(target_shape[0], int) else None
        if out_rank is None:
            raise self.unsupported(node, "the rank of its target shape is unknown")
        position = self.reshape_time_position(source, clip, out_shape, target_value)
        if position is None:  # no axis boundary of the output matches: reshape behind a leading time axis
            source = self.move_time(source, 0)
            clip = self.clip(source)
            position = 0
        if target_value is not None and np.any(target_value == 0) and not _attrs(node).get("allowzero", 0):
            zeros = np.flatnonzero(target_value == 0)
            if any((j < position) != (j < clip.axis) for j in zeros):
                raise self.unsupported(node, "a 0 (copy) entry in its target would refer to another axis")
        new_target = self.insert_into_vector(target, position, self.time_length(source))
        self.copy(node, [source, new_target])
        self.layout[node.output[0]] = _Clip(position, out_rank, collapsed)

    def reshape_time_position(self, source: str, clip: _Clip, out_shape: Optional[list[Any]],
                              target: Optional[np.ndarray]) -> Optional[int]:
        """The output axis boundary whose leading axes hold exactly the input's axes before
        time (row-major reshapes then never mix time with another axis), or None."""
        in_shape = self.shapes2d.get(source)
        if in_shape is None or out_shape is None or len(in_shape) != clip.rank:
            return None

        def product(dims: list[Any]) -> Optional[tuple[int, tuple[str, ...]]]:
            number, symbols = 1, []
            for d in dims:
                if isinstance(d, int) and d > 0:
                    number *= d
                elif isinstance(d, str):
                    symbols.append(d)
                else:
                    return None
            return number, tuple(sorted(symbols))

        wanted = product(in_shape[:clip.axis])
        if wanted is None:
            return None
        matches = [q for q in range(len(out_shape) + 1) if product(out_shape[:q]) == wanted]
        if not matches:
            return None
        return min(matches, key=lambda q: (abs(q - clip.axis), -q))

    def transpose(self, node: Any) -> None:
        clip = self.data_only(node)
        perm = _attrs(node).get("perm")
        perm = list(range(clip.rank))[::-1] if perm is None else list(perm)
        position = _transpose_time_position(perm, clip)
        order = [clip.to3d(p) for p in perm]
        order.insert(position, clip.axis)
        self.copy(node, perm=order)
        self.layout[node.output[0]] = _Clip(position, clip.rank, clip.collapsed)

    def shape(self, node: Any) -> None:
        """Shape of a timed value: the 2D shape (time dropped), computed at run time."""
        clip = self.data_only(node)
        attrs = _attrs(node)
        start, end = attrs.get("start", 0), attrs.get("end", clip.rank)
        start = max(0, start + clip.rank if start < 0 else start)
        end = min(clip.rank, end + clip.rank if end < 0 else end)
        indices = [clip.to3d(a) for a in range(start, end)]
        full = self.make("Shape", [node.input[0]], f"{node.output[0]}_3d")
        self.emit(self.onnx.helper.make_node("Gather", [full, self.const(f"{node.output[0]}_2d_axes",
                                                                          np.array(indices, np.int64))],
                                             [node.output[0]], name=node.name, axis=0))
        self.layout[node.output[0]] = None

    def split(self, node: Any) -> None:
        clip = self.data_only(node)
        axis = _attrs(node).get("axis", 0)
        self.copy(node, axis=clip.to3d(axis))
        for out in node.output:
            self.layout[out] = clip

    def squeeze(self, node: Any) -> None:
        clip = self.data_only(node)
        axes = self.const_axes(node)
        if axes is None:
            shape = self.shapes2d.get(node.input[0])
            if shape is None or not all(isinstance(d, int) for d in shape):
                raise self.unsupported(node, "a Squeeze without axes needs a known input shape")
            axes = [i for i, d in enumerate(shape) if d == 1]
        axes = sorted(a + clip.rank if a < 0 else a for a in axes)
        new_axes = [clip.to3d(a) for a in axes]
        self.axes_copy(node, new_axes)
        self.layout[node.output[0]] = _Clip(clip.axis - sum(a < clip.axis for a in axes), clip.rank - len(axes),
                                            clip.collapsed)

    def unsqueeze(self, node: Any) -> None:
        clip = self.data_only(node)
        axes = self.const_axes(node)
        if axes is None:
            raise self.unsupported(node, "an Unsqueeze without axes")
        out_rank = clip.rank + len(axes)
        axes = sorted(a + out_rank if a < 0 else a for a in axes)
        # the original axes fill the output positions not in axes, in order; time goes just
        # before the original axis it preceded (or last)
        kept = [p for p in range(out_rank) if p not in axes]
        time_position = kept[clip.axis] if clip.axis < len(kept) else out_rank
        new_axes = [a if a < time_position else a + 1 for a in axes]
        self.axes_copy(node, new_axes)
        self.layout[node.output[0]] = _Clip(time_position, out_rank, clip.collapsed)

    def axes_copy(self, node: Any, new_axes: list[int]) -> None:
        if "axes" in _attrs(node):
            self.copy(node, axes=new_axes)
        else:
            self.copy(node, [node.input[0], self.const(f"{node.name or node.output[0]}_axes3d",
                                                       np.array(new_axes, np.int64))])

    def gather(self, node: Any) -> None:
        clip = self.data_only(node)
        axis = _attrs(node).get("axis", 0)
        axis = axis + clip.rank if axis < 0 else axis
        index_rank = self.rank2d(node.input[1])
        if index_rank is None:
            raise self.unsupported(node, "the rank of its indices is unknown")
        self.copy(node, axis=clip.to3d(axis))
        position = clip.axis if clip.axis <= axis else clip.axis - 1 + index_rank
        self.layout[node.output[0]] = _Clip(position, clip.rank - 1 + index_rank, clip.collapsed)

    def slice(self, node: Any, collapsed: bool) -> None:
        clip = self.data_only(node)
        inputs = list(node.input) + [""] * (5 - len(node.input))
        if inputs[3]:
            axes = self.value(inputs[3])
            if axes is None:
                raise self.unsupported(node, "only Slice with constant axes is supported")
        else:
            count = self.value(inputs[1]).size if self.value(inputs[1]) is not None else (  # type: ignore[union-attr]
                (self.shapes2d.get(inputs[1]) or [None])[0])
            if not isinstance(count, int):
                raise self.unsupported(node, "a Slice without axes needs starts of known length")
            axes = np.arange(count)
        axes = np.where(axes < 0, axes + clip.rank, axes)
        if any(a == 0 or a >= 2 for a in axes) and clip.rank == 4 and clip.axis == 2:
            self.bound(node, "it slices a feature map's batch or spatial axes")
        inputs[3] = self.const(f"{node.input[3] or node.name}_axes3d",
                               np.array([clip.to3d(int(a)) for a in axes], np.int64))
        self.copy(node, [i for i in inputs if i] if not inputs[4] else inputs)
        self.layout[node.output[0]] = _Clip(clip.axis, clip.rank, collapsed)

    def resize(self, node: Any, collapsed: bool) -> None:
        clip = self.data_only(node)
        inputs = list(node.input) + [""] * (4 - len(node.input))
        attrs = _attrs(node)
        mode = attrs.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode == "cubic":
            raise self.unsupported(node, "cubic resizing has no 3D form in ONNX")
        if "axes" in attrs:
            raise self.unsupported(node, "Resize with axes")
        scales = self.value(inputs[2]) if inputs[2] else None
        if scales is not None and scales.size == clip.rank:
            inputs[2] = self.const(f"{inputs[2]}_3d", np.insert(scales, clip.axis, 1.0).astype(scales.dtype))
        elif inputs[3]:
            if inputs[3] in self.constants:
                self.bound(node, "its output size is a constant")
            inputs[3] = self.insert_into_vector(inputs[3], clip.axis, self.time_length(node.input[0]))
        else:
            raise self.unsupported(node, "Resize needs constant scales or sizes")
        while inputs and not inputs[-1]:
            inputs.pop()
        self.copy(node, inputs)
        self.layout[node.output[0]] = _Clip(clip.axis, clip.rank, collapsed)

    def pad(self, node: Any, collapsed: bool) -> None:
        """A Pad of a timed value: no padding on the time axis, whatever computes the pads."""
        clip = self.data_only(node)
        inputs = list(node.input)
        attrs = _attrs(node)
        if "pads" in attrs:  # opset < 11
            pads = list(attrs["pads"])
            rank = clip.rank
            self.copy(node, pads=pads[:clip.axis] + [0] + pads[clip.axis:rank + clip.axis] + [0]
                      + pads[rank + clip.axis:])
            self.layout[node.output[0]] = _Clip(clip.axis, clip.rank, collapsed)
            return
        if len(inputs) > 3 and inputs[3]:  # opset 18 axes: pads only the named axes
            axes = self.value(inputs[3])
            if axes is None:
                raise self.unsupported(node, "its axes are computed at run time")
            axes = np.where(axes < 0, axes + clip.rank, axes)
            inputs[3] = self.const(f"{inputs[3]}_3d", np.array([clip.to3d(int(a)) for a in axes], np.int64))
        else:
            pads = self.value(inputs[1])
            if pads is not None:
                if pads.size != 2 * clip.rank:
                    raise self.unsupported(node, f"expected {2 * clip.rank} pads, got {pads.size}")
                if inputs[1] not in self.literal:
                    self.bound(node, "its pads were computed by the exporter for a fixed input size")
                inputs[1] = self.const(f"{inputs[1]}_3d", np.insert(np.insert(pads, clip.rank + clip.axis, 0),
                                                                    clip.axis, 0).astype(pads.dtype))
            else:  # computed at run time (TF SAME): re-index with a zero entry for each end of time
                rank = clip.rank
                order = list(range(rank))
                order.insert(clip.axis, 2 * rank)
                ends = list(range(rank, 2 * rank))
                ends.insert(clip.axis, 2 * rank)
                as_int = self.make("Cast", [inputs[1]], f"{inputs[1]}_int64", to=self.onnx.TensorProto.INT64)
                padded = self.make("Concat", [as_int, self.const("zero", np.array([0], np.int64))],
                                   f"{inputs[1]}_with_zero", axis=0)
                indices = self.const(f"{inputs[1]}_order", np.array(order + ends, np.int64))
                inputs[1] = self.make("Gather", [padded, indices],
                                      f"{inputs[1]}_3d", axis=0)
        self.copy(node, inputs)
        self.layout[node.output[0]] = _Clip(clip.axis, clip.rank, collapsed)

    def expand(self, node: Any, collapsed: bool) -> None:
        """Expand/Tile of a timed value: the shape or repeats get a 1 for time."""
        clip = self.data_only(node)
        vector = node.input[1]
        values = self.value(vector)
        length = values.size if values is not None else (self.shapes2d.get(vector) or [None])[0]
        if not isinstance(length, int):
            raise self.unsupported(node, "the length of its shape input is unknown")
        if values is not None:
            self.bound(node, "its shape is a constant")
        after = clip.rank - clip.axis
        out_rank = max(clip.rank, length) if node.op_type == "Expand" else clip.rank
        position = max(length - after, 0)
        one = self.const("one", np.array([1], np.int64))
        new_vector = self.insert_into_vector(vector, position, one) if length > after or \
            node.op_type == "Tile" else vector
        self.copy(node, [node.input[0], new_vector])
        self.layout[node.output[0]] = _Clip(out_rank - after, out_rank, collapsed)


def _prune(graph: Any, nodes: list[Any]) -> list[Any]:
    """The nodes the graph's outputs depend on, in order."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    return kept[::-1]


def inflate_onnx(
    model: Any,
    t: int = 8,
    *,
    policy: str | Policy = "i3d",
    init: Optional[str] = None,
    pad_mode: Optional[str] = None,
    overrides: OverrideTable = None,
    time_axis_name: str = "time",
    dynamic_size: Optional[bool] = None,
) -> Any:
    """Inflate a 2D ONNX model (a path or a ``ModelProto``) into a 3D ``ModelProto``.

    The graph input (N, C, H, W) becomes (N, C, T, H, W) with a dynamic time axis. Every
    Conv kernel is inflated by the core rule (same policy and init as ``inflate_model``
    give the same numbers). Graphs as ``torch.onnx.export`` writes them are accepted:
    kernels behind ``Identity``/``Constant`` nodes, TF-SAME padding computed by
    ``Shape``/``Gather``/arithmetic subgraphs, and transformer graphs (attention within
    each tubelet step; see the module docstring).

    ``dynamic_size``: make batch, height and width dynamic axes of the 3D graph (as the
    2D graph declared them otherwise). ``None`` (default) does so when nothing in the
    graph ties it to the exported size (constant reshape targets, padding the exporter
    computed for a fixed size, position embeddings, windows covering the whole map);
    ``True`` insists and raises :class:`InvalidInputError` naming what ties it.

    An op without a rule raises :class:`UnsupportedOpError` naming the node and its type.
    The result passes ``onnx.checker`` with full check.
    """
    import onnx

    check_clip_length(t)
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
    nodes = _prune(graph, rewriter.new_nodes)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + [v for k, v in rewriter.new_inits.items() if k in used])

    free = not rewriter.size_bound
    if dynamic_size and not free:
        raise InvalidInputError("the graph cannot take other sizes than it was exported at: "
                                + "; ".join(rewriter.size_bound[:3]) + "; export it with dynamic axes")
    make_dynamic = free if dynamic_size is None else dynamic_size
    if make_dynamic:
        for index, name in ((0, "batch"), (2, "height"), (3, "width")):
            if not dims[index].dim_param:
                dims[index].Clear()
                dims[index].dim_param = name
    dims.insert(2, onnx.TensorShapeProto.Dimension(dim_param=time_axis_name))
    del graph.value_info[:]
    for output in graph.output:
        out_dims = output.type.tensor_type.shape.dim
        layout = rewriter.layout.get(output.name)
        if make_dynamic:
            output.type.tensor_type.ClearField("shape")  # sizes follow the input; inference fills them
        elif isinstance(layout, _Clip):
            out_dims.insert(layout.axis, onnx.TensorShapeProto.Dimension(dim_value=1) if layout.collapsed
                            else onnx.TensorShapeProto.Dimension(dim_param=time_axis_name))
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = write_metadata("onnx", {"t": t, "policy": resolved.name, "init": resolved.init,
                                          "pad_mode": resolved.pad_mode, "dynamic_size": bool(make_dynamic)})
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:
        raise InflateError(f"the inflated ONNX graph does not check: {error}") from error
    return model
