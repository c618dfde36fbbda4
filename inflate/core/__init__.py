"""The framework-neutral core: op descriptions, weight initialisers, rules and policies.

Imports numpy only; never torch or onnx.
"""

from .errors import (
    InflateError,
    InvalidInputError,
    RuleRegistryError,
    ShapeMismatchError,
    UnsupportedOpError,
)
from .policy import Policy, get_policy, list_policies, register_policy
from .rules import Rule, RuleKey, Temporal, get_rule, has_rule, list_rules, register_rule
from .spec import InflatedOp, OpSpec, TimeSpec
from .weights import center_kernel, inflate_kernel, tile_kernel

__all__ = [
    "InflateError",
    "InvalidInputError",
    "RuleRegistryError",
    "ShapeMismatchError",
    "UnsupportedOpError",
    "Policy",
    "get_policy",
    "list_policies",
    "register_policy",
    "Rule",
    "RuleKey",
    "Temporal",
    "get_rule",
    "has_rule",
    "list_rules",
    "register_rule",
    "InflatedOp",
    "OpSpec",
    "TimeSpec",
    "center_kernel",
    "inflate_kernel",
    "tile_kernel",
]
