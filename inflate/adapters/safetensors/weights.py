"""Inflating weight files: every 4D convolution kernel becomes 5D by the policy's rule,
everything else is copied.

Without a target, a kernel's temporal size comes from the policy (its path is the key
without ``.weight``; the first 4D kernel in the file is the stem). With a target (a 3D
state dict, or just its shapes), temporal sizes come from the target, as SlowFast's
checkpoint loader does, and every key and shape must fit.

Safetensors files are inflated tensor by tensor: the output header is planned from the
input header, then each tensor is read (memory-mapped), inflated and appended, so memory
stays near one tensor whatever the file size. Imports numpy and safetensors only.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np

from ...core.errors import InvalidInputError, ShapeMismatchError, key_mismatch
from ...core.geometry import StemCandidate, check_clip_length, find_stem
from ...core.metadata import METADATA_KEY, write_metadata
from ...core.policy import OverrideTable, Policy, get_policy, role_of
from ...core.rules import get_rule
from ...core.spec import OpSpec, TimeSpec

__all__ = ["inflate_state_dict", "plan_state_dict", "inflate_weights_file", "TensorPlan"]

# BF16 is stored as its 16 raw bits (numpy has no bfloat16) and widened to float32 to compute.
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items() if k != "BF16"}
_FLOATS = ("F64", "F32", "F16", "BF16")
# Keys that only transformers have: their 3D form (tubelets with a temporal embedding, wrapped
# attention) needs the model, which a weight file does not describe.
_TRANSFORMER_MARKS = ("pos_embed", "cls_token", "dist_token", "reg_token", "relative_position_bias_table",
                      "qkv.weight", "q_proj.weight")


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 raw bits (uint16) → float32, exactly (bfloat16 is float32's upper half)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 raw bits, rounded to nearest even as torch's ``.to(torch.bfloat16)``;
    NaN stays NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = ((bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    return np.where(np.isnan(values), np.uint16(0x7FC0), rounded)


def _refuse_transformer(keys: Any, source: object) -> None:
    for key in keys:
        if any(key.endswith(mark) or f".{mark}" in key or key.startswith(mark) for mark in _TRANSFORMER_MARKS) or \
                ("patch_embed" in key and key.endswith("weight")):
            raise InvalidInputError(
                f"{source} holds a transformer (first sign: '{key}'): its patch embedding becomes a tubelet "
                "embedding with a new temporal embedding and its attention is wrapped, which a weight file alone "
                "cannot describe; use `inflate convert MODEL --weights FILE` (inflate_model) instead")


@dataclass(frozen=True)
class TensorPlan:
    """What happens to one tensor: its 3D shape and the temporal kernel (1 = copied as is)."""

    key: str
    shape2d: tuple[int, ...]
    shape3d: tuple[int, ...]
    time_kernel: Optional[int]  # None: not a kernel, copied
    init: str = "tile"
    kind: str = "conv"  # the core rule that inflates the kernel


def _is_kernel(key: str, shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and key.endswith("weight")


def plan_state_dict(
    shapes: Mapping[str, tuple[int, ...]],
    policy: Policy,
    target_shapes: Optional[Mapping[str, tuple[int, ...]]] = None,
    dtypes: Optional[Mapping[str, str]] = None,
) -> list[TensorPlan]:
    """Decide each tensor's 3D shape from the policy, or from ``target_shapes`` when given.

    ``dtypes`` (safetensors codes, "F32", "I8", ...) lets it refuse integer kernels, which
    tiling would divide and truncate. A file with no 4D kernel (already 3D, or no convs),
    and a target with no 5D kernel (a 2D file), are refused: nothing would be inflated.
    """
    if not any(_is_kernel(k, tuple(s)) for k, s in shapes.items()):
        five_d = next((k for k, s in shapes.items() if len(s) == 5), None)
        if five_d is not None:
            raise InvalidInputError(f"the weights are already 3D ('{five_d}' is 5D) and hold no 2D kernel: "
                                    "nothing to inflate")
        raise InvalidInputError("the weights hold no 4D convolution kernel (a key ending in 'weight' with shape "
                                "(O, I, kh, kw)): nothing to inflate")
    if target_shapes is not None:
        if not any(len(s) == 5 for s in target_shapes.values()):
            raise InvalidInputError("the target holds no 5D kernel (no inflated 3D weights); give the 3D weight "
                                    "file whose shapes the kernels should take")
        mismatch = key_mismatch(target_shapes, shapes, "target", "2D")
        if mismatch:
            raise InvalidInputError(f"the 2D weights do not fit the target: {mismatch}")
    if dtypes is not None:
        for key, shape in shapes.items():
            if _is_kernel(key, tuple(shape)) and dtypes[key] not in _FLOATS:
                raise InvalidInputError(
                    f"tensor '{key}' is an integer ({dtypes[key]}) kernel: dividing it by the temporal size would "
                    "truncate it; dequantise the weights to floating point first")
    # A weight file records no run order: its first kernel stands for the first conv.
    stem = find_stem(StemCandidate(k[: -len(".weight")], "conv") for k, s in shapes.items() if _is_kernel(k, tuple(s)))
    plans = []
    for key, shape in shapes.items():
        shape = tuple(int(d) for d in shape)
        if target_shapes is not None:
            target = tuple(int(d) for d in target_shapes[key])
            if len(shape) == 4 and len(target) == 5 and target[:2] == shape[:2] and target[3:] == shape[2:]:
                kind = _kernel_kind(key, shape, shapes)
                _describe(kind, key, shape, TimeSpec(kernel=target[2], init=policy.init))  # type: ignore[arg-type]
                plans.append(TensorPlan(key, shape, target, target[2], policy.init, kind))
            elif target == shape:
                plans.append(TensorPlan(key, shape, shape, None))
            else:
                raise ShapeMismatchError(f"tensor '{key}'", target, shape,
                                         "the target expects this shape; a 4D kernel fits (O, I, k_t, kh, kw) only")
            continue
        if _is_kernel(key, shape):
            path = key[: -len(".weight")]
            kind = _kernel_kind(key, shape, shapes)
            spec = OpSpec(kind, path, (shape[2], shape[3]), role=role_of(path, stem))  # type: ignore[arg-type]
            time = policy.time_for(spec)
            get_rule(kind).describe(spec, time)  # a rule that refuses these settings refuses before any write
            plans.append(TensorPlan(key, shape, (shape[0], shape[1], time.kernel, shape[2], shape[3]), time.kernel,
                                    time.init, kind))
        else:
            plans.append(TensorPlan(key, shape, shape, None))
    return plans


def _kernel_kind(key: str, shape: tuple[int, ...], shapes: Mapping[str, Any]) -> str:
    """The rule of a 4D kernel: "std_conv" for a scaled weight-standardised conv (timm's
    ScaledStdConv2d: NFNet), told by its (O, 1, 1, 1) ``gain`` beside the kernel, else "conv".

    A plain StdConv2d (BiT) has no parameter of its own, so a weight file cannot tell it from a
    conv; the two rules map its kernel alike under ``tile`` init (the conv rule's tile, with
    the rest of the standardisation in the 3D module), and only ``center`` init differs,
    which the std_conv rule refuses.
    """
    gain = shapes.get(key[: -len("weight")] + "gain")
    if gain is not None and tuple(int(d) for d in gain) == (shape[0], 1, 1, 1):
        return "std_conv"
    return "conv"


def _describe(kind: str, key: str, shape: tuple[int, ...], time: Any) -> None:
    get_rule(kind).describe(OpSpec(kind, key[: -len(".weight")], (shape[2], shape[3])), time)  # type: ignore[arg-type]


def _apply(plan: TensorPlan, array: np.ndarray) -> np.ndarray:
    """Inflate one tensor. Half-precision kernels are computed in float32 and rounded back,
    as ``tensor.float()`` then ``.to(dtype)`` would; the result keeps the input's dtype."""
    if plan.time_kernel is None:
        return array
    if array.dtype.kind != "f":
        raise InvalidInputError(f"tensor '{plan.key}' is an integer ({array.dtype}) kernel: dividing it by the "
                                "temporal size would truncate it; dequantise the weights to floating point first")
    spec = OpSpec(plan.kind, plan.key, (plan.shape2d[2], plan.shape2d[3]))
    work = array.astype(np.float32) if array.dtype == np.float16 else array
    _, out = get_rule(plan.kind).inflate(spec, TimeSpec(kernel=plan.time_kernel, init=plan.init), {"weight": work})  # type: ignore[arg-type]
    return out["weight"].astype(array.dtype, copy=False)


def _check_finite(key: str, array: np.ndarray, source: object) -> None:
    if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InvalidInputError(f"tensor '{key}' in {source} has {bad} non-finite values (NaN or Inf) of "
                                f"{array.size}; the weights are damaged: use a good checkpoint")


def inflate_state_dict(
    state_dict_2d: Mapping[str, Any],
    t: int = 8,
    *,
    policy: str | Policy = "i3d",
    init: Optional[str] = None,
    overrides: OverrideTable = None,
    target: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """Inflate a 2D state dict (numpy arrays or torch tensors; the same kind comes back).

    ``target``: a 3D state dict (or a model's ``state_dict()``) whose shapes decide each
    kernel's temporal size; every key and shape must fit it. ``t`` is the clip length the
    weights are meant for (kept for symmetry with inflate_model; kernels do not depend on it).
    """
    check_clip_length(t)
    resolved = get_policy(policy, init=init, overrides=overrides)
    shapes = {k: tuple(v.shape) for k, v in state_dict_2d.items()}
    target_shapes = None if target is None else {k: tuple(v.shape) for k, v in target.items()}
    if target is None:
        _refuse_transformer(shapes, "the state dict")
    dtypes = {k: "F32" if _is_float(v) else "I" for k, v in state_dict_2d.items()}
    out: dict[str, Any] = {}
    for plan in plan_state_dict(shapes, resolved, target_shapes, dtypes):
        value = state_dict_2d[plan.key]
        if plan.time_kernel is None:
            out[plan.key] = value.clone() if hasattr(value, "clone") else np.array(value, copy=True)
            continue
        if hasattr(value, "detach"):  # a torch tensor: through numpy and back, same dtype
            import torch

            array = value.detach().cpu()
            dtype = array.dtype
            inflated = _apply(plan, array.float().numpy() if dtype in (torch.bfloat16, torch.float16) else array.numpy())
            out[plan.key] = torch.from_numpy(inflated).to(dtype)
        else:
            out[plan.key] = _apply(plan, np.asarray(value))
    return out


def _is_float(value: Any) -> bool:
    if hasattr(value, "is_floating_point"):
        return bool(value.is_floating_point())
    return np.asarray(value).dtype.kind == "f"


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(8)
            if len(raw) != 8:
                raise ValueError("shorter than a header")
            (size,) = struct.unpack("<Q", raw)
            if size > 100_000_000 or size > path.stat().st_size - 8:
                raise ValueError("header size out of range")
            header = json.loads(handle.read(size))
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path} is not a readable .safetensors file ({error}); it may be truncated or corrupt") from None
    data_start = 8 + size
    _check_header(path, header)
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if data_start + end > path.stat().st_size:
        raise InvalidInputError(f"{path} is truncated: its header describes {data_start + end} bytes, the file has "
                                f"{path.stat().st_size}")
    return header, data_start


def _check_header(path: Path, header: Any) -> None:
    """Every tensor entry well formed: a shape of non-negative sizes whose bytes are exactly its data
    range, ranges that do not overlap. Otherwise one InvalidInputError saying the file is damaged."""
    def damaged(why: str) -> InvalidInputError:
        return InvalidInputError(f"{path} is damaged: {why}; re-save it (safetensors.torch.save_file)")

    if not isinstance(header, dict):
        raise damaged("its header is not a JSON object")
    spans = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise damaged(f"tensor '{key}' has no dtype, shape and data_offsets")
        shape, offsets = info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                  for n in shape):
            raise damaged(f"tensor '{key}' has shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise damaged(f"tensor '{key}' has data_offsets {offsets!r}")
        dtype = _DTYPES.get(info["dtype"]) if isinstance(info["dtype"], str) else None
        if dtype is not None and int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize != offsets[1] - offsets[0]:
            raise damaged(f"tensor '{key}' of shape {tuple(shape)} ({info['dtype']}) does not fill its "
                          f"{offsets[1] - offsets[0]} bytes")
        spans.append((offsets[0], offsets[1], key))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise damaged(f"tensors '{first}' and '{second}' share bytes")


def _iter_tensors(path: Path, header: Mapping[str, Any], data_start: int, keys: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """One tensor at a time, each read into its own buffer (no memory map: the resident set
    stays near one tensor however large the file)."""
    with open(path, "rb") as handle:
        for key in keys:
            info = header[key]
            if info["dtype"] not in _DTYPES:
                raise InvalidInputError(f"tensor '{key}' has dtype {info['dtype']}, which the torch-free weight adapter "
                                        f"cannot read; convert the file to float32 first")
            begin, end = info["data_offsets"]
            handle.seek(data_start + begin)
            raw = handle.read(end - begin)
            if len(raw) != end - begin:
                raise InvalidInputError(f"{path} is truncated inside tensor '{key}'")
            array = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
            if info["dtype"] == "BF16":
                array = bf16_to_f32(array)
            _check_finite(key, array, path)
            yield key, array


def inflate_weights_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    t: int = 8,
    *,
    policy: str | Policy = "i3d",
    init: Optional[str] = None,
    overrides: OverrideTable = None,
    target: Optional[str | os.PathLike[str] | Mapping[str, Any]] = None,
    force: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> list[TensorPlan]:
    """Inflate a weight file into a .safetensors file, atomically.

    ``.safetensors`` input is streamed tensor by tensor (no torch needed); ``.pth``/``.pt``
    input is read whole with ``torch.load(weights_only=True)``. ``target`` (a 3D weight
    file or state dict) fixes the temporal sizes. Returns what was done to each tensor.
    """
    from ...core.files import atomic_output

    source, output = Path(source), Path(output)
    check_clip_length(t)
    if output.suffix.lower() != ".safetensors":
        raise InvalidInputError(f"output {output}: inflated weights are written as safetensors; give it a "
                                ".safetensors suffix")
    from ...core.files import require_input_file

    require_input_file(source, "weights file", "a .safetensors or .pth file")
    resolved = get_policy(policy, init=init, overrides=overrides)
    target_shapes = _target_shapes(target)
    metadata = {METADATA_KEY: write_metadata("weights", {"source_file": source.name, "t": t,
                                                         "policy": resolved.name, "init": resolved.init})}
    if source.suffix.lower() == ".safetensors":
        header, data_start = _read_header(source)
        keys = [k for k in header if k != "__metadata__"]
        shapes = {k: tuple(header[k]["shape"]) for k in keys}
        dtypes = {k: header[k]["dtype"] for k in keys}
        unknown = next((k for k in keys if dtypes[k] not in _DTYPES), None)
        if unknown is not None:
            raise InvalidInputError(f"tensor '{unknown}' in {source} has dtype {dtypes[unknown]}, which the weight "
                                    f"adapter does not read ({', '.join(_DTYPES)}); convert the file first")
        if target_shapes is None:
            _refuse_transformer(keys, source)
        plans = plan_state_dict(shapes, resolved, target_shapes, dtypes)
        tensors = _iter_tensors(source, header, data_start, keys)
    else:
        from ...io import load_state_dict_file

        loaded = load_state_dict_file(source)  # refuses pickled objects and non-finite values
        dtypes = {k: "BF16" if str(v.dtype) == "torch.bfloat16" else _torch_code(k, v, source) for k, v in loaded.items()}
        state = {k: v.float().numpy() if str(v.dtype) == "torch.bfloat16" else v.numpy() for k, v in loaded.items()}
        if target_shapes is None:
            _refuse_transformer(state, source)
        plans = plan_state_dict({k: v.shape for k, v in state.items()}, resolved, target_shapes, dtypes)
        tensors = iter(state.items())
    if isinstance(overrides, Mapping):
        import fnmatch

        paths = [p.key[: -len(".weight")] for p in plans if p.time_kernel is not None]
        unused = next((pattern for pattern in overrides if not any(fnmatch.fnmatchcase(x, pattern) for x in paths)), None)
        if unused is not None:
            raise InvalidInputError(f"override pattern {unused!r} matches no kernel of {source} (kernel paths look "
                                    f"like {', '.join(paths[:3])})")
    with atomic_output(output, force) as temporary:
        _write_streaming(temporary, plans, dtypes, tensors, metadata, progress)
    return plans


def _torch_code(key: str, value: Any, source: object) -> str:
    code = _CODES.get(np.dtype(value.numpy().dtype)) if value.dtype.is_complex is False else None
    if code is None:
        raise InvalidInputError(f"tensor '{key}' in {source} has dtype {value.dtype}, which the weight adapter does "
                                f"not write; convert the file first")
    return code


def _target_shapes(target: Any) -> Optional[dict[str, tuple[int, ...]]]:
    if target is None:
        return None
    if isinstance(target, Mapping):
        return {k: tuple(v.shape) for k, v in target.items()}
    from ...core.files import require_input_file

    path = require_input_file(target, "target file", "a 3D .safetensors or .pth file")
    if path.suffix.lower() == ".safetensors":
        header, _ = _read_header(path)
        return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    from ...io import load_state_dict_file

    return {k: tuple(v.shape) for k, v in load_state_dict_file(path).items()}


def _write_streaming(path: Path, plans: list[TensorPlan], dtypes: Mapping[str, str],
                     tensors: Iterator[tuple[str, np.ndarray]], metadata: Mapping[str, str],
                     progress: Optional[Callable[[int, int], None]]) -> None:
    """Write a safetensors file whose header is known in advance, one tensor at a time."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    offset = 0
    for plan in plans:
        itemsize = np.dtype(_DTYPES[dtypes[plan.key]]).itemsize
        nbytes = int(np.prod(plan.shape3d, dtype=np.int64)) * itemsize
        header[plan.key] = {"dtype": dtypes[plan.key], "shape": list(plan.shape3d), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # align the data section to 8 bytes
    by_key = {p.key: p for p in plans}
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for done, (key, array) in enumerate(tensors, 1):
            out = _apply(by_key[key], array)
            expected = tuple(header[key]["shape"])
            if tuple(out.shape) != expected:
                raise ShapeMismatchError(f"inflated tensor '{key}'", expected, tuple(out.shape))
            stored = f32_to_bf16(out) if dtypes[key] == "BF16" else np.ascontiguousarray(out, dtype=_DTYPES[dtypes[key]])
            handle.write(memoryview(np.ascontiguousarray(stored)).cast("B"))
            if progress is not None:
                progress(done, len(plans))
