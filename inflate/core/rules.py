"""The registry of inflation rules, keyed by op kind.

A rule turns a 2D op description plus its time settings into a 3D op description
(:func:`Rule.describe`) and maps the op's 2D weights to 3D ones (:func:`Rule.weights`),
on numpy arrays only. It also says what time it takes by default (:class:`Temporal`), so a
policy asks the rule instead of knowing kinds by name. Rules never walk a model: adapters
do, and call rules.

The rule modules live in :mod:`inflate.rules` and register themselves when imported;
``import inflate`` imports them (the core never imports upward).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping, NamedTuple, Optional

import numpy as np

from .errors import RuleRegistryError
from .spec import InflatedOp, OpSpec, TimeSpec

__all__ = ["RuleKey", "Rule", "Temporal", "register_rule", "get_rule", "has_rule", "list_rules", "Describe",
           "MapWeights", "copy_weights"]

Describe = Callable[[OpSpec, TimeSpec], InflatedOp]
MapWeights = Callable[[Mapping[str, np.ndarray], InflatedOp], dict[str, np.ndarray]]
TimeExtent = Literal["none", "kernel", "tubelet"]
PoolKind = Optional[Literal["max", "avg"]]


class RuleKey(NamedTuple):
    """What a rule is registered under: the op family ("conv", "max_pool", ...)."""

    kind: str


@dataclass(frozen=True)
class Temporal:
    """What an op of a kind gets along time before a policy's overrides.

    Attributes:
        extent: "kernel": a time kernel from the policy's ``conv_kernel`` (convolutions);
            "tubelet": non-overlapping tubelets of the policy's ``tubelet`` frames (patch
            embeddings); "none": time 1 (norms, pools, element-wise ops) unless an override says.
        stem: the op may be the model's first layer, which takes the policy's ``stem_kernel``
            and ``stem_stride`` (I3D's 7×7×7 stride-2 Conv3d_1a).
        pool: "max" or "avg" for windowed pools: a max pool pads time with -inf, never zeros.
        weighted: the rule maps a kernel with the policy's ``init`` (the report shows it).
    """

    extent: TimeExtent = "none"
    stem: bool = False
    pool: PoolKind = None
    weighted: bool = False

    @property
    def time_one(self) -> bool:
        """The op keeps no temporal extent unless an override gives it one."""
        return self.extent == "none"


def copy_weights(weights: Mapping[str, np.ndarray], op: InflatedOp) -> dict[str, np.ndarray]:
    """The weight map of ops whose parameters do not depend on time (norms, pools)."""
    return {name: np.array(value, copy=True) for name, value in weights.items()}


@dataclass(frozen=True)
class Rule:
    """One registered inflation rule."""

    key: RuleKey
    describe: Describe
    weights: MapWeights
    doc: str
    temporal: Temporal = field(default_factory=Temporal)

    @property
    def kind(self) -> str:
        return self.key.kind

    def inflate(
        self, op: OpSpec, time: TimeSpec, weights: Mapping[str, np.ndarray] | None = None
    ) -> tuple[InflatedOp, dict[str, np.ndarray]]:
        """Describe the 3D op and map ``weights`` (2D name → array) to its 3D weights."""
        inflated = self.describe(op, time)
        return inflated, self.weights(weights or {}, inflated)


_RULES: dict[RuleKey, Rule] = {}


def register_rule(
    kind: str, weights: MapWeights = copy_weights, temporal: Temporal = Temporal()
) -> Callable[[Describe], Describe]:
    """Decorator: register ``describe`` as the rule for op kind ``kind``, with its weight map
    and its temporal defaults. Registering the same kind twice raises :class:`RuleRegistryError`."""
    key = RuleKey(kind)

    def decorator(describe: Describe) -> Describe:
        if key in _RULES:
            raise RuleRegistryError(
                f"a rule for op kind {kind!r} is already registered "
                f"({_RULES[key].describe.__module__}.{_RULES[key].describe.__qualname__})"
            )
        summary = (describe.__doc__ or "").strip().split("\n")[0]
        _RULES[key] = Rule(key, describe, weights, summary, temporal)
        return describe

    return decorator


def has_rule(kind: str) -> bool:
    """Whether a rule is registered for op kind ``kind``."""
    return RuleKey(kind) in _RULES


def get_rule(kind: str) -> Rule:
    """The rule for op kind ``kind``; an unknown kind raises with close matches."""
    try:
        return _RULES[RuleKey(kind)]
    except KeyError:
        known = sorted(key.kind for key in _RULES)
        close = difflib.get_close_matches(kind, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise RuleRegistryError(
            f"no inflation rule for op kind {kind!r}{hint}; known kinds: {', '.join(known) or 'none (import inflate)'}"
        ) from None


def list_rules() -> list[Rule]:
    """Every registered rule, sorted by kind."""
    return [_RULES[key] for key in sorted(_RULES)]
