"""Shared arithmetic of the adapters: one home for what the torch, ONNX and weight-file
adapters all compute, as timm's ``layers/padding.py`` is for SAME padding.

- :func:`tf_same_pads`: TensorFlow "SAME" padding of one axis.
- :func:`pad_mode_for` and :func:`pad_value`: what padded frames or pixels hold; max
  pooling pads with -inf where other ops pad with zeros.
- :func:`axis_to_3d` and :func:`reduce_axes`: 2D axis numbers renumbered for a tensor with
  a time axis inserted (feature maps (N, C, H, W) → (N, C, T, H, W), token sequences
  (N, L, C) → (N, T, L, C)).
- :func:`find_stem`, :func:`find_stems`: which convolution of a model is its stem, and which
  others read the same input (the parallel branches of a first block).
- :func:`check_clip_length`: the one validation of ``t``, the clip length in frames.
- :data:`POINTWISE_OPS`: the element-wise ops, as each framework spells them.

Plain Python: no torch, no onnx, no numpy.
"""

from __future__ import annotations

from typing import Iterable, Literal, NamedTuple, Optional, Sequence

from .errors import InvalidInputError

__all__ = [
    "tf_same_pads",
    "NEG_INF",
    "pad_mode_for",
    "pad_value",
    "axis_to_3d",
    "Reduction",
    "reduce_axes",
    "StemCandidate",
    "find_stem",
    "find_stems",
    "check_clip_length",
    "PointwiseOp",
    "POINTWISE_OPS",
    "onnx_pointwise",
    "torch_pointwise",
]


# ----- padding -----

def tf_same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis of ``size`` elements: (front, back).

    Pads so that ceil(size / stride) windows fit: the total is
    max(span − stride, 0) when size % stride == 0, else max(span − size % stride, 0),
    with span = dilation·(kernel − 1) + 1; the odd element goes at the back. A 7-frame
    kernel of stride 2 on 64 frames pads (2, 3).
    """
    span = dilation * (kernel - 1) + 1
    total = max(span - stride, 0) if size % stride == 0 else max(span - size % stride, 0)
    return total // 2, total - total // 2


NEG_INF = "neg_inf"
"""The pad mode of max pooling where other ops pad with zeros (a constant -inf)."""


def pad_mode_for(pool: Optional[str], pad_mode: str) -> str:
    """The padding an op applies when its policy asks for ``pad_mode``; ``pool`` is its rule's
    ``temporal.pool`` ("max", "avg", or None for an op that is not a pool).

    "replicate" (edge frames) stays; a constant (zeros) pad of a max pool becomes -inf
    (:data:`NEG_INF`): a zero frame could win over negative activations, so the pool
    would see values the 2D network never produced. Other ops keep ``pad_mode``.
    """
    if pad_mode == "replicate":
        return "replicate"
    return NEG_INF if pool == "max" else pad_mode


def pad_value(mode: str) -> float:
    """The constant a pad of ``mode`` ("zeros" or :data:`NEG_INF`) fills in."""
    return float("-inf") if mode == NEG_INF else 0.0


# ----- axis renumbering -----

def axis_to_3d(axis: int, time_axis: int, rank2d: int) -> int:
    """The 3D index of 2D axis ``axis`` (negative counts from the end of the 2D tensor)
    once a time axis is inserted before 2D axis ``time_axis``.

    (N, C, H, W) with time before H (``time_axis`` 2): C stays 1, H becomes 3, −1 (W) 4.
    """
    axis = axis + rank2d if axis < 0 else axis
    return axis if axis < time_axis else axis + 1


class Reduction(NamedTuple):
    """A reduction over 2D axes, renumbered for the 3D tensor.

    Attributes:
        axes: the 3D axes to reduce, sorted (the time axis among them when ``over_time``).
        over_time: the reduction pools time too.
        time_axis: where time sits in the result when the reduced axes are dropped
            (keepdims false): None when time is pooled away.
        rank2d: the 2D rank of that result.
    """

    axes: tuple[int, ...]
    over_time: bool
    time_axis: Optional[int]
    rank2d: int


def reduce_axes(axes: Iterable[int], time_axis: int, rank2d: int) -> Reduction:
    """Renumber a reduction over 2D ``axes`` for a tensor whose time axis sits before 2D
    axis ``time_axis`` (``rank2d`` when time is last).

    Time travels with the axis it precedes: reducing that axis (H of a (N, C, T, H, W) map,
    the tokens of a (N, T, L, C) sequence) is a global pool, and pools time with it, as
    I3D averages over time before its classifier. With time last, it travels with the
    last axis. Negative axes count from the end of the 2D tensor; repeats are ignored.
    """
    axes2d = sorted({a + rank2d if a < 0 else a for a in axes})
    follows = time_axis if time_axis < rank2d else rank2d - 1
    over_time = follows in axes2d
    axes3d = sorted([axis_to_3d(a, time_axis, rank2d) for a in axes2d] + ([time_axis] if over_time else []))
    kept = None if over_time else time_axis - sum(1 for a in axes2d if a < time_axis)
    return Reduction(tuple(axes3d), over_time, kept, rank2d - len(axes2d))


# ----- the stem -----

class StemCandidate(NamedTuple):
    """One op of a model, in the order the model runs them, as stem detection sees it.

    Attributes:
        path: where the op sits ("conv1", "patch_embed.proj").
        kind: "conv" for a 2D convolution the adapter inflates itself; "holds_conv" for an
            opaque op with a rule of its own that contains a convolution (a patch
            embedding kept whole); anything else for other ops.
        reads: the name of the value the op takes as its input ("" when unknown), so that
            ops reading the same value as the stem are found (:func:`find_stems`).
    """

    path: str
    kind: Literal["conv", "holds_conv", "other"] = "other"
    reads: str = ""


def find_stem(ops: Iterable[StemCandidate], declared: Sequence[str] = ()) -> Optional[str]:
    """The path of the stem convolution: the one the policy gives the stem's time kernel and stride.

    ``declared`` names the model's own first convolution (timm's ``pretrained_cfg
    ["first_conv"]``, one name or several); the first that is one of ``ops`` or lies inside
    one wins. Otherwise the stem is the first "conv" in run order, unless an op that holds
    a convolution runs before it: that op (a patch embedding kept whole) is then the stem,
    and its own rule treats its convolution as such. None when the model has no convolution.
    """
    ops = list(ops)
    for name in declared:
        if any(name == op.path or name.startswith(op.path + ".") for op in ops):
            return name
    for op in ops:
        if op.kind in ("conv", "holds_conv"):
            return op.path
    return None


def find_stems(ops: Iterable[StemCandidate], declared: Sequence[str] = ()) -> tuple[str, ...]:
    """The stem (:func:`find_stem`) and every other convolution, or op holding one, that reads
    the same value as the stem: all of them take the stem's time kernel and stride.

    The stem's temporal stride must reach every path from the input alike: the parallel
    branches of a reparameterisable first block (RepVGG, MobileOne, FastViT: a k×k conv, a
    1×1 conv, and more k×k convs, summed) all read the input, and a stride on one branch
    only would add clips of different lengths. Limit: a path from the input with no
    convolution on it (an identity branch in a first block that keeps the frame size) gets
    no stride; the models of timm's registry have none (their first block downsamples).
    Empty when there is no stem.
    """
    ops = list(ops)
    stem = find_stem(ops, declared)
    if stem is None:
        return ()
    owner = next((op for op in ops if stem == op.path or stem.startswith(op.path + ".")), None)
    if owner is None or not owner.reads:
        return (stem,)
    siblings = [op.path for op in ops
                if op is not owner and op.kind in ("conv", "holds_conv") and op.reads == owner.reads]
    return (stem, *siblings)


# ----- t -----

def check_clip_length(t: object, name: str = "t") -> int:
    """``t`` if it is a valid clip length (an integer >= 1 frame, not a bool); else
    :class:`InvalidInputError` naming ``name`` ("t", "--time")."""
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise InvalidInputError(f"{name} (the clip length in frames) must be an integer >= 1, got {t!r}")
    return t


# ----- element-wise ops -----

class PointwiseOp(NamedTuple):
    """An element-wise op: it maps each element (or broadcast elements) on its own, so time
    passes through it untouched.

    Attributes:
        onnx: the ONNX op type ("" where ONNX has no single op for it).
        torch: its torch spellings: "operator.add", "torch.add", "F.relu" (torch.nn.functional),
            "Tensor.add_" (a method) and "nn.ReLU" (a module class).
        broadcasts: it combines several tensors that broadcast against each other.
    """

    onnx: str
    torch: tuple[str, ...] = ()
    broadcasts: bool = False


def _unary(onnx: str, *torch: str) -> PointwiseOp:
    return PointwiseOp(onnx, torch)


def _binary(onnx: str, *torch: str) -> PointwiseOp:
    return PointwiseOp(onnx, torch, broadcasts=True)


POINTWISE_OPS: tuple[PointwiseOp, ...] = (
    # activations
    _unary("Relu", "F.relu", "torch.relu", "Tensor.relu", "Tensor.relu_", "nn.ReLU"),
    _unary("", "F.relu6", "nn.ReLU6"),
    _unary("LeakyRelu", "F.leaky_relu", "nn.LeakyReLU"),
    _unary("Sigmoid", "F.sigmoid", "torch.sigmoid", "Tensor.sigmoid", "Tensor.sigmoid_", "nn.Sigmoid"),
    _unary("HardSigmoid", "F.hardsigmoid", "nn.Hardsigmoid"),
    _unary("HardSwish", "F.hardswish", "nn.Hardswish"),
    _unary("", "F.silu", "nn.SiLU"),
    _unary("Gelu", "F.gelu", "nn.GELU"),
    _unary("Mish", "F.mish", "nn.Mish"),
    _unary("Softplus", "F.softplus", "nn.Softplus"),
    _unary("Softsign", "nn.Softsign"),
    _unary("Tanh", "F.tanh", "torch.tanh", "Tensor.tanh", "Tensor.tanh_", "nn.Tanh"),
    _unary("", "F.hardtanh", "nn.Hardtanh"),  # Tensor has no hardtanh_ method
    _unary("Elu", "F.elu", "nn.ELU"),
    _unary("Selu", "F.selu", "nn.SELU"),
    _unary("Celu", "F.celu", "nn.CELU"),
    _unary("", "F.threshold", "nn.Threshold"),
    _unary("ThresholdedRelu"),
    _unary("", "nn.LogSigmoid"),
    _unary("", "nn.Tanhshrink"),
    # arithmetic
    _unary("Clip", "torch.clamp", "torch.clip", "Tensor.clamp", "Tensor.clamp_", "Tensor.clamp_min",
           "Tensor.clamp_max"),
    _unary("Erf", "torch.erf", "Tensor.erf"),
    _unary("Exp", "torch.exp", "Tensor.exp", "Tensor.exp_"),
    _unary("Sqrt", "torch.sqrt", "Tensor.sqrt"),
    _unary("", "torch.rsqrt", "Tensor.rsqrt"),
    _unary("Abs", "torch.abs", "Tensor.abs"),
    _unary("Neg", "operator.neg", "torch.neg", "Tensor.neg"),
    _unary("", "torch.square", "Tensor.square"),
    *(_unary(name) for name in ("Log", "Reciprocal", "Floor", "Ceil", "Sign", "Round", "Sin", "Cos", "Not", "IsNaN",
                                "IsInf")),  # ONNX only
    # values passed on unchanged, or cast
    _unary("Identity", "nn.Identity", "Tensor.contiguous", "Tensor.clone", "Tensor.detach"),
    _unary("Dropout", "F.dropout", "nn.Dropout", "nn.AlphaDropout"),
    _unary("Cast", "Tensor.float", "Tensor.half", "Tensor.double", "Tensor.bfloat16", "Tensor.to",
           "Tensor.type_as"),
    # several operands that broadcast
    _binary("Add", "operator.add", "operator.iadd", "torch.add", "Tensor.add", "Tensor.add_"),
    _binary("Sub", "operator.sub", "operator.isub", "torch.sub", "Tensor.sub", "Tensor.sub_"),
    _binary("Mul", "operator.mul", "operator.imul", "torch.mul", "Tensor.mul", "Tensor.mul_"),
    _binary("Div", "operator.truediv", "operator.itruediv", "torch.div", "Tensor.div", "Tensor.div_"),
    _binary("", "operator.floordiv"),
    _binary("Pow", "operator.pow", "torch.pow", "Tensor.pow"),
    _binary("Max", "torch.maximum", "Tensor.maximum"),
    _binary("Min", "torch.minimum", "Tensor.minimum"),
    _binary("Where", "torch.where", "Tensor.where", "Tensor.masked_fill"),
    _binary("PRelu", "F.prelu", "nn.PReLU"),
    # a broadcast to the other operand's shape (ECA's channel gate: ``x * y.expand_as(x)``)
    _binary("", "Tensor.expand_as"),
    # input + value · t1 · t2 (or / t2): GRN's affine (timm's GlobalResponseNorm), Adam-style updates
    _binary("", "torch.addcmul", "Tensor.addcmul"),
    _binary("", "torch.addcdiv", "Tensor.addcdiv"),
    *(_binary(name) for name in ("Sum", "Mean", "Mod", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
                                 "And", "Or", "Xor")),  # ONNX only
)


def onnx_pointwise(broadcasts: bool) -> frozenset[str]:
    """The ONNX op types of :data:`POINTWISE_OPS` that do (or do not) broadcast."""
    return frozenset(op.onnx for op in POINTWISE_OPS if op.onnx and op.broadcasts == broadcasts)


def torch_pointwise(namespace: str) -> tuple[str, ...]:
    """The names of :data:`POINTWISE_OPS` in one torch namespace, in table order:
    ``torch_pointwise("F")`` → ("relu", "relu6", ...); namespaces are "operator", "torch",
    "F", "Tensor" and "nn"."""
    prefix = namespace + "."
    return tuple(name[len(prefix):] for op in POINTWISE_OPS for name in op.torch if name.startswith(prefix))
