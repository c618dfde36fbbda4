"""Inflation policies: which ops get temporal extent, and how much.

A policy maps an :class:`OpSpec` to a :class:`TimeSpec`. The default, ``"i3d"``, follows
the I3D paper: a k×k convolution becomes k×k×k, a 1×1 stays 1×1×1, the first
convolution strides by 2 in time (as I3D's Conv3d_1a_7x7), pools keep no temporal
extent and the classifier head stays per-frame (k_t = 1).

Users change it without touching the library: ``overrides`` maps glob patterns on the
op's path to a :class:`TimeSpec` (or a dict of its fields, or an int temporal kernel), or
is a callable ``(op, proposed) -> TimeSpec | None``. Examples::

    # mmaction2-style "3x1x1": 3×3 convs stay spatial, each block's first 1×1 gets time 3
    overrides={"layer*.*.conv2": {"kernel": 1}, "layer*.*.conv1": {"kernel": 3}}
    # SlowOnly: no temporal extent before stage 3
    overrides={"layer1.*": 1, "layer2.*": 1}
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence, Union

from .errors import InvalidInputError, RuleRegistryError
from .rules import get_rule
from .spec import OpSpec, TimeSpec

__all__ = ["Policy", "Override", "get_policy", "list_policies", "register_policy", "HEAD_NAMES", "role_of"]

# Top-level module names that hold a classifier head in timm and torchvision models: their
# ops keep k_t = 1 (vgg's 7×7 pre-logits conv tiled to 7×7×7 would be a 2.9 GB tensor).
HEAD_NAMES: tuple[str, ...] = ("head", "pre_logits", "classifier", "fc", "last_linear", "conv_head", "head_drop",
                               "global_pool", "fc_norm", "classif", "logits")


def role_of(path: str, stem_path: str | Sequence[str] | None, head_names: tuple[str, ...] = HEAD_NAMES) -> str:
    """"stem" for the stem (one path, or several: :func:`~inflate.core.geometry.find_stems`) or
    an op that holds it (a patch embedding kept whole around its conv), "head" for ops under a
    head module, else "body"."""
    stems = (stem_path,) if isinstance(stem_path, str) else tuple(stem_path or ())
    if any(path == stem or stem.startswith(path + ".") for stem in stems):
        return "stem"
    return "head" if path.split(".")[0] in head_names else "body"

Override = Union[TimeSpec, Mapping[str, object], int]
ATTENTION_MODES: tuple[str, ...] = ("joint", "divided", "frames")
OverrideTable = Union[Mapping[str, Override], Callable[[OpSpec, TimeSpec], Union[TimeSpec, None]], None]
ConvKernel = Callable[[OpSpec], int]


def _square_kernel(op: OpSpec) -> int:
    kh, kw = op.kernel
    return kh if kh == kw else 1


def _square_kernel_max3(op: OpSpec) -> int:
    return min(_square_kernel(op), 3)


def _no_time(op: OpSpec) -> int:
    return 1


@dataclass(frozen=True)
class Policy:
    """A named rule for choosing each op's :class:`TimeSpec`.

    Attributes:
        name: the registry name.
        conv_kernel: temporal kernel of a body convolution, from its 2D description.
            Non-square (factorised) kernels such as 1×7 get 1 under the built-in policies.
        stem_kernel: temporal kernel of the first convolution (same signature).
        stem_stride: temporal stride of the first convolution.
        tubelet: temporal size and stride of a ViT patch embedding (tubelet embedding).
        attention: how transformer attention spans time: "joint" (all space-time tokens,
            ViViT model 1), "divided" (TimeSformer: temporal then spatial attention), or
            "frames" (spatial attention per frame; time mixes only in the tubelets).
        init, pad_mode: defaults for every op (see :class:`TimeSpec`).
        overrides: per-layer exceptions, applied last (see the module docstring).
    """

    name: str
    conv_kernel: ConvKernel = _square_kernel
    stem_kernel: ConvKernel = _square_kernel
    stem_stride: int = 2
    init: str = "tile"
    pad_mode: str = "replicate"
    overrides: OverrideTable = field(default=None, compare=False)
    description: str = ""
    tubelet: int = 2
    attention: str = "joint"

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_MODES:
            raise InvalidInputError(f"unknown attention {self.attention!r}: use one of {', '.join(ATTENTION_MODES)}")
        if isinstance(self.tubelet, bool) or not isinstance(self.tubelet, int) or self.tubelet < 1:
            raise InvalidInputError(f"tubelet must be an integer >= 1, got {self.tubelet!r}")

    def proposed(self, op: OpSpec) -> TimeSpec:
        """The policy's choice before overrides, from the temporal defaults of ``op.kind``'s rule
        (:class:`~inflate.core.rules.Temporal`): tubelets (the stem's patch embedding; a later
        one gets time 1), a time kernel (the stem's own when the op may be a stem and is), or
        time 1. Head ops stay per-frame."""
        base = TimeSpec(init=self.init, pad_mode=self.pad_mode)  # type: ignore[arg-type]
        temporal = get_rule(op.kind).temporal
        if temporal.extent == "tubelet":
            # Non-overlapping tubelets, as ViViT, for the stem's embedding only: models that embed
            # patches again at each stage (PVT, CoaT, Twins) would otherwise halve time at every
            # stage. Later embeddings merge patches within each frame (time 1).
            if op.role == "stem":
                return base.with_(kernel=self.tubelet, stride=self.tubelet, padding=(0, 0))
            return base
        if temporal.extent != "kernel" or op.role == "head":
            return base
        if op.role == "stem" and temporal.stem:
            return base.with_(kernel=max(1, self.stem_kernel(op)), stride=self.stem_stride)
        return base.with_(kernel=max(1, self.conv_kernel(op)))

    def time_for(self, op: OpSpec) -> TimeSpec:
        """The :class:`TimeSpec` this policy gives ``op``, overrides included."""
        proposed = self.proposed(op)
        if self.overrides is None:
            return proposed
        if callable(self.overrides):
            chosen = self.overrides(op, proposed)
            if chosen is not None and not isinstance(chosen, TimeSpec):
                raise InvalidInputError(
                    f"the overrides callable returned {type(chosen).__name__} for '{op.path}'; "
                    "return a TimeSpec or None"
                )
            return proposed if chosen is None else chosen
        for pattern, override in self.overrides.items():
            if fnmatch.fnmatchcase(op.path, pattern):
                return _apply_override(proposed, override, pattern)
        return proposed

    def with_(self, **changes: object) -> "Policy":
        from dataclasses import replace

        return replace(self, **changes)


def _apply_override(proposed: TimeSpec, override: Override, pattern: str) -> TimeSpec:
    if isinstance(override, TimeSpec):
        return override
    if isinstance(override, bool) or not isinstance(override, (int, Mapping)):
        raise InvalidInputError(
            f"override for {pattern!r} must be a TimeSpec, a dict of TimeSpec fields or an int "
            f"temporal kernel, got {type(override).__name__}"
        )
    if isinstance(override, int):
        return proposed.with_(kernel=override, padding=None)
    unknown = set(override) - set(TimeSpec.__dataclass_fields__)
    if unknown:
        raise InvalidInputError(
            f"override for {pattern!r} has unknown fields {sorted(unknown)}; "
            f"TimeSpec fields are {sorted(TimeSpec.__dataclass_fields__)}"
        )
    return proposed.with_(**override)


_POLICIES: dict[str, Policy] = {}


def register_policy(policy: Policy) -> Policy:
    """Add a named policy; a name registered twice raises :class:`RuleRegistryError`."""
    if policy.name in _POLICIES:
        raise RuleRegistryError(f"a policy named {policy.name!r} is already registered")
    _POLICIES[policy.name] = policy
    return policy


register_policy(Policy(
    "i3d",
    description="I3D: k×k conv → k×k×k (1×1 stays), first conv strided 2 in time, pools and head per-frame",
))
register_policy(Policy(
    "i3d_k3",
    conv_kernel=_square_kernel_max3,
    description="as i3d, but body convs get at most 3 frames (cheaper for 5×5 and 7×7 kernels)",
))
register_policy(Policy(
    "stem_only",
    conv_kernel=_no_time,
    description="only the first conv mixes time (k×k×k, stride 2); every other op stays per-frame",
))


def list_policies() -> list[Policy]:
    """Every registered policy, by name."""
    return [_POLICIES[name] for name in sorted(_POLICIES)]


def get_policy(
    policy: str | Policy = "i3d",
    *,
    init: str | None = None,
    pad_mode: str | None = None,
    overrides: OverrideTable = None,
    attention: str | None = None,
    tubelet: int | None = None,
) -> Policy:
    """Resolve a policy name (or object) and apply the caller's init, padding, overrides,
    attention mode and tubelet size."""
    if isinstance(policy, str):
        if policy not in _POLICIES:
            close = difflib.get_close_matches(policy, list(_POLICIES), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InvalidInputError(
                f"unknown policy {policy!r}{hint}; known policies: {', '.join(sorted(_POLICIES))}"
            )
        resolved = _POLICIES[policy]
    elif isinstance(policy, Policy):
        resolved = policy
    else:
        raise InvalidInputError(f"policy must be a name or a Policy, got {type(policy).__name__}")
    changes: dict[str, object] = {}
    if init is not None:
        TimeSpec(init=init)  # type: ignore[arg-type]  # validates the name
        changes["init"] = init
    if pad_mode is not None:
        TimeSpec(pad_mode=pad_mode)  # type: ignore[arg-type]
        changes["pad_mode"] = pad_mode
    if overrides is not None:
        changes["overrides"] = overrides
    if attention is not None:
        changes["attention"] = attention
    if tubelet is not None:
        changes["tubelet"] = tubelet
    return resolved.with_(**changes) if changes else resolved
