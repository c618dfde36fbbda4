"""The registry of inflation rules, keyed by op kind.

A rule turns a 2D op description plus its time settings into a 3D op description
(:func:`Rule.describe`) and maps the op's 2D weights to 3D ones (:func:`Rule.weights`),
on numpy arrays only. Rules never walk a model: adapters do, and call rules.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple

import numpy as np

from .errors import RuleRegistryError
from .spec import InflatedOp, OpSpec, TimeSpec

__all__ = ["RuleKey", "Rule", "register_rule", "get_rule", "list_rules", "Describe", "MapWeights"]

Describe = Callable[[OpSpec, TimeSpec], InflatedOp]
MapWeights = Callable[[Mapping[str, np.ndarray], InflatedOp], dict[str, np.ndarray]]


class RuleKey(NamedTuple):
    """What a rule is registered under: the op family ("conv", "max_pool", ...)."""

    kind: str


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

    def inflate(
        self, op: OpSpec, time: TimeSpec, weights: Mapping[str, np.ndarray] | None = None
    ) -> tuple[InflatedOp, dict[str, np.ndarray]]:
        """Describe the 3D op and map ``weights`` (2D name → array) to its 3D weights."""
        inflated = self.describe(op, time)
        return inflated, self.weights(weights or {}, inflated)


_RULES: dict[RuleKey, Rule] = {}


def register_rule(kind: str, weights: MapWeights = copy_weights) -> Callable[[Describe], Describe]:
    """Decorator: register ``describe`` as the rule for op kind ``kind``.

    Registering the same kind twice raises :class:`RuleRegistryError`.
    """
    key = RuleKey(kind)

    def decorator(describe: Describe) -> Describe:
        if key in _RULES:
            raise RuleRegistryError(
                f"a rule for op kind {kind!r} is already registered "
                f"({_RULES[key].describe.__module__}.{_RULES[key].describe.__qualname__})"
            )
        summary = (describe.__doc__ or "").strip().split("\n")[0]
        _RULES[key] = Rule(key, describe, weights, summary)
        return describe

    return decorator


def _ensure_loaded() -> None:
    # The rule modules register themselves on import; importing them here keeps
    # `get_rule` usable from the core without the caller knowing where rules live.
    from .. import rules  # noqa: F401


def get_rule(kind: str) -> Rule:
    """The rule for op kind ``kind``; an unknown kind raises with close matches."""
    _ensure_loaded()
    try:
        return _RULES[RuleKey(kind)]
    except KeyError:
        known = sorted(key.kind for key in _RULES)
        close = difflib.get_close_matches(kind, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise RuleRegistryError(
            f"no inflation rule for op kind {kind!r}{hint}; known kinds: {', '.join(known)}"
        ) from None


def list_rules() -> list[Rule]:
    """Every registered rule, sorted by kind."""
    _ensure_loaded()
    return [_RULES[key] for key in sorted(_RULES)]
