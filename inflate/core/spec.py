"""Plain descriptions of a 2D op and of the time settings it is inflated with.

Nothing here knows about a framework: adapters read their own ops into an
:class:`OpSpec`, ask a policy for a :class:`TimeSpec`, and let a rule turn the
pair into an :class:`InflatedOp` and 3D weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .errors import InvalidInputError
from .geometry import tf_same_pads

__all__ = ["OpSpec", "TimeSpec", "InflatedOp", "Role", "PadMode", "Init", "tf_same_pads"]

Role = Literal["stem", "body", "head"]
PadMode = Literal["replicate", "zeros"]
Init = Literal["tile", "center"]
INITS: tuple[str, ...] = ("tile", "center")
PAD_MODES: tuple[str, ...] = ("replicate", "zeros")


@dataclass(frozen=True)
class OpSpec:
    """A 2D op as a rule sees it.

    Attributes:
        kind: the op family key of the rule registry ("conv", "max_pool", ...).
        path: where the op sits in its model ("layer1.0.conv1"), for policies and errors.
        kernel, stride, dilation: spatial (height, width) settings; empty for ops without them.
        padding: spatial (height, width) padding, or "same" for TensorFlow-style padding
            computed from the input size at run time.
        groups: convolution groups.
        role: "stem" for the model's first convolution, "head" for the classifier, else "body".
        output_size: the (height, width) target of an adaptive pool.
        scale: the (height, width) factors of an upsampling op.
    """

    kind: str
    path: str = ""
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] | str = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    role: Role = "body"
    output_size: tuple[int | None, ...] | None = None
    scale: tuple[float, float] | None = None


@dataclass(frozen=True)
class TimeSpec:
    """How one op is extended along time.

    Attributes:
        kernel: temporal kernel size k_t (1: the op stays per-frame).
        stride: temporal stride.
        dilation: temporal dilation.
        padding: (front, back) frames of padding; ``None`` keeps the clip length at
            stride 1: d·(k_t − 1) frames in all, the odd one at the back; "same" is
            TensorFlow's SAME, computed from the clip length at run time (it differs from
            ``None`` only for strides above 1: a 7-frame kernel of stride 2 on 64 frames
            pads 2 + 3 frames, not 3 + 3).
        pad_mode: "replicate" repeats the edge frames, so a repeated-frame clip gives
            the 2D responses at every time step; "zeros" is TensorFlow's SAME padding.
        init: "tile" repeats the 2D kernel k_t times and divides by k_t; "center" puts
            the 2D kernel in the middle slice and zeros elsewhere.
    """

    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    padding: tuple[int, int] | Literal["same"] | None = None
    pad_mode: PadMode = "replicate"
    init: Init = "tile"

    def __post_init__(self) -> None:
        for name in ("kernel", "stride", "dilation"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"TimeSpec.{name} must be an integer >= 1, got {value!r}")
        if self.init not in INITS:
            raise InvalidInputError(f"unknown init {self.init!r}: use one of {', '.join(INITS)}")
        if self.pad_mode not in PAD_MODES:
            raise InvalidInputError(
                f"unknown temporal pad_mode {self.pad_mode!r}: use one of {', '.join(PAD_MODES)}"
            )
        if self.padding is not None and self.padding != "same" and (
                isinstance(self.padding, str) or len(self.padding) != 2 or min(self.padding) < 0):
            raise InvalidInputError(
                f"TimeSpec.padding must be (front, back) with both >= 0, got {self.padding!r}"
            )

    @property
    def pads(self) -> tuple[int, int] | Literal["same"]:
        """(front, back) temporal padding in frames, or "same" (computed per clip length)."""
        if self.padding == "same":
            return "same"
        if self.padding is not None:
            return tuple(self.padding)  # type: ignore[return-value]
        total = self.dilation * (self.kernel - 1)
        return total // 2, total - total // 2

    def pads_for(self, frames: int) -> tuple[int, int]:
        """(front, back) padding for a clip of ``frames`` frames."""
        if self.padding != "same":
            return self.pads  # type: ignore[return-value]
        return tf_same_pads(frames, self.kernel, self.stride, self.dilation)

    def output_length(self, frames: int) -> int:
        """Number of output time steps for an input of ``frames`` frames."""
        front, back = self.pads_for(frames)
        span = self.dilation * (self.kernel - 1) + 1
        return (frames + front + back - span) // self.stride + 1

    def with_(self, **changes: object) -> "TimeSpec":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class InflatedOp:
    """The 3D op a rule produced: (time, height, width) settings and the time padding.

    ``padding`` holds the spatial part only, as the 2D op had it; the temporal padding is
    ``time_pads`` with ``time_pad_mode``, applied before the op since frameworks pad all
    axes with one mode.
    """

    kind: str
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int]
    dilation: tuple[int, int, int]
    padding: tuple[int, int] | str
    time_pads: tuple[int, int] | Literal["same"]
    time_pad_mode: PadMode
    groups: int = 1
    output_size: tuple[int | None, ...] | None = None
    scale: tuple[float, float, float] | None = None
    source: OpSpec = field(default_factory=lambda: OpSpec("unknown"))
    time: TimeSpec = field(default_factory=TimeSpec)
