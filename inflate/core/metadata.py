"""The one metadata format of every file this library writes: a JSON object stored under the
``inflate`` key (safetensors header metadata, a .pt payload entry, ONNX ``metadata_props``).

:func:`write_metadata` encodes it and :func:`read_metadata` decodes and validates it; the
torch exporter, the ONNX adapter and the weight-file adapter all go through them. Every
object carries ``format_version`` and ``kind``:

- "model": a whole inflated model, rebuildable from the file alone plus timm (source
  architecture and its integer sizes, t, policy, init, pad mode, overrides, input size,
  attention, tubelet, library version). Files written before ``kind`` existed have none
  and read as "model".
- "weights": a state dict inflated by ``inflate weights`` (source file name, t, policy, init).
- "onnx": a graph inflated by ``inflate_onnx`` (t, policy, init, pad mode, dynamic size).

Only the keys a kind writes, with their value types, are accepted: metadata must never
choose what the library downloads or reads (timm's ``pretrained``, ``checkpoint_path``,
... are refused). Plain Python: json only.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from .errors import InvalidInputError

__all__ = ["METADATA_KEY", "FORMAT_VERSION", "KINDS", "write_metadata", "read_metadata", "validate_metadata"]

METADATA_KEY = "inflate"
FORMAT_VERSION = 1

_NONE = type(None)
_COMMON: dict[str, tuple[type, ...]] = {"format_version": (int,), "kind": (str,)}
# Each kind's keys, with their value types.
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "model": {"source": (str,), "source_kwargs": (dict,), "t": (int,), "policy": (str,), "init": (str,),
              "pad_mode": (str,), "overrides": (dict, str, _NONE), "input_size": (list,),
              "attention": (str, _NONE), "tubelet": (int, _NONE), "library_version": (str,)},
    "weights": {"source_file": (str,), "t": (int,), "policy": (str,), "init": (str,)},
    "onnx": {"t": (int,), "policy": (str,), "init": (str,), "pad_mode": (str,), "dynamic_size": (bool,)},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "model": ("source", "t", "policy", "init", "pad_mode", "input_size"),
    "weights": ("t", "policy", "init"),
    "onnx": ("t", "policy", "init"),
}
KINDS: tuple[str, ...] = tuple(_FIELDS)
# The 2D constructor arguments a model file records: plain sizes, never paths or downloads.
_SOURCE_KWARGS = ("num_classes", "in_chans", "logits_pool")
_SOURCE_CHOICES = {"logits_pool": ("valid", "adaptive")}  # the rest are sizes
_OVERRIDE_FIELDS = ("kernel", "stride", "padding", "init")
# Beyond these a model file would make the reader allocate without bound (a classifier of 10¹²
# rows, a kernel of 10⁵ frames): refused as the command line refuses them.
MAX_TIME_KERNEL = 64
MAX_NUM_CLASSES = 1_000_000
_SOURCE_LIMITS = {"num_classes": MAX_NUM_CLASSES, "in_chans": 4096}


def write_metadata(kind: str, fields: Mapping[str, Any]) -> str:
    """The metadata of a file of ``kind`` ("model", "weights", "onnx"): a JSON string.

    ``fields`` holds the kind's keys; ``format_version`` and ``kind`` are added. The result
    is checked as :func:`read_metadata` will check it, so a file is never written with
    metadata it cannot read back.
    """
    if kind not in _FIELDS:
        raise InvalidInputError(f"unknown metadata kind {kind!r}: use one of {', '.join(KINDS)}")
    meta = {"format_version": FORMAT_VERSION, "kind": kind, **fields}
    validate_metadata(meta, f"the {kind} metadata being written")
    return json.dumps(meta)


def read_metadata(raw: object, where: object) -> dict[str, Any]:
    """Decode and validate the ``inflate`` metadata string of a file (``where`` names it in
    errors). Raises :class:`InvalidInputError` naming the first thing at fault."""
    if not isinstance(raw, str):
        raise InvalidInputError(f"{where}: its '{METADATA_KEY}' metadata is a {type(raw).__name__}, not a JSON string")
    try:
        meta = json.loads(raw)
    except ValueError as error:
        raise InvalidInputError(f"{where}: its '{METADATA_KEY}' metadata is not valid JSON ({error}); the file was "
                                "altered or not written by inflate") from None
    return validate_metadata(meta, where)


def int_like(value: object) -> bool:
    """An int that is not a bool (JSON's true/false are not sizes)."""
    return _int_like(value)


def _int_like(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_metadata(meta: object, where: object) -> dict[str, Any]:
    """``meta`` (a decoded metadata object) if it holds only the keys and value types its
    kind writes; else :class:`InvalidInputError` naming the key at fault.

    Checks structure only: that a model file's ``source`` names a timm model or preset is
    for the reader that builds it (the core knows no timm).
    """
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{where}: its '{METADATA_KEY}' metadata is a JSON {type(meta).__name__}, "
                                "not an object; the file was not written by inflate or was altered")
    at = f"{where}: metadata"
    kind = meta.get("kind", "model")
    if kind not in _FIELDS:
        raise InvalidInputError(f"{at} 'kind' {kind!r} is not one inflate writes ({', '.join(KINDS)})")
    allowed = {**_COMMON, **_FIELDS[kind]}
    for key, value in meta.items():
        if key not in allowed:
            raise InvalidInputError(f"{at} key {key!r} is not one inflate writes; refused (a model file may not "
                                    f"set it). Known keys: {', '.join(allowed)}")
        types = allowed[key]
        if not isinstance(value, types) or (int in types and isinstance(value, bool)):
            raise InvalidInputError(f"{at} {key!r} is a {type(value).__name__}; expected "
                                    f"{' or '.join('null' if k is _NONE else k.__name__ for k in types)}")
    missing = [k for k in _REQUIRED[kind] if k not in meta]
    if missing:
        raise InvalidInputError(f"{at} lacks {', '.join(repr(k) for k in missing)}; it was not written by inflate")
    if meta["t"] < 1:
        raise InvalidInputError(f"{at} 't' must be >= 1, got {meta['t']}")
    if kind == "model":
        _validate_model(meta, at)
    return meta


def _validate_model(meta: dict[str, Any], at: str) -> None:
    for key, value in (meta.get("source_kwargs") or {}).items():
        if key not in _SOURCE_KWARGS:
            raise InvalidInputError(f"{at} source_kwargs {key!r} is not one inflate writes; refused (only "
                                    f"{', '.join(_SOURCE_KWARGS)} are accepted: a model file may not ask for "
                                    "downloads, URLs or other files)")
        if key in _SOURCE_CHOICES:
            if value not in _SOURCE_CHOICES[key]:
                raise InvalidInputError(f"{at} source_kwargs {key!r} must be one of "
                                        f"{', '.join(_SOURCE_CHOICES[key])}, got {value!r}")
        elif not _int_like(value) or not 0 <= value <= _SOURCE_LIMITS.get(key, value):
            raise InvalidInputError(f"{at} source_kwargs {key!r} must be an integer in 0..{_SOURCE_LIMITS.get(key, 'any')}"
                                    f", got {value!r}")
    size = meta["input_size"]
    if len(size) != 3 or not all(_int_like(v) and v > 0 for v in size):
        raise InvalidInputError(f"{at} 'input_size' must be three positive integers (C, H, W), got {size!r}")
    overrides = meta.get("overrides")
    if isinstance(overrides, str) and overrides != "callable":
        raise InvalidInputError(f"{at} 'overrides' must be an object or null, got the string {overrides!r}")
    if isinstance(overrides, dict):
        for pattern, value in overrides.items():
            fields = value if isinstance(value, dict) else {"kernel": value}
            if not all(k in _OVERRIDE_FIELDS for k in fields) or \
                    not all(_int_like(v) or isinstance(v, (str, list)) for v in fields.values()):
                raise InvalidInputError(f"{at} override {pattern!r} = {value!r} is not one inflate writes")
            for name in ("kernel", "stride"):
                number = fields.get(name)
                if _int_like(number) and not 1 <= number <= MAX_TIME_KERNEL:
                    raise InvalidInputError(f"{at} override {pattern!r} {name} {number} is outside 1..{MAX_TIME_KERNEL}")
